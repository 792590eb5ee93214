"""`lipdub motion PHOTO SPEECH -o sheet.png`: a contact sheet of how a photo's face would move with this speech."""

from __future__ import annotations

import argparse
from pathlib import Path

from lipdub.cli.checks import count, index, rate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("motion", help="contact sheet of a photo's head, blink and brow motion for a speech",
                       description="Plan the motion `lipdub animate` gives a photo for this speech and draw it on "
                                   "one image: head frames over time, one blink frame by frame, and the curves "
                                   "(head angles, blinks, brows) over the speech. The mouth is not drawn.")
    p.add_argument("photo", type=Path, help="photo with a face")
    p.add_argument("audio", type=Path, help="speech (any audio file)")
    p.add_argument("-o", "--output", type=Path, default=None, help="sheet image (default: <name>.motion.png)")
    p.add_argument("--face", type=index, default=None, help="face id from `lipdub faces` (default: as animate)")
    p.add_argument("--motion", choices=["natural", "lively", "idle"], default="natural")
    p.add_argument("--seed", type=index, default=0)
    p.add_argument("--fps", type=rate, default=25.0, help="frame rate (default 25)")
    p.add_argument("--tile", type=count, default=200, help="tile size in pixels (default 200)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from lipdub import faces, media, motion
    from lipdub.errors import LipdubError, NoFaceError
    from lipdub.motion.sheet import motion_sheet

    out = args.output or Path.cwd() / f"{args.photo.stem}.motion.png"
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise LipdubError("the sheet must be an image (.png, .jpg or .webp)", out)
    if media.probe(args.photo).kind != "image":
        raise LipdubError("is not a photo (the motion layer moves stills only)", args.photo)
    if args.fps <= 0:
        raise LipdubError(f"--fps must be positive, got {args.fps:g}")
    image = media.read_image(args.photo)
    audio = media.load_audio(args.audio, sr=media.SAMPLE_RATE, mono=True)
    media.require_speech(audio, args.audio)
    tracks = faces.analyze(args.photo)
    if not tracks.track_ids:
        raise NoFaceError("no face found", args.photo)
    track = faces.select(tracks, face_id=args.face)
    n = int(np.ceil(len(audio) * args.fps / media.SAMPLE_RATE))
    voice = motion.voice_of(audio, 0, args.fps, n)
    mover = motion.Motion(image, tracks.faces_in(0), {int(track): voice}, args.fps, n, args.motion, args.seed)
    sheet = motion_sheet(mover, int(track), voice, args.fps, tile=max(64, args.tile))
    with media.atomic_output(out) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG" if out.suffix.lower() == ".png" else None)
    print(f"{out}: face {int(track)} of {len(tracks.track_ids)}, {n} frames ({n / args.fps:.1f} s), "
          f"motion {args.motion}, seed {args.seed}")
    return 0
