"""lipdub.media: see docs/architecture.md."""
