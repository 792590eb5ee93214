"""Summarise a prepared dataset: hours, clips, split, clip lengths, faces per frame, crop sizes, sync offsets."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lipdub.data.prepare import FORMAT
from lipdub.data.store import FPS, read_json
from lipdub.errors import LipdubError


def dataset_stats(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Figures of the dataset at `root` (reads manifest.json, the filelists and every clip.json)."""
    root = Path(root)
    manifest = read_json(root / "manifest.json")
    if manifest is None or manifest.get("format") != FORMAT:
        raise LipdubError("not a lipdub dataset (no readable manifest.json)", root)
    split_of = {}
    for split in ("train", "val"):
        path = root / "filelists" / f"{split}.txt"
        if path.exists():
            split_of.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
    lengths, faces, offsets, sides, missing = [], [], Counter(), [], []
    for key in split_of:
        rec = read_json(root / key / "clip.json")
        if rec is None:
            missing.append(key)
            continue
        lengths.append(rec["n_frames"] / FPS)
        faces.append(rec.get("faces_per_frame", 1.0))
        if rec.get("sync") is not None:  # measured with --sync-expert (else the offset is only assumed 0)
            offsets[int(rec.get("offset_frames", 0))] += 1
        sides.append(_crop_side(root / key / "0.jpg"))
    lengths_a = np.asarray(lengths or [0.0])
    hours = {s: round(sum(length for key, length in zip(split_of, lengths, strict=False) if split_of[key] == s)
                      / 3600, 4) for s in ("train", "val")}
    return {
        "root": str(root), "hours": round(float(lengths_a.sum()) / 3600, 4), "clips": len(lengths),
        "frames": int(round(lengths_a.sum() * FPS)), "sources": len(manifest.get("sources", {})),
        "train_clips": sum(v == "train" for v in split_of.values()),
        "val_clips": sum(v == "val" for v in split_of.values()), "split_hours": hours,
        "clip_seconds": {"min": round(float(lengths_a.min()), 2), "median": round(float(np.median(lengths_a)), 2),
                         "max": round(float(lengths_a.max()), 2)},
        "faces_per_frame": round(float(np.mean(faces)), 3) if faces else None,
        "crop_px_median": int(np.median(sides)) if sides else None,
        "sync_offsets": {str(k): v for k, v in sorted(offsets.items())}, "sync_measured": sum(offsets.values()),
        "split": manifest.get("split"),
        "skipped": len(manifest.get("skipped", [])), "missing": missing,
    }


def _crop_side(path: Path) -> int:
    """Longer side of a face crop (reads only the JPEG header)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return max(im.size)
    except OSError:
        return 0


def format_stats(s: dict[str, Any]) -> str:
    """The figures as a short aligned text table."""
    rows = [
        ("dataset", s["root"]),
        ("hours", f"{s['hours']:.3f}  (train {s['split_hours']['train']:.3f}, val {s['split_hours']['val']:.3f})"),
        ("clips", f"{s['clips']}  (train {s['train_clips']}, val {s['val_clips']}; {s['skipped']} skipped)"),
        ("frames", str(s["frames"])),
        ("sources", str(s["sources"])),
        ("clip length s", "min {min}  median {median}  max {max}".format(**s["clip_seconds"])),
        ("faces/frame", str(s["faces_per_frame"])),
        ("crop px (median)", str(s["crop_px_median"])),
        ("sync offsets", _offsets(s)),
    ]
    if s.get("split"):
        rows.insert(3, ("split", f"by {s['split']['by']}, {s['split']['val_fraction']:.0%} of the time held out"
                        + (f", {len(s['split']['gap_clips'])} clip(s) left out as a gap"
                           if s["split"]["gap_clips"] else "")))
    if s["missing"]:
        rows.append(("missing clips", str(len(s["missing"]))))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _offsets(s: dict[str, Any]) -> str:
    """Measured offsets as 'frames: clips', or why there are none."""
    if not s["sync_measured"]:
        return "not measured (prepare with --sync-expert to measure them)"
    counts = ", ".join(f"{k}: {v}" for k, v in s["sync_offsets"].items())
    return f"{counts}  ({s['sync_measured']} of {s['clips']} clips measured)"
