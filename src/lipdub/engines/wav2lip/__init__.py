"""lipdub.engines.wav2lip: the Wav2Lip-compatible neural engine, its networks, checkpoints and official weights."""

from lipdub.engines.wav2lip.checkpoint import guess_kind, load_model, load_state_dict, save_checkpoint
from lipdub.engines.wav2lip.engine import Wav2LipEngine
from lipdub.engines.wav2lip.model import SyncNet, Wav2Lip, Wav2LipDiscQual, build_model, sync_probability
from lipdub.engines.wav2lip.protocol import protocol_model, protocol_state_dict, write_protocol_checkpoint

__all__ = [
    "SyncNet",
    "Wav2Lip",
    "Wav2LipDiscQual",
    "Wav2LipEngine",
    "build_model",
    "guess_kind",
    "load_model",
    "load_state_dict",
    "protocol_model",
    "protocol_state_dict",
    "save_checkpoint",
    "sync_probability",
    "write_protocol_checkpoint",
]
