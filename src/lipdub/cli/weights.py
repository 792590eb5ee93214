"""`lipdub weights`: list, fetch (resumable, SHA-256 verified) and locate the official Wav2Lip/S3FD checkpoints."""

from __future__ import annotations

import argparse

from lipdub.engines.wav2lip import weights as official
from lipdub.errors import LipdubError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, download and locate the official Wav2Lip checkpoints",
                       description="The official Wav2Lip checkpoints (personal/research use only, see their licence).")
    actions = p.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="show every known checkpoint, its source, size, sha256 and local path")
    ls.set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download a checkpoint into LIPDUB_HOME/weights (resumable)")
    fetch.add_argument("name", choices=sorted(official.WEIGHTS), metavar="NAME",
                       help=f"one of: {', '.join(official.WEIGHTS)}")
    fetch.add_argument("--url", help="download from this URL instead of the official source and known mirrors")
    fetch.add_argument("--sha256", help="expected SHA-256 of the file (overrides the table)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=_fetch)
    path = actions.add_parser("path", help="print the local path of a downloaded checkpoint")
    path.add_argument("name", choices=sorted(official.WEIGHTS), metavar="NAME")
    path.set_defaults(func=_path)


def _list(args: argparse.Namespace) -> int:
    print(f"weights folder: {official.weights_dir()}")
    for row in official.status():
        present = row["path"] or "not downloaded"
        print(f"\n{row['name']}  ({row['kind']})")
        print(f"  source : {row['source']}" + (f"  (+{row['mirrors']} mirror(s))" if row["mirrors"] else ""))
        print(f"  size   : {row['size']}")
        print(f"  sha256 : {row['sha256']}" + (" (recorded)" if row["sha256_origin"] == "recorded" else ""))
        print(f"  present: {present}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    path = official.fetch(args.name, url=args.url, sha256=args.sha256, progress=not args.quiet)
    print(path)
    return 0


def _path(args: argparse.Namespace) -> int:
    path = official.weights_path(args.name)
    if not path.is_file():
        raise LipdubError(f"{args.name} is not downloaded: run `lipdub weights fetch {args.name}`", path)
    print(path)
    return 0
