"""`lipdub data cut|filter|prepare|stats`: build a one-speaker fine-tuning set from long videos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lipdub.cli.checks import count, fraction, index, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fine-tuning data: cut, filter, prepare, stats",
                       description="Turn hours of one speaker's videos into a training set. Every step is "
                                   "resumable and never modifies its inputs.")
    steps = p.add_subparsers(dest="step", required=True, metavar="STEP")

    c = steps.add_parser("cut", help="cut long videos into short clips at silences (25 fps, 16 kHz)")
    c.add_argument("inputs", nargs="+", help="video files or folders of videos")
    c.add_argument("-o", "--out", required=True, help="clips folder (<source>-<hash>/<00000>.mp4 + .wav + .json)")
    c.add_argument("--max-len", type=positive, default=10.0, help="longest clip in seconds (default 10)")
    c.add_argument("--piece", type=positive, default=5.0, help="longer speech is split into ~this many seconds (5)")
    c.add_argument("--min-len", type=positive, default=1.0, help="shorter speech is merged or dropped (1 s)")
    c.add_argument("--min-silence", type=positive, default=0.25, help="pauses shorter than this do not end a clip")
    c.add_argument("--crop", help="left-half, right-half or x,y,w,h (pixels) of the picture to keep")
    _parallel(c)
    c.set_defaults(func=_cut)

    f = steps.add_parser("filter", help="keep clips where the target person is visible and talking")
    f.add_argument("clips", help="clips folder from `lipdub data cut`")
    f.add_argument("--person", nargs="+", required=True, metavar="PHOTO", help="reference photo(s) of the target")
    f.add_argument("-o", "--out", required=True, help="folder for kept clips (hard links) and report.json")
    f.add_argument("--min-visible", type=fraction, default=0.8, help="share of frames the target must be in (0.8)")
    f.add_argument("--max-distance", type=positive, default=0.6, help="identity distance threshold (0.6)")
    f.add_argument("--min-len", type=positive, default=1.0, help="shorter clips are removed (1 s)")
    f.add_argument("--min-sync", type=float, help="also remove clips where the target is alone but its lip "
                                                  "motion correlates less than this with the sound (e.g. 0.1; "
                                                  "a weak cue: off by default)")
    _no_cache(f)
    _parallel(f)
    f.set_defaults(func=_filter)

    r = steps.add_parser("prepare", help="face crops + audio + mel + filelists in the training layout")
    r.add_argument("clips", help="clips folder (from `cut` or `filter`)")
    r.add_argument("-o", "--out", required=True, help="dataset folder")
    r.add_argument("--val-split", type=fraction, default=0.05,
                   help="share of the time held out for validation: whole source videos, or with one source its "
                        "last clips after a gap (default 0.05; 0: none, then train with --no-val)")
    r.add_argument("--force-split", action="store_true",
                   help="use the closest split found even when it is far from --val-split")
    r.add_argument("--sync-expert", metavar="CKPT", help="SyncNet checkpoint: measure each clip's audio-video "
                                                       "offset, shift it away, drop clips beyond --max-offset")
    r.add_argument("--max-offset", type=index, default=3, help="with --sync-expert: largest offset kept (frames)")
    _no_cache(r)
    _parallel(r)
    r.set_defaults(func=_prepare)

    s = steps.add_parser("stats", help="hours, clips, faces per frame, sync offsets of a dataset")
    s.add_argument("dataset", help="dataset folder from `lipdub data prepare`")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_stats)


def _no_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-face-cache", dest="face_cache", action="store_false",
                   help="do not keep face tracks in lipdub's cache (~0.6 MB per 7 s clip; without it `prepare` "
                        "detects faces again)")


def _parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--workers", type=count, help="local worker processes (default: LIPDUB_THREADS)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', 'ray://host:10001', or "
                                                      "'local' for a local instance); needs lipdub[ray]")


def _cut(args: argparse.Namespace) -> int:
    from lipdub.data.cut import CutConfig, cut

    cfg = CutConfig(max_len=args.max_len, piece=args.piece, min_len=args.min_len, min_silence=args.min_silence,
                    crop=args.crop)
    res = cut(args.inputs, args.out, cfg, workers=args.workers, ray_address=args.ray)
    print(f"{res['clips']} clips, {res['clip_seconds'] / 60:.1f} min of {res['source_seconds'] / 60:.1f} min "
          f"from {res['sources']} videos ({res['skipped']} already done) -> {args.out}")
    for fail in res["failed"]:
        print(f"  failed: {fail['source']}: {fail['error']}")
    return 1 if res["failed"] and len(res["failed"]) == res["sources"] else 0


def _filter(args: argparse.Namespace) -> int:
    from lipdub.data.filter import FilterConfig, filter_clips

    cfg = FilterConfig(min_visible=args.min_visible, max_distance=args.max_distance, min_len=args.min_len,
                       min_sync=args.min_sync, use_cache=args.face_cache)
    rep = filter_clips(args.clips, args.out, args.person, cfg, workers=args.workers, ray_address=args.ray)
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(rep["by_reason"].items())) or "none"
    done = f" ({rep['already_done']} already done)" if "already_done" in rep else ""
    print(f"kept {rep['kept']} of {rep['clips']} clips ({rep['kept_seconds'] / 60:.1f} min){done}; removed: "
          f"{reasons}")
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from lipdub.data.prepare import PrepareConfig, Split, prepare

    cfg = PrepareConfig(sync_expert=args.sync_expert, max_offset=args.max_offset, use_cache=args.face_cache)
    man = prepare(args.clips, args.out, cfg, val_split=args.val_split, force_split=args.force_split,
                  workers=args.workers, ray_address=args.ray)
    sp, split = man["splits"], man["split"]
    print(f"{man['clips']} clips, {man['hours'] * 60:.1f} min (train {sp['train']['clips']}, val "
          f"{sp['val']['clips']}; {len(man['skipped'])} skipped, {man['already_done']} already done) "
          f"-> {Path(args.out)}")
    print(Split(split["by"], frozenset(), frozenset(split["gap_clips"]), split["val_fraction"])
          .describe(args.val_split))
    if not sp["val"]["clips"]:
        print("  note: no validation clips: train with --no-val")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from lipdub.data.stats import dataset_stats, format_stats

    s = dataset_stats(args.dataset)
    print(json.dumps(s, indent=1) if args.json else format_stats(s))
    return 0
