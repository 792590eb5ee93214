"""Audio-video offset of a prepared clip, measured with a lip-sync expert (SyncNet), and shifting it away.

As SyncNet's own offset search: embed every 5-frame lower-face window once and the mel window of every frame
once, then for each shift d the mean distance between face window s and audio window s + d; the offset is
the d with the least distance, the confidence is median - min over the shifts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lipdub.data.store import FPS

WINDOW, IMG, MEL_STEP = 5, 96, 16


@lru_cache(maxsize=2)
def load_expert(path: str, device: str = "cpu"):  # -> torch.nn.Module (SyncNet, eval mode)
    """The SyncNet expert of a checkpoint, once per process."""
    from lipdub.engines.wav2lip.checkpoint import load_model

    return load_model(path, kind="syncnet", device=device)


def _face_windows(crops: list[np.ndarray], starts: list[int]):  # -> torch.Tensor (N, 15, 48, 96)
    """The 5-frame windows of lower-half BGR 96x96 crops starting at `starts`, stacked as the expert reads them."""
    import torch

    from lipdub.data.windows import expert_inputs

    lower = np.stack([c[IMG // 2:] for c in crops])  # (n, 48, 96, 3)
    wins = np.stack([lower[s:s + WINDOW] for s in starts])
    return expert_inputs(torch.from_numpy(wins), torch.device("cpu"))


def offset_curve(crops: list[np.ndarray], mel: np.ndarray, model: Any, max_shift: int = 15, stride: int = 2,
                 batch: int = 64) -> dict[int, float]:
    """{shift d: mean expert distance between face window s and the audio window of frame s + d}.

    Face windows start every `stride` frames (the face encoder is the costly half); audio windows at every
    frame, so every shift is measured on the same face windows.
    """
    import torch

    from lipdub.data.windows import mel_start

    n = len(crops)
    face_starts = list(range(0, n - WINDOW + 1, stride))
    faces = _face_windows(crops, face_starts)
    starts = [mel_start(k, FPS) for k in range(n)]
    ok = [k for k in range(n) if starts[k] + MEL_STEP <= mel.shape[1]]
    mels = torch.from_numpy(np.stack([mel[None, :, starts[k]:starts[k] + MEL_STEP] for k in ok]).astype(np.float32))
    device = next(model.parameters()).device
    with torch.no_grad():
        f_emb = torch.cat([model.face_encoder(faces[i:i + batch].to(device)).flatten(1)
                           for i in range(0, len(faces), batch)])
        a_emb = torch.cat([model.audio_encoder(mels[i:i + batch].to(device)).flatten(1)
                           for i in range(0, len(mels), batch)])
    f_emb = torch.nn.functional.normalize(f_emb, dim=1).cpu()
    a_emb = torch.nn.functional.normalize(a_emb, dim=1).cpu()
    row = {k: i for i, k in enumerate(ok)}
    curve = {}
    for d in range(-max_shift, max_shift + 1):
        pairs = [(i, row[s + d]) for i, s in enumerate(face_starts) if s + d in row]
        if len(pairs) >= max(3, len(f_emb) // 3):
            fs, aa = zip(*pairs, strict=True)
            curve[d] = float((1 - (f_emb[list(fs)] * a_emb[list(aa)]).sum(1)).mean())
    return curve


def estimate_offset(crops: list[np.ndarray], mel: np.ndarray, model: Any, max_shift: int = 15) -> dict[str, Any]:
    """{"offset_frames": d (audio of frame k + d belongs to frame k), "confidence", "distance"}."""
    curve = offset_curve(crops, mel, model, max_shift)
    if not curve:
        return {"offset_frames": 0, "confidence": 0.0, "distance": None}
    best = min(curve, key=curve.get)
    return {"offset_frames": int(best), "confidence": round(float(np.median(list(curve.values())) - curve[best]), 4),
            "distance": round(curve[best], 4)}


def renumber(folder: Path, k0: int, k1: int, total: int) -> None:
    """Keep `k0.jpg .. (k1-1).jpg` as `0.jpg ..` and delete the rest (our own temporary crops only)."""
    for k in list(range(0, k0)) + list(range(k1, total)):
        (folder / f"{k}.jpg").unlink(missing_ok=True)
    if k0:
        for k in range(k0, k1):
            (folder / f"{k}.jpg").rename(folder / f"{k - k0}.jpg")
