"""`lipdub faces MEDIA`: list every person (id, frames, tracks per shot) and write a numbered preview image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lipdub.cli.checks import rate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("faces", help="list the faces of a photo or video and write a numbered preview",
                       description="Detect and track every face, group the tracks of each shot into persons; "
                       "the ids are what `animate --face` takes. Each person lists its tracks (shot, first and last "
                       "frame); the preview shows every track's best frame.")
    p.add_argument("media", type=Path, help="photo or video")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.add_argument("--no-cache", action="store_true", help="detect again even if the result is cached")
    p.add_argument("--preview", type=Path, default=None,
                   help="preview image path (default: ./<name>.faces.jpg in the current folder)")
    p.add_argument("--no-preview", action="store_true", help="do not write a preview image")
    p.add_argument("--fps", type=rate, default=None, help="analyse a video at this frame rate")
    p.set_defaults(func=_run)


def persons(tracks) -> list[dict]:
    """`FaceTracks.person_summary()` rows with each person's default-speaker evidence."""
    from lipdub.faces.select import evidence

    score = evidence(tracks)
    return [{**r, "evidence": round(score[r["id"]], 3)} for r in tracks.person_summary()]


def _table(rows: list[dict], video: bool) -> str:
    head = f"{'face':>4}  {'box x1,y1,x2,y2':<24} {'size':>9}  {'frames':>6}  {'evidence':>8}"
    lines = [head + ("  tracks (shot: first-last)" if video else "")]
    for r in rows:
        box = ",".join(str(round(v)) for v in r["box"])
        size = f"{round(r['size'][0])}x{round(r['size'][1])}"
        spans = ", ".join(f"{t['shot']}: {t['first_frame']}-{t['last_frame']}" for t in r["tracks"])
        lines.append(f"{r['id']:>4}  {box:<24} {size:>9}  {r['frames']:>6}  {r['evidence']:>8.3f}"
                     + (f"  {spans}" if video else ""))
    return "\n".join(lines)


def _write_preview(media: Path, tracks, out: Path) -> None:
    from lipdub.faces.preview import preview
    from lipdub.media import atomic_output, iter_frames

    first = next(iter(iter_frames(media, fps=tracks.fps if tracks.num_frames > 1 else None)), None)
    image = preview(first, tracks)
    with atomic_output(out) as tmp:
        image.save(tmp, format="JPEG", quality=90)


def _run(args: argparse.Namespace) -> int:
    from lipdub.errors import NoFaceError
    from lipdub.faces import analyze, select

    tracks = analyze(args.media, fps=args.fps, use_cache=not args.no_cache)
    rows = persons(tracks)
    chosen = select(tracks) if rows else None
    out = None if args.no_preview or not rows else (args.preview or Path.cwd() / f"{args.media.stem}.faces.jpg")
    if out is not None:
        _write_preview(args.media, tracks, out)
    if args.json:
        print(json.dumps({"media": str(args.media), "frames": tracks.num_frames, "width": tracks.width,
                          "height": tracks.height, "fps": tracks.fps, "shots": tracks.shot_starts.tolist(),
                          "faces": rows,
                          "default": None if chosen is None else int(chosen),
                          "preview": None if out is None else str(out)}, indent=2))
    if not rows:
        if args.json:
            return 1
        raise NoFaceError("no face found", args.media)
    if not args.json:
        video = tracks.num_frames > 1
        shots = len(tracks.shot_starts)
        print(f"{args.media}: {len(rows)} face{'s' * (len(rows) != 1)} in a {tracks.width}x{tracks.height} "
              + (f"video of {tracks.num_frames} frames, {shots} shot{'s' * (shots != 1)}" if video else "photo")
              + ("; a face is one person, with a track for each shot it appears in" if video else ""))
        print(_table(rows, video))
        print(f"default speaker: {chosen.reason}")
        if out is not None:
            print(f"preview: {out}", file=sys.stderr if args.json else sys.stdout)
    return 0
