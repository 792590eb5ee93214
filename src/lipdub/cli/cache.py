"""`lipdub cache info|clear`: show or empty the persistent detection cache."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="show or clear the face-detection cache",
                       description="Detections are cached by media content and detector settings, up to "
                       "LIPDUB_CACHE_MAX_MB (least recently used entries are removed beyond it).")
    p.add_argument("action", choices=["info", "clear"], help="info: where, how big, the cap; clear: delete all")
    p.set_defaults(func=_run)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _run(args: argparse.Namespace) -> int:
    from lipdub.faces import cache

    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} cached detection{'s' * (removed != 1)} from {cache.cache_dir()}")
        return 0
    info = cache.info()
    print(f"face detections: {info['entries']} entr{'ies' if info['entries'] != 1 else 'y'}, "
          f"{_size(info['bytes'])} of {_size(info['max_bytes'])} (LIPDUB_CACHE_MAX_MB; least recently used "
          f"removed beyond it) in {info['path']}")
    return 0
