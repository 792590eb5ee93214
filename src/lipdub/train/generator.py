"""Train the Wav2Lip generator: L1 + the frozen expert's sync loss, optionally + the visual quality discriminator.

loss = (1 - sw - dw) * L1 + sw * sync + dw * perceptual, where sw starts at `sync_weight_start` (0) and becomes
`sync_weight` once the evaluation sync loss falls below `sync_threshold`; dw = `disc_weight` with --gan, else 0.
The discriminator learns real (ground truth) vs. generated lower halves with BCE, after each generator step.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lipdub.data.windows import stack_for_expert
from lipdub.engines.wav2lip.checkpoint import load_model
from lipdub.engines.wav2lip.model import Wav2Lip, Wav2LipDiscQual
from lipdub.errors import LipdubError
from lipdub.train import ddp
from lipdub.train.config import GeneratorConfig
from lipdub.train.dataset import LipSyncDataset, generator_inputs
from lipdub.train.expert import bce, sync_prob
from lipdub.train.logging import RunLogger, sample_grid
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


def load_expert(path: Path, device: torch.device) -> torch.nn.Module:
    """The trained expert, frozen: eval mode (BatchNorm running statistics) and no gradients for its weights."""
    expert = load_model(path, "syncnet", str(device))
    expert.to(device).eval().requires_grad_(False)
    return expert


def sync_loss(expert: torch.nn.Module, mel: torch.Tensor, generated: torch.Tensor, half: int) -> torch.Tensor:
    """BCE(expert's in-sync probability of the generated window's lower halves, 1). generated: (B, 3, T, S, S)."""
    prob = sync_prob(expert, mel, stack_for_expert(generated[:, :, :, half:]))
    return bce(prob, torch.ones_like(prob))


def perceptual_loss(disc: torch.nn.Module, generated: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss BCE(D(generated), 1) (the reference's perceptual_forward)."""
    pred = disc(generated)
    return bce(pred, torch.ones_like(pred))


def disc_loss(disc: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE(D(real), 1), BCE(D(fake), 0)) from one forward pass over both (no BatchNorm, so it is the same)."""
    pred = disc(torch.cat([real, fake], dim=0))  # (T * 2B, 1), time-major: row t * 2B + b
    b, t = real.size(0), real.size(2)
    is_real = torch.cat([torch.ones(b), torch.zeros(b)]).repeat(t).to(pred.device).bool()
    return bce(pred[is_real], torch.ones_like(pred[is_real])), bce(pred[~is_real], torch.zeros_like(pred[~is_real]))


@torch.no_grad()
def evaluate_generator(model: torch.nn.Module, expert: torch.nn.Module, disc: torch.nn.Module | None,
                       loader: DataLoader, device: torch.device, max_batches: int, half: int,
                       precision: Precision | None = None) -> dict[str, float]:
    """Mean L1 and sync loss (and the discriminator's losses with a GAN) over up to `max_batches` batches."""
    was_training = model.training
    model.eval()
    if disc is not None:
        disc.eval()
    precision = precision or Precision(device, False)
    sums: dict[str, float] = {}
    n = 0
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        faces, indiv, mel, target = generator_inputs(batch, device, half)
        with precision.autocast():
            g = model(indiv, faces)
            values = {"l1": F.l1_loss(g.float(), target), "sync": sync_loss(expert, mel, g, half)}
            if disc is not None:
                values["perceptual"] = perceptual_loss(disc, g)
                values["disc_real"], values["disc_fake"] = disc_loss(disc, target, g)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(target)
        n += len(target)
    model.train(was_training)
    if disc is not None:
        disc.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()}


def _datasets(cfg: GeneratorConfig, data: Path) -> tuple[LipSyncDataset, LipSyncDataset]:
    kw = dict(window=cfg.window, fps=cfg.fps, img_size=cfg.img_size, mel_step=cfg.mel_step, seed=cfg.seed,
              cache_frames=cfg.cache_frames, frame_mel_offset=cfg.frame_mel_offset,
              expert_mel_offset=cfg.expert_mel_offset)
    return LipSyncDataset(data, "train", **kw), LipSyncDataset(data, "val", **kw)


def disc_path(path: Path) -> Path:
    """The discriminator's checkpoint beside a generator checkpoint: disc_<name> (the reference's naming)."""
    return path.with_name("disc_" + path.name)


def train_generator(cfg: GeneratorConfig, data: str | Path, out_dir: str | Path) -> dict:
    """Train or fine-tune the generator (cfg.init: official weights; cfg.resume: our checkpoint).

    Writes out_dir/{last,best,checkpoint_step*}.pth (+ disc_*.pth with --gan) in the official layout,
    metrics.csv, tb/, samples/, config.json, summary.json. Returns the summary.
    """
    if cfg.expert is None:
        raise LipdubError("the generator needs a trained lip-sync expert: pass --expert EXPERT.pth")
    data, out_dir = Path(data), Path(out_dir)
    d = ddp.setup(cfg.device)
    try:
        return _train(cfg, data, out_dir, d)
    finally:
        ddp.teardown(d)


def _train(cfg: GeneratorConfig, data: Path, out_dir: Path, d: ddp.Dist) -> dict:
    env_threads()
    seed_everything(cfg.seed)
    train_ds, val_ds = _datasets(cfg, data)
    loader, val = train_loader(train_ds, cfg, d), eval_loader(val_ds, cfg, d)
    expert = place(load_expert(cfg.expert, d.device), d, cfg)
    model = place(Wav2Lip(), d, cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    disc = disc_opt = None
    if cfg.gan:
        disc = place(Wav2LipDiscQual(), d, cfg)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=cfg.disc_betas)

    step, epoch, state = 0, 0, {}
    if cfg.resume is None and find_resume(out_dir) is not None:
        raise LipdubError("already holds a run (last.pth): pass --resume to continue it, or another -o", out_dir)
    if cfg.resume is not None:
        step, epoch, state = resume(cfg.resume, model, optimizer, "wav2lip", d.device)
    elif cfg.init is not None:
        init_weights(model, cfg.init, "wav2lip")
    if disc is not None:
        saved_disc = disc_path(cfg.resume) if cfg.resume is not None else None
        if saved_disc is not None and saved_disc.is_file():
            resume(saved_disc, disc, disc_opt, "disc_qual", d.device)
        elif cfg.disc_init is not None:
            init_weights(disc, cfg.disc_init, "disc_qual")
    sw = float(state.get("sync_weight", cfg.sync_weight_start))
    dw = cfg.perceptual_weight
    best = float(state.get("best", float("inf")))

    net, disc_net = ddp.wrap(model, d), (ddp.wrap(disc, d) if disc is not None else None)
    precision = Precision(d.device, cfg.amp)
    scaler, disc_scaler = precision.scaler(), precision.scaler()
    logger = RunLogger(out_dir, enabled=d.master, total=cfg.max_steps, initial=step, progress=cfg.progress,
                       desc="generator")
    if d.master:
        write_json(out_dir / "config.json", {"model": "wav2lip", "data": str(data), **cfg.model_dump(mode="json")})
        if cfg.resume is not None:
            logger.write(f"resuming from {cfg.resume} at step {step} (sync weight {sw})")

    def checkpoint(path: Path) -> None:
        if not d.master:
            return
        run_state = {"sync_weight": sw, "best": best, "config": cfg.model_dump(mode="json")}
        save(path, model, optimizer, step, epoch, run_state)
        if disc is not None:
            save(disc_path(path), disc, disc_opt, step, epoch, run_state)

    last_eval: dict[str, float] = {}

    def evaluate() -> None:
        nonlocal sw, best, last_eval
        metrics = evaluate_generator(model, expert, disc, val, d.device, cfg.eval_steps, cfg.half, precision)
        metrics = ddp.mean_over_ranks(metrics, d)
        # a score comparable across the run: the loss with the final weights (not the current sw)
        metrics["score"] = (1 - cfg.sync_weight - dw) * metrics["l1"] + cfg.sync_weight * metrics["sync"]
        if sw < cfg.sync_weight and metrics["sync"] < cfg.sync_threshold:
            sw = cfg.sync_weight
            logger.write(f"step {step}: eval sync loss {metrics['sync']:.3f} < {cfg.sync_threshold}: "
                         f"sync weight now {sw}")
        metrics["sync_weight"] = sw
        last_eval = metrics
        logger.scalars(step, "eval", metrics)
        logger.write(f"step {step}: eval L1 {metrics['l1']:.4f}, sync loss {metrics['sync']:.4f}")
        if metrics["score"] < best:
            best = metrics["score"]
            checkpoint(out_dir / "best.pth")
        checkpoint(out_dir / "last.pth")

    tick, seen, n_run, evaluated_at, start_epoch = time.time(), 0, 0, -1, epoch
    running: dict[str, float] = {}
    if cfg.eval_first and cfg.resume is None:
        evaluate()
        evaluated_at = step
    model.train()
    try:
        for epoch, batch in batches(loader, start_epoch):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            faces, indiv, mel, target = generator_inputs(batch, d.device, cfg.half)
            if disc is not None:
                disc.requires_grad_(False)  # the generator's step must not touch the discriminator
            with precision.autocast():
                g = net(indiv, faces)
                l1 = F.l1_loss(g.float(), target)
                if sw > 0:
                    sync = sync_loss(expert, mel, g, cfg.half)
                else:  # not part of the loss yet (as the reference), but worth watching
                    with torch.no_grad():
                        sync = sync_loss(expert, mel, g.detach(), cfg.half)
                perc = perceptual_loss(disc, g) if disc is not None and dw > 0 else torch.zeros((), device=d.device)
            loss = (1 - sw - dw) * l1 + sw * sync + dw * perc
            step_optimizer(loss, optimizer, scaler)
            values = {k: v.item() for k, v in (("loss", loss), ("l1", l1), ("sync", sync), ("perceptual", perc))}
            if disc is not None:
                disc.requires_grad_(True)
                with precision.autocast():
                    real, fake = disc_loss(disc_net, target, g.detach())
                step_optimizer(real + fake, disc_opt, disc_scaler)
                values |= {"disc_real": real.item(), "disc_fake": fake.item()}
            step += 1
            seen, n_run = seen + len(target), n_run + 1
            for k, v in values.items():
                running[k] = running.get(k, 0.0) + v
            logger.step(l1=values["l1"], sync=values["sync"])
            if step % cfg.log_interval == 0:  # means over the interval
                rate = seen * d.world_size / max(time.time() - tick, 1e-9)
                logger.scalars(step, "train", {k: v / n_run for k, v in running.items()}
                               | {"sync_weight": sw, "lr": cfg.lr, "samples_per_s": rate, "epoch": float(epoch)})
                tick, seen, n_run, running = time.time(), 0, 0, {}
            if step % cfg.sample_interval == 0:
                logger.image(step, "samples", sample_grid(target, g, faces[:, :3]))
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
    summary = {"model": "wav2lip", "step": step, "epoch": epoch, "gan": cfg.gan, "sync_weight": sw,
               "best_score": best, "eval": last_eval, "last": str(out_dir / "last.pth"),
               "best": str(out_dir / "best.pth")}
    if d.master:
        write_json(out_dir / "summary.json", summary)
    ddp.barrier(d)
    return summary
