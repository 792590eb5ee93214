"""Pieces both training loops share: data loaders, mixed precision, checkpoints, and resuming."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lipdub.engines.wav2lip.checkpoint import load_into, load_state_dict
from lipdub.errors import CheckpointError, LipdubError
from lipdub.media.atomic import atomic_output
from lipdub.train.config import TrainConfig
from lipdub.train.ddp import Dist, unwrap

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpochSampler(DistributedSampler):
    """DistributedSampler whose indices carry the epoch (index + epoch * len), so samples re-draw each epoch."""

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        return (i + offset for i in super().__iter__())


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers decode in parallel already
    torch.set_num_threads(1)


def train_loader(ds: Dataset, cfg: TrainConfig, d: Dist) -> DataLoader:
    """Shuffled, sharded over ranks, whole batches only (BatchNorm needs more than one sample)."""
    per_rank = math.ceil(len(ds) / d.world_size)
    if per_rank < cfg.batch_size:
        raise LipdubError(f"the training split has {len(ds)} windows, fewer than one batch of {cfg.batch_size} "
                          f"per process: lower --batch-size or add data")
    sampler = EpochSampler(ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed,
                           drop_last=True)
    return _loader(ds, cfg, d, sampler, drop_last=True)


def eval_loader(ds: Dataset, cfg: TrainConfig, d: Dist, batch_size: int | None = None) -> DataLoader:
    """A fixed, seeded order over the split (the same windows at every evaluation), sharded over ranks."""
    sampler = DistributedSampler(ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed + 1)
    return _loader(ds, cfg, d, sampler, drop_last=False, batch_size=batch_size)


def _loader(ds: Dataset, cfg: TrainConfig, d: Dist, sampler: DistributedSampler, drop_last: bool,
            batch_size: int | None = None) -> DataLoader:
    workers = cfg.num_workers
    return DataLoader(ds, batch_size=batch_size or cfg.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=cfg.pin_memory and d.device.type == "cuda", drop_last=drop_last,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                      worker_init_fn=_worker_init if workers > 0 else None,
                      # spawned, not forked: a process that already runs threads (OpenMP, mediapipe, a web
                      # server) can deadlock a forked child on a lock some thread held at fork time
                      multiprocessing_context="spawn" if workers > 0 else None)


def batches(loader: DataLoader, epoch: int) -> Iterator[tuple[int, dict]]:
    """Endless (epoch, batch) stream starting at `epoch`."""
    while True:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            yield epoch, batch
        epoch += 1


class Precision:
    """float16 autocast + loss scaling on CUDA when enabled; plain float32 elsewhere."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled and device.type == "cuda"
        self.device_type = device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=torch.float16)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.enabled)


def place(model: torch.nn.Module, d: Dist, cfg: TrainConfig) -> torch.nn.Module:
    """Move a network to the run's device (NHWC layout with cfg.channels_last)."""
    model = model.to(d.device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def step_optimizer(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


# --- checkpoints (the official training layout, plus a 'lipdub' entry the official tools ignore)

def save(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, step: int, epoch: int,
         extra: dict | None = None) -> Path:
    """Write {'state_dict' ('module.' keys, as the official files), 'optimizer', 'global_step', 'global_epoch',
    'lipdub' (run state: sync weight, best score, settings)} atomically."""
    weights = unwrap(model).state_dict()
    state = OrderedDict(("module." + k, v.detach().cpu().contiguous()) for k, v in weights.items())
    ckpt = {"state_dict": state, "optimizer": None if optimizer is None else optimizer.state_dict(),
            "global_step": int(step), "global_epoch": int(epoch), "lipdub": extra or {}}
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def init_weights(model: torch.nn.Module, path: Path, kind: str) -> None:
    """Load weights only (e.g. an official checkpoint) into `model`; clear CheckpointError when they don't fit."""
    load_into(unwrap(model), load_state_dict(path), kind, path)


def resume(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, kind: str,
           device: torch.device) -> tuple[int, int, dict]:
    """Restore model and optimizer from our checkpoint; return (global_step, global_epoch, run state)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint to resume from", path)
    try:
        with warnings.catch_warnings():  # old pickle protocols warn under weights_only; harmless here
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint ({type(err).__name__})", path) from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError("not a training checkpoint (no 'state_dict' entry)", path)
    state = OrderedDict((k.replace("module.", ""), v) for k, v in ckpt["state_dict"].items())
    load_into(unwrap(model), state, kind, path)
    if optimizer is not None:
        if not ckpt.get("optimizer"):
            raise CheckpointError("has no optimizer state to resume from (use --init to start from its weights)",
                                  path)
        optimizer.load_state_dict(ckpt["optimizer"])
    return int(ckpt.get("global_step") or 0), int(ckpt.get("global_epoch") or 0), dict(ckpt.get("lipdub") or {})


def find_resume(out_dir: Path, name: str = "last.pth") -> Path | None:
    """`<out>/last.pth` when a run was already started there."""
    path = Path(out_dir) / name
    return path if path.is_file() else None


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n")


def env_threads() -> None:
    """On CPU, use the cores this process may use (torch's default can oversubscribe under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // world))
