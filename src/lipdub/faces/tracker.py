"""Online multi-face tracking: detectors on key frames, FaceMesh tracking in between, stable ids within a shot.

Each track owns a FaceMesh in tracking mode fed a square crop around where the face is predicted (constant
velocity), so it costs ~2 ms a face a frame. Key frames run the detectors to find faces that entered:
mediapipe full-range every `detect_every` frames, the full pass (+ dlib HOG, short range) every `hog_every`
frames, backing off up to 8x while it finds nothing the cheap pass missed. A face found again after leaving
gets its old id back when its identity embedding matches (re-identification). When two tracks land on one
face (a crossing), the track whose identity (else predicted motion) fits keeps it; the other waits to be
found again. Landmarks are smoothed with One Euro filters on head pose and
expression (lipdub.faces.smooth.LandmarkSmoother): no jitter at rest, no lag in motion, full mouth motion.

A shot boundary (lipdub.faces.shots, measured on the same decoded frames) ends every track: no track, filter,
re-identification or gap interpolation reaches across a cut, and the new shot is searched like a first frame.
`result()` then groups the tracks of all shots into persons by identity (lipdub.faces.persons).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from lipdub.faces import identity
from lipdub.faces.config import FaceSettings
from lipdub.faces.crop import crop_box
from lipdub.faces.detect import Detector, iou, same_face
from lipdub.faces.landmarks import Mesh, box_of, square_around
from lipdub.faces.persons import group_tracks
from lipdub.faces.shots import ShotDetector
from lipdub.faces.smooth import LandmarkSmoother
from lipdub.faces.tracks import FaceTracks
from lipdub.faces.types import Face

THUMB_SIDE = 128
CHIP_EVERY = 25  # frames between two captures of a track's best view
# a track's identity is the mean embedding of up to IDENTITY_SAMPLES views IDENTITY_EVERY frames apart: on the
# shared test videos one view of a person is 0.10-0.51 from another of the same recording and >= 0.54 from
# anyone else's; means of 3 views are <= 0.32 apart for one person, >= 0.56 for two
# (benchmarks/identity_threshold.py)
IDENTITY_SAMPLES, IDENTITY_EVERY = 3, 50
HOG_BACKOFF = 8  # the full detection pass runs at least every hog_every * HOG_BACKOFF frames
REID_SLACK = 0.15  # a face where a lost track was heading rejoins it unless this much further than reid


@dataclass
class _Track:
    id: int
    mesh: Mesh | None
    filter: LandmarkSmoother
    box: np.ndarray  # last observed (raw) landmark box
    score: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    miss: int = 0
    best_area: float = 0.0
    best_frame: int = -1
    chip: np.ndarray | None = None  # best view (largest face): for previews and reference-photo matching
    samples: list[np.ndarray] = field(default_factory=list)  # aligned chips the identity is measured on
    sampled_at: int = -IDENTITY_EVERY
    thumb: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def predicted(self) -> np.ndarray:
        return self.box + np.tile(self.velocity * min(self.miss + 1, 5), 2)  # coast a few frames, then wait

    def identity(self) -> np.ndarray | None:
        if self.embedding is None and self.samples:
            self.embedding = np.mean([identity.embed_chip(c) for c in self.samples], axis=0).astype(np.float32)
        return self.embedding


def _threads() -> int:
    from lipdub.settings import get_settings

    return int(get_settings().threads)


def _center(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def _size(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1], 1.0))


class Tracker:
    """Feed frames in order with `step`; `result()` gives the FaceTracks."""

    def __init__(self, fps: float, settings: FaceSettings | None = None, detector: Detector | None = None) -> None:
        self.settings = settings or FaceSettings()
        self.fps = float(fps) if fps else 25.0
        self.detector = detector or Detector(self.settings)
        self._own_detector = detector is None
        self.index = 0
        self.active: list[_Track] = []
        self.ended: list[_Track] = []  # lost in the current shot: may be re-identified
        self.done: list[_Track] = []  # tracks of earlier shots: never continued
        self.shots = ShotDetector(self.fps)
        self.shot_starts: list[int] = [0]
        self.frames: list[list[Face]] = []
        self._last: dict[int, tuple[int, Face]] = {}  # each track's latest observed face: gaps are bridged from it
        self._next_id = 0
        self._hog_next, self._hog_gap = 0, self.settings.hog_every
        self._grouped: tuple[object, dict[int, int]] = (None, {})  # persons as of the tracks seen (`partial`)
        self._workers = max(1, min(4, _threads()))
        self._pool: ThreadPoolExecutor | None = None
        self.shape: tuple[int, int] = (0, 0)

    # ---- per frame -----------------------------------------------------------------------------------
    def step(self, frame: np.ndarray) -> list[Face]:
        """Track one RGB frame; returns its faces (smoothed, track ids set)."""
        frame = np.ascontiguousarray(frame)
        self.shape = frame.shape[:2]
        if self.shots.step(frame):
            self._cut()
        seen = self._follow(frame)
        self._drop_duplicates(frame, seen)
        if self.index % self.settings.detect_every == 0 or self.index >= self._hog_next:
            self._discover(frame, seen)
        faces = []
        for t in list(self.active):
            if t.id in seen:
                faces.append(self._update(t, seen[t.id], frame))
            else:
                if t.miss == 0:  # just lost (a cut, an occlusion): look everywhere again soon
                    self._hog_next = min(self._hog_next, self.index + self.settings.detect_every)
                    self._hog_gap = self.settings.hog_every
                t.miss += 1
                if t.miss > self.settings.max_miss:
                    self._end(t)
        self.frames.append(faces)
        bridge(self.frames, self.index, self._last, self.settings.fill_gap)
        self.index += 1
        return list(faces)

    def final_upto(self) -> int:
        """Frames before this index are final: later steps bridge gaps of at most `fill_gap` frames back, and
        change nothing earlier (tracks, landmarks and smoothing are causal)."""
        return max(0, self.index - self.settings.fill_gap)

    def _cut(self) -> None:
        """This frame starts a new shot: end every track, and search the frame like a video's first one."""
        for t in list(self.active):
            self._end(t)
        self.done += self.ended
        self.ended = []
        self.shot_starts.append(self.index)
        self._hog_next, self._hog_gap = self.index, self.settings.hog_every

    def _follow(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        """Landmarks of every active track found near its predicted place (tracks run in parallel)."""

        def follow(t: _Track) -> np.ndarray | None:
            pred = t.predicted()
            pts = t.mesh(frame, *square_around(pred, self.settings.mesh_crop))
            if pts is not None and not 0.6 < _size(box_of(pts)) / _size(pred) < 1.6:
                t.mesh.reset()
                return None
            return pts

        tracks = list(self.active)
        if len(tracks) > 1 and self._workers > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="lipdub-faces")
            found = list(self._pool.map(follow, tracks))
        else:
            found = [follow(t) for t in tracks]
        return {t.id: pts for t, pts in zip(tracks, found, strict=True) if pts is not None}

    def _drop_duplicates(self, frame: np.ndarray, seen: dict[int, np.ndarray]) -> None:
        """Two tracks on one face (a crossing): keep the one whose identity (else motion) fits the face."""
        by_id = {t.id: t for t in self.active}
        ids = sorted(seen)
        for a_i, a in enumerate(ids):
            for b in ids[a_i + 1:]:
                if a not in seen or b not in seen or iou(box_of(seen[a]), box_of(seen[b])) < 0.4:
                    continue
                ta, tb = by_id[a], by_id[b]
                if ta.samples and tb.samples:
                    emb = identity.embed(frame, Face(box=box_of(seen[a]), landmarks=seen[a]))
                    cost = {k: identity.distance(emb, by_id[k].identity()) for k in (a, b)}
                else:
                    cost = {k: np.linalg.norm(_center(box_of(seen[k])) - _center(by_id[k].predicted()))
                            / _size(by_id[k].box) for k in (a, b)}
                loser = a if cost[a] > cost[b] else b
                del seen[loser]
                by_id[loser].mesh.reset()

    def _discover(self, frame: np.ndarray, seen: dict[int, np.ndarray]) -> None:
        """Key frame: detect, and start (or re-identify) tracks for faces nobody follows."""
        s = self.settings
        hog = None
        if self.index >= self._hog_next:
            hog = s.hog_upsample if self.index == self.shot_starts[-1] else 0
        known = [box_of(p) for p in seen.values()]  # faces of missing tracks are re-attached by _adopt
        new: list[tuple[np.ndarray, float]] = []
        for box, _ in sorted(self.detector.candidates(frame, hog_upsample=hog), key=lambda c: -c[1]):
            if any(same_face(box, k) for k in known):
                continue
            found = self.detector.examine(frame, box)  # landmarks and their face evidence (the track's score)
            if found is None or any(iou(box_of(found[0]), k) > 0.3 for k in known):
                continue
            known.append(box_of(found[0]))
            new.append(found)
        for pts, score in sorted(new, key=lambda n: float(n[0][:, 0].mean())):
            self._adopt(frame, pts, score, seen)
        if hog is not None:  # the full pass: back off while it finds nothing the cheap pass missed
            busy = bool(new) or not seen
            self._hog_gap = s.hog_every if busy else min(2 * self._hog_gap, s.hog_every * HOG_BACKOFF)
            self._hog_next = self.index + self._hog_gap

    def _adopt(self, frame: np.ndarray, pts: np.ndarray, score: float, seen: dict[int, np.ndarray]) -> None:
        """A newly found face: an old track's (same person) or a new one."""
        box = box_of(pts)
        missing = [t for t in self.active if t.id not in seen]
        track, dist = self._reidentify(frame, pts, missing)
        if track is None:  # where a lost track was heading, unless the face is clearly someone else
            near = [t for t in missing if same_face(box, t.predicted())
                    and dist.get(t.id, 0.0) < self.settings.reid_threshold + REID_SLACK]
            track = near[0] if near else None
        if track is None:
            s = self.settings
            track = _Track(id=self._next_id, mesh=None, box=box, score=score,
                           filter=LandmarkSmoother(self.fps, s.smooth_min_cutoff, s.smooth_beta, s.smooth_d_cutoff,
                                                   s.smooth_shape_min_cutoff, s.smooth_shape_beta))
            self._next_id += 1
        if track in self.ended:
            self.ended.remove(track)
        if track not in self.active:
            self.active.append(track)
        if track.mesh is None:
            track.mesh = Mesh(static=False, size=self.settings.mesh_input)
        else:
            track.mesh.reset()
        track.mesh(frame, *square_around(box, self.settings.mesh_crop))  # prime its tracking state
        track.box, track.velocity = box, np.zeros(2, np.float32)
        seen[track.id] = pts

    def _reidentify(self, frame: np.ndarray, pts: np.ndarray, missing: list[_Track]
                    ) -> tuple[_Track | None, dict[int, float]]:
        """The lost track whose identity embedding is nearest this face's if under the threshold, and the
        distances to every lost track with a known identity."""
        pool = [t for t in missing + self.ended if t.samples]
        if not pool:
            return None, {}
        emb = identity.embed(frame, Face(box=box_of(pts), landmarks=pts))
        dists = {t.id: identity.distance(emb, t.identity()) for t in pool}
        best = min(pool, key=lambda t: dists[t.id])
        return (best if dists[best.id] < self.settings.reid_threshold else None), dists

    def _update(self, t: _Track, pts: np.ndarray, frame: np.ndarray) -> Face:
        box = box_of(pts)
        if t.miss:
            t.filter.reset()
        t.velocity = 0.5 * t.velocity + 0.5 * (_center(box) - _center(t.box)) / (t.miss + 1)
        t.box, t.miss = box, 0
        smooth = t.filter(pts).astype(np.float32)
        face = Face(box=box_of(smooth), score=t.score, landmarks=smooth, track_id=t.id)
        area = face.area
        if area > 1.15 * t.best_area and (t.best_frame < 0 or self.index - t.best_frame >= CHIP_EVERY):
            self._capture(t, frame, face)
        if len(t.samples) < IDENTITY_SAMPLES and self.index - t.sampled_at >= IDENTITY_EVERY:
            t.samples.append(t.chip if t.best_frame == self.index else identity.chip(frame, face))
            t.sampled_at, t.embedding = self.index, None
        return face

    def _capture(self, t: _Track, frame: np.ndarray, face: Face) -> None:
        """Keep this frame's view of the face: aligned chip (identity) and thumbnail (preview)."""
        t.best_area, t.best_frame = face.area, self.index
        t.chip = identity.chip(frame, face)
        t.thumb = thumbnail(frame, face)

    def _end(self, t: _Track) -> None:
        self.active.remove(t)
        if t.mesh is not None:
            t.mesh.close()
            t.mesh = None
        self.ended.append(t)

    # ---- results -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for t in list(self.active):
            self._end(t)
        if self._own_detector:
            self.detector.close()

    def partial(self, start: int, stop: int) -> FaceTracks:
        """Frames start..stop-1 so far as FaceTracks numbered as the whole video's (frames before `start` empty,
        none after `stop`), tracks grouped into persons as far as they are known: what a caller may use before
        the video ends. Only frames before `final_upto()` are as `result()` will give them."""
        by_id = {t.id: t for t in self.active + self.ended + self.done}
        known = tuple((i, len(by_id[i].samples)) for i in sorted(by_id))
        if self._grouped[0] != known:  # regroup only when a track or a view is added
            self._grouped = (known, group_tracks(list(by_id), lambda t: by_id[t].identity(), self.frames,
                                                 identity.PERSON_THRESHOLD))
        frames = [[]] * start + self.frames[start:stop]  # only read
        return FaceTracks.from_faces(frames, width=self.shape[1], height=self.shape[0], fps=self.fps,
                                     persons=self._grouped[1],
                                     shot_starts=np.array([s for s in self.shot_starts if s < stop], np.int32))

    def result(self, source: str = "") -> FaceTracks:
        """All frames so far as FaceTracks: short gaps inside tracks interpolated, tracks grouped into persons."""
        tracks = self.active + self.ended + self.done
        by_id = {t.id: t for t in tracks}
        persons = group_tracks(list(by_id), lambda t: by_id[t].identity(), self.frames, identity.PERSON_THRESHOLD)
        embeddings = {t.id: t.embedding for t in tracks if t.embedding is not None}
        return FaceTracks.from_faces(
            self.frames, width=self.shape[1], height=self.shape[0], fps=self.fps, source=source,
            chips={t.id: t.chip for t in tracks if t.chip is not None},
            thumbs={t.id: t.thumb for t in tracks if t.thumb is not None},
            best_frame={t.id: t.best_frame for t in tracks if t.best_frame >= 0},
            embeddings=embeddings, persons=persons, shot_starts=np.array(self.shot_starts, np.int32))


def thumbnail(frame: np.ndarray, face: Face, side: int = THUMB_SIDE) -> np.ndarray:
    """The face's crop box, scaled to fit `side` pixels."""
    top, bottom, left, right = crop_box(face, frame.shape)
    crop = frame[top:bottom, left:right]
    scale = side / max(crop.shape[:2])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def fill_gaps(frames: list[list[Face]], max_gap: int) -> None:
    """Interpolate a track across misses of at most `max_gap` frames (in place, marked `interpolated`)."""
    last: dict[int, tuple[int, Face]] = {}
    for i in range(len(frames)):
        bridge(frames, i, last, max_gap)


def bridge(frames: list[list[Face]], i: int, last: dict[int, tuple[int, Face]], max_gap: int) -> None:
    """Frame i's faces close their tracks' gaps of at most `max_gap` frames since `last` (their previous faces):
    the frames between get interpolated faces (marked `interpolated`). `last` is updated. Frame by frame in order,
    this is `fill_gaps`: only frames after i - max_gap - 1 change."""
    for face in list(frames[i]):
        prev = last.get(face.track_id)
        if prev is not None and 1 < i - prev[0] <= max_gap + 1:
            j0, f0 = prev
            for j in range(j0 + 1, i):
                w = (j - j0) / (i - j0)
                lm = ((1 - w) * f0.landmarks + w * face.landmarks).astype(np.float32)
                frames[j].append(Face(box=box_of(lm), score=f0.score, landmarks=lm, track_id=face.track_id,
                                      extra={"interpolated": True}))
        last[face.track_id] = (i, face)
