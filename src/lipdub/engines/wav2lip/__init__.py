"""lipdub.engines.wav2lip: the Wav2Lip-compatible neural engine, its networks, checkpoints and official weights.

Names are imported lazily so that `lipdub weights ...` and other light users do not pay for torch/OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Wav2LipEngine": "engine",
    "SyncNet": "model",
    "Wav2Lip": "model",
    "Wav2LipDiscQual": "model",
    "build_model": "model",
    "sync_probability": "model",
    "CheckpointError": "checkpoint",
    "guess_kind": "checkpoint",
    "load_model": "checkpoint",
    "load_state_dict": "checkpoint",
    "save_checkpoint": "checkpoint",
    "protocol_model": "protocol",
    "protocol_state_dict": "protocol",
    "write_protocol_checkpoint": "protocol",
    "WEIGHTS": "weights",
    "fetch": "weights",
    "resolve_checkpoint": "weights",
    "weights_path": "weights",
}

__all__ = [
    "CheckpointError",
    "SyncNet",
    "WEIGHTS",
    "Wav2Lip",
    "Wav2LipDiscQual",
    "Wav2LipEngine",
    "build_model",
    "fetch",
    "guess_kind",
    "load_model",
    "load_state_dict",
    "protocol_model",
    "protocol_state_dict",
    "resolve_checkpoint",
    "save_checkpoint",
    "sync_probability",
    "weights_path",
    "write_protocol_checkpoint",
]

if TYPE_CHECKING:
    from lipdub.engines.wav2lip.checkpoint import (
        CheckpointError,
        guess_kind,
        load_model,
        load_state_dict,
        save_checkpoint,
    )
    from lipdub.engines.wav2lip.engine import Wav2LipEngine
    from lipdub.engines.wav2lip.model import SyncNet, Wav2Lip, Wav2LipDiscQual, build_model, sync_probability
    from lipdub.engines.wav2lip.protocol import protocol_model, protocol_state_dict, write_protocol_checkpoint
    from lipdub.engines.wav2lip.weights import WEIGHTS, fetch, resolve_checkpoint, weights_path


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
