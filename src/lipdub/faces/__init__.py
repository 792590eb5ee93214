"""lipdub.faces: see docs/architecture.md."""
