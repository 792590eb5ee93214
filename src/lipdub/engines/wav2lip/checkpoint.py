"""Read and write Wav2Lip checkpoints (official .pth layout, plain state dicts, .safetensors) with clear errors."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import OrderedDict
from functools import cache
from pathlib import Path

import torch
from torch import nn

from lipdub.engines.wav2lip.model import build_model
from lipdub.errors import CheckpointError

PathLike = str | os.PathLike[str]

# user-facing names of the official files for each network kind
KIND_NAMES = {"wav2lip": "wav2lip", "syncnet": "lipsync_expert", "disc_qual": "visual_quality_disc"}
_S3FD_KEYS = {"conv1_1.weight", "conv3_3_norm.weight", "conv4_3_norm_mbox_conf.weight"}


def _one_line(err: BaseException, limit: int = 100) -> str:
    """'Type: first sentence of the message', short enough for a one-line error."""
    text = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}".rstrip(": ")


def strip_module(state: dict) -> OrderedDict[str, torch.Tensor]:
    """Keys without the 'module.' prefix(es) DataParallel / DDP put in front (the official files have one)."""
    return OrderedDict((_unprefixed(str(k)), v) for k, v in state.items())


def _unprefixed(key: str) -> str:
    while key.startswith("module."):
        key = key.removeprefix("module.")
    return key


def load_state_dict(path: PathLike) -> OrderedDict[str, torch.Tensor]:
    """The tensors of a checkpoint file, keys without 'module.'; other entries (optimizer, step) are ignored.

    Accepts a torch file holding {'state_dict': ...} (the official layout), a torch file holding a plain
    state dict, or a .safetensors file. Torch files are read with weights_only=True (no code runs).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"unreadable or corrupt .safetensors file ({_one_line(err)})", path) from err
    else:
        try:
            with warnings.catch_warnings():  # old pickle protocols warn under weights_only; harmless here
                warnings.simplefilter("ignore")
                obj = _torch_load(path)
        except Exception as err:
            hint = "truncated or corrupt file, or not a torch checkpoint"
            if "weights_only" in str(err) or "Weights only" in str(err):
                hint = "the file holds Python objects other than tensors (refused for safety)"
            raise CheckpointError(f"cannot read checkpoint: {hint} ({_one_line(err)})", path) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("not a checkpoint: expected a state dict of tensors or a dict with 'state_dict'",
                              path)
    bad = [k for k, v in obj.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"corrupt checkpoint: {_summary('tensors with NaN/inf values', bad)}", path)
    return strip_module(obj)


def _torch_load(path: Path) -> object:
    """torch.load, memory-mapped where the file allows it (zip format): the weights then live in the page cache,
    shared by every process that loads them on this machine (the web app's and a Ray node's workers), and the
    network assigned from them holds no second copy. Legacy (pre-zip) files are read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap can only be used" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


@cache
def _layout(kind: str) -> dict[str, torch.Size]:
    """Key -> shape of a fresh `kind` network's state dict."""
    return {k: v.shape for k, v in build_model(kind).state_dict().items()}


def _fits(state: dict[str, torch.Tensor], layout: dict[str, torch.Size]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of `state` against a layout; num_batches_tracked is optional."""
    missing = [k for k in layout if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in layout]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v)}" for k, v in layout.items()
              if k in state and state[k].shape != v]
    return missing, unexpected, shapes


def _overlap(state: dict[str, torch.Tensor], layout: dict[str, torch.Size]) -> float:
    """Fraction of the layout's entries present in `state` with the right shape."""
    return sum(1 for k, v in layout.items() if k in state and state[k].shape == v) / len(layout)


def guess_kind(state: dict[str, torch.Tensor]) -> str | None:
    """Which network a state dict most likely belongs to ('wav2lip', 'syncnet', 'disc_qual', 's3fd'), or None."""
    if set(state) >= _S3FD_KEYS:
        return "s3fd"
    scores = {kind: _overlap(state, _layout(kind)) for kind in KIND_NAMES}
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] >= 0.9 else None


def _summary(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return f"{len(items)} {label} ({shown})"


def load_into(model: nn.Module, state: dict[str, torch.Tensor], kind: str, path: PathLike,
              assign: bool = False) -> nn.Module:
    """Load `state` strictly into `model`, or raise a CheckpointError that says what does not fit.

    assign: the model takes `state`'s tensors as they are (no copy; `model` may be built on the meta device).
    """
    missing, unexpected, shapes = _fits(state, {k: v.shape for k, v in model.state_dict().items()})
    if missing or unexpected or shapes:
        other = guess_kind(state)
        if other is not None and other != kind:
            name = KIND_NAMES.get(other, "s3fd face detector")
            raise CheckpointError(f"this looks like a {name} checkpoint, not {KIND_NAMES.get(kind, kind)}", path)
        parts = [_summary(label, items) for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
        raise CheckpointError(f"does not fit the {KIND_NAMES.get(kind, kind)} network: " + "; ".join(parts), path)
    full = model.state_dict()
    # keeps the model's own num_batches_tracked when the file has none; assigned tensors take the model's dtype
    full.update({k: v.to(full[k].dtype) for k, v in state.items()})
    if assign:  # a meta model has no own values: a missing counter starts at 0, as in a fresh network
        full.update({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in full.items() if v.is_meta})
    model.load_state_dict(full, strict=True, assign=assign)
    return model


def load_model(path: PathLike, kind: str = "wav2lip", device: str | torch.device = "cpu") -> nn.Module:
    """Build the `kind` network ('wav2lip', 'syncnet', 'disc_qual'), load the checkpoint, move to `device`, eval."""
    from lipdub.settings import resolve_device

    device = str(device)
    base = resolve_device(device.split(":")[0])  # checks availability; keeps an explicit index ('cuda:1')
    with torch.device("meta"):  # no memory and no random init for weights the file replaces at once
        model = build_model(kind)
    model = load_into(model, load_state_dict(path), kind, path, assign=True)
    return model.to(device if ":" in device else base).eval()


def save_checkpoint(path: PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, epoch: int = 0) -> Path:
    """Write the official training layout {'state_dict' ('module.' keys), 'optimizer', 'global_step',
    'global_epoch'} atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "state_dict": OrderedDict(("module." + k, v.detach().cpu()) for k, v in model.state_dict().items()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "global_step": int(step),
        "global_epoch": int(epoch),
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
