"""VisemeEngine: the no-weights engine: speech -> mouth cues -> per-frame poses -> warped lower face patches."""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from lipdub.audio import articulation, vad
from lipdub.audio import cues as cue_mod
from lipdub.engines.base import Engine, FrameJob, Patch
from lipdub.engines.viseme.mouth import SourceMouth
from lipdub.engines.viseme.render import FaceRenderer
from lipdub.engines.viseme.shapes import articulate
from lipdub.engines.viseme.warp import FaceFrame, MouthWarp
from lipdub.faces.types import Face
from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
SIBILANT_NARROW = 0.8  # how much of the acoustic opening a sibilant (S, Z, SH, CH...) takes away: its teeth close
INHALE_OPEN = 0.3  # how far (0..1 of the acoustic opening) the mouth opens to breathe in before speaking
INHALE_S = (0.35, 0.1)  # that breath spans 350 ms before the voice starts to 100 ms after it


class VisemeEngine(Engine):
    """Mouth shapes from phones (PocketSphinx) and silence (silero-vad), drawn by warping the face itself.

    Needs no model weights. `prepare` analyses the audio once; `render` poses each job's face. A still's
    face is prepared once and repeated poses are served from a cache.
    """

    name = "viseme"
    batch_size = 16

    def __init__(self, method: str = "auto", max_faces: int = 8, text: str | None = None, lang: str | None = None):
        self.method = method
        self.text, self.lang = text, lang  # a transcript: its aligned phones replace the recogniser's
        self.cues: list[cue_mod.Cue] = []
        self.weights = np.zeros((0, len(cue_mod.SHAPES)), np.float32)
        self.poses = np.zeros((0, 0), np.float32)
        self._activity = np.zeros(0, np.float32)
        self._renderers: OrderedDict[bytes, FaceRenderer] = OrderedDict()
        self._mouths: dict[int, SourceMouth] = {}  # per face track: the best mouth interior seen
        self._max_faces = max_faces
        self.progress: Callable[[int, int], None] | None = None  # speech recognised (cues.extract_cues' progress)

    def prepare(self, audio: np.ndarray, fps: float) -> int:
        """Cues, co-articulated shape weights, loudness and voice activity for every frame of the audio."""
        audio = np.asarray(audio, np.float32).reshape(-1)
        n = int(np.ceil(len(audio) * fps / SR))
        self.cues = cue_mod.extract_cues(audio, fps, method=self.method, text=self.text, lang=self.lang,
                                         progress=self.progress)
        self.weights = cue_mod.cue_track(self.cues, fps, n)
        self._activity = vad.speech_probability(audio, fps)
        acoustics = articulation.analyse(audio)
        opening = articulation.per_frame(articulation.jaw_opening(acoustics), fps, n) * _talking(self._activity, fps)
        opening *= 1.0 - SIBILANT_NARROW * cue_mod.phone_track(self.cues, fps, n, cue_mod.SIBILANTS)
        opening = np.clip(opening + _inhale(self._activity, fps), 0.0, 1.0)
        self.weights = _parted_rest(self.weights, opening)
        rounding = articulation.per_frame(articulation.lip_rounding(acoustics), fps, n)
        self.poses = articulate(self.weights, opening, rounding)
        return n

    def speech_activity(self) -> np.ndarray | None:
        return self._activity

    def render(self, jobs: Sequence[FrameJob]) -> list[Patch]:
        return [self._render_one(job) for job in jobs]

    def _render_one(self, job: FrameJob) -> Patch:
        lm = job.face.landmarks
        if lm is None or len(self.poses) == 0:  # nothing to pose: hand back the frame untouched
            top, bottom, left, right = job.box
            return Patch(box=job.box, image=job.frame[top:bottom, left:right].copy(),
                         mask=np.zeros((bottom - top, right - left), np.float32))
        renderer = self._renderer(job.frame, np.asarray(lm, np.float32))
        # one mouth interior per face: the widest open one seen so far, so a video's teeth do not flicker
        # between frames where the speaker's own mouth happened to be open or closed
        track, own = job.face.track_id, renderer.own_mouth
        best = self._mouths.get(track) if track is not None else own
        if own is not None and (best is None or own.size > best.size):
            best = own
            if track is not None:
                self._mouths[track] = own
        renderer.use_mouth(best)
        p = self.poses[min(max(job.index, 0), len(self.poses) - 1)]
        return renderer.render(job.frame, p, cacheable=True)

    def resume(self, seen: Sequence[tuple[Face, int]], read: Callable[[int], np.ndarray]) -> None:
        """Take up the state a run from the first frame has after rendering `seen` ((face, source frame) in
        order): each track's widest mouth so far, so a piece of a timeline renders what the whole run would.
        Sizes come from the landmarks alone; only the frame with a track's widest mouth is read."""
        best: dict[int, tuple[float, np.ndarray, int]] = {}
        for face, src in seen:
            if face.landmarks is None or face.track_id is None:
                continue
            lm = np.asarray(face.landmarks, np.float32)  # as _render_one hands them to FaceRenderer
            points = MouthWarp.points(lm)
            size = SourceMouth.size_of(points, FaceFrame.of(points))
            if size is not None and (face.track_id not in best or size > best[face.track_id][0]):
                best[face.track_id] = (size, lm, src)
        for track, (_, lm, src) in best.items():
            self._mouths[track] = FaceRenderer(read(src), lm).own_mouth

    def _renderer(self, frame: np.ndarray, lm: np.ndarray) -> FaceRenderer:
        """The prepared face for these landmarks on these pixels (a still reuses one across all frames)."""
        renderer = None
        key = lm[:, :2].round(2).tobytes()
        if key in self._renderers:
            renderer = self._renderers[key]
            self._renderers.move_to_end(key)
        if renderer is None or renderer.pixels_crc != _crc(frame, renderer.warp.roi):
            renderer = FaceRenderer(frame, lm)
            renderer.pixels_crc = _crc(frame, renderer.warp.roi)
            self._renderers[key] = renderer
            if len(self._renderers) > self._max_faces:
                self._renderers.popitem(last=False)
        return renderer


def _talking(activity: np.ndarray, fps: float, longest_pause: float = 1.0) -> np.ndarray:
    """1 while speaking and in pauses up to `longest_pause` s between speech, easing to 0 in longer silences
    and before the first / after the last word (real speakers keep their lips apart in breath pauses)."""
    from lipdub.media.filters import uniform_filter1d

    silent = np.asarray(activity) < 0.5
    keep = np.ones(len(silent), np.float32)
    for a, b in cue_mod._runs(silent):
        if a == 0 or b == len(silent) or (b - a) / fps > longest_pause:
            keep[a:b] = 0.0
    return uniform_filter1d(keep, 3, mode="nearest")


def _inhale(activity: np.ndarray, fps: float) -> np.ndarray:
    """Per frame, 0 .. INHALE_OPEN: the mouth opening before each onset of speech (a Hann bump over INHALE_S
    around it), where the voice starts the audio or follows a pause (one under cues.HOLD_PAUSE_S holds the last
    shape: no breath there). Real speakers part their lips to breathe in and start the jaw toward the first vowel
    before any sound: on the test videos their mouths were widest in some pauses just before a phrase, which the
    acoustics cannot show (added to the acoustic opening, it raised the planned opening's correlation with the
    real mouths 0.361 -> 0.399 on the first 10 s, 0.316 -> 0.370 over 10 s stretches; a matching bump after the
    voice stops lowered it)."""
    before, after = INHALE_S
    t = np.arange(len(activity)) / fps
    out = np.zeros(len(activity), np.float32)
    for a, b in cue_mod._runs(np.asarray(activity) < 0.5):
        if b == len(activity) or (a > 0 and (b - a) / fps < cue_mod.HOLD_PAUSE_S):
            continue
        x = (t - (b / fps - before)) / (before + after)  # 0 .. 1 across the breath
        inside = (x >= 0) & (x <= 1)
        out[inside] = np.maximum(out[inside], INHALE_OPEN * (0.5 - 0.5 * np.cos(2 * np.pi * x[inside])))
    return out


def _parted_rest(weights: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """Where the mouth opens while the shapes say rest (X: lips together, nothing behind them), the relaxed B
    (lips apart over the teeth) takes X's place as far as the lips part, fully from INHALE_OPEN on: the breath
    before a phrase, or voiced sound the recogniser took for silence, opened a dark, toothless slit, and a photo
    that smiled with its teeth lost them for a moment before every phrase."""
    w = np.array(weights, np.float32)
    x, b = cue_mod.SHAPE_INDEX["X"], cue_mod.SHAPE_INDEX["B"]
    moved = w[:, x] * np.clip(np.asarray(opening, np.float32) / INHALE_OPEN, 0.0, 1.0)
    w[:, x] -= moved
    w[:, b] += moved
    return w


def _crc(frame: np.ndarray, roi: tuple[int, int, int, int]) -> int:
    """Checksum of the ROI pixels: pose caches are only valid for identical pixels."""
    top, bottom, left, right = roi
    return zlib.crc32(np.ascontiguousarray(frame[top:bottom, left:right]).data)
