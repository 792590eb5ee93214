"""Wires the stages as one stream: decode -> faces -> engine -> composite -> mix -> encode. CLI and web call this.

Nothing here re-implements a stage: it decides the output timeline (how many frames, which source frame each
one shows, which face speaks when and how strongly) and then streams batches of frames through the engine
and the compositor into the writer, so memory does not grow with the length of the input.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from lipdub.audio.speakers import FaceChoice, SpeakerSpec, first_frame, output_frames, speaker_activity
from lipdub.composite import composite
from lipdub.engines.base import FrameJob
from lipdub.errors import LipdubError, NoFaceError
from lipdub.media.audio import SAMPLE_RATE
from lipdub.media.fade import fade_weights
from lipdub.media.threads import prefetch, return_freed_memory
from lipdub.settings import get_settings, resolve_device

if TYPE_CHECKING:
    from lipdub.faces import BackgroundAnalysis, FaceTracks
    from lipdub.media import FrameSource, MediaInfo

log = logging.getLogger(__name__)

# progress(stage, done, total): stage is one of "preparing" (speech recognised, in 10 ms frames of speech),
# "detecting", "generating", "encoding", "done"; "preparing" and "detecting" run at the same time
Progress = Callable[[str, int, int], None]

STILL_FPS = 25.0
FADE_FRAMES = 4  # the generated mouth fades in/out over this many frames around a gap or a silence
# frames a first run's face analysis may track ahead of the frames a batch needs until the engine is loaded (a
# viseme batch); then one batch of the engine: without this slack, analysis and rendering would wait for each other
# at every batch instead of running side by side, and with more, decoded frames wait in memory for nothing
ANALYSIS_SLACK = 16


@dataclass
class AnimateRequest:
    """Everything `animate` needs. `speakers` empty -> one speaker from `audio` + `face`."""

    media: Path
    output: Path
    audio: Path | None = None
    face: FaceChoice = field(default_factory=FaceChoice)
    speakers: list[SpeakerSpec] = field(default_factory=list)
    engine: Literal["auto", "wav2lip", "viseme"] = "auto"
    checkpoint: Path | None = None
    box: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) as Wav2Lip's --box
    paste: Literal["blend", "box"] = "blend"
    # silence: "rest" blends the neural mouth back to the original one while the speaker is silent; "animate"
    # keeps generating (the reference behaviour). "auto": rest, except with paste="box", which reproduces the
    # reference exactly.
    silence: Literal["auto", "rest", "animate"] = "auto"
    fps: float | None = None  # output rate (stills: default 25; videos: their own, else resampled by timestamp)
    keep_video_length: bool = False
    mix: Literal["replace", "original"] = "replace"
    duck_db: float = 0.0
    speech_gain_db: float = 0.0
    original_gain_db: float = 0.0
    device: str = "auto"
    batch_size: int | None = None
    use_cache: bool = True
    motion: str = "natural"  # a still's head, eyes and brows: "natural", "lively", "idle" (blinks only), "none"
    seed: int = 0  # the motion's random choices (same seed, same video)
    text: str | None = None  # transcript of the speech (viseme engine: phones aligned instead of recognised)
    lang: str | None = None  # its language (espeak-ng code: en, nl, de, fr, ...); "en" alone: phones via English words


@dataclass
class AnimateResult:
    output: Path
    frames: int
    fps: float
    duration: float
    engine: str
    speakers: list[dict]  # per speaker: chosen track id, how it was chosen, faces seen
    notes: list[str] = field(default_factory=list)  # what the user should know (engine chosen, frames without face)


@dataclass
class _Speaker:
    """A speaker resolved onto the output timeline."""

    spec: SpeakerSpec
    audio: np.ndarray  # 16 kHz mono float32, as given
    engine: object  # a prepared Engine
    start_frame: int
    n_frames: int
    lead: int = 0  # samples of silence before `audio` so that engine frame 0 is output frame start_frame
    track_id: int | None = None
    weight: np.ndarray | None = None  # (n_out,) its speech's part of the strength (where its face is present)
    strength: np.ndarray | None = None  # (n_out,) how much of the generated mouth each output frame shows
    info: dict = field(default_factory=dict)

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.n_frames


# --------------------------------------------------------------------------------------------- timeline


def pingpong(i: int, n: int) -> int:
    """Source frame for output frame i when a video of n frames plays forward, backward, forward... (no jump)."""
    if n <= 1:
        return 0
    k = i % (2 * n - 2)
    return k if k < n else 2 * n - 2 - k


def source_indices(n_out: int, n_src: int) -> np.ndarray:
    """Source frame shown at each output frame: identity while the video lasts, then ping-pong."""
    if n_src <= 1:
        return np.zeros(n_out, np.int64)
    return np.array([i if i < n_src else pingpong(i, n_src) for i in range(n_out)], np.int64)


def activity_weights(prob: np.ndarray, fps: float, hold: float = 0.3, fade: int = FADE_FRAMES) -> np.ndarray:
    """Turn per-frame speech probability into a smooth 0..1 edit strength: gaps < `hold` s are bridged, ramps."""
    active = np.asarray(prob) >= 0.5
    gap = int(round(hold * fps))
    idx = np.flatnonzero(active)
    for a, b in zip(idx[:-1], idx[1:], strict=False):  # bridge short pauses between words: no chewing
        if 1 < b - a <= gap + 1:
            active[a:b] = True
    # ramp up before and down after each stretch: distance to the nearest active frame
    return 1.0 - fade_weights(~active, fade) if active.any() else np.zeros(len(active), np.float32)


# --------------------------------------------------------------------------------------------- engines


def choose_engine(request: AnimateRequest) -> tuple[str, Path | None, str]:
    """Decide which engine runs; return (name, checkpoint, note for the user)."""
    checkpoint = request.checkpoint or get_settings().checkpoint
    name = request.engine
    if name == "auto":
        name = "wav2lip" if checkpoint else "viseme"
    if name == "wav2lip":
        if checkpoint is None:
            raise LipdubError("the wav2lip engine needs --checkpoint (see `lipdub weights list`)")
        return name, Path(checkpoint), f"engine: wav2lip ({checkpoint})"
    return "viseme", None, ("engine: viseme (no model weights; for the neural engine get a checkpoint with "
                            "`lipdub weights fetch wav2lip_gan` and pass --checkpoint)")


def load_engine(name: str, checkpoint: Path | None, request: AnimateRequest):
    """Build the engine once (model weights are shared by every speaker's copy)."""
    if name == "wav2lip":
        from lipdub.engines.wav2lip import Wav2LipEngine

        return Wav2LipEngine(checkpoint, device=request.device, batch_size=request.batch_size)
    from lipdub.engines.viseme import VisemeEngine

    return VisemeEngine(text=request.text, lang=request.lang)


# --------------------------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """What `animate` will do, decided before the first frame is rendered: the output timeline (how many frames,
    which source frame each one shows), the engine, and each speaker's prepared audio, face track and strength."""

    request: AnimateRequest
    info: MediaInfo  # the probed input
    fps: float  # the output rate
    n_out: int  # output frames
    src_of: np.ndarray  # (n_out,) source frame shown at each output frame
    engine: str  # "wav2lip" or "viseme"
    base_engine: object  # the loaded engine (each speaker holds a copy)
    speakers: list[_Speaker]
    tracks: FaceTracks | None  # None with --box and --paste box on wav2lip (no landmarks needed)
    source: FrameSource | None  # the video's frames (None for a still)
    notes: list[str] = field(default_factory=list)
    # a cold video's faces, still being analysed (`tracks` and `strength` are then set as frames render)
    analysis: BackgroundAnalysis | None = None
    still_frame: np.ndarray | None = None  # the photo (None for a video)
    mover: object | None = None  # a photo's motion layer (`motion.Motion`), None when it stays still

    @property
    def still(self) -> bool:
        return self.info.kind == "image"


def plan(request: AnimateRequest, report: Progress, overlap: bool = False) -> Plan:
    """Check the input, load the engine, prepare every speaker, find their faces, decide their strengths and
    (for a photo) its motion. With `overlap`, a video whose faces are not cached yet (and whose face is chosen
    by the default rule, see `_overlaps`) is planned without them: they are analysed while it renders."""
    from lipdub import faces, media
    from lipdub.media.threads import one_blas_thread

    one_blas_thread()
    info = media.probe(request.media)
    if info.kind == "audio":
        raise LipdubError("has no picture: give a photo or a video of the face", request.media)
    still = info.kind == "image"
    _check_device(request.device)
    # the output rate: a video keeps its own unless asked; then its frames are resampled by timestamp
    fps = float(request.fps or (STILL_FPS if still else info.fps))
    source = None if still else media.FrameSource(request.media, fps=fps)
    n_src = 1 if still else len(source)  # source frames at the output rate
    if n_src < 1:
        raise LipdubError("video has no frames", request.media)

    name, checkpoint, engine_note = choose_engine(request)
    notes = [engine_note, *ignored_options(request, name, still, info.has_audio)]
    # the faces are found beside the engine's loading and the speech analysis (much of each runs in native code
    # that releases the GIL: mediapipe, decoding, ONNX Runtime); speech errors are still reported first
    stop = threading.Event()  # set when the speech fails: a video's tracking stops at its next frame

    def faces_progress(done: int, total: int) -> None:
        if stop.is_set():
            raise _Stopped
        report("detecting", done, total)

    analysis = None
    if overlap and _overlaps(request, still, fps):
        faces_progress(0, n_src)
        analysis = faces.BackgroundAnalysis(request.media, fps, ahead=FADE_FRAMES + ANALYSIS_SLACK,
                                             progress=faces_progress)
    with ThreadPoolExecutor(1, thread_name_prefix="lipdub-faces") as pool:
        if analysis is None:
            found = pool.submit(_track_faces, request, name, None if still else fps, n_src, faces_progress)
        try:
            base_engine = load_engine(name, checkpoint, request)
            if hasattr(base_engine, "progress"):  # recognising speech takes a while (--lang en: about real time)
                base_engine.progress = lambda done, total: report("preparing", done, total)
            if analysis is not None:
                analysis.keep_ahead(FADE_FRAMES + _batch(base_engine))
            speakers = _prepare_speakers(request, base_engine, fps)
        except BaseException:
            stop.set()
            if analysis is not None:
                analysis.close()
            raise
        tracks = None if analysis else _find_faces(request, speakers, found.result())
    speech_end = max(s.end_frame for s in speakers)
    n_out = output_frames(speech_end, None if still else n_src, request.keep_video_length)
    p = Plan(request, info, fps, n_out, source_indices(n_out, n_src), name, base_engine, speakers, tracks, source,
             notes, analysis=analysis)
    for sp in speakers:
        sp.weight = _speech_weight(p, sp)
        sp.strength = np.zeros(n_out, np.float32) if analysis else _edit_strength(p, sp)
    if still:
        p.still_frame = media.read_image(request.media)
        p.mover = _living_still(request, p.still_frame, tracks, speakers, fps, n_out, p.notes)
    return p


def _check_device(device: str) -> None:
    """An unavailable device is an error even where the engine would not use it. `auto` and `cpu` always exist, and
    only other devices are checked: checking loads torch, seconds of a viseme run that never needs it."""
    if device == "auto":
        device = get_settings().device
    if device not in ("auto", "cpu"):
        resolve_device(device)


def _prepare_speakers(request: AnimateRequest, base_engine, fps: float) -> list[_Speaker]:
    """Each speaker's 16 kHz speech, placed on the output timeline and prepared by its own copy of the engine."""
    from lipdub import media

    specs = request.speakers or [SpeakerSpec(audio=_need_audio(request), face=request.face)]
    speakers: list[_Speaker] = []
    for spec in specs:
        audio = media.load_audio(spec.audio, sr=SAMPLE_RATE, mono=True)
        media.require_speech(audio, spec.audio)
        # a start between two frames: begin at the frame before it and lead the engine's audio with silence,
        # so engine frame k is output frame start_frame + k exactly
        start_frame, lead = first_frame(spec.start, fps)
        driven = np.concatenate([np.zeros(lead, np.float32), audio]) if lead else audio
        engine = copy.copy(base_engine)  # shares the network, holds its own prepared audio
        if (spec.text is not None or spec.lang is not None) and hasattr(engine, "text"):  # its own (viseme)
            engine.text, engine.lang = spec.text, spec.lang
        elif len(specs) > 1 and hasattr(engine, "text"):  # --text belongs to one speaker; --lang en alone to all
            engine.text = None
        n = int(engine.prepare(driven, fps))
        speakers.append(_Speaker(spec, audio, engine, start_frame, n, lead=lead))
    return speakers


class _Stopped(Exception):
    """Raised inside the face tracking to end it early (the plan failed elsewhere)."""


def _overlaps(request: AnimateRequest, still: bool, fps: float) -> bool:
    """Whether the faces are analysed while the video renders: a video's first run (its faces not cached), with
    one speaker whose face the default rule chooses. A choice by id, pixel or photo, --box and several speakers
    keep two passes (faces first), as does a run without the cache (a discarded speculation renders again from
    the cache)."""
    from lipdub import faces

    choice = request.speakers[0].face if request.speakers else request.face
    return (not still and request.use_cache and request.box is None and len(request.speakers) <= 1
            and choice == FaceChoice() and not faces.is_cached(request.media, fps))


def _track_faces(request: AnimateRequest, engine: str, fps: float | None, n_src: int,
                 progress: Callable[[int, int], None]) -> FaceTracks | None:
    """Track the faces of the media (None when --box makes landmarks unnecessary)."""
    from lipdub import faces

    needs_landmarks = engine == "viseme" or (request.paste == "blend" and request.box is None)
    if request.box is not None and not needs_landmarks:
        return None
    progress(0, n_src)
    return faces.analyze(request.media, fps=fps, use_cache=request.use_cache, progress=progress)


def _find_faces(request: AnimateRequest, speakers: list[_Speaker], tracks: FaceTracks | None) -> FaceTracks | None:
    """Choose which track each speaker moves."""
    from lipdub import faces

    if tracks is None:
        return None
    if not tracks.track_ids:
        raise NoFaceError("no face found", request.media)
    for sp in speakers:
        choice = sp.spec.face
        if request.box is not None and choice == FaceChoice():
            top, bottom, left, right = request.box
            choice = FaceChoice(at=((left + right) / 2, (top + bottom) / 2))
        # a person id: tracks.face/strength follow that person through every shot it appears in
        sp.track_id, why = faces.select(tracks, face_id=choice.face_id, at=choice.at, like=choice.like)
        sp.info = {"face": sp.track_id, "chosen": why, "faces_seen": len(tracks.person_ids),
                   "tracks": tracks.tracks_of(sp.track_id), "audio": str(sp.spec.audio), "start": sp.spec.start}
    if len(speakers) > 1 and len({sp.track_id for sp in speakers}) < len(speakers):
        raise LipdubError("two --speaker options chose the same face; name different faces")
    return tracks


def _edit_strength(plan: Plan, sp: _Speaker) -> np.ndarray:
    """How much of `sp`'s generated mouth each output frame shows: the face's presence fades x speech activity
    (`sp.weight`). Adds a note when the face is absent in some of its speaking frames."""
    shown = np.ones(plan.n_out, np.float32) if plan.tracks is None else _shown(plan.tracks, sp, plan.src_of)
    inside = _inside(sp, plan.n_out)
    missing = int((~(shown > 0) & inside).sum())
    if missing:
        plan.notes.append(f"{sp.info.get('face', 'face')}: absent in {missing} of {int(inside.sum())} speaking "
                          "frames; those frames pass through unchanged")
    return shown * sp.weight


def _shown(tracks: FaceTracks, sp: _Speaker, src: np.ndarray) -> np.ndarray:
    """The face's presence at source frames `src`: its track's own fade around gaps, 0 where absent."""
    return tracks.strength(sp.track_id, fade_frames=FADE_FRAMES - 1)[src]


def _inside(sp: _Speaker, n_out: int) -> np.ndarray:
    """(n_out,) bool: the output frames `sp`'s audio spans."""
    inside = np.zeros(n_out, bool)
    inside[sp.start_frame:min(sp.end_frame, n_out)] = True
    return inside


def _speech_weight(plan: Plan, sp: _Speaker) -> np.ndarray:
    """(n_out,) float32: how much of `sp`'s generated mouth shows where its face is present: its speech activity
    (wav2lip resting in silence) or the fades at its audio's edges, 0 outside its audio."""
    request, n_out, fps = plan.request, plan.n_out, plan.fps
    inside = _inside(sp, n_out)
    rest = request.silence == "rest" or (request.silence == "auto" and request.paste == "blend")
    if plan.engine == "wav2lip" and not rest:
        weight = inside.astype(np.float32)
    elif plan.engine == "wav2lip":
        # the neural mouth keeps moving in silence: blend back to the original mouth there
        prob = sp.engine.speech_activity()  # of the led audio, when the engine computed it already
        act = speaker_activity(sp.audio, sp.spec.start, fps, n_out,
                               probability=None if prob is None else lambda _wav, _fps, p=prob: p)
        weight = activity_weights(act, fps)
    else:
        # the viseme engine closes the mouth by itself in silence; fade in/out at its audio's edges
        weight = fade_weights(inside, FADE_FRAMES)
    return (weight * inside).astype(np.float32)


# --------------------------------------------------------------------------------------------- stream


def stream(plan: Plan, writer, report: Progress, frames: range | None = None) -> None:
    """Render output frames `frames` (default: all) in batches: source frames -> each speaker's engine ->
    composite -> `writer`. A range that starts later renders the very frames a whole run would (the engines
    first take up the state a whole run has there). Memory holds one batch, whatever the length of the input."""
    frames = range(plan.n_out) if frames is None else frames
    if frames.start:
        _resume(plan, frames.start)

    def source() -> Iterator[np.ndarray]:
        return itertools.repeat(plan.still_frame) if plan.still else \
            plan.source.frames(plan.src_of[frames.start:frames.stop].tolist())

    _write_frames(plan, writer, report, frames, source, _render_batch)


def _write_frames(plan: Plan, writer, report: Progress, frames: range, source: Callable[[], Iterator[np.ndarray]],
                  render: Callable[[Plan, list[np.ndarray], int], list[np.ndarray]]) -> None:
    """Output frames `frames` from the source frames `source()` gives, by `render(plan, batch, first index)`."""
    batch = _batch(plan.base_engine)
    mover = plan.mover
    report("generating", 0, len(frames))

    def rendered() -> Iterator[np.ndarray]:
        done = frames.start
        for chunk in _chunks(source(), batch, len(frames)):
            yield from render(plan, chunk, done)
            done += len(chunk)
            return_freed_memory()  # the batch's temporaries (the network's activations, frame copies) are freed

    # the engines render in a thread of their own, one batch ahead, while this one moves and hands frames to the
    # encoder (a third thread): the cv2/numpy/PyAV work of each releases the GIL, so they share the cores
    for i, frame in enumerate(prefetch(rendered, batch, name="lipdub-render"), start=frames.start):
        # a photo's head moves after the mouth is drawn on the still: the engines keep their per-face set-up
        # and pose caches (a moved face would be a new face to them every frame), and the mouth moves with it
        writer.write(mover.apply(i, frame) if mover else frame)
        if (i + 1 - frames.start) % batch == 0 or i + 1 == frames.stop:
            report("generating", i + 1 - frames.start, len(frames))


class _Mismatch(Exception):
    """Frames rendered while the faces were analysed differ from what the whole video's faces give."""


class _Speculation:
    """Renders a cold video while its faces are analysed (`plan.analysis`), one speaker, its face chosen by the
    default rule.

    Each batch waits until the faces of its frames (and FADE_FRAMES after them, which its strengths depend on)
    are final, and renders with them and the person the rule chooses on the frames seen so far. Once the
    analysis has ended, the whole video's choice and strengths render the rest, and are checked against every
    frame rendered before: same strength, same face (box, landmarks, track and score: all the engines and the
    compositor see of it, kept as a digest); a difference raises `_Mismatch`.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan, self.sp = plan, plan.speakers[0]
        self.chosen = False  # a person was chosen on the frames seen
        self.final = False  # the whole video's faces are in use
        self.used: list[tuple[float, bytes]] = []  # (strength, face digest) of each output frame rendered before

    def frames(self) -> Iterator[np.ndarray]:
        """The output's source frames: the analysis's own decoded frames while the video plays forward, then
        the source's (a video shorter than the speech plays backward)."""
        p, handed = self.plan, 0
        wanted = min(p.n_out, len(p.source))
        for frame in p.analysis.frames():
            if handed == wanted:
                break
            yield frame
            handed += 1
        p.analysis.release()
        yield from p.source.frames(p.src_of[handed:].tolist())

    def render(self, plan: Plan, chunk: list[np.ndarray], done: int) -> list[np.ndarray]:
        stop = done + len(chunk)
        if not self.final:
            self._settle(done, stop)
        outs = _render_batch(plan, chunk, done)
        if not self.final:
            self.used += [(float(self.sp.strength[i]), self._digest(i)) for i in range(done, stop)]
        return outs

    def _settle(self, start: int, stop: int) -> None:
        """Faces and strengths for output frames start..stop-1, from the frames analysed so far."""
        p, sp = self.plan, self.sp
        src = p.src_of[start:stop]
        upto = int(src.max()) + 1 + FADE_FRAMES
        if not self.chosen:
            seen = p.analysis.partial(0, upto)
            if seen is None:
                return self.finish()
            if seen.person_ids:
                from lipdub import faces

                sp.track_id, self.chosen = int(faces.select(seen)), True
        view = p.analysis.partial(max(0, int(src.min()) - FADE_FRAMES), upto)
        if view is None:
            return self.finish()
        p.tracks = view
        shown = _shown(view, sp, src) if self.chosen else np.zeros(len(src), np.float32)
        sp.strength[start:stop] = shown * sp.weight[start:stop]
        return None

    def _digest(self, i: int) -> bytes:
        """What the engine and the compositor see of the face at output frame i (b"" where none is drawn)."""
        face = _face_at(self.plan, self.sp, int(self.plan.src_of[i])) if self.sp.strength[i] > 0 else None
        if face is None:
            return b""
        parts = (np.asarray(face.box, np.float32), np.asarray(face.landmarks, np.float32),
                 np.array([face.score], np.float32), np.array([face.track_id], np.int64))
        return hashlib.blake2b(b"".join(a.tobytes() for a in parts), digest_size=16).digest()

    def finish(self) -> None:
        """The whole video's faces from now on; raises `_Mismatch` if a frame rendered before differs."""
        if self.final:
            return
        p, sp = self.plan, self.sp
        p.tracks = _find_faces(p.request, p.speakers, p.analysis.result())
        sp.strength = _edit_strength(p, sp)
        self.final = True
        for i, (strength, digest) in enumerate(self.used):
            if strength != sp.strength[i] or digest != self._digest(i):
                raise _Mismatch(f"output frame {i}")


def _resume(plan: Plan, start: int) -> None:
    """Give each engine that keeps state across frames (`resume`) the faces a whole run renders before `start`."""
    def read(src: int) -> np.ndarray:
        return plan.still_frame.copy() if plan.still else next(plan.source.frames([src]))

    for sp in plan.speakers:
        if hasattr(sp.engine, "resume"):
            seen = [(face, src) for i in range(start) if sp.strength[i] > 0
                    and (face := _face_at(plan, sp, src := int(plan.src_of[i]))) is not None]
            sp.engine.resume(seen, read)


def _render_batch(plan: Plan, chunk: list[np.ndarray], done: int) -> list[np.ndarray]:
    """Output frames done .. done+len(chunk): every speaker's generated mouth composited where it shows."""
    from lipdub import faces

    request = plan.request
    return_freed_memory()  # what the decode, face and encode threads freed meanwhile: before the network's peak
    outs = list(chunk)
    for sp in plan.speakers:
        jobs, where = [], []
        for j, frame in enumerate(chunk):
            i = done + j
            if sp.strength[i] <= 0.0:
                continue
            face = _face_at(plan, sp, int(plan.src_of[i]))
            if face is None:
                continue
            box = request.box if request.box is not None else faces.crop_box(face, frame.shape)
            jobs.append(FrameJob(index=i - sp.start_frame, frame=frame, face=face, box=box))
            where.append(j)
        if not jobs:
            continue
        for j, job, patch in zip(where, jobs, sp.engine.render(jobs), strict=True):
            outs[j] = composite(outs[j], patch, request.paste, face=job.face, strength=float(sp.strength[done + j]))
    return outs


def _face_at(plan: Plan, sp: _Speaker, src: int):
    """`sp`'s face in source frame `src` (the --box rectangle when faces were not tracked)."""
    return _box_face(plan.request.box) if plan.tracks is None else plan.tracks.face(sp.track_id, src)


# --------------------------------------------------------------------------------------------- main


def animate(request: AnimateRequest, progress: Progress | None = None) -> AnimateResult:
    """Make the chosen face(s) of `request.media` speak; write `request.output` atomically."""
    report = progress or (lambda stage, done, total: None)
    p = plan(request, report, overlap=True)
    try:
        _write(p, report)
    except _Mismatch as err:  # the face chosen on the first frames is not the whole video's: the two-pass way
        log.info("%s: rendered again with the whole video's faces (%s differed)", request.media, err)
        p = plan(request, report)
        _write(p, report)
    report("done", p.n_out, p.n_out)
    return AnimateResult(output=Path(request.output), frames=p.n_out, fps=p.fps, duration=p.n_out / p.fps,
                         engine=p.engine, speakers=[sp.info for sp in p.speakers], notes=p.notes)


def _write(p: Plan, report: Progress) -> None:
    """Render the plan into its output (atomically), the faces analysed meanwhile when they are not yet."""
    from lipdub import media

    audio_out, audio_rate = soundtrack(p.request, p.info, p.speakers, p.n_out, p.fps, p.still)
    settings = get_settings()
    with media.VideoWriter(p.request.output, p.fps, audio=audio_out, audio_rate=audio_rate, crf=settings.crf,
                           preset=settings.preset) as writer:
        if p.analysis is None:
            stream(p, writer, report)
            return
        log.info("%s: faces analysed while rendering (first run)", p.request.media)
        try:
            p.analysis.mute()
            speculation = _Speculation(p)
            _write_frames(p, writer, report, range(p.n_out), speculation.frames, speculation.render)
            speculation.finish()
        finally:
            p.analysis.close()


def ignored_options(request: AnimateRequest, engine: str, still: bool, has_audio: bool) -> list[str]:
    """One line for each option given that cannot apply to this input or engine (it would otherwise do nothing
    without a word)."""
    notes = []
    if engine == "viseme":
        if request.silence != "auto":
            notes.append("note: --silence applies to the wav2lip engine only (the viseme engine closes the mouth "
                         "in silence by itself); ignored")
        if request.batch_size is not None:
            notes.append("note: --batch-size applies to the wav2lip engine only; ignored")
    elif request.text is not None or request.lang is not None:
        notes.append("note: --text/--lang apply to the viseme engine only (wav2lip hears the sound itself); ignored")
    if still and request.keep_video_length:
        notes.append(f"note: --keep-video-length applies to videos only; {request.media} is a photo; ignored")
    if still or not has_audio:
        what = "a photo" if still else "a video without sound"
        if request.mix == "original":
            notes.append(f"note: --mix original needs the video's own sound; {request.media} is {what}; ignored")
        if request.duck_db:
            notes.append(f"note: --duck lowers the video's own sound; {request.media} is {what}; ignored")
        if request.original_gain_db:
            notes.append(f"note: --original-gain applies to the video's own sound; {request.media} is {what}; "
                         "ignored")
    elif request.mix == "replace" and request.duck_db:
        notes.append("note: --duck applies with --mix original only (the original sound is replaced); ignored")
    return notes


def _living_still(request: AnimateRequest, still: np.ndarray, tracks, speakers: list[_Speaker], fps: float,
                  n_out: int, notes: list[str]):
    """The motion layer for a photo (None for --motion none, or without face landmarks)."""
    if request.motion == "none":
        return None
    from lipdub import motion

    if request.motion not in motion.STYLES:
        raise LipdubError(f"--motion must be one of {', '.join(motion.STYLES)}, not {request.motion!r}")
    if tracks is None:
        notes.append("motion: needs face landmarks, which --box with --paste box skips; the photo stays still")
        return None
    voices = {sp.track_id: motion.voice_of(sp.audio, sp.start_frame, fps, n_out) for sp in speakers}
    notes.append(f"motion: {request.motion} (seed {request.seed})")
    return motion.Motion(still, tracks.faces_in(0), voices, fps, n_out, request.motion, request.seed)


def _need_audio(request: AnimateRequest) -> Path:
    if request.audio is None:
        raise LipdubError("no audio given: pass an audio file or --speaker face=...,audio=...")
    return request.audio


def _box_face(box: tuple[int, int, int, int]):
    from lipdub.faces.types import Face

    top, bottom, left, right = box
    return Face(box=np.array([left, top, right, bottom], np.float32))


def _batch(engine) -> int:
    """How many frames `engine` renders at a time."""
    return max(1, int(getattr(engine, "batch_size", 1) or 1))


def _chunks(frames: Iterator[np.ndarray], size: int, total: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if i >= total:
            break
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def soundtrack(request: AnimateRequest, info, speakers: list[_Speaker], n_out: int, fps: float,
                still: bool) -> tuple[np.ndarray, int]:
    """The output audio: every speaker at its start, over the original track when asked, exactly n_out frames."""
    from lipdub import media
    from lipdub.audio import mix, vad

    tracks = []
    for sp in speakers:
        # mix the speech at its own rate and channels (the 16 kHz mono copy is only what the engines see)
        native = media.load_audio(sp.spec.audio, sr=None, mono=False)
        rate = media.probe(sp.spec.audio).audio_rate
        segments = vad.speech_segments(sp.audio)
        tracks.append(mix.SpeechTrack(native, int(rate), sp.spec.start, request.speech_gain_db, segments=segments))
    original = None
    if not still and info.has_audio and (request.mix == "original" or request.keep_video_length):
        orig = media.load_audio(request.media, sr=None, mono=False)
        if request.mix == "replace":
            # --keep-video-length alone: the original audio comes back only after the new speech ends
            speech_end = max(sp.end_frame for sp in speakers) / fps
            gate = np.clip((np.arange(orig.shape[-1]) / info.audio_rate - speech_end) / 0.05, 0, 1)
            orig = (orig * gate).astype(np.float32)
        original = (orig, int(info.audio_rate))
    return mix.mix_soundtrack(tracks, original, duration=n_out / fps,
                              duck_db=request.duck_db if request.mix == "original" else 0.0,
                              original_gain_db=request.original_gain_db)
