"""`lipdub cues SPEECH`: export the timed mouth-shape cues (Rhubarb-compatible JSON or TSV) for animators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipdub.cli.checks import rate

FORMATS = {".json": "json", ".tsv": "tsv", ".txt": "tsv"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cues", help="export mouth-shape cues of a speech file (JSON or Rhubarb TSV)",
                       description="Recognise phones (PocketSphinx, phonetic mode, any language) or align a "
                                   "transcript's phones (espeak-ng, --text/--lang), find silence (silero-vad) and "
                                   "write timed mouth shapes X, A-H as Rhubarb Lip Sync does.")
    p.add_argument("audio", type=Path, help="speech: any audio file, or a video's soundtrack")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="cues.json or cues.tsv (default: the TSV on standard output)")
    p.add_argument("--fps", type=rate, default=25.0, help="shortest cue is one frame at this rate (default 25)")
    p.add_argument("--method", choices=["auto", "phones", "energy"], default="auto",
                   help="phones: recogniser only; energy: loudness/spectrum only; auto: phones with fallback")
    add_text_arguments(p)
    p.set_defaults(func=_run)


def add_text_arguments(p: argparse.ArgumentParser) -> None:
    """--text / --text-file / --lang: the transcript whose phones are aligned to the speech (animate, cues)."""
    g = p.add_argument_group("language and transcript (optional: phones from words instead of the recogniser's)")
    g.add_argument("--text", help="what is said, e.g. --text \"Goedemorgen allemaal\"")
    g.add_argument("--text-file", type=Path, metavar="FILE", help="the transcript in a UTF-8 text file")
    g.add_argument("--lang", help="language of the speech: nl, en, de, fr, es, ... (espeak-ng codes; default en) "
                   "for the transcript; --lang en alone: English speech, phones from its recognised words "
                   "(cue extraction then about real time)")


def read_text(args: argparse.Namespace) -> str | None:
    """The transcript from --text or --text-file (None when neither is given)."""
    from lipdub.audio.cues import english
    from lipdub.errors import LipdubError

    if args.text is not None and args.text_file is not None:
        raise LipdubError("give --text or --text-file, not both")
    if args.text_file is not None:
        try:
            text = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise LipdubError(f"cannot read the transcript ({err.__class__.__name__})", args.text_file) from None
    else:
        text = args.text
    if text is not None and not text.strip():
        raise LipdubError("the transcript is empty" if args.text_file else "--text is empty", args.text_file)
    if args.lang is not None and text is None and not english(args.lang):
        raise LipdubError(f"--lang {args.lang} without a transcript: words are recognised in English only "
                          "(--lang en); give --text or --text-file for other languages")
    return text


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lipdub.audio.cues import PROGRESS_STEP_S, SHAPE_NAMES, extract_cues, to_json, to_rhubarb_tsv
    from lipdub.errors import LipdubError
    from lipdub.media import SAMPLE_RATE, atomic_output, load_audio, require_speech

    fmt = "tsv"
    if args.output is not None:
        fmt = FORMATS.get(args.output.suffix.lower(), "")
        if not fmt:
            raise LipdubError("unknown cue format (use .json or .tsv)", args.output)
    if args.fps <= 0:
        raise LipdubError(f"--fps must be positive, got {args.fps}")
    audio = require_speech(load_audio(args.audio, sr=SAMPLE_RATE), args.audio)
    transcript = read_text(args)
    # seconds of speech recognised, on a terminal only
    with tqdm(desc="recognising", unit="s", unit_scale=PROGRESS_STEP_S, file=sys.stderr, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        cues = extract_cues(audio, args.fps, method=args.method, text=transcript, lang=args.lang,
                            progress=progress)
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
