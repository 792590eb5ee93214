"""lipdub.media: all media I/O (PyAV): probe, stills, constant-rate video frames, audio, atomic writers."""

from lipdub.media.atomic import atomic_output, is_sequence_pattern
from lipdub.media.audio import SAMPLE_RATE, load_audio, require_speech, write_audio
from lipdub.media.image import read_image
from lipdub.media.info import MediaInfo, probe
from lipdub.media.video import FrameSource, iter_frames
from lipdub.media.writer import VideoWriter

__all__ = ["SAMPLE_RATE", "FrameSource", "MediaInfo", "VideoWriter", "atomic_output", "is_sequence_pattern",
           "iter_frames", "load_audio", "probe", "read_image", "require_speech", "write_audio"]
