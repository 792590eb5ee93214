"""Train the Wav2Lip generator: L1 + the frozen expert's sync loss, optionally + the visual quality discriminator.

loss = (1 - sw - dw) * L1 + sw * sync + dw * perceptual, where sw starts at `sync_weight_start` (0) and becomes
`sync_weight` once the evaluation sync loss falls below `sync_threshold`; dw = `disc_weight` with --gan, else 0.
The discriminator learns real (ground truth) vs. generated lower halves with BCE, after each generator step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
from lipdub.train.loop import Precision, Task, adam, eval_loader, fit, init_weights, place, step_optimizer

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


def disc_path(path: Path) -> Path:
    """The discriminator's checkpoint beside a generator checkpoint: disc_<name> (the reference's naming)."""
    return path.with_name("disc_" + path.name)


class GeneratorTask(Task):
    """The generator's run: the weighted loss, then (with --gan) one discriminator step; the sync weight
    switches on at the first evaluation whose sync loss is below the threshold."""

    kind, name, bar_keys = "wav2lip", "generator", ("l1", "sync")

    def __init__(self, cfg: GeneratorConfig, data: Path, d: ddp.Dist) -> None:
        super().__init__(cfg, data, d)
        kw = dict(window=cfg.window, fps=cfg.fps, img_size=cfg.img_size, mel_step=cfg.mel_step, seed=cfg.seed,
                  cache_frames=cfg.cache_frames, frame_mel_offset=cfg.frame_mel_offset,
                  expert_mel_offset=cfg.expert_mel_offset)
        self.train_set = LipSyncDataset(data, "train", **kw)
        self.val_set = LipSyncDataset(data, "val", **kw) if cfg.val else None
        self.val = eval_loader(self.val_set, cfg, d) if self.val_set is not None else None
        self.expert = place(load_expert(cfg.expert, d.device), d, cfg)
        self.model = place(Wav2Lip(), d, cfg)
        self.optimizer = adam(self.model.parameters(), cfg.lr, cfg.betas, d.device)
        if cfg.init is not None:
            init_weights(self.model, cfg.init, "wav2lip")
        self.disc = self.disc_opt = None
        if cfg.gan:
            self.disc = place(Wav2LipDiscQual(), d, cfg)
            self.disc_opt = adam(self.disc.parameters(), cfg.disc_lr, cfg.disc_betas, d.device)
            if cfg.disc_init is not None:
                init_weights(self.disc, cfg.disc_init, "disc_qual")
        self.sw, self.dw = cfg.sync_weight_start, cfg.perceptual_weight
        self.sample: tuple[torch.Tensor, ...] = ()

    def companions(self) -> dict:
        return {"disc_": (self.disc, self.disc_opt)} if self.disc is not None else {}

    def state(self) -> dict:
        return {"sync_weight": self.sw}

    def restore(self, state: dict) -> None:
        self.sw = float(state.get("sync_weight", self.sw))

    def ready(self) -> None:
        self.net = ddp.wrap(self.model, self.d)
        self.disc_net = ddp.wrap(self.disc, self.d) if self.disc is not None else None
        self.scaler, self.disc_scaler = self.precision.scaler(), self.precision.scaler()
        self.model.train()

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, sw, dw, disc = self.cfg, self.sw, self.dw, self.disc
        faces, indiv, mel, target = generator_inputs(batch, self.d.device, cfg.half)
        if disc is not None:
            disc.requires_grad_(False)  # the generator's step must not touch the discriminator
        with self.precision.autocast():
            g = self.net(indiv, faces)
            l1 = F.l1_loss(g.float(), target)
            if sw > 0:
                sync = sync_loss(self.expert, mel, g, cfg.half)
            else:  # not part of the loss yet (as the reference), but worth watching
                with torch.no_grad():
                    sync = sync_loss(self.expert, mel, g.detach(), cfg.half)
            perc = perceptual_loss(disc, g) if disc is not None and dw > 0 else torch.zeros((), device=g.device)
        loss = (1 - sw - dw) * l1 + sw * sync + dw * perc
        step_optimizer(loss, self.optimizer, self.scaler)
        values = {k: v.item() for k, v in (("loss", loss), ("l1", l1), ("sync", sync), ("perceptual", perc))}
        if disc is not None:
            disc.requires_grad_(True)
            with self.precision.autocast():
                real, fake = disc_loss(self.disc_net, target, g.detach())
            step_optimizer(real + fake, self.disc_opt, self.disc_scaler)
            values |= {"disc_real": real.item(), "disc_fake": fake.item()}
        self.sample = (target, g.detach(), faces[:, :3])
        return values

    def scalars(self) -> dict[str, float]:
        return {"sync_weight": self.sw}

    def after_step(self, step: int, logger: RunLogger) -> None:
        if step % self.cfg.sample_interval == 0:
            logger.image(step, "samples", sample_grid(*self.sample))

    def evaluate(self, step: int, write: Callable[[str], None]) -> tuple[dict[str, float], float]:
        cfg = self.cfg
        metrics = evaluate_generator(self.model, self.expert, self.disc, self.val, self.d.device, cfg.eval_steps,
                                     cfg.half, self.precision)
        metrics = ddp.mean_over_ranks(metrics, self.d)
        # a score comparable across the run: the loss with the final weights (not the current sw)
        score = (1 - cfg.sync_weight - self.dw) * metrics["l1"] + cfg.sync_weight * metrics["sync"]
        if self.sw < cfg.sync_weight and metrics["sync"] < cfg.sync_threshold:
            self.sw = cfg.sync_weight
            write(f"step {step}: eval sync loss {metrics['sync']:.3f} < {cfg.sync_threshold}: sync weight now "
                  f"{self.sw}")
        write(f"step {step}: eval L1 {metrics['l1']:.4f}, sync loss {metrics['sync']:.4f}")
        return metrics | {"score": score, "sync_weight": self.sw}, score

    def summary(self, best: float) -> dict:
        return {"gan": self.cfg.gan, "sync_weight": self.sw, "best_score": best}


def train_generator(cfg: GeneratorConfig, data: str | Path, out_dir: str | Path) -> dict:
    """Train or fine-tune the generator (cfg.init: official weights; cfg.resume: our checkpoint); see
    lipdub.train.loop.fit. With --gan, disc_*.pth beside each checkpoint."""
    if cfg.expert is None:
        raise LipdubError("the generator needs a trained lip-sync expert: pass --expert EXPERT.pth")
    return fit(GeneratorTask, cfg, data, out_dir)
