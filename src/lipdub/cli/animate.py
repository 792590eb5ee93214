"""`lipdub animate`: parse arguments into an AnimateRequest, run the pipeline with a progress bar, say what it did."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipdub.cli import UsageError
from lipdub.cli.checks import count, db, index, number, rate
from lipdub.cli.cues import add_text_arguments, read_text
from lipdub.errors import LipdubError


def _pixel(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y pixel coordinates, got {text!r}") from None
    if not (x >= 0 and y >= 0):
        raise argparse.ArgumentTypeError(f"pixel coordinates are 0 or more, got {text!r}")
    return x, y


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", help="make a face in a photo or video speak an audio track",
                       description="Make a face in a photo or video speak an audio track.")
    p.add_argument("media", type=Path, help="photo or video with the face")
    p.add_argument("audio", type=Path, nargs="?", help="speech (any audio file, or a video's audio)")
    p.add_argument("-o", "--output", type=Path, help="output .mp4/.mov/.mkv, or a PNG pattern like frames/%%05d.png "
                   "(default: <media name>.lipdub.mp4 in the current folder)")
    e = p.add_argument_group("engine")
    e.add_argument("--engine", choices=["auto", "wav2lip", "viseme"], default="auto",
                   help="auto: wav2lip when a checkpoint is given or configured (LIPDUB_CHECKPOINT), else viseme")
    e.add_argument("--checkpoint", type=Path, help="Wav2Lip checkpoint: a file (.pth, .safetensors) or a name from "
                   "`lipdub weights list` (wav2lip_gan, wav2lip_gan.pth)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="torch device of the wav2lip engine (default: auto, i.e. LIPDUB_DEVICE or the best found)")
    e.add_argument("--batch-size", type=count, help="wav2lip: frames per generator batch (default: "
                   "LIPDUB_BATCH_SIZE, else 8 on CPU, 64 on a GPU)")
    f = p.add_argument_group("face")
    f.add_argument("--face", type=index, dest="face_id", help="id of the face that speaks (see `lipdub faces`)")
    f.add_argument("--face-at", type=_pixel, metavar="X,Y", help="the face under this pixel speaks")
    f.add_argument("--face-like", type=Path, metavar="PHOTO", help="the face that looks like the person in PHOTO")
    f.add_argument("--box", type=index, nargs=4, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                   help="fixed face box for every frame (skips detection for the wav2lip engine)")
    f.add_argument("--paste", choices=["blend", "box"], default="blend",
                   help="blend: soft lower-face mask (default); box: the reference rectangle paste")
    f.add_argument("--silence", choices=["auto", "rest", "animate"], default="auto",
                   help="wav2lip: rest = original mouth while the speaker is silent (default with --paste blend); "
                   "animate = keep generating, as the reference does (default with --paste box)")
    f.add_argument("--no-cache", action="store_true", help="detect faces again instead of using the cache")
    m = p.add_argument_group("motion (photos)")
    m.add_argument("--motion", choices=["none", "natural", "lively", "idle"], default=None,
                   help="a photo's head, eyes and brows: natural (default: blinks, nods with the speech, brows "
                   "lift on accents), lively (more), idle (blinks only), none (only the mouth moves)")
    m.add_argument("--seed", type=index, default=0, help="random choices of the motion (same seed, same video)")
    s = p.add_argument_group("timing and sound")
    s.add_argument("--fps", type=rate, help="frame rate of the output (a photo: default 25; a video: its own rate, "
                   "else its frames are resampled by timestamp)")
    s.add_argument("--keep-video-length", action="store_true",
                   help="keep the rest of a longer video (unchanged, with its own audio)")
    s.add_argument("--speaker", action="append", default=[], metavar="face=ID,audio=FILE[,start=S]",
                   help="a speaking face and its audio (repeat for several; face-at=X:Y or face-like=PHOTO work too; "
                        "text=WORDS or text-file=FILE, lang=CODE: its own transcript)")
    s.add_argument("--mix", choices=["replace", "original"], default="replace",
                   help="replace the soundtrack (default) or keep the original under the new speech")
    s.add_argument("--duck", type=number(min=0, max=60, what=" (dB to lower the original by)"), default=0.0,
                   metavar="DB", help="with --mix original: lower the original by DB while speech plays")
    s.add_argument("--speech-gain", type=db, default=0.0, metavar="DB")
    s.add_argument("--original-gain", type=db, default=0.0, metavar="DB")
    add_text_arguments(p)
    c = p.add_argument_group("several workers (see README: batch and cluster)")
    c.add_argument("--split", type=count, metavar="N", help="render the output in N pieces on workers (local "
                   "processes, LIPDUB_THREADS at once, or Ray workers with --ray) and join them: the same frames as "
                   "one run")
    c.add_argument("--ray", metavar="ADDRESS", help="with --split: the pieces run on Ray: 'local', HOST:PORT of a "
                   "cluster's head, or 'auto'; needs lipdub[ray], and inputs, output and LIPDUB_HOME on paths "
                   "every node reads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lipdub.pipeline import AnimateRequest, FaceChoice, animate

    speakers = []
    if args.speaker:
        from lipdub.audio.speakers import check_speakers, parse_speaker

        speakers = [parse_speaker(text) for text in args.speaker]
        check_speakers(speakers)
        check_starts(args.media, speakers, args.speaker)
        if len(speakers) > 1 and (args.text is not None or args.text_file is not None):
            raise UsageError("--text/--text-file is one speaker's transcript: with several speakers, give each "
                             "its own inside --speaker (text=... or text-file=..., lang=...)")
    elif args.audio is None:
        raise UsageError("give an audio file after the media, or --speaker face=...,audio=...")
    if args.box and not (args.box[0] < args.box[1] and args.box[2] < args.box[3]):
        raise UsageError(f"argument --box: TOP < BOTTOM and LEFT < RIGHT, got {' '.join(map(str, args.box))}")
    output = args.output or Path(f"{args.media.stem}.lipdub.mp4")
    inputs = [args.media, args.audio, *[s.audio for s in speakers]]
    if any(i is not None and i.exists() and output.exists() and output.samefile(i) for i in inputs):
        raise LipdubError("output would overwrite an input; choose another -o", output)
    request = AnimateRequest(
        media=args.media, output=output, audio=args.audio,
        face=FaceChoice(face_id=args.face_id, at=args.face_at, like=args.face_like), speakers=speakers,
        engine=args.engine, checkpoint=args.checkpoint, box=tuple(args.box) if args.box else None,
        paste=args.paste, silence=args.silence, fps=args.fps, keep_video_length=args.keep_video_length, mix=args.mix,
        duck_db=args.duck, speech_gain_db=args.speech_gain, original_gain_db=args.original_gain,
        device=args.device, batch_size=args.batch_size, use_cache=not args.no_cache,
        motion=args.motion or "natural", seed=args.seed,
        text=read_text(args), lang=args.lang)
    if args.motion is not None and _is_video(args.media):
        print("note: --motion applies to photos only; a video keeps its own motion", file=sys.stderr)
    if args.ray and not args.split:
        raise UsageError("argument --ray: give --split N too (how many pieces to render at once)")
    if args.split and args.no_cache:
        raise UsageError("argument --split: the workers share the face analysis through the cache; drop --no-cache")
    with ProgressBar(disable=args.quiet) as bar:
        if args.split:
            from lipdub.split import animate_split

            result = animate_split(request, args.split, ray_address=args.ray, progress=bar.update)
        else:
            result = animate(request, progress=bar.update)
    for note in result.notes:
        print(note, file=sys.stderr)
    for sp in result.speakers:
        if sp:
            print(f"speaker: {sp['chosen']} <- {sp['audio']}",  # "chose face 3 of 4: ..." (ids as `lipdub faces`)
                  file=sys.stderr)
    print(f"wrote {result.output} ({result.frames} frames, {result.duration:.2f} s at {result.fps:g} fps)")
    return 0


MAX_GAP = 60.0  # seconds of silence a speaker's start= may add after the rest of the output


def check_starts(media: Path, speakers: list, texts: list[str]) -> None:
    """A `start=` may leave a pause after the rest of the output (the video, the other speakers' speech), but not
    more than MAX_GAP s: later is a typo, and would only add silence, possibly hours of it."""
    from lipdub import media as av

    def seconds(path: Path) -> float:
        try:
            return float(av.probe(path).duration or 0.0)
        except LipdubError:
            return 0.0  # unreadable: the pipeline reports it with its own message

    video = seconds(media) if media.is_file() else 0.0
    ends = [sp.start + seconds(sp.audio) for sp in speakers]
    for i, (sp, text) in enumerate(zip(speakers, texts, strict=True)):
        rest = max([video, *(e for j, e in enumerate(ends) if j != i)])
        if sp.start > rest + MAX_GAP:
            raise UsageError(f"argument --speaker {text!r}: start={sp.start:g}s is {sp.start - rest:.0f} s after the "
                             f"rest of the output ends ({rest:.2f} s); at most {MAX_GAP:g} s of silence may come "
                             "between")


def _is_video(path: Path) -> bool:
    from lipdub.errors import MediaError
    from lipdub.media import probe

    try:
        return probe(path).kind == "video"
    except MediaError:
        return False  # the pipeline reports an unreadable file itself


class ProgressBar:
    """One tqdm bar per pipeline stage, with its pace and ETA (stages that run at once get a line each)."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self.bars: dict[str, object] = {}

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()

    def update(self, stage: str, done: int, total: int) -> None:
        if stage == "done" or self.disable:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            from lipdub.audio.cues import PROGRESS_STEP_S

            # speech recognised is reported in PROGRESS_STEP_S frames of speech, shown in seconds; the rest in frames
            unit, scale = ("s", PROGRESS_STEP_S) if stage == "preparing" else ("frame", False)
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=scale, file=sys.stderr,
                                          dynamic_ncols=True, position=len(self.bars), leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()
