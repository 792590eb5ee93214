"""`lipdub batch`: many animate jobs from a JSON-lines file, on local processes or a Ray cluster, resumable.

One job a line, with the REST API's job fields (file paths instead of upload ids, relative to the jobs file).
A job is skipped while its output is up to date: a state file beside the outputs records the key the output was
made from (content hashes of every input file plus all settings) and the output's size and mtime. Jobs run
through `data.runner.run_tasks`, the scheduler of the data steps; a job's failure is caught where it runs and
comes back as one line, so one bad job never stops the others (nor does a worker that dies under a job:
that job fails with the reason). Outputs are written atomically by the pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm import tqdm

from lipdub import __version__
from lipdub.errors import LipdubError
from lipdub.hashing import file_sha256
from lipdub.pipeline import AnimateRequest, FaceChoice, SpeakerSpec, choose_engine

STATE_DIR = ".lipdub-batch"  # inside the output folder: one <hash of output path>.json per finished job
NOT_HASHED = {"output", "use_cache"}  # request fields that do not change the output's content
OPTIONAL = ("motion", "seed", "text", "lang")  # JobLine fields passed on only when given (else the defaults)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a silently ignored setting


class SpeakerLine(_Strict):
    audio: str
    face_id: int | None = None
    face_at: tuple[float, float] | None = None
    face_like: str | None = None
    start: float = Field(0.0, ge=0)


class JobLine(_Strict):
    """One line of a jobs file: the REST API's job fields, then settings only files can carry."""

    media: str
    audio: str | None = None
    face_id: int | None = None
    speakers: list[SpeakerLine] = Field(default_factory=list)
    engine: Literal["auto", "viseme", "wav2lip"] = "auto"
    paste: Literal["blend", "box"] = "blend"
    keep_original_audio: bool = False
    duck_db: float = Field(0.0, ge=0, le=60)
    output: str | None = None  # relative to the output folder; default <media>-<audio>.mp4
    face_at: tuple[float, float] | None = None
    face_like: str | None = None
    mix: Literal["replace", "original"] = "replace"
    silence: Literal["auto", "rest", "animate"] = "auto"
    checkpoint: str | None = None
    fps: float | None = Field(None, gt=0)
    keep_video_length: bool = False
    speech_gain_db: float = 0.0
    original_gain_db: float = 0.0
    # a photo's motion and a transcript (AnimateRequest's defaults when not given)
    motion: Literal["natural", "none", "lively", "idle"] | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    text: str | None = None
    lang: str | None = None

    @model_validator(mode="after")
    def _one_source_of_speech(self) -> JobLine:
        if (self.audio is None) == (not self.speakers):
            raise ValueError("give either audio or speakers")
        return self


@dataclass
class Job:
    line: int
    request: AnimateRequest


# --------------------------------------------------------------------------------------------- reading


def read_jobs(jobs_file: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
              checkpoint: Path | None = None, device: str = "auto") -> list[Job]:
    """Parse and check every line; LipdubError `<file>:<line>: <problem>` on the first bad one."""
    jobs_file, out_dir = Path(jobs_file), Path(out_dir)
    try:
        text = jobs_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LipdubError(f"cannot read the jobs file ({getattr(err, 'strerror', None) or err})", jobs_file) from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise LipdubError("has no jobs (one JSON object a line)", jobs_file)
    parsed = [(n, _parse_line(jobs_file, n, line)) for n, line in lines]
    names = _output_names(jobs_file, parsed)
    jobs = []
    for n, spec in parsed:
        request = _request(spec, jobs_file.parent, out_dir / names[n], checkpoint, device)
        if any(p.resolve() == request.output.resolve() for p in _paths(request) if p is not request.output):
            raise LipdubError(f"output {request.output} would overwrite an input", f"{jobs_file}:{n}")
        jobs.append(Job(n, request))
    return jobs


def _parse_line(jobs_file: Path, n: int, line: str) -> JobLine:
    where = f"{jobs_file}:{n}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        raise LipdubError(f"not JSON ({err.msg} at column {err.colno})", where) from None
    if not isinstance(data, dict):
        raise LipdubError("expected a JSON object with the job's fields", where)
    try:
        return JobLine.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise LipdubError(f"{field + ': ' if field else ''}{first['msg']}", where) from None


def _output_names(jobs_file: Path, parsed: list[tuple[int, JobLine]]) -> dict[int, str]:
    """Each line's output name: its own, or `<media>-<audio>.mp4` (numbered when two lines would share one)."""
    named = {}
    for n, spec in parsed:
        if spec.output is None:
            continue
        if "%" in spec.output or Path(spec.output).suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise LipdubError(f"output {spec.output!r}: a batch output is a .mp4, .mov or .mkv file",
                              f"{jobs_file}:{n}")
        if os.path.normpath(spec.output) in named.values():
            other = next(m for m, v in named.items() if v == os.path.normpath(spec.output))
            raise LipdubError(f"output {spec.output} is also line {other}'s output", f"{jobs_file}:{n}")
        named[n] = os.path.normpath(spec.output)
    taken = set(named.values())
    for n, spec in parsed:
        if spec.output is not None:
            continue
        audio = spec.audio or spec.speakers[0].audio
        stem, k = f"{Path(spec.media).stem}-{Path(audio).stem}", 1
        while (name := f"{stem}{'' if k == 1 else f'-{k}'}.mp4") in taken:
            k += 1
        named[n] = name
        taken.add(name)
    return named


def _request(spec: JobLine, base: Path, output: Path, checkpoint: Path | None, device: str) -> AnimateRequest:
    def path(p: str | None) -> Path | None:
        return None if p is None else base / Path(p).expanduser()

    def face(face_id: int | None, at: tuple[float, float] | None, like: str | None) -> FaceChoice:
        return FaceChoice(face_id=face_id, at=at, like=path(like))

    speakers = [SpeakerSpec(audio=path(s.audio), face=face(s.face_id, s.face_at, s.face_like), start=s.start)
                for s in spec.speakers]
    return AnimateRequest(
        media=path(spec.media), output=output, audio=path(spec.audio),
        face=face(spec.face_id, spec.face_at, spec.face_like), speakers=speakers, engine=spec.engine,
        checkpoint=path(spec.checkpoint) or checkpoint, paste=spec.paste, silence=spec.silence, fps=spec.fps,
        keep_video_length=spec.keep_video_length, mix="original" if spec.keep_original_audio else spec.mix,
        duck_db=spec.duck_db, speech_gain_db=spec.speech_gain_db, original_gain_db=spec.original_gain_db,
        device=device, **{k: getattr(spec, k) for k in OPTIONAL if getattr(spec, k) is not None})


def _paths(value: Any) -> list[Path]:
    """Every Path inside a request (nested dataclasses and lists)."""
    if isinstance(value, Path):
        return [value]
    if dataclasses.is_dataclass(value):
        return [p for f in dataclasses.fields(value) for p in _paths(getattr(value, f.name))]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(v)]
    return []


def absolute(value: Any) -> Any:
    """A copy of a request (nested dataclasses and lists) with every path absolute, for Ray workers: they run in
    other working folders (on a cluster, other machines where the same absolute paths must exist)."""
    if isinstance(value, Path):
        return value.absolute()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: absolute(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, list):
        return [absolute(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- up to date


def job_key(request: AnimateRequest) -> str:
    """SHA-256 of what the output is made from: every input file's content, every setting, the engine used."""
    name, checkpoint, _ = choose_engine(request)
    resolved = dataclasses.replace(request, engine=name, checkpoint=checkpoint)

    def fingerprint(value: Any) -> Any:
        if isinstance(value, Path):
            return {"sha256": file_sha256(value)}
        if dataclasses.is_dataclass(value):
            return {f.name: fingerprint(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if f.name not in NOT_HASHED}
        if isinstance(value, (list, tuple)):
            return [fingerprint(v) for v in value]
        return value

    text = json.dumps({"lipdub": __version__, "request": fingerprint(resolved)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def state_path(output: Path, out_dir: Path) -> Path:
    return out_dir / STATE_DIR / f"{hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:20]}.json"


def up_to_date(output: Path, key: str, state: Path) -> bool:
    """The output exists, is the very file the state describes, and was made from `key`."""
    try:
        saved = json.loads(state.read_text())
        st = output.stat()
    except (OSError, ValueError):
        return False
    return saved.get("key") == key and saved.get("size") == st.st_size and saved.get("mtime_ns") == st.st_mtime_ns


def _write_state(state: Path, output: Path, key: str, result: dict[str, Any]) -> None:
    from lipdub.media import atomic_output

    st = output.stat()
    body = {"key": key, "output": str(output), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "result": result}
    with atomic_output(state) as tmp:
        tmp.write_text(json.dumps(body, indent=1))


# --------------------------------------------------------------------------------------------- running


def run_job(task: dict[str, Any]) -> dict[str, Any]:
    """Render one job where it runs (a local worker or a Ray task); any failure comes back as one line."""
    from lipdub.pipeline import animate

    request: AnimateRequest = task["request"]
    t0 = time.monotonic()
    try:
        result = animate(request)
    except LipdubError as err:
        return _outcome(task, "failed", time.monotonic() - t0, error=str(err))
    except Exception as err:  # noqa: BLE001 - one job's crash is reported, the others go on
        first = (str(err).strip().splitlines() or [""])[0]
        return _outcome(task, "failed", time.monotonic() - t0, error=f"internal error ({type(err).__name__}: {first})")
    info = {"frames": result.frames, "duration": round(result.duration, 3), "engine": result.engine}
    _write_state(Path(task["state"]), request.output, task["key"], info)
    return _outcome(task, "done", time.monotonic() - t0, **info)


def _lost(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """The outcome of a job whose worker died under it (run_tasks tried it twice)."""
    return _outcome(task, "failed", None, error=reason)


def _outcome(task: dict[str, Any], status: str, seconds: float | None, **extra: Any) -> dict[str, Any]:
    return {"line": task["line"], "output": str(task["request"].output), "status": status,
            "seconds": None if seconds is None else round(seconds, 2), **extra}


def run_batch(jobs_file: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, workers: int | None = None,
              ray_address: str | None = None, checkpoint: Path | None = None, device: str = "auto",
              force: bool = False) -> dict[str, Any]:
    """Run every job not yet up to date; return {"jobs": [outcome per line], "done", "skipped", "failed", ...}."""
    from lipdub.data.runner import run_tasks

    t0 = time.monotonic()
    out_dir = Path(out_dir)
    outcomes, tasks = [], []
    jobs = read_jobs(jobs_file, out_dir, checkpoint=checkpoint, device=device)
    for job in tqdm(jobs, desc="batch: check", unit="job", leave=False, disable=None):  # hashes every input
        request = absolute(job.request) if ray_address else job.request
        task = {"line": job.line, "request": request, "state": str(state_path(job.request.output, out_dir))}
        try:
            task["key"] = job_key(job.request)
        except OSError as err:  # a missing or unreadable input: this job fails, the others run
            outcomes.append(_outcome(task, "failed", None, error=f"{err.filename}: {err.strerror or err}"))
            continue
        except LipdubError as err:
            outcomes.append(_outcome(task, "failed", None, error=str(err)))
            continue
        if not force and up_to_date(job.request.output, task["key"], Path(task["state"])):
            outcomes.append(_outcome(task, "skipped", None, reason="up to date"))
        else:
            tasks.append(task)
    outcomes += run_tasks(run_job, tasks, workers=workers, ray_address=ray_address, desc="batch", unit="job",
                          lost=_lost)
    outcomes.sort(key=lambda o: o["line"])
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("done", "skipped", "failed")}
    seconds = time.monotonic() - t0
    return {"jobs": outcomes, **counts, "seconds": round(seconds, 2),
            "jobs_per_minute": round(counts["done"] * 60 / seconds, 2) if counts["done"] else 0.0}


def format_summary(report: dict[str, Any]) -> str:
    """The table `lipdub batch` prints: one row per job, then the totals."""
    rows = [("line", "status", "seconds", "output", "reason")]
    for o in report["jobs"]:
        secs = "-" if o["seconds"] is None else f"{o['seconds']:.1f}"
        rows.append((str(o["line"]), o["status"], secs, o["output"], o.get("error") or o.get("reason") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    lines.append(f"{len(report['jobs'])} jobs: {report['done']} done, {report['skipped']} skipped, "
                 f"{report['failed']} failed in {report['seconds']:.1f} s")
    return "\n".join(line.rstrip() for line in lines)
