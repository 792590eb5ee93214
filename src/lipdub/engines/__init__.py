"""lipdub.engines: see docs/architecture.md."""
