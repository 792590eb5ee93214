"""Every setting of a training run, with the reference Wav2Lip training facts as the defaults.

The facts (those of the reference Wav2Lip training scripts; docs/training.md): windows of Tv = 5 frames at 25 fps, 96x96
faces, 80x16 mel windows; the generator's per-frame mel window for 0-indexed frame k starts at
int(80 * (k - 1) / fps) (one frame earlier than at inference) and the expert's at the window's first frame;
expert batch 64 / Adam lr 1e-4; generator batch 16 / Adam lr 1e-4; loss = (1 - sw - dw) * L1 + sw * sync +
dw * perceptual, sw = 0 until the evaluation sync loss falls below 0.75, then 0.03; dw = 0.07 with the visual
quality discriminator (Adam lr 1e-4), 0 without.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Device = Literal["auto", "cpu", "cuda", "mps"]
DEFAULT_WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class TrainConfig(BaseModel):
    """Settings shared by the expert and the generator runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data facts
    fps: float = Field(25.0, gt=0, description="video frame rate the dataset was made at")
    window: int = Field(5, ge=1, description="Tv: consecutive frames per sample (expert and generator)")
    img_size: int = Field(96, ge=16, description="face crops are resized to img_size x img_size (BGR)")
    mel_step: int = Field(16, ge=1, description="mel columns per audio window (80 per second)")
    # optimisation
    batch_size: int = Field(16, ge=1, description="samples per step (per process under DDP)")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (default: until stopped)")
    seed: int = Field(0, description="seed of the sampling and the initial weights")
    # schedule
    eval_interval: int = Field(3000, ge=1, description="evaluate every N steps (and at the end)")
    eval_steps: int = Field(700, ge=1, description="batches per evaluation")
    eval_first: bool = Field(False, description="evaluate once before the first step (a baseline, e.g. of --init)")
    checkpoint_interval: int = Field(3000, ge=1, description="write last.pth and a numbered checkpoint every N "
                                     "steps")
    keep_last: int = Field(3, ge=0, description="numbered checkpoints kept (older ones are deleted; last.pth and "
                           "best.pth stay)")
    val: bool = Field(True, description="evaluate on the 'val' split; --no-val trains without validation (no "
                      "best.pth; the generator's sync weight then stays at --sync-weight-start)")
    log_interval: int = Field(10, ge=1, description="log training scalars every N steps")
    # hardware
    device: Device = Field("auto", description="auto, cpu, cuda or mps")
    amp: bool = Field(True, description="mixed precision (float16 autocast + GradScaler), CUDA only")
    channels_last: bool = Field(True, description="NHWC memory layout for the convolutions (faster on CPU and "
                                "with CUDA tensor cores)")
    num_workers: int = Field(DEFAULT_WORKERS, ge=0, description="data-loader worker processes (the default: "
                             "4 or the usable cores, whichever is fewer)")
    pin_memory: bool = Field(True, description="page-locked batches for faster host-to-GPU copies")
    cache_frames: int = Field(0, ge=0, description="decoded 96x96 frames kept in RAM per worker (0: none)")
    # inputs/outputs
    resume: Path | None = Field(None, description="our own checkpoint to continue from (model, optimizer, step)")
    init: Path | None = Field(None, description="weights to start from (e.g. an official checkpoint); fresh "
                              "optimizer, step 0")
    progress: bool = Field(True, description="show a progress bar")

    @model_validator(mode="after")
    def _one_start(self) -> TrainConfig:
        if self.resume is not None and self.init is not None:
            raise ValueError("--init starts a new run from weights, --resume continues one: pass only one")
        return self

    @property
    def half(self) -> int:
        """First row of the lower half of a face (the mouth region the expert and the mask use)."""
        return self.img_size // 2


class ExpertConfig(TrainConfig):
    """The lip-sync expert (SyncNet_color): real frames only, aligned vs. shifted windows."""

    batch_size: int = Field(64, ge=1, description="samples per step (per process under DDP)")
    eval_interval: int = Field(10000, ge=1, description="evaluate every N steps (and at the end)")
    eval_steps: int = Field(1400, ge=1, description="batches per evaluation")
    checkpoint_interval: int = Field(10000, ge=1, description="write last.pth and a numbered checkpoint every N "
                                     "steps")
    expert_mel_offset: int = Field(0, description="the expert's mel window starts at the first frame + this")


class GeneratorConfig(TrainConfig):
    """The generator (Wav2Lip), with L1 + expert sync loss and optionally the visual quality discriminator."""

    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas (hq_wav2lip_train; the "
                                       "reference's no-GAN script used Adam's default 0.9, 0.999)")
    expert: Path | None = Field(None, description="the trained lip-sync expert (frozen); required")
    frame_mel_offset: int = Field(-1, description="frame k's own mel window starts at frame k + this")
    expert_mel_offset: int = Field(0, description="the sync loss's mel window starts at the first frame + this")
    sync_weight: float = Field(0.03, ge=0, lt=1, description="sync-loss weight once switched on (the "
                               "reference's no-GAN script used 0.01)")
    sync_weight_start: float = Field(0.0, ge=0, lt=1, description="sync-loss weight before the switch")
    sync_threshold: float = Field(0.75, gt=0, description="switch the sync weight on once the eval sync loss "
                                  "falls below this")
    gan: bool = Field(False, description="train with the visual quality discriminator")
    disc_weight: float = Field(0.07, ge=0, lt=1, description="perceptual (adversarial) loss weight with --gan")
    disc_lr: float = Field(1e-4, gt=0, description="discriminator Adam learning rate")
    disc_betas: tuple[float, float] = Field((0.5, 0.999), description="discriminator Adam betas")
    disc_init: Path | None = Field(None, description="discriminator weights to start from "
                                   "(e.g. visual_quality_disc.pth)")
    sample_interval: int = Field(3000, ge=1, description="write a sample grid every N steps")

    @model_validator(mode="after")
    def _weights_fit(self) -> GeneratorConfig:
        dw = self.disc_weight if self.gan else 0.0
        if max(self.sync_weight, self.sync_weight_start) + dw >= 1:
            raise ValueError("sync_weight + disc_weight must stay below 1 (the L1 weight is what is left)")
        return self

    @property
    def perceptual_weight(self) -> float:
        """dw: the discriminator's weight, 0 without --gan."""
        return self.disc_weight if self.gan else 0.0
