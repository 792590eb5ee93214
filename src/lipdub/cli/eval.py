"""`lipdub eval CHECKPOINT DATASET --expert EXPERT`: reconstruction and lip-sync figures of a generator checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lipdub.cli.checks import count, index, rate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a generator checkpoint on held-out clips (L1, PSNR, SSIM, LSE-D/C)",
                       description="Regenerate the held-out clips of a prepared dataset with a generator "
                       "checkpoint; report L1 / PSNR / SSIM against the ground truth and, with the given expert, "
                       "sync distance and confidence (the LSE-D / LSE-C recipe) and off-sync accuracy, for the "
                       "generated and the real faces. Prints a table; --json writes every figure.")
    p.add_argument("checkpoint", type=Path, help="generator checkpoint (ours or an official wav2lip*.pth)")
    p.add_argument("data", type=Path, help="dataset folder made by `lipdub data prepare`")
    p.add_argument("--expert", type=Path, required=True, help="lip-sync expert checkpoint that judges sync")
    p.add_argument("--split", default="val", help="which filelist to use (default: val)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the figures here (default: <checkpoint folder>/eval_<name>.json)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--batch-size", type=count, default=32)
    p.add_argument("--max-clips", type=count, default=None, help="only the first N clips")
    p.add_argument("--max-frames", type=count, default=None, help="only the first N frames of each clip")
    p.add_argument("--vshift", type=index, default=15, help="audio shifts tried either way, in frames (default 15)")
    p.add_argument("--reference", choices=["other", "same"], default="other",
                   help="reference half: a frame from elsewhere in the clip (default) or the frame itself")
    p.add_argument("--fps", type=rate, default=None, help="dataset frame rate (default: manifest.json, else 25)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_run)


def _dataset_fps(data: Path) -> float:
    manifest = data / "manifest.json"
    if manifest.is_file():
        try:
            return float(json.loads(manifest.read_text()).get("fps", 25.0))
        except (ValueError, TypeError):
            pass
    return 25.0


def _run(args: argparse.Namespace) -> int:
    from lipdub.engines.wav2lip.weights import resolve_checkpoint
    from lipdub.train.evaluate import EvalOptions, evaluate_checkpoint, format_table, save_json

    options = EvalOptions(split=args.split, device=args.device, batch_size=args.batch_size,
                          max_clips=args.max_clips, max_frames=args.max_frames, vshift=args.vshift,
                          reference=args.reference, fps=args.fps or _dataset_fps(args.data),
                          progress=args.progress)
    checkpoint, expert = resolve_checkpoint(args.checkpoint), resolve_checkpoint(args.expert)
    result = evaluate_checkpoint(checkpoint, args.data, expert, options)
    out = args.json or args.checkpoint.with_name(f"eval_{args.checkpoint.stem}.json")
    save_json(result, out)
    print(format_table(result))
    print(f"figures written to {out}")
    return 0
