"""lipdub.audio: see docs/architecture.md."""
