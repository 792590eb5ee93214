"""Train the lip-sync expert (SyncNet_color) on real frames: aligned vs. shifted 5-frame windows, BCE on cosine.

Evaluation reports the loss on a balanced set (each held-out window once aligned, once shifted) and the
off-sync accuracy: how often the expert scores the aligned pair above the shifted one (chance 0.5).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lipdub.engines.wav2lip.model import SyncNet, sync_probability
from lipdub.errors import LipdubError
from lipdub.train import ddp
from lipdub.train.config import ExpertConfig
from lipdub.train.dataset import ExpertDataset, expert_inputs
from lipdub.train.logging import RunLogger
from lipdub.train.loop import (
    Precision,
    batches,
    env_threads,
    eval_loader,
    find_resume,
    init_weights,
    place,
    resume,
    save,
    seed_everything,
    step_optimizer,
    train_loader,
    write_json,
)

log = logging.getLogger(__name__)


def bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy in float32 (outside autocast, where it is not allowed)."""
    with torch.autocast(device_type=prob.device.type, enabled=False):
        return F.binary_cross_entropy(prob.float().clamp(0.0, 1.0), target.float())


def sync_prob(model: torch.nn.Module, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The expert's in-sync probability (cosine of the embeddings), (B,)."""
    audio_emb, face_emb = model(mel, faces)
    return sync_probability(audio_emb, face_emb)


@torch.no_grad()
def evaluate_expert(model: torch.nn.Module, loader: DataLoader, device: torch.device, max_batches: int,
                    precision: Precision | None = None) -> dict[str, float]:
    """Loss, off-sync accuracy (aligned scored above shifted), accuracy at 0.5 and mean probabilities."""
    was_training = model.training
    model.eval()
    precision = precision or Precision(device, False)
    sums = {"loss": 0.0, "offsync_acc": 0.0, "acc": 0.0, "p_sync": 0.0, "p_off": 0.0}
    n = 0
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        mel = batch["mel"].to(device, non_blocking=True)
        with precision.autocast():
            p_in = sync_prob(model, mel, expert_inputs(batch["frames"], device)).float()
            p_off = sync_prob(model, mel, expert_inputs(batch["shifted"], device)).float()
        b = len(p_in)
        loss = (bce(p_in, torch.ones_like(p_in)) + bce(p_off, torch.zeros_like(p_off))) / 2
        sums["loss"] += float(loss) * b
        sums["offsync_acc"] += float((p_in > p_off).float().sum())
        sums["acc"] += float(((p_in > 0.5).float().sum() + (p_off <= 0.5).float().sum()) / 2)
        sums["p_sync"] += float(p_in.sum())
        sums["p_off"] += float(p_off.sum())
        n += b
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()} | {"windows": float(n)}


def _datasets(cfg: ExpertConfig, data: Path) -> tuple[ExpertDataset, ExpertDataset]:
    kw = dict(window=cfg.window, fps=cfg.fps, img_size=cfg.img_size, mel_step=cfg.mel_step, seed=cfg.seed,
              cache_frames=cfg.cache_frames, expert_mel_offset=cfg.expert_mel_offset)
    return ExpertDataset(data, "train", **kw), ExpertDataset(data, "val", pairs=True, **kw)


def train_expert(cfg: ExpertConfig, data: str | Path, out_dir: str | Path) -> dict:
    """Train (or fine-tune with cfg.init, or continue with cfg.resume / an existing out_dir/last.pth).

    Writes out_dir/{last,best,checkpoint_step*}.pth in the official layout, metrics.csv, tb/, config.json,
    summary.json. Returns the summary (final step, last and best evaluation).
    """
    data, out_dir = Path(data), Path(out_dir)
    d = ddp.setup(cfg.device)
    try:
        return _train(cfg, data, out_dir, d)
    finally:
        ddp.teardown(d)


def _train(cfg: ExpertConfig, data: Path, out_dir: Path, d: ddp.Dist) -> dict:
    env_threads()
    seed_everything(cfg.seed)
    train_ds, val_ds = _datasets(cfg, data)
    loader = train_loader(train_ds, cfg, d)
    val = eval_loader(val_ds, cfg, d)
    model = place(SyncNet(), d, cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    step, epoch, state = 0, 0, {}
    resume_from = cfg.resume
    if resume_from is None and find_resume(out_dir) is not None:
        raise LipdubError("already holds a run (last.pth): pass --resume to continue it, or another -o", out_dir)
    if resume_from is not None:
        step, epoch, state = resume(resume_from, model, optimizer, "syncnet", d.device)
    elif cfg.init is not None:
        init_weights(model, cfg.init, "syncnet")
    net = ddp.wrap(model, d)
    precision = Precision(d.device, cfg.amp)
    scaler = precision.scaler()
    best = float(state.get("best", float("inf")))
    logger = RunLogger(out_dir, enabled=d.master, total=cfg.max_steps, initial=step, progress=cfg.progress,
                       desc="expert")
    if d.master:
        write_json(out_dir / "config.json", {"model": "syncnet", "data": str(data), **cfg.model_dump(mode="json")})
        if resume_from is not None:
            logger.write(f"resuming from {resume_from} at step {step}")

    def checkpoint(path: Path) -> None:
        if d.master:
            save(path, model, optimizer, step, epoch, {"best": best, "config": cfg.model_dump(mode="json")})

    last_eval: dict[str, float] = {}

    def evaluate() -> None:
        nonlocal best, last_eval
        metrics = ddp.mean_over_ranks(evaluate_expert(net, val, d.device, cfg.eval_steps, precision), d)
        last_eval = metrics
        logger.scalars(step, "eval", metrics)
        logger.write(f"step {step}: eval loss {metrics['loss']:.4f}, off-sync accuracy "
                     f"{metrics['offsync_acc']:.3f} over {int(metrics['windows'] * d.world_size)} windows")
        if metrics["loss"] < best:
            best = metrics["loss"]
            checkpoint(out_dir / "best.pth")
        checkpoint(out_dir / "last.pth")

    tick, seen, evaluated_at, start_epoch = time.time(), 0, -1, epoch
    model.train()
    try:
        for epoch, batch in batches(loader, start_epoch):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            mel = batch["mel"].to(d.device, non_blocking=True)
            label = batch["label"].to(d.device, non_blocking=True)
            faces = expert_inputs(batch["frames"], d.device)
            with precision.autocast():
                prob = sync_prob(net, mel, faces)
            loss = bce(prob, label)
            step_optimizer(loss, optimizer, scaler)
            step += 1
            seen += len(label)
            logger.step(loss=loss.item())
            if step % cfg.log_interval == 0:
                rate = seen * d.world_size / max(time.time() - tick, 1e-9)
                acc = float(((prob.detach() > 0.5).float() == label).float().mean())
                logger.scalars(step, "train", {"loss": loss.item(), "acc": acc, "lr": cfg.lr,
                                               "samples_per_s": rate, "epoch": float(epoch)})
                tick, seen = time.time(), 0
            if step % cfg.checkpoint_interval == 0:
                checkpoint(out_dir / f"checkpoint_step{step:09d}.pth")
            if step % cfg.eval_interval == 0:
                evaluate()
                evaluated_at = step
    except KeyboardInterrupt:
        checkpoint(out_dir / "last.pth")
        logger.close()
        raise
    if evaluated_at != step:
        evaluate()
    logger.close()
    summary = {"model": "syncnet", "step": step, "epoch": epoch, "best_eval_loss": best, "eval": last_eval,
               "last": str(out_dir / "last.pth"), "best": str(out_dir / "best.pth")}
    if d.master:
        write_json(out_dir / "summary.json", summary)
    ddp.barrier(d)
    return summary
