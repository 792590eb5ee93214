"""Train the lip-sync expert (SyncNet_color) on real frames: aligned vs. shifted 5-frame windows, BCE on cosine.

Evaluation scores every held-out window's mel with its own frames and with the frames of every other window
of the clip: the balanced loss, and the off-sync accuracy (how often the aligned pair scores above a shifted
one; chance 0.5).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lipdub.data.windows import expert_inputs
from lipdub.engines.wav2lip.model import SyncNet, sync_probability
from lipdub.errors import LipdubError
from lipdub.train import ddp
from lipdub.train.config import ExpertConfig
from lipdub.train.dataset import ExpertDataset
from lipdub.train.evaluate import _Sums, sync_stats, window_embeddings
from lipdub.train.logging import RunLogger
from lipdub.train.loop import (
    Precision,
    batches,
    env_threads,
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
def evaluate_expert(model: torch.nn.Module, ds: ExpertDataset, device: torch.device, max_windows: int,
                    batch_size: int = 64, precision: Precision | None = None, d: ddp.Dist | None = None
                    ) -> dict[str, float]:
    """Loss, off-sync accuracy, accuracy at 0.5 and mean probabilities over every window of the split's clips.

    Each window's mel is scored with its own frames and with the frames of every other window of the clip
    (see lipdub.train.evaluate.sync_stats). Clips are shared out over the ranks; up to `max_windows` in all.
    """
    model = ddp.unwrap(model)
    was_training = model.training
    model.eval()
    precision = precision or Precision(device, False)
    rank, world = (d.rank, d.world_size) if d is not None else (0, 1)
    sums, windows, half = _Sums(), 0, ds.img_size // 2
    for c in range(rank, len(ds.clips), world):
        starts = [int(s) for cc, s in ds.index if cc == c]
        if len(starts) < 2:
            continue
        frames = np.stack([ds.frame(c, k)[half:] for k in range(max(starts) + ds.window)])
        lower = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        audio = torch.from_numpy(np.stack([ds.mel_window(c, s + ds.expert_mel_offset) for s in starts])).to(device)
        with precision.autocast():
            a, v = window_embeddings(model, audio, lower, starts, ds.window, batch_size)
        sums.add_stats(sync_stats(a, v))
        windows += len(starts)
        if windows * world >= max_windows:
            break
    model.train(was_training)
    keys = ["loss", "offsync_acc", "acc", "p_sync", "p_off", "sync_loss"]
    return ddp.mean_of_sums(sums.sum, sums.count, d, keys) | {"windows": float(windows)}


def _datasets(cfg: ExpertConfig, data: Path) -> tuple[ExpertDataset, ExpertDataset]:
    kw = dict(window=cfg.window, fps=cfg.fps, img_size=cfg.img_size, mel_step=cfg.mel_step, seed=cfg.seed,
              cache_frames=cfg.cache_frames, expert_mel_offset=cfg.expert_mel_offset)
    return ExpertDataset(data, "train", **kw), ExpertDataset(data, "val", **kw)


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
        metrics = evaluate_expert(net, val_ds, d.device, cfg.eval_steps * cfg.batch_size, cfg.batch_size, precision, d)
        metrics["windows"] = ddp.mean_over_ranks({"w": metrics["windows"]}, d)["w"] * d.world_size
        last_eval = metrics
        logger.scalars(step, "eval", metrics)
        logger.write(f"step {step}: eval loss {metrics['loss']:.4f}, off-sync accuracy "
                     f"{metrics['offsync_acc']:.3f} over {int(metrics['windows'])} windows")
        if metrics["loss"] < best:
            best = metrics["loss"]
            checkpoint(out_dir / "best.pth")
        checkpoint(out_dir / "last.pth")

    tick, seen, n_run, evaluated_at, start_epoch = time.time(), 0, 0, -1, epoch
    running = {"loss": 0.0, "acc": 0.0}
    if cfg.eval_first and resume_from is None:
        evaluate()
        evaluated_at = step
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
            seen, n_run = seen + len(label), n_run + 1
            running["loss"] += loss.item()
            running["acc"] += float(((prob.detach() > 0.5).float() == label).float().mean())
            logger.step(loss=loss.item())
            if step % cfg.log_interval == 0:  # means over the interval
                rate = seen * d.world_size / max(time.time() - tick, 1e-9)
                logger.scalars(step, "train", {k: v / n_run for k, v in running.items()}
                               | {"lr": cfg.lr, "samples_per_s": rate, "epoch": float(epoch)})
                tick, seen, n_run, running = time.time(), 0, 0, dict.fromkeys(running, 0.0)
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
