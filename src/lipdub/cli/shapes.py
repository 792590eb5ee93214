"""`lipdub shapes PORTRAIT -o sheet.png`: a labelled contact sheet of every mouth shape on a real face."""

from __future__ import annotations

import argparse
from pathlib import Path

from lipdub.cli.checks import index, number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shapes", help="contact sheet of every mouth shape of the viseme engine on a portrait",
                       description="Pose the face in a photo in each mouth shape (X rest, A-H) and write one "
                                   "labelled image, so you can judge the shapes by eye.")
    p.add_argument("portrait", type=Path, help="photo with a face")
    p.add_argument("-o", "--output", type=Path, default=None, help="sheet image (default: <name>.shapes.png)")
    p.add_argument("--face", type=index, default=None, help="face id from `lipdub faces` (default: the largest)")
    p.add_argument("--tile", type=number(int, min=64, max=2048), default=256,
                   help="tile size in pixels (default 256)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from PIL import Image

    from lipdub.engines.viseme import shapes_sheet
    from lipdub.errors import LipdubError, NoFaceError
    from lipdub.faces import detect_faces
    from lipdub.media import atomic_output, read_image

    out = args.output or Path.cwd() / f"{args.portrait.stem}.shapes.png"
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise LipdubError("the sheet must be an image (.png, .jpg or .webp)", out)
    image = read_image(args.portrait)
    faces = [f for f in detect_faces(image) if f.landmarks is not None]
    if not faces:
        raise NoFaceError("no face found", args.portrait)
    if args.face is None:
        face = max(faces, key=lambda f: f.area)
    elif 0 <= args.face < len(faces):
        face = faces[args.face]
    else:
        raise NoFaceError(f"no face {args.face} (found {len(faces)}: ids 0-{len(faces) - 1})", args.portrait)
    sheet = shapes_sheet(image, face.landmarks, tile=args.tile)
    with atomic_output(out) as tmp:
        Image.fromarray(sheet).save(tmp, format=None if out.suffix.lower() != ".jpg" else "JPEG")
    print(f"{out}: {len(faces)} face(s) found, shapes drawn on face {faces.index(face)}")
    return 0
