"""Command line: argument parsing only. Each sub-command lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lipdub import __version__
from lipdub.errors import LipdubError

# sub-command modules, in the order `lipdub --help` lists them
COMMANDS = ["animate", "batch", "faces", "cues", "shapes", "motion", "cache", "weights", "serve", "live", "data",
            "train", "eval"]


class Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (`lipdub animate: error: argument --fps: ...`), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class UsageError(LipdubError):
    """A bad combination of arguments found after parsing: one line, exit code 2 like argparse's own."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or only `command`'s (start-up: each sub-command module imports what it needs)."""
    parser = Parser(prog="lipdub", description="Make a face in a photo or video speak.")
    parser.add_argument("--version", action="version", version=f"lipdub {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [command] if command in COMMANDS else COMMANDS:
        importlib.import_module(f"lipdub.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = next((a for a in argv if not a.startswith("-")), None)  # the top level has no valued options
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LipdubError as err:
        if debug:
            raise
        print(f"lipdub: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    except KeyboardInterrupt:
        print("lipdub: interrupted", file=sys.stderr)
        return 130
