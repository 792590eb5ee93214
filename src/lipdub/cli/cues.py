"""`lipdub cues SPEECH`: export the timed mouth-shape cues (Rhubarb-compatible JSON or TSV) for animators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = {".json": "json", ".tsv": "tsv", ".txt": "tsv"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cues", help="export mouth-shape cues of a speech file (JSON or Rhubarb TSV)",
                       description="Recognise phones (PocketSphinx, phonetic mode, any language) and silence "
                                   "(silero-vad) and write timed mouth shapes X, A-H as Rhubarb Lip Sync does.")
    p.add_argument("audio", type=Path, help="speech: any audio file, or a video's soundtrack")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="cues.json or cues.tsv (default: the TSV on standard output)")
    p.add_argument("--fps", type=float, default=25.0, help="shortest cue is one frame at this rate (default 25)")
    p.add_argument("--method", choices=["auto", "phones", "energy"], default="auto",
                   help="phones: recogniser only; energy: loudness/spectrum only; auto: phones with fallback")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lipdub.audio.cues import SHAPE_NAMES, extract_cues, to_json, to_rhubarb_tsv
    from lipdub.errors import LipdubError
    from lipdub.media import atomic_output, load_audio, require_speech

    fmt = "tsv"
    if args.output is not None:
        fmt = FORMATS.get(args.output.suffix.lower(), "")
        if not fmt:
            raise LipdubError("unknown cue format (use .json or .tsv)", args.output)
    if args.fps <= 0:
        raise LipdubError(f"--fps must be positive, got {args.fps}")
    audio = require_speech(load_audio(args.audio, sr=16000), args.audio)
    cues = extract_cues(audio, args.fps, method=args.method)
    text = to_json(cues, sound_file=str(args.audio)) if fmt == "json" else to_rhubarb_tsv(cues)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    with atomic_output(args.output) as tmp:
        tmp.write_text(text)
    used = sorted({c.shape for c in cues})
    print(f"{args.output}: {len(cues)} cues over {cues[-1].end:.2f} s; shapes "
          + ", ".join(f"{s} {SHAPE_NAMES[s]}" for s in used))
    return 0
