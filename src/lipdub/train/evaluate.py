"""Score a generator checkpoint on held-out clips: reconstruction (L1, PSNR, SSIM) and lip sync from an expert.

Each clip is regenerated frame by frame the way `lipdub animate` drives the model (frame k's mel window at
int(80 k / fps)), with the lower half masked and a reference frame from elsewhere in the clip (`reference=
"other"`, so the true mouth is never shown) or the frame itself (`"same"`, as at inference).
Sync follows the LSE-D / LSE-C recipe (Prajwal et al. 2020, after Chung & Zisserman's SyncNet): embeddings of
every 5-frame window and of the audio shifted by -vshift..vshift frames; the mean distance per shift; LSE-D is
the smallest, LSE-C the median minus the smallest, the offset where it lies. Computed with the given expert
(unit-norm embeddings), so the figures compare checkpoints and ground truth here, not published numbers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lipdub.audio.mel import chunk_starts, mel_windows
from lipdub.data.windows import load_face, mel_start, stack_for_expert
from lipdub.engines.wav2lip.checkpoint import load_model
from lipdub.errors import LipdubError
from lipdub.train.dataset import load_mel, read_split

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    split: str = "val"
    device: str = "auto"
    batch_size: int = 32
    max_clips: int | None = None
    max_frames: int | None = None  # per clip, from its start
    vshift: int = 15  # frames of audio shift either way (the LSE scripts' default)
    reference: str = "other"  # "other": a frame half a clip away; "same": the frame itself (inference)
    fps: float = 25.0
    img_size: int = 96
    window: int = 5
    seed: int = 0
    progress: bool = True


def ssim(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, size: int = 11) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; Gaussian window, valid region, data range 1) per image, (N,).

    x, y: (N, C, H, W) in [0, 1]; channels are scored separately and averaged.
    """
    c = x.size(1)
    g = torch.exp(-((torch.arange(size, dtype=x.dtype, device=x.device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (data range 1), (N,); capped at 100 dB for identical images."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def lse(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int) -> tuple[float, float, int]:
    """(LSE-D, LSE-C, offset in frames) of one clip from (W, D) window embeddings (the syncnet_python recipe).

    The audio embeddings are zero-padded by vshift on both sides; for each shift the distance between each
    video window and the shifted audio is averaged over the windows.
    """
    n = len(video_emb)
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))
    shifts = torch.arange(2 * vshift + 1, device=video_emb.device)
    idx = torch.arange(n, device=video_emb.device)[:, None] + shifts[None, :]  # (W, 2v+1)
    dists = torch.linalg.vector_norm(video_emb[:, None, :] - padded[idx], dim=-1)  # (W, 2v+1)
    mean = dists.mean(0)
    minval, minidx = torch.min(mean, 0)
    return float(minval), float(torch.median(mean) - minval), vshift - int(minidx)


def sync_stats(audio_emb: torch.Tensor, video_emb: torch.Tensor) -> dict[str, tuple[float, int]]:
    """How well an expert tells aligned from shifted windows of one clip: (sum, count) per figure.

    Row i of the (W, W) probability matrix pairs the mel window of window i with the frames of every window;
    the diagonal is in sync, the rest is the same audio with frames from another time (the reference's
    negatives). offsync_acc: for each window, the fraction of other windows scored below the aligned one
    (chance 0.5). loss: balanced BCE (in-sync -> 1, shifted -> 0). acc: at threshold 0.5, balanced.
    """
    a, v = audio_emb.float(), video_emb.float()
    w = len(a)
    p = (a @ v.T).clamp(0.0, 1.0)  # cosine of unit embeddings
    diag = p.diagonal()
    off = ~torch.eye(w, dtype=torch.bool, device=p.device)
    neg = p[off]
    wins = ((diag[:, None] > p) & off).float().sum(1) / max(w - 1, 1)
    bce_pos = F.binary_cross_entropy(diag, torch.ones_like(diag), reduction="sum")
    bce_neg = F.binary_cross_entropy(neg, torch.zeros_like(neg), reduction="mean") * w  # per window, weight 1
    return {
        "offsync_acc": (float(wins.sum()), w),
        "loss": (float(bce_pos + bce_neg) / 2, w),
        "sync_loss": (float(bce_pos), w),
        "acc": (float((diag > 0.5).float().sum() + (neg <= 0.5).float().mean() * w) / 2, w),
        "p_sync": (float(diag.sum()), w),
        "p_off": (float(neg.mean()) * w, w),
    }


class _Sums:
    """Running sums of named figures."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str, values: torch.Tensor | float, count: int | None = None) -> None:
        if isinstance(values, torch.Tensor):
            count, values = values.numel(), float(values.double().sum())
        self.sum[name] = self.sum.get(name, 0.0) + float(values)
        self.count[name] = self.count.get(name, 0) + (1 if count is None else count)

    def add_stats(self, stats: dict[str, tuple[float, int]]) -> None:
        for name, (total, count) in stats.items():
            self.add(name, total, count)

    def means(self) -> dict[str, float]:
        return {k: self.sum[k] / max(self.count[k], 1) for k in self.sum}


@torch.no_grad()
def evaluate_checkpoint(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str],
                        expert: str | os.PathLike[str], options: EvalOptions | None = None) -> dict:
    """Figures for `checkpoint` on the `options.split` clips of `data`, judged by the `expert` checkpoint."""
    from lipdub.settings import resolve_device

    opt = options or EvalOptions()
    if opt.reference not in ("other", "same"):
        raise LipdubError(f"unknown reference mode {opt.reference!r} (use other or same)")
    device = torch.device(resolve_device(opt.device))
    model = load_model(checkpoint, "wav2lip", str(device))
    sync_net = load_model(expert, "syncnet", str(device))
    clips = read_split(data, opt.split)[: opt.max_clips]
    gen, real = _Sums(), _Sums()
    frames_total = windows_total = 0
    for clip in tqdm(clips, desc="eval", unit="clip", disable=not opt.progress):
        n = min(clip.n_frames, opt.max_frames or clip.n_frames)
        if n < opt.window + 1:
            log.warning("%s: fewer than %d frames, skipped", clip.name, opt.window + 1)
            continue
        truth = np.stack([load_face(clip.path / f"{k}.jpg", opt.img_size) for k in range(n)])  # (n,S,S,3) BGR
        mel = load_mel(clip.path)
        truth_t = torch.from_numpy(truth).permute(0, 3, 1, 2).float().div_(255).to(device)  # (n, 3, S, S)
        generated = _generate(model, truth_t, mel, opt, device)
        gen.add("l1", (generated - truth_t).abs().flatten(1).mean(1))
        gen.add("psnr", psnr(generated, truth_t))
        gen.add("ssim", ssim(generated, truth_t))
        frames_total += n
        # sync: windows whose audio window fits
        starts = [w for w in range(n - opt.window + 1) if mel_start(w, opt.fps) + 16 <= mel.shape[1]]
        if len(starts) < 2:
            continue
        audio = torch.from_numpy(mel_windows(mel, [mel_start(w, opt.fps) for w in starts])).to(device)
        for sums, faces in ((gen, generated), (real, truth_t)):
            _add_sync(sums, *_embed(sync_net, audio, faces, starts, opt), opt.vshift)
        windows_total += len(starts)
    if frames_total == 0:
        raise LipdubError(f"no clip of the '{opt.split}' split has enough frames to evaluate", data)
    result = {"checkpoint": str(checkpoint), "expert": str(expert), "data": str(data), "split": opt.split,
              "clips": len(clips), "frames": frames_total, "windows": windows_total,
              "generated": gen.means(), "ground_truth": real.means(), "options": asdict(opt)}
    return result | {"warnings": caveats(result)}


def _add_sync(sums: _Sums, audio_emb: torch.Tensor, video_emb: torch.Tensor, vshift: int) -> None:
    """One clip's LSE-D / LSE-C, offset (only when inside the search range), off-sync accuracy, sync loss."""
    d, c, off = lse(video_emb, audio_emb, vshift)
    sums.add("lse_d", d)
    sums.add("lse_c", c)
    at_limit = vshift > 0 and abs(off) >= vshift  # the true offset may lie anywhere beyond: not a figure
    sums.add("offset_at_limit", float(at_limit))
    if not at_limit:
        sums.add("abs_offset", abs(off))
    stats = sync_stats(audio_emb, video_emb)
    sums.add_stats({k: stats[k] for k in ("offsync_acc", "sync_loss")})


NEAR_CHANCE = 0.65  # off-sync accuracy on the ground truth below this: the expert barely tells sync (chance 0.5)


def caveats(result: dict) -> list[str]:
    """What the figures cannot be trusted for: an expert near chance on the ground truth, offsets at the limit."""
    out, vshift = [], result["options"]["vshift"]
    acc = result["ground_truth"].get("offsync_acc")
    if acc is not None and acc < NEAR_CHANCE:
        out.append(f"the expert is near chance on the ground truth (off-sync accuracy {acc:.2f}, chance 0.5): "
                   f"its LSE-D / LSE-C, offset and sync figures say little")
    for label, key in (("generated", "generated"), ("ground truth", "ground_truth")):
        share = result[key].get("offset_at_limit", 0.0)
        if share > 0:
            out.append(f"{label}: the offset of {share:.0%} of the clips lies at the search limit (beyond "
                       f"+-{vshift} frames), left out of |offset|")
    return out


def _generate(model: torch.nn.Module, truth: torch.Tensor, mel: np.ndarray, opt: EvalOptions,
              device: torch.device) -> torch.Tensor:
    """Regenerate every frame: masked truth + reference frame, frame k's mel window at int(80 k / fps)."""
    n, half = len(truth), opt.img_size // 2
    starts = chunk_starts(mel.shape[1], opt.fps, n)
    audio = torch.from_numpy(mel_windows(mel, starts))
    refs = torch.arange(n) if opt.reference == "same" else (torch.arange(n) + n // 2) % n
    out = []
    for i in range(0, n, opt.batch_size):
        sl = slice(i, i + opt.batch_size)
        masked = truth[sl].clone()
        masked[:, :, half:] = 0
        faces = torch.cat([masked, truth[refs[sl].to(device)]], dim=1)
        out.append(model(audio[sl].to(device), faces).float())
    return torch.cat(out)


def _embed(sync_net: torch.nn.Module, audio: torch.Tensor, faces: torch.Tensor, starts: list[int],
           opt: EvalOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio and video embeddings (W, 512) of the 5-frame windows starting at `starts`."""
    return window_embeddings(sync_net, audio, faces[:, :, opt.img_size // 2:], starts, opt.window, opt.batch_size)


def window_embeddings(sync_net: torch.nn.Module, audio: torch.Tensor, lower: torch.Tensor, starts: list[int],
                      window: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert embeddings (W, 512) of mel windows `audio` (W, 1, 80, 16) and of the frame windows at `starts`.

    lower: (n, 3, h, S) lower halves of a clip's frames, float in [0, 1], BGR.
    """
    a_out, v_out = [], []
    for i in range(0, len(starts), batch_size):
        idx = torch.tensor(starts[i:i + batch_size])[:, None] + torch.arange(window)[None, :]
        win = lower[idx.to(lower.device)]  # (b, T, 3, h, S)
        a, v = sync_net(audio[i:i + batch_size], stack_for_expert(win.transpose(1, 2)))
        a_out.append(a.float())
        v_out.append(v.float())
    return torch.cat(a_out), torch.cat(v_out)


def format_table(result: dict) -> str:
    """The figures as a small text table (generated vs. ground truth)."""
    cols = [("L1", "l1", "{:.4f}"), ("PSNR", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}"),
            ("LSE-D", "lse_d", "{:.3f}"), ("LSE-C", "lse_c", "{:.3f}"), ("|offset|", "abs_offset", "{:.2f}"),
            ("off-sync acc", "offsync_acc", "{:.3f}"), ("sync loss", "sync_loss", "{:.4f}")]
    rows = [["", *(c[0] for c in cols)]]
    for label, key in (("generated", "generated"), ("ground truth", "ground_truth")):
        vals = result[key]
        rows.append([label, *(_cell(vals, k, fmt, result["options"]["vshift"]) for _, k, fmt in cols)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths,
                                                                                              strict=True)))
             for r in rows]
    head = (f"{result['checkpoint']} on {result['data']} ({result['split']}: {result['clips']} clips, "
            f"{result['frames']} frames, {result['windows']} windows)")
    return "\n".join([head, *lines, *(f"warning: {w}" for w in result.get("warnings", []))])


def _cell(vals: dict, key: str, fmt: str, vshift: int) -> str:
    if key in vals:
        return fmt.format(vals[key])
    if key == "abs_offset" and vals.get("offset_at_limit"):
        return f"beyond +-{vshift}"
    return "-"


def save_json(result: dict, path: Path) -> None:
    from lipdub.train.loop import write_json

    write_json(Path(path), result)
