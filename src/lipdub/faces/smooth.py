"""One Euro filter (Casiez et al., CHI 2012): removes jitter at rest, follows fast motion without lag."""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Adaptive low-pass filter over arrays of points.

    The cutoff rises with speed: `cutoff = min_cutoff + beta * |dx/dt|`. For `(N, 2)` input the speed of a
    point is the length of its 2-D velocity, so x and y of one point share a cutoff. `beta` is in the units
    of the input; callers tracking faces scale it by 1 / face size (see `lipdub.faces.tracker`).
    """

    def __init__(self, freq: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.freq = float(freq)
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the past (the next sample passes through unchanged)."""
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, dt: float | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        dt = 1.0 / self.freq if dt is None else dt
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) if x.ndim > 1 else np.abs(self._dx)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()


# FaceMesh points that move with the skull, not with the mouth or jaw: eye corners, nose bridge, forehead.
RIGID = [33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 234, 454, 127, 356]


def _pose(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Center, scale (RMS radius) and roll (eye line angle) of the rigid points."""
    rigid = points[RIGID]
    center = rigid.mean(0)
    scale = float(np.sqrt(((rigid - center) ** 2).sum(1).mean()))
    eye = points[263] - points[33]
    return center, max(scale, 1e-3), float(math.atan2(eye[1], eye[0]))


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


class LandmarkSmoother:
    """One Euro smoothing of a face's 478 landmarks, split into head pose and expression.

    The head pose (center, scale, roll of the rigid points) carries most of the detector jitter and is
    smoothed hard at rest; the expression (points in the head's own frame) is smoothed lightly, so a
    speaking mouth keeps its amplitude. Speeds are measured in face sizes per second, so one setting fits
    small and large faces.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0,
                 shape_min_cutoff: float = 1.0, shape_beta: float = 50.0) -> None:
        self.pose = OneEuroFilter(fps, min_cutoff, beta, d_cutoff)
        self.shape = OneEuroFilter(fps, shape_min_cutoff, shape_beta, d_cutoff)
        self._unit = 1.0

    def reset(self) -> None:
        self.pose.reset()
        self.shape.reset()

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)
        if len(points) <= max(RIGID):
            return points.copy()
        center, scale, roll = _pose(points)
        if self.pose._x is None:
            self._unit = scale
        local = (points - center) @ _rotation(roll) / scale  # R^-1 p == p @ R for a rotation
        pose = self.pose(np.array([center[0] / self._unit, center[1] / self._unit, math.log(scale), roll]))
        local = self.shape(local)
        center, scale, roll = pose[:2] * self._unit, math.exp(pose[2]), pose[3]
        return local * scale @ _rotation(roll).T + center
