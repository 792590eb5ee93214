"""`lipdub animate --split N`: one output rendered in N pieces at once (local processes or a Ray cluster), joined.

The machine that asks plans the whole output once (`pipeline.plan`: the face analysis, stored in the face cache
under LIPDUB_HOME, the engine's preparation of the speech, every speaker's strength) and mixes the whole
soundtrack. Each worker makes the same plan from the same inputs (the faces come from that cache: a cluster
needs LIPDUB_HOME and the inputs on a path every node reads) and renders only its frame range with
`pipeline.stream(..., frames=range(a, b))`, which first takes up the engines' state a whole run has at `a`.
So the joined frames are the frames of a one-machine run, and the mouth is continuous across a join.

Joining: a PNG sequence's files are numbered into one sequence; a video's pieces are separate H.264 streams
without sound, copied packet by packet (no re-encoding) into one file with the soundtrack encoded once, so
the sound has no joins at all.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from pathlib import Path
from typing import Any

from lipdub.errors import LipdubError
from lipdub.pipeline import AnimateRequest, AnimateResult, Plan, Progress, plan

PIECE = "piece{:03d}"


def piece_ranges(n_out: int, pieces: int, align: int = 1) -> list[range]:
    """`n_out` frames cut into at most `pieces` ranges of near-equal length, each starting at a multiple of
    `align` (the engine's batch: a piece's batches are then the whole run's batches)."""
    bounds = sorted({min(n_out, round(k * n_out / pieces / align) * align) for k in range(pieces)} | {n_out})
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def animate_split(request: AnimateRequest, pieces: int, *, ray_address: str | None = None,
                  progress: Progress | None = None) -> AnimateResult:
    """`pipeline.animate(request)` rendered in `pieces` pieces: on local processes (LIPDUB_THREADS at once), or on
    the Ray cluster at `ray_address` ('local' starts a private instance); the same output, written atomically."""
    from lipdub import media
    from lipdub.batch import absolute
    from lipdub.data.runner import run_tasks
    from lipdub.pipeline import soundtrack

    if not request.use_cache:
        raise LipdubError("--split shares one face analysis with its workers through the face cache; "
                          "drop --no-cache")
    report = progress or (lambda stage, done, total: None)
    request = absolute(request)  # Ray workers run in other working folders
    p = plan(request, report)  # the face analysis runs here, once; the workers read it from the cache
    ranges = piece_ranges(p.n_out, pieces, max(1, int(getattr(p.base_engine, "batch_size", 1) or 1)))
    audio, rate = soundtrack(request, p.info, p.speakers, p.n_out, p.fps, p.still)
    _let_go(p)
    output = Path(request.output)
    sequence = media.is_sequence_pattern(output)
    beside = output.parent.parent if sequence else output.parent  # the pieces go beside the output (a sequence's
    beside.mkdir(parents=True, exist_ok=True)  # folder appears only when it is complete)
    with tempfile.TemporaryDirectory(prefix=".lipdub-split-", dir=beside) as tmp:
        suffix = ".png" if sequence else output.suffix
        tasks = [{"request": request, "start": r.start, "stop": r.stop,
                  "output": str(Path(tmp) / PIECE.format(k) / f"%06d{suffix}") if sequence
                  else str(Path(tmp) / (PIECE.format(k) + suffix))} for k, r in enumerate(ranges)]
        results = run_tasks(render_piece, tasks, ray_address=ray_address, desc="split", unit="piece", lost=_lost)
        for task, result in zip(tasks, results, strict=True):
            if "error" in result:
                raise LipdubError(f"piece of frames {task['start']}-{task['stop'] - 1}: {result['error']}")
        report("encoding", 0, p.n_out)
        if sequence:
            _join_sequence(tasks, output, audio, rate, p.fps)
        else:
            _join_video([Path(t["output"]) for t in tasks], ranges, output, audio, rate, p.fps, Path(tmp))
    report("done", p.n_out, p.n_out)
    return _result(p, output, len(ranges))


def _let_go(p: Plan) -> None:
    """Free what only the workers need while they run: the engine (a network's weights) and the video decoder."""
    p.base_engine = None
    for sp in p.speakers:
        sp.engine = None
    if p.source is not None:
        p.source.close()


def render_piece(task: dict[str, Any]) -> dict[str, Any]:
    """A worker: plan the whole output as the asking machine did, render frames start..stop-1 without sound."""
    from lipdub import media
    from lipdub.pipeline import stream
    from lipdub.settings import get_settings

    try:
        p = plan(task["request"], lambda stage, done, total: None)
        settings = get_settings()
        with media.VideoWriter(task["output"], p.fps, crf=settings.crf, preset=settings.preset) as writer:
            stream(p, writer, lambda stage, done, total: None, frames=range(task["start"], task["stop"]))
    except LipdubError as err:
        return {"error": str(err)}
    except Exception as err:  # noqa: BLE001 - reported by the asking machine as one line
        first = (str(err).strip().splitlines() or [""])[0]
        return {"error": f"internal error ({type(err).__name__}: {first})"}
    return {"frames": task["stop"] - task["start"]}


def _lost(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"error": reason}


def _final_audio(output: Path, fps: float, audio, rate: int):
    """The soundtrack exactly as a one-machine `VideoWriter` would store it (surround downmixed, AAC's rates)."""
    from lipdub.media import VideoWriter

    prepared = VideoWriter(output, fps, audio=audio, audio_rate=rate)  # only its audio preparation is used
    return prepared.audio, prepared.audio_rate


def _join_sequence(tasks: list[dict[str, Any]], output: Path, audio, rate: int, fps: float) -> None:
    """Number every piece's PNGs into the one output sequence (atomically), the sound beside it as a one-machine
    run puts it."""
    from lipdub.media import atomic_output, write_audio
    from lipdub.media.atomic import sequence_files
    from lipdub.media.writer import sequence_audio_path

    with atomic_output(output) as target:
        for task in tasks:
            for j, src in enumerate(sequence_files(task["output"])):
                os.replace(src, str(target) % (task["start"] + j))
    sound, sound_rate = _final_audio(output, fps, audio, rate)
    if sound is not None and sound.shape[1]:
        write_audio(sequence_audio_path(output), sound, sound_rate)


def _join_video(pieces: list[Path], ranges: list[range], output: Path, audio, rate: int, fps: float,
                tmp: Path) -> None:
    """Copy the pieces' H.264 packets (shifted to their place) and the soundtrack, encoded once, into `output`."""
    import av

    from lipdub.media import atomic_output, write_audio

    sound, sound_rate = _final_audio(output, fps, audio, rate)
    sound_file = None
    if sound is not None and sound.shape[1]:
        sound_file = tmp / "sound.m4a"
        write_audio(sound_file, sound, sound_rate)
    inputs = [av.open(str(p)) for p in pieces]
    try:
        if len({bytes(c.streams.video[0].codec_context.extradata or b"") for c in inputs}) > 1:
            raise LipdubError("the pieces were encoded with different settings and cannot be joined", output)
        options = {"movflags": "+faststart"} if output.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
        with atomic_output(output) as target, av.open(str(target), "w", options=options) as out:
            video = out.add_stream_from_template(inputs[0].streams.video[0])
            streams = [_shifted(c, video, r.start / fps) for c, r in zip(inputs, ranges, strict=True)]
            if sound_file is not None:
                inputs.append(av.open(str(sound_file)))
                streams.append(_shifted(inputs[-1], out.add_stream_from_template(inputs[-1].streams.audio[0]), 0))
            for packet in heapq.merge(*streams, key=lambda pk: pk.dts * pk.time_base):
                out.mux(packet)
    finally:
        for c in inputs:
            c.close()


def _shifted(container, to_stream, seconds: float):
    """The first stream's packets of `container`, moved `seconds` later and onto `to_stream` (in dts order)."""
    stream = container.streams[0]
    offset = round(seconds / stream.time_base)
    for packet in container.demux(stream):
        if packet.dts is None:  # the demuxer's end marker
            continue
        packet.dts += offset
        packet.pts += offset
        packet.stream = to_stream
        yield packet


def _result(p: Plan, output: Path, pieces: int) -> AnimateResult:
    notes = [*p.notes, f"split: rendered in {pieces} pieces"]
    return AnimateResult(output=output, frames=p.n_out, fps=p.fps, duration=p.n_out / p.fps, engine=p.engine,
                         speakers=[sp.info for sp in p.speakers], notes=notes)

