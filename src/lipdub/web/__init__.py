"""lipdub.web: see docs/architecture.md."""
