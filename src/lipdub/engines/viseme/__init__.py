"""lipdub.engines.viseme: the embedded engine that needs no weights (phones -> mouth shapes -> face warp)."""

from lipdub.engines.viseme.engine import VisemeEngine
from lipdub.engines.viseme.sheet import shapes_sheet

__all__ = ["VisemeEngine", "shapes_sheet"]
