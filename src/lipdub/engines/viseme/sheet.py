"""A contact sheet of every mouth shape on one portrait, labelled, for people to judge the shapes by eye."""

from __future__ import annotations

import cv2
import numpy as np

from lipdub.audio.cues import SHAPE_NAMES, SHAPES
from lipdub.engines.viseme.render import FaceRenderer, apply_patch
from lipdub.engines.viseme.shapes import shape_pose


def shapes_sheet(image: np.ndarray, landmarks: np.ndarray, tile: int = 256, columns: int = 3) -> np.ndarray:
    """RGB sheet: one tile per shape (X, A..H), cropped around the lower face, with letter and name."""
    renderer = FaceRenderer(image, landmarks)
    lm = renderer.warp.lm
    center = lm[[1, 152, 61, 291]].mean(axis=0)
    side = 1.5 * float(np.linalg.norm(lm[152] - lm[168]))
    x0, y0 = int(round(center[0] - side / 2)), int(round(center[1] - side / 2))
    tiles = []
    for shape in SHAPES:
        frame = apply_patch(image, renderer.render(image, shape_pose(shape)))
        crop = _crop(frame, x0, y0, int(round(side)))
        crop = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA if side > tile else cv2.INTER_CUBIC)
        band = np.full((28, tile, 3), 255, np.uint8)
        cv2.putText(band, f"{shape}  {SHAPE_NAMES[shape]}", (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.vstack([crop, band]))
    rows = int(np.ceil(len(tiles) / columns))
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * columns - len(tiles))
    pad = lambda t: cv2.copyMakeBorder(t, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(255, 255, 255))  # noqa: E731
    return np.vstack([np.hstack([pad(t) for t in tiles[r * columns:(r + 1) * columns]]) for r in range(rows)])


def _crop(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Square crop that may run off the frame (padded with grey)."""
    padded = cv2.copyMakeBorder(frame, side, side, side, side, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    return padded[y0 + side: y0 + 2 * side, x0 + side: x0 + 2 * side]
