"""scipy.ndimage's 1-D smoothing filters in numpy, for the short per-frame signals we smooth (cue weights,
articulation, motion paths). Importing scipy.ndimage costs ~1 CPU-s of start-up (it loads numpy.f2py, array-API
shims and docstring machinery); these give the same values (to float rounding) with the same arguments."""

from __future__ import annotations

import numpy as np

# scipy.ndimage boundary modes -> numpy.pad modes
_PAD = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect", "wrap": "wrap", "constant": "constant"}


def _windows(x: np.ndarray, before: int, after: int, axis: int, mode: str) -> tuple[np.ndarray, int]:
    """`x` padded along `axis` (moved to 0) as scipy's `mode` extends it, and the output length."""
    moved = np.moveaxis(np.asarray(x), axis, 0)
    pad = [(before, after)] + [(0, 0)] * (moved.ndim - 1)
    return np.pad(moved.astype(np.float64), pad, mode=_PAD[mode]), moved.shape[0]


def correlate1d(x: np.ndarray, weights: np.ndarray, axis: int = -1, mode: str = "reflect") -> np.ndarray:
    """`scipy.ndimage.correlate1d` for odd-length `weights` (centred), computed in float64, `x`'s dtype out."""
    radius = len(weights) // 2
    padded, n = _windows(x, radius, radius, axis, mode)
    out = np.zeros(padded[:n].shape)
    for k, w in enumerate(weights):
        out += w * padded[k:k + n]
    return np.moveaxis(out, 0, axis).astype(np.asarray(x).dtype, copy=False)


def gaussian_filter1d(x: np.ndarray, sigma: float, axis: int = -1, mode: str = "reflect",
                      truncate: float = 4.0) -> np.ndarray:
    """`scipy.ndimage.gaussian_filter1d` (order 0): the kernel cut at `truncate` sigmas, normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / (float(sigma) * float(sigma)) * t * t)
    return correlate1d(x, kernel / kernel.sum(), axis, mode)


def uniform_filter1d(x: np.ndarray, size: int, axis: int = -1, mode: str = "reflect") -> np.ndarray:
    """`scipy.ndimage.uniform_filter1d` for an odd `size`: the mean of `size` neighbours."""
    if size % 2 == 0:
        raise ValueError(f"uniform_filter1d: size must be odd, got {size}")
    return correlate1d(x, np.full(size, 1.0 / size), axis, mode)


def median_filter(x: np.ndarray, size: int, mode: str = "reflect") -> np.ndarray:
    """`scipy.ndimage.median_filter` for a 1-D signal and an odd `size`."""
    if size % 2 == 0 or np.ndim(x) != 1:
        raise ValueError(f"median_filter: needs a 1-D signal and an odd size, got {np.ndim(x)}-D, size {size}")
    x = np.asarray(x)
    padded = np.pad(x, size // 2, mode=_PAD[mode])
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    return np.partition(windows, size // 2, axis=1)[:, size // 2].astype(x.dtype, copy=False)
