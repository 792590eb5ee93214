"""lipdub.train: see docs/architecture.md."""
