"""Window arithmetic shared by the data steps and training: mel windows of video frames, face crops as the
networks read them, and 5-frame lower-face windows stacked for the lip-sync expert.

Frame k at `fps` has its 16-column mel window starting at int(80 * k / fps) (80 mel columns per second).
Face crops are BGR (the official networks were trained on OpenCV's BGR) resized to a square ignoring the aspect.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from lipdub.errors import LipdubError

MEL_PER_SECOND = 80.0


def mel_start(frame: int, fps: float) -> int:
    """First mel column of the 16-column window of (0-indexed) video frame `frame`: int(80 * frame / fps)."""
    return int(MEL_PER_SECOND * frame / fps)


def load_face(path: Path, size: int) -> np.ndarray:
    """A face crop as (size, size, 3) uint8 BGR, resized like the reference (bilinear, aspect ignored)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise LipdubError("unreadable or missing frame", path)
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size))
    return img


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, H, W) float in [0, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float().div_(255.0)


def stack_for_expert(faces: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, h, W) lower-half faces -> (B, 3*T, h, W), channel 3*t + colour, as SyncNet reads them."""
    b, c, t, h, w = faces.shape
    return faces.permute(0, 2, 1, 3, 4).reshape(b, t * c, h, w)


def expert_inputs(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, T, h, W, 3) uint8 lower halves -> (B, 3*T, h, W) float on `device`."""
    return stack_for_expert(to_float(frames.to(device, non_blocking=True)))
