"""User-facing settings in one place, overridable by environment (`LIPDUB_*`), shared by CLI, web app and tests."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda", "mps"]


class Settings(BaseSettings):
    """Settings users touch. `LIPDUB_HOME` moves every file lipdub keeps (weights, caches, web data)."""

    model_config = SettingsConfigDict(env_prefix="LIPDUB_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir("lipdub")))
    device: Device = "auto"  # what `auto` means everywhere (CLI, web, training): auto -> the best available
    # generator batch; None: 8 on CPU (per-frame cost is flat from 4 up there, memory is not: 720p peak RSS
    # 1.10 GiB at 4, 1.18 at 8, 1.32 at 16), 64 on a GPU
    batch_size: int | None = Field(default=None, ge=1)
    checkpoint: Path | None = None  # default Wav2Lip checkpoint; None -> the viseme engine
    # face-detection cache cap (MiB): least recently used entries go beyond it. A minute of 720p video with one
    # face is ~6 MiB (478 landmarks a frame), so the default keeps a few hundred minutes
    cache_max_mb: float = Field(default=2048, ge=0)
    # arithmetic of the Wav2Lip generator: fp32 (exact, the reference's); int8 (CPU, calibrated on the run's first
    # batch) and bf16 (needs bf16 units: ~5x slower than fp32 on an AVX2-only CPU) trade fidelity for speed
    # (benchmarks/bench_wav2lip.py prints both per mode)
    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    crf: int = 18  # H.264 quality of outputs (lower = better, bigger)
    preset: str = "veryfast"  # x264 speed preset: at crf 18 "veryfast" is visually lossless and ~2x "fast"
    threads: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else (os.cpu_count() or 1), ge=1)

    def generator_batch(self, device: str) -> int:
        return int(self.batch_size or (8 if device == "cpu" else 64))

    @property
    def weights_dir(self) -> Path:
        return self.home / "weights"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def web_dir(self) -> Path:
        return self.home / "web"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment); a bad variable is a one-line LipdubError."""
    return load_settings(Settings)


def load_settings(cls: type[BaseSettings], **values: object) -> BaseSettings:
    """`cls(**values)` with its environment variables; a bad value -> LipdubError naming the variable."""
    from lipdub.errors import LipdubError

    try:
        return cls(**values)
    except ValidationError as err:
        first = err.errors()[0]
        prefix = cls.model_config.get("env_prefix", "")
        name = f"{prefix}{first['loc'][0]}".upper() if first["loc"] else cls.__name__
        raise LipdubError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None


def resolve_device(device: str = "auto") -> str:
    """Map `auto` to LIPDUB_DEVICE, and that (when `auto` too) to the best available torch device; check that an
    explicit one exists."""
    import torch

    from lipdub.errors import LipdubError

    if device == "auto":
        device = get_settings().device
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LipdubError("device cuda asked for (--device or LIPDUB_DEVICE), but torch sees no CUDA device; "
                          "use --device cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LipdubError("device mps asked for (--device or LIPDUB_DEVICE), but torch sees no MPS device; "
                          "use --device cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise LipdubError(f"unknown device {device!r} (use auto, cpu, cuda or mps)")
    return device
