"""The face record every stage shares: a box, a score, landmarks and a track id, in full-frame pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One face in one frame.

    box: (x1, y1, x2, y2) float pixels, x2/y2 exclusive. landmarks: (478, 2) FaceMesh points (x, y) in
    full-frame pixels, or None when no landmark model ran. track_id: stable id of one appearance in one shot
    (None for an untracked detection). person_id: who it is across the whole video (see lipdub.faces.persons).
    """

    box: np.ndarray
    score: float = 1.0
    landmarks: np.ndarray | None = None
    track_id: int | None = None
    person_id: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def contains(self, x: float, y: float) -> bool:
        return bool(self.box[0] <= x < self.box[2] and self.box[1] <= y < self.box[3])
