"""Train the lip-sync expert (SyncNet_color) on real frames: aligned vs. shifted 5-frame windows, BCE on cosine.

Evaluation scores every held-out window's mel with its own frames and with the frames of every other window
of the clip: the balanced loss, and the off-sync accuracy (how often the aligned pair scores above a shifted
one; chance 0.5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lipdub.data.windows import expert_inputs
from lipdub.engines.wav2lip.model import SyncNet, sync_probability
from lipdub.train import ddp
from lipdub.train.config import ExpertConfig
from lipdub.train.dataset import ExpertDataset
from lipdub.train.evaluate import _Sums, sync_stats, window_embeddings
from lipdub.train.loop import Precision, Task, adam, fit, init_weights, place, step_optimizer

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


class ExpertTask(Task):
    """The expert's run: BCE of the in-sync probability against the label; scored by the balanced eval loss."""

    kind, name, bar_keys = "syncnet", "expert", ("loss",)

    def __init__(self, cfg: ExpertConfig, data: Path, d: ddp.Dist) -> None:
        super().__init__(cfg, data, d)
        kw = dict(window=cfg.window, fps=cfg.fps, img_size=cfg.img_size, mel_step=cfg.mel_step, seed=cfg.seed,
                  cache_frames=cfg.cache_frames, expert_mel_offset=cfg.expert_mel_offset)
        self.train_set = ExpertDataset(data, "train", **kw)
        self.val_set = ExpertDataset(data, "val", **kw) if cfg.val else None
        self.model = place(SyncNet(), d, cfg)
        self.optimizer = adam(self.model.parameters(), cfg.lr, cfg.betas, d.device)
        if cfg.init is not None:
            init_weights(self.model, cfg.init, "syncnet")

    def ready(self) -> None:
        self.net, self.scaler = ddp.wrap(self.model, self.d), self.precision.scaler()
        self.model.train()

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        device = self.d.device
        mel = batch["mel"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        faces = expert_inputs(batch["frames"], device)
        with self.precision.autocast():
            prob = sync_prob(self.net, mel, faces)
        loss = bce(prob, label)
        step_optimizer(loss, self.optimizer, self.scaler)
        return {"loss": loss.item(), "acc": float(((prob.detach() > 0.5).float() == label).float().mean())}

    def evaluate(self, step: int, write: Callable[[str], None]) -> tuple[dict[str, float], float]:
        cfg, d = self.cfg, self.d
        metrics = evaluate_expert(self.net, self.val_set, d.device, cfg.eval_steps * cfg.batch_size,
                                  cfg.batch_size, self.precision, d)
        metrics["windows"] = ddp.mean_over_ranks({"w": metrics["windows"]}, d)["w"] * d.world_size
        write(f"step {step}: eval loss {metrics['loss']:.4f}, off-sync accuracy {metrics['offsync_acc']:.3f} "
              f"over {int(metrics['windows'])} windows")
        return metrics, metrics["loss"]

    def summary(self, best: float) -> dict:
        return {"best_eval_loss": best}


def train_expert(cfg: ExpertConfig, data: str | Path, out_dir: str | Path) -> dict:
    """Train (or fine-tune with cfg.init, or continue with cfg.resume) the expert: see lipdub.train.loop.fit."""
    return fit(ExpertTask, cfg, data, out_dir)
