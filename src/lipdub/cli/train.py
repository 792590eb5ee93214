"""`lipdub train expert|generator`: train the lip-sync expert or the Wav2Lip generator on a prepared dataset.

Every setting of lipdub.train.config is a flag (--batch-size, --lr, --sync-weight, ...), with the reference
training facts as defaults. Several GPUs or machines: `torchrun --nproc-per-node N -m lipdub train ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from lipdub.engines.wav2lip import weights
from lipdub.errors import LipdubError

# set by dedicated arguments, not by the generated flags
_SPECIAL = {"resume"}

EXAMPLES = """examples:
  lipdub train expert dataset/ -o runs/expert
  lipdub train generator dataset/ --expert runs/expert/best.pth --init wav2lip_gan.pth --gan -o runs/nl
  lipdub train generator dataset/ --expert runs/expert/best.pth -o runs/nl --resume   # continue runs/nl
  lipdub train expert dataset/ -o runs/expert --resume auto   # in a job script that may be preempted
  torchrun --nproc-per-node 8 -m lipdub train generator dataset/ --expert ... -o runs/nl
"""


def register(sub: argparse._SubParsersAction) -> None:
    from lipdub.train.config import ExpertConfig, GeneratorConfig

    p = sub.add_parser("train", help="train the lip-sync expert or the generator on a prepared dataset",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls, text in (("expert", ExpertConfig, "the lip-sync expert (SyncNet, Tv = 5), real frames only"),
                            ("generator", GeneratorConfig, "the Wav2Lip generator (L1 + sync [+ GAN])")):
        q = kinds.add_parser(name, help=text, description=f"Train {text}.")
        q.add_argument("data", type=Path, help="dataset folder made by `lipdub data prepare`")
        q.add_argument("-o", "--out", type=Path, required=True, help="run folder (checkpoints, logs)")
        q.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                       help="continue a run: our checkpoint (model, optimizer, step, data position); alone: the "
                            "newest checkpoint in OUT; 'auto': that one when there is one, else start")
        add_config_flags(q, cls)
        q.set_defaults(func=_run, config_cls=cls)


def add_config_flags(parser: argparse.ArgumentParser, cls: type[BaseModel]) -> None:
    """One flag per settings field (`--batch-size`), typed from its annotation; unset flags keep the default."""
    group = parser.add_argument_group("settings")
    for name, field in cls.model_fields.items():
        if name in _SPECIAL:
            continue
        flag = "--" + name.replace("_", "-")
        kw: dict = {"dest": name, "default": argparse.SUPPRESS,
                    "help": f"{field.description or name} (default: {_show(field.default)})"}
        ann = _unoptional(field.annotation)
        origin = typing.get_origin(ann)
        if ann is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kw["choices"] = list(typing.get_args(ann))
        elif origin is tuple:
            kw |= {"nargs": len(typing.get_args(ann)), "type": typing.get_args(ann)[0], "metavar": "X"}
        else:
            kw["type"] = ann
        group.add_argument(flag, **kw)


def _unoptional(ann: object) -> object:
    """`X | None` -> X."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return "none" if value is None else str(value)


def build_config(args: argparse.Namespace) -> BaseModel:
    """The settings object from the parsed flags (a one-line LipdubError when one is out of range)."""
    cls = args.config_cls
    values = {name: getattr(args, name) for name in cls.model_fields if name in vars(args) and name != "resume"}
    if args.resume in ("latest", "auto"):
        from lipdub.train.loop import newest_checkpoint

        newest = newest_checkpoint(args.out)
        if newest is not None or args.resume == "latest":
            values["resume"] = newest or args.out / "last.pth"  # the latter: "no such checkpoint" names it
        if newest is not None and args.resume == "auto":
            values.pop("init", None)  # a job script's --init starts the run; once it has begun, it continues
    elif args.resume is not None:
        values["resume"] = Path(args.resume)
    try:
        return cls(**values)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if first["loc"]:
            msg = "--" + str(first["loc"][0]).replace("_", "-") + ": " + msg
        raise LipdubError(msg) from None


def _run(args: argparse.Namespace) -> int:
    """Train; a run stopped by a signal (Ctrl+C, SIGTERM, SIGUSR1) exits with 128 + the signal's number."""
    from lipdub.train.loop import Stopped

    cfg = weights.resolve_fields(build_config(args), "init", "expert", "disc_init")  # names from `weights list`
    master = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    try:
        if args.model == "expert":
            from lipdub.train.expert import train_expert

            summary = train_expert(cfg, args.data, args.out)
        else:
            from lipdub.train.generator import train_generator

            summary = train_generator(cfg, args.data, args.out)
    except Stopped as stop:
        if master:
            print(f"lipdub: {stop}", file=sys.stderr)
        return 128 + stop.signum
    if master:
        print(_result_line(args.model, summary))
    return 0


def _result_line(model: str, summary: dict) -> str:
    ev, nan = summary["eval"], float("nan")
    if model == "expert":
        figures = f"eval loss {ev.get('loss', nan):.4f}, off-sync accuracy {ev.get('offsync_acc', nan):.3f}"
    else:
        figures = f"eval L1 {ev.get('l1', nan):.4f}, sync loss {ev.get('sync', nan):.4f}"
    if summary["best"] is None:
        return f"{model}: step {summary['step']}, no validation (--no-val); last {summary['last']}"
    return f"{model}: step {summary['step']}, {figures}; best {summary['best']}"
