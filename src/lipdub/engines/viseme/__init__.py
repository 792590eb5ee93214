"""lipdub.engines.viseme: see docs/architecture.md."""
