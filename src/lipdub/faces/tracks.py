"""FaceTracks: every face of every frame of one media file, by track and by person; compact, saved to the cache.

A track is one appearance of a face inside one shot; a person groups the tracks of one identity across shots
(lipdub.faces.persons). Person ids are what users choose (`--face`, `lipdub faces`, the web picker):
`face()` and `strength()` take a person id; `track()`, `frames_of()` and `summary()` work per track.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipdub.faces.landmarks import NUM_LANDMARKS
from lipdub.faces.types import Face
from lipdub.media.fade import fade_weights

FORMAT_VERSION = 2  # bump whenever detection, tracking or grouping gives different results for the same settings
# 2: shot boundaries end tracks; tracks grouped into persons (shot_starts, persons, embeddings saved)


@dataclass
class FaceTracks:
    """Detections of a whole media file as flat arrays, one row per (frame, face), sorted by frame then x.

    `landmarks` are float32 (N, 478, 2) full-frame pixels; `interpolated` marks rows filled across a short
    miss. `chips` (aligned 150x150 faces) and `thumbs` (preview crops) hold each track's best frame, so
    identity selection and previews work from the cache without decoding the video again. `shot_starts` is
    the first frame of every shot ([0] for a still or a single shot); `persons` maps track id -> person id
    (a track missing from it is a person of its own); `embeddings` are the tracks' identity embeddings.
    """

    num_frames: int
    width: int
    height: int
    fps: float | None = None
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    track_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_LANDMARKS, 2), np.float32))
    interpolated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    chips: dict[int, np.ndarray] = field(default_factory=dict)
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)
    best_frame: dict[int, int] = field(default_factory=dict)
    source: str = ""
    embeddings: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # also filled lazily
    persons: dict[int, int] = field(default_factory=dict)
    shot_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int32))

    def __post_init__(self) -> None:
        order = np.lexsort((self.boxes[:, 0] + self.boxes[:, 2], self.frame_index))
        for name in ("frame_index", "track_index", "boxes", "scores", "landmarks", "interpolated"):
            setattr(self, name, getattr(self, name)[order])
        self._starts = np.searchsorted(self.frame_index, np.arange(self.num_frames + 1))
        self.person_index = np.array([self.person_of(int(t)) for t in self.track_index], np.int32)

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def track_ids(self) -> list[int]:
        return sorted(int(t) for t in np.unique(self.track_index))

    @property
    def person_ids(self) -> list[int]:
        return sorted(int(p) for p in np.unique(self.person_index))

    def person_of(self, track_id: int) -> int:
        return int(self.persons.get(int(track_id), track_id))

    def tracks_of(self, person: int) -> list[int]:
        """Track ids of one person, in order of appearance."""
        return sorted(int(t) for t in np.unique(self.track_index[self.person_index == person]))

    def shot_of(self, frame_index: int) -> int:
        """Index of the shot a frame belongs to."""
        return int(np.searchsorted(self.shot_starts, frame_index, side="right") - 1)

    def __len__(self) -> int:
        return len(self.frame_index)

    def _face(self, row: int) -> Face:
        face = Face(box=self.boxes[row].copy(), score=float(self.scores[row]), landmarks=self.landmarks[row].copy(),
                    track_id=int(self.track_index[row]), person_id=int(self.person_index[row]))
        if self.interpolated[row]:
            face.extra["interpolated"] = True
        return face

    def faces_in(self, frame_index: int) -> list[Face]:
        """Faces of one frame (track_id set), left to right; [] for a frame without faces."""
        if not 0 <= frame_index < self.num_frames:
            return []
        return [self._face(r) for r in range(self._starts[frame_index], self._starts[frame_index + 1])]

    def face(self, person: int, frame_index: int) -> Face | None:
        """The face of one person in one frame, or None when they are absent there."""
        for face in self.faces_in(frame_index):
            if face.person_id == person:
                return face
        return None

    def track(self, track_id: int) -> dict[int, Face]:
        """{frame index: Face} of one track."""
        rows = np.flatnonzero(self.track_index == track_id)
        return {int(self.frame_index[r]): self._face(int(r)) for r in rows}

    def frames_of(self, track_id: int) -> np.ndarray:
        """Sorted frame indices where the track is present."""
        return self.frame_index[self.track_index == track_id]

    def strength(self, person: int, fade_frames: int = 3) -> np.ndarray:
        """(num_frames,) float32 blend weight of one person: 0 where absent, ramping up over `fade_frames`
        frames after a gap and down before one, so a generated mouth fades in and out instead of popping.
        The start and end of the media and of every shot are not gaps: a cut stays a hard cut."""
        present = np.zeros(self.num_frames, bool)
        present[self.frame_index[self.person_index == person]] = True
        edges = [*[int(s) for s in self.shot_starts if 0 < s < self.num_frames], self.num_frames]
        out, start = np.zeros(self.num_frames, np.float32), 0
        for end in edges:
            out[start:end] = fade_weights(present[start:end], fade_frames + 1)
            start = end
        return out

    def summary(self) -> list[dict]:
        """Per track: id, person, shot, frames present, first/last frame, mean box, mean size, best frame."""
        rows = []
        for tid in self.track_ids:
            sel = self.track_index == tid
            frames, boxes = self.frame_index[sel], self.boxes[sel]
            mean = boxes.mean(0)
            rows.append({
                "id": tid,
                "person": self.person_of(tid),
                "shot": self.shot_of(int(frames.min())),
                "frames": int(sel.sum()),
                "first_frame": int(frames.min()),
                "last_frame": int(frames.max()),
                "box": [round(float(v), 1) for v in mean],
                "size": [round(float(mean[2] - mean[0]), 1), round(float(mean[3] - mean[1]), 1)],
                "best_frame": int(self.best_frame.get(tid, frames[0])),
            })
        return rows

    def person_summary(self) -> list[dict]:
        """Per person: id, frames present, first/last frame, mean box and size of its faces, and its tracks
        (`id`, `shot`, `first_frame`, `last_frame`, `frames`, `best_frame`; thumbnails in `.thumbs[id]`)."""
        by_track = {r["id"]: r for r in self.summary()}
        rows = []
        for pid in self.person_ids:
            own = [by_track[t] for t in self.tracks_of(pid)]
            frames = sum(r["frames"] for r in own)
            box = [round(sum(r["box"][k] * r["frames"] for r in own) / frames, 1) for k in range(4)]
            rows.append({"id": pid, "frames": frames, "first_frame": min(r["first_frame"] for r in own),
                         "last_frame": max(r["last_frame"] for r in own), "box": box,
                         "size": [round(box[2] - box[0], 1), round(box[3] - box[1], 1)],
                         "tracks": [{k: r[k] for k in ("id", "shot", "first_frame", "last_frame", "frames",
                                                      "best_frame")} for r in own]})
        return rows

    # ---- storage -------------------------------------------------------------------------------------
    def save(self, file: str | Path | io.IOBase, extra_meta: dict | None = None) -> None:
        """Write as one uncompressed .npz (loading it is a memory copy; landmarks do not compress)."""
        ids = sorted(self.chips)
        meta = {"format": FORMAT_VERSION, "num_frames": self.num_frames, "width": self.width,
                "height": self.height, "fps": self.fps, "source": self.source, "chip_ids": ids,
                "thumb_ids": sorted(self.thumbs), "best_frame": {str(k): v for k, v in self.best_frame.items()},
                "persons": {str(k): v for k, v in self.persons.items()}, "shot_starts": self.shot_starts.tolist(),
                "embedding_ids": sorted(self.embeddings), **(extra_meta or {})}
        arrays = ({f"chip_{i}": self.chips[i] for i in ids} | {f"thumb_{i}": t for i, t in self.thumbs.items()}
                  | {f"embedding_{i}": e for i, e in self.embeddings.items()})
        np.savez(file, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), frame_index=self.frame_index,
                 track_index=self.track_index, boxes=self.boxes, scores=self.scores, landmarks=self.landmarks,
                 interpolated=self.interpolated, **arrays)

    @classmethod
    def load(cls, file: str | Path | io.IOBase) -> tuple[FaceTracks, dict]:
        """(tracks, meta). Raises ValueError/OSError/KeyError on a file that is not a FaceTracks save."""
        with np.load(file, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {meta.get('format')} != {FORMAT_VERSION}")
            tracks = cls(num_frames=int(meta["num_frames"]), width=int(meta["width"]), height=int(meta["height"]),
                         fps=meta["fps"], frame_index=z["frame_index"], track_index=z["track_index"],
                         boxes=z["boxes"], scores=z["scores"], landmarks=z["landmarks"],
                         interpolated=z["interpolated"], source=meta.get("source", ""),
                         chips={i: z[f"chip_{i}"] for i in meta["chip_ids"]},
                         thumbs={i: z[f"thumb_{i}"] for i in meta["thumb_ids"]},
                         best_frame={int(k): int(v) for k, v in meta["best_frame"].items()},
                         embeddings={i: z[f"embedding_{i}"] for i in meta["embedding_ids"]},
                         persons={int(k): int(v) for k, v in meta["persons"].items()},
                         shot_starts=np.array(meta["shot_starts"], np.int32))
        if tracks.landmarks.shape[1:] != (NUM_LANDMARKS, 2) or len(tracks.boxes) != len(tracks.frame_index):
            raise ValueError("inconsistent arrays")
        return tracks, meta

    @classmethod
    def from_faces(cls, per_frame: list[list[Face]], width: int, height: int, fps: float | None = None,
                   **kwargs) -> FaceTracks:
        """Build from lists of faces per frame (each with track_id and landmarks)."""
        rows = [(i, f) for i, faces in enumerate(per_frame) for f in faces]
        return cls(
            num_frames=len(per_frame), width=width, height=height, fps=fps,
            frame_index=np.array([i for i, _ in rows], np.int32),
            track_index=np.array([f.track_id for _, f in rows], np.int32),
            boxes=np.array([f.box[:4] for _, f in rows], np.float32).reshape(-1, 4),
            scores=np.array([f.score for _, f in rows], np.float32),
            landmarks=np.array([f.landmarks for _, f in rows], np.float32).reshape(-1, NUM_LANDMARKS, 2),
            interpolated=np.array([bool(f.extra.get("interpolated")) for _, f in rows], bool),
            **kwargs)
