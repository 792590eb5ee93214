"""lipdub: make a face in a photo or a video speak a given audio track."""

__version__ = "0.1.0"
