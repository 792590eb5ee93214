"""lipdub.data: see docs/architecture.md."""
