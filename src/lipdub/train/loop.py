"""The one training loop (nanoGPT style) and the pieces it uses: data order, mixed precision, checkpoints.

`fit(TaskClass, cfg, data, out_dir)` trains any network. A `Task` says what differs (the networks, one
optimisation step, the evaluation, the run state worth saving); the loop does the rest the same way for all:

- data order: a seeded, sharded, per-epoch shuffle; the position inside the epoch is saved, so a resumed run
  draws exactly the batches the uninterrupted run would have drawn;
- logging (progress bar, TensorBoard, metrics.csv) and evaluation every `eval_interval` steps and at the end;
- checkpoints in the official layout: `last.pth` at every checkpoint and evaluation, `checkpoint_step*.pth`
  every `checkpoint_interval` steps (only the newest `keep_last` kept), `best.pth` at the best evaluation;
- resuming (`cfg.resume`), and refusing to start over in a folder that holds a run's checkpoints;
- stopping cleanly: Ctrl+C, SIGTERM (timeout, kill, SLURM, Kubernetes) and SIGUSR1 (SLURM's warning before
  the end of a job) finish the current step, write `last.pth` and raise `Stopped`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import random
import signal
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lipdub.data.store import link_or_copy
from lipdub.engines.wav2lip.checkpoint import load_into, load_state_dict, strip_module
from lipdub.errors import CheckpointError, LipdubError
from lipdub.media.atomic import atomic_output
from lipdub.train import ddp
from lipdub.train.config import TrainConfig
from lipdub.train.ddp import Dist, unwrap
from lipdub.train.logging import RunLogger

log = logging.getLogger(__name__)
NUMBERED = "checkpoint_step{:09d}.pth"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- data order

class EpochSampler(DistributedSampler):
    """DistributedSampler whose indices carry the epoch (index + epoch * len), so samples re-draw each epoch.

    `skip` samples are left out of the next epoch only (resuming inside an epoch).
    """

    skip = 0

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        skip, self.skip = self.skip, 0
        return (i + offset for i in itertools.islice(super().__iter__(), skip, None))


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers decode in parallel already
    torch.set_num_threads(1)


def train_loader(ds: Dataset, cfg: TrainConfig, d: Dist, skip_batches: int = 0) -> DataLoader:
    """Shuffled, sharded over ranks, whole batches only (BatchNorm needs more than one sample); the first
    epoch starts after `skip_batches` batches."""
    per_rank = math.ceil(len(ds) / d.world_size)
    if per_rank < cfg.batch_size:
        raise LipdubError(f"the training split has {len(ds)} windows, fewer than one batch of {cfg.batch_size} "
                          f"per process: lower --batch-size or add data")
    sampler = EpochSampler(ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed,
                           drop_last=True)
    sampler.skip = skip_batches * cfg.batch_size
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


def batches(loader: DataLoader, epoch: int, first: int = 0) -> Iterator[tuple[int, int, dict]]:
    """Endless (epoch, batch index in the epoch, batch) stream starting at batch `first` of `epoch`."""
    while True:
        loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader, start=first):
            yield epoch, i, batch
        epoch, first = epoch + 1, 0


# --- devices and optimisation

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


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float], device: torch.device
         ) -> torch.optim.Adam:
    """Adam; on CPU its fused kernel (torch >= 2.4), one pass over each tensor instead of one per operation: for
    the expert's 16 M weights 88 -> 27 ms a step on one thread (a batch-8 step is ~1.5 s), the same update up to
    float rounding (6e-8 apart after 8 steps). Elsewhere, or on an older torch, torch's default."""
    fused = device.type == "cpu" and torch.__version__ >= (2, 4)  # a TorchVersion compares as a version
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if fused else None)


def step_optimizer(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def env_threads() -> None:
    """On CPU, use the cores this process may use (torch's default can oversubscribe under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // world))


# --- checkpoints (the official training layout, plus a 'lipdub' entry the official tools ignore)

def save(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, step: int, epoch: int,
         extra: dict | None = None) -> Path:
    """Write {'state_dict' ('module.' keys, as the official files), 'optimizer', 'global_step', 'global_epoch',
    'lipdub' (run state: sync weight, best score, position, settings)} atomically."""
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
           device: torch.device | None = None) -> tuple[int, int, dict]:
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
    load_into(unwrap(model), strip_module(ckpt["state_dict"]), kind, path)
    if optimizer is not None:
        if not ckpt.get("optimizer"):
            raise CheckpointError("has no optimizer state to resume from (use --init to start from its weights)",
                                  path)
        fused = [group.get("fused") for group in optimizer.param_groups]
        optimizer.load_state_dict(ckpt["optimizer"])
        for group, flag in zip(optimizer.param_groups, fused, strict=True):
            group["fused"] = flag  # this machine's choice (see adam), not the one of the machine that saved it
    return int(ckpt.get("global_step") or 0), int(ckpt.get("global_epoch") or 0), dict(ckpt.get("lipdub") or {})


def checkpoints(out_dir: Path) -> list[Path]:
    """The run's resumable checkpoints in `out_dir` (last.pth and the numbered ones), oldest first."""
    out_dir = Path(out_dir)
    found = [p for p in [out_dir / "last.pth", *out_dir.glob("checkpoint_step*.pth")] if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.pth"))


def newest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint a bare --resume continues from: the newest one in `out_dir` (None when there is none)."""
    found = checkpoints(out_dir)
    return found[-1] if found else None


def prune(out_dir: Path, keep: int, prefixes: tuple[str, ...] = ("",)) -> None:
    """Delete all but the newest `keep` numbered checkpoints (and their companions, e.g. disc_*)."""
    numbered = sorted(Path(out_dir).glob("checkpoint_step*.pth"))
    for old in numbered[:max(0, len(numbered) - keep)]:
        for prefix in prefixes:
            old.with_name(prefix + old.name).unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n")


# --- stopping

class Stopped(Exception):
    """Training stopped on a signal after finishing a step; `last.pth` holds that step."""

    def __init__(self, signum: int, step: int, path: Path) -> None:
        self.signum, self.step, self.path = signum, step, path
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; {path} written: "
                         f"continue with --resume")


class StopSignals:
    """While active, SIGINT (Ctrl+C), SIGTERM and SIGUSR1 only ask to stop (`signum`); a second Ctrl+C
    interrupts at once. Handlers can only be set in the main thread; elsewhere signals keep their default."""

    NAMES = ("SIGINT", "SIGTERM", "SIGUSR1")

    def __enter__(self) -> StopSignals:
        self.signum, self._old = 0, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (getattr(signal, name) for name in self.NAMES if hasattr(signal, name)):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum
        log.warning("%s: stopping after this step", signal.Signals(signum).name)

    def __exit__(self, *_: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def requested(self, d: Dist) -> int:
        """The signal asked for (0: none), agreed over all processes so they stop at the same step."""
        return int(ddp.max_over_ranks(float(self.signum), d))


# --- what differs between networks

class Task:
    """One kind of training run. Subclasses set the attributes in __init__ (loading cfg.init weights there)."""

    kind = "wav2lip"  # the checkpoints' network kind (CheckpointError messages, config.json)
    name = "train"  # progress bar
    bar_keys: tuple[str, ...] = ("loss",)  # step values shown on the progress bar
    model: torch.nn.Module  # the network the checkpoints hold
    optimizer: torch.optim.Optimizer
    train_set: Dataset
    val_set: Dataset | None  # None: trained without validation

    def __init__(self, cfg: TrainConfig, data: Path, d: Dist) -> None:
        self.cfg, self.data, self.d = cfg, data, d
        self.precision = Precision(d.device, cfg.amp)

    def companions(self) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
        """Networks saved beside each checkpoint as <prefix><name> (the discriminator as disc_*.pth)."""
        return {}

    def ready(self) -> None:
        """Called once the weights are final (after resuming): wrap for DDP, make scalers."""

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step on `batch`; the values to log."""
        raise NotImplementedError

    def evaluate(self, step: int, write: Callable[[str], None]) -> tuple[dict[str, float], float]:
        """(figures on the validation split, score: lower is better)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Run state to keep in checkpoints (restored through `restore`)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what `state` saved."""

    def scalars(self) -> dict[str, float]:
        """Extra scalars of each training log row."""
        return {}

    def after_step(self, step: int, logger: RunLogger) -> None:
        """E.g. a sample grid every few steps."""

    def summary(self, best: float) -> dict[str, Any]:
        return {}


# --- the loop

def fit(task_cls: type[Task], cfg: TrainConfig, data: str | os.PathLike[str], out_dir: str | os.PathLike[str]
        ) -> dict:
    """Train (or fine-tune with cfg.init, or continue with cfg.resume) a `task_cls` run into `out_dir`.

    Writes out_dir/{last,best,checkpoint_step*}.pth in the official layout, metrics.csv, tb/, config.json,
    summary.json. Returns the summary. Raises Stopped when a signal ended the run early.
    """
    data, out_dir = Path(data), Path(out_dir)
    d = ddp.setup(cfg.device)
    try:
        env_threads()
        seed_everything(cfg.seed)
        return Trainer(task_cls(cfg, data, d), out_dir).fit()
    finally:
        ddp.teardown(d)


class Trainer:
    """Runs a Task: the position (step, epoch, batch in the epoch), the schedule, checkpoints, stopping."""

    def __init__(self, task: Task, out_dir: Path) -> None:
        self.task, self.cfg, self.d, self.out = task, task.cfg, task.d, out_dir
        self.step = self.epoch = self.batch = 0
        self.best, self.last_eval, self.evaluated_at, self.saved_at = float("inf"), {}, -1, -1
        elapsed = self._start()
        task.ready()
        self.logger = RunLogger(out_dir, enabled=self.d.master, total=self.cfg.max_steps, initial=self.step,
                                progress=self.cfg.progress, desc=task.name, elapsed=elapsed,
                                resumed=self.cfg.resume is not None)
        if self.d.master:
            write_json(out_dir / "config.json", {"model": task.kind, "data": str(task.data),
                                                 **self.cfg.model_dump(mode="json")})
            if self.cfg.resume is not None:
                self.logger.write(f"resuming from {self.cfg.resume} at step {self.step}")

    def _start(self) -> float:
        """Restore a resumed run's weights, optimizer, position and state; refuse to restart over one.
        Returns the run's training time so far (seconds)."""
        cfg, task = self.cfg, self.task
        if cfg.resume is None:
            held = newest_checkpoint(self.out)
            if held is not None:
                raise LipdubError(f"already holds a run ({held.name}): pass --resume to continue it (--resume "
                                  f"auto: continue when there is one), or another -o", self.out)
            return 0.0
        self.step, self.epoch, state = resume(cfg.resume, task.model, task.optimizer, task.kind)
        for prefix, (net, opt) in task.companions().items():
            saved = cfg.resume.with_name(prefix + cfg.resume.name)
            if saved.is_file():
                resume(saved, net, opt, _companion_kind(prefix))
        self.batch = int(state.get("batch", 0))
        self.best = float(state.get("best", float("inf")))
        task.restore(state)
        return float(state.get("time_s", 0.0))

    def fit(self) -> dict:
        cfg, task = self.cfg, self.task
        loader = train_loader(task.train_set, cfg, self.d, skip_batches=self.batch)
        with StopSignals() as stop:
            if cfg.eval_first and cfg.resume is None:
                self.evaluate()
            running, n = {}, 0
            self.logger.lap()
            for epoch, index, batch in batches(loader, self.epoch, self.batch):
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    break
                values = task.step(batch)
                self.step, self.epoch, self.batch = self.step + 1, epoch, index + 1
                running, n = {k: running.get(k, 0.0) + v for k, v in values.items()}, n + 1
                self.logger.step(**{k: values[k] for k in task.bar_keys})
                if self.step % cfg.log_interval == 0:  # means over the interval
                    self._log_train(running, n)
                    running, n = {}, 0
                self._scheduled()
                signum = stop.requested(self.d)
                if signum:
                    self.save_last()
                    self.logger.close()
                    raise Stopped(signum, self.step, self.out / "last.pth")
        if self.evaluated_at != self.step:
            self.evaluate()
        return self._finish()

    def _log_train(self, running: dict[str, float], n: int) -> None:
        rate = n * self.cfg.batch_size * self.d.world_size / max(self.logger.lap(), 1e-9)
        self.logger.scalars(self.step, "train", {k: v / n for k, v in running.items()} | self.task.scalars()
                            | {"lr": self.cfg.lr, "samples_per_s": rate, "epoch": float(self.epoch)})

    def _scheduled(self) -> None:
        """Sample grids, numbered checkpoints and evaluations that fall on this step."""
        cfg = self.cfg
        self.task.after_step(self.step, self.logger)
        if self.step % cfg.eval_interval == 0:
            self.evaluate()  # (writes last.pth)
        if self.step % cfg.checkpoint_interval == 0:
            self.save_last()
            if cfg.keep_last > 0:
                self.link(self.out / "last.pth", self.out / NUMBERED.format(self.step))
                if self.d.master:
                    prune(self.out, cfg.keep_last, ("", *self.task.companions()))

    def evaluate(self) -> None:
        """Score the validation split (nothing without one); keep best.pth and last.pth current."""
        self.evaluated_at = self.step
        if self.task.val_set is None:
            return
        metrics, score = self.task.evaluate(self.step, self.logger.write)
        self.last_eval = metrics
        self.logger.scalars(self.step, "eval", metrics)
        improved = score < self.best
        self.best = min(score, self.best)
        self.checkpoint(self.out / "last.pth")
        if improved:
            self.link(self.out / "last.pth", self.out / "best.pth")

    def checkpoint(self, path: Path) -> None:
        """Write the model (and companions) with the run state (rank 0 only)."""
        if path.name == "last.pth":
            self.saved_at = self.step
        if not self.d.master:
            return
        state = {"best": self.best, "batch": self.batch, "time_s": round(self.logger.elapsed(), 2),
                 "config": self.cfg.model_dump(mode="json"), **self.task.state()}
        save(path, self.task.model, self.task.optimizer, self.step, self.epoch, state)
        for prefix, (net, opt) in self.task.companions().items():
            save(path.with_name(prefix + path.name), net, opt, self.step, self.epoch, state)

    def save_last(self) -> None:
        """last.pth holds this step (written unless it already does)."""
        if self.saved_at != self.step:
            self.checkpoint(self.out / "last.pth")

    def link(self, src: Path, dst: Path) -> None:
        """`dst` holds what `src` holds (a hard link: no extra disk), companions too."""
        if self.d.master:
            for prefix in ("", *self.task.companions()):
                link_or_copy(src.with_name(prefix + src.name), dst.with_name(prefix + dst.name))

    def _finish(self) -> dict:
        self.logger.close()
        best = self.out / "best.pth" if self.task.val_set is not None else None
        summary = {"model": self.task.kind, "step": self.step, "epoch": self.epoch, **self.task.summary(self.best),
                   "eval": self.last_eval, "last": str(self.out / "last.pth"), "best": best and str(best)}
        self.save_last()
        if self.d.master:
            write_json(self.out / "summary.json", summary)
        ddp.barrier(self.d)
        return summary


def _companion_kind(prefix: str) -> str:
    return {"disc_": "disc_qual"}.get(prefix, prefix.rstrip("_"))
