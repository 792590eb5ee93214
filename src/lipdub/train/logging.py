"""What a training run reports: a progress bar, TensorBoard scalars and sample grids, and a metrics CSV.

Only rank 0 writes; other ranks get a logger that does nothing.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


class RunLogger:
    """Scalars to TensorBoard (`<out>/tb`) and `<out>/metrics.csv` (one row per step and split), images to both."""

    def __init__(self, out_dir: Path, *, enabled: bool = True, total: int | None = None, initial: int = 0,
                 progress: bool = True, desc: str = "train", elapsed: float = 0.0, resumed: bool = False) -> None:
        """`elapsed`: seconds the run already trained (time_s goes on from there). A resumed run keeps the
        metrics rows up to step `initial` (later ones were not saved in a checkpoint), a new run starts afresh."""
        self.out_dir, self.enabled = Path(out_dir), enabled
        self._start = time.time() - elapsed
        self._lap = time.time()
        self._writer = None
        self._csv_fields: list[str] | None = None
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                        disable=not (enabled and progress))
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._keep_rows(initial if resumed else None)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        except ImportError:  # tensorboard is the optional `train` extra
            log.warning("tensorboard is not installed: no TensorBoard logs (pip install 'lipdub[train]')")

    def elapsed(self) -> float:
        """Seconds of training so far, across resumes."""
        return time.time() - self._start

    def lap(self) -> float:
        """Seconds since the previous lap."""
        now = time.time()
        since, self._lap = now - self._lap, now
        return since

    def _keep_rows(self, up_to: int | None) -> None:
        """Drop metrics.csv rows after step `up_to` (all of them for None)."""
        path = self.out_dir / "metrics.csv"
        if not path.is_file():
            return
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [] if up_to is None else [r for r in rows if int(float(r["step"])) <= up_to]
        if len(kept) == len(rows):
            return
        fields = _existing_header(path) or []
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(kept)

    def step(self, n: int = 1, **postfix: float) -> None:
        """Advance the progress bar, showing the latest losses."""
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self.bar.update(n)

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        """Log `split/name` scalars to TensorBoard and one CSV row (step, split, wall time, values)."""
        if not self.enabled:
            return
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(f"{split}/{k}", v, step)
        self._csv_row({"step": step, "split": split, "time_s": round(time.time() - self._start, 2), **values})

    def _csv_row(self, row: dict) -> None:
        path = self.out_dir / "metrics.csv"
        if self._csv_fields is None:
            self._csv_fields = _existing_header(path) or []
        new = [k for k in row if k not in self._csv_fields]
        if new:  # a new column: rewrite the file with the wider header (rare: once per kind of row)
            self._csv_fields += new
            old = list(csv.DictReader(path.open())) if path.is_file() else []
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, self._csv_fields)
                w.writeheader()
                w.writerows(old)
        with path.open("a", newline="") as f:
            csv.DictWriter(f, self._csv_fields).writerow({k: _fmt(v) for k, v in row.items()})

    def image(self, step: int, tag: str, grid_bgr: np.ndarray) -> Path | None:
        """Log an (H, W, 3) uint8 BGR grid to TensorBoard and save it as `<out>/samples/<tag>_<step>.jpg`."""
        if not self.enabled:
            return None
        if self._writer is not None:
            self._writer.add_image(tag, grid_bgr[:, :, ::-1].copy(), step, dataformats="HWC")
        path = self.out_dir / "samples" / f"{tag}_{step:09d}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), grid_bgr)
        return path

    def write(self, message: str) -> None:
        """A line above the progress bar."""
        if self.enabled:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
        if self._writer is not None:
            self._writer.close()


def _existing_header(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        return next(csv.reader(f), None)


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v


def sample_grid(target: torch.Tensor, generated: torch.Tensor, masked: torch.Tensor, max_items: int = 4
                ) -> np.ndarray:
    """Rows: ground truth, generated, masked input; columns: the T frames of up to `max_items` samples.

    Inputs (B, 3, T, S, S) float in [0, 1], BGR. Returns (3*S, n*T*S, 3) uint8 BGR.
    """
    rows = []
    for x in (target, generated, masked):
        x = x[:max_items].detach().float().clamp(0, 1).cpu()
        b, c, t, s, _ = x.shape
        rows.append(x.permute(3, 0, 2, 4, 1).reshape(s, b * t * s, c))  # (S, B*T*S, 3)
    return (torch.cat(rows, dim=0).numpy() * 255).astype(np.uint8)
