"""lipdub.engines.wav2lip: see docs/architecture.md."""
