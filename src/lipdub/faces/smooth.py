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
    of the input; callers tracking faces scale it by 1 / face size (see `lipdub.faces.track`).
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
