"""Deterministic 'protocol' weights and inputs (no RNG), as the reference goldens were made, built in numpy.

Every tensor is a pure function of its key, shape and position t in the state dict:
h_i = frac(sin(i*12.9898 + t*78.233) * 43758.5453) - 0.5, scaled per tensor kind.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipdub.engines.wav2lip.model import build_model

INPUT_T0 = 1000  # inputs of the forward goldens use t = 1000 + k


def hash_values(n: int, t: int) -> np.ndarray:
    """The protocol hash h for elements 0..n-1 at position t, float64 in [-0.5, 0.5)."""
    i = np.arange(n, dtype=np.float64)
    y = np.sin(i * 12.9898 + float(t) * 78.233) * 43758.5453
    return (y - np.floor(y)) - 0.5


def protocol_rule(key: str, shape: tuple[int, ...], keys: set[str]) -> str:
    """Which protocol rule a state-dict entry falls under (first match wins)."""
    if key.endswith("num_batches_tracked"):
        return "zero_int64"
    if key.endswith("running_mean"):
        return "running_mean"
    if key.endswith("running_var"):
        return "running_var"
    if len(shape) == 1 and key.endswith(".weight") and key[: -len("weight")] + "running_mean" in keys:
        return "bn_weight"
    if len(shape) == 1:
        return "bias_1d"
    return "fan_scaled"


def protocol_array(key: str, shape: tuple[int, ...], t: int, keys: set[str]) -> np.ndarray:
    """The protocol value of one state-dict entry (float32, or int64 zeros for num_batches_tracked)."""
    rule = protocol_rule(key, shape, keys)
    if rule == "zero_int64":
        return np.zeros(shape, np.int64)
    n = math.prod(shape)
    h = hash_values(n, t)
    if rule == "running_mean":
        v = 0.1 * h
    elif rule == "running_var":
        v = 1.0 + 0.5 * (h + 0.5)
    elif rule == "bn_weight":
        v = 1.0 + 0.2 * h
    elif rule == "bias_1d":
        v = 0.1 * h
    else:
        v = h * (2.0 * math.sqrt(3.0) / math.sqrt(n // shape[0]))
    return v.astype(np.float32).reshape(shape)


def protocol_state_dict(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Protocol weights for `model`, in its own state_dict order (t = position), ready for load_state_dict."""
    layout = model.state_dict()
    keys = set(layout)
    return OrderedDict(
        (key, torch.from_numpy(protocol_array(key, tuple(v.shape), t, keys)))
        for t, (key, v) in enumerate(layout.items())
    )


def protocol_input(shape: tuple[int, ...], t: int, kind: str) -> np.ndarray:
    """A golden input: kind 'face' -> h + 0.5 in [0, 1); 'mel' -> 8h in [-4, 4). float32, C-order."""
    h = hash_values(math.prod(shape), t)
    if kind == "face":
        v = h + 0.5
    elif kind == "mel":
        v = 8.0 * h
    else:
        raise ValueError(f"unknown input kind {kind!r} (use 'face' or 'mel')")
    return v.astype(np.float32).reshape(shape)


def protocol_model(kind: str = "wav2lip") -> nn.Module:
    """A network of `kind` with protocol weights loaded, in eval mode."""
    model = build_model(kind)
    model.load_state_dict(protocol_state_dict(model))
    return model.eval()


def write_protocol_checkpoint(path: str | os.PathLike[str], kind: str = "wav2lip") -> Path:
    """Write protocol weights in the official training-script layout ('module.' keys), atomically."""
    from lipdub.engines.wav2lip.checkpoint import save_checkpoint

    return save_checkpoint(path, protocol_model(kind))
