"""Which person speaks: by id, by a pixel inside their face, by a reference photo, or the one with most evidence.

Ids are person ids (lipdub.faces.persons): one person may have several tracks, one per shot they appear in.
The default is the person on screen longest, each frame weighted by evidence that it is a real, usable face:
the detector's score x a size factor that only discounts faces too small to animate (under SMALL_FACE of the
frame's shorter side). Size alone never wins: a large false face with a weak score loses to a real one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lipdub.errors import NoFaceError
from lipdub.faces import identity
from lipdub.faces.tracks import FaceTracks

SMALL_FACE = 0.2  # faces smaller than this share of the frame's shorter side count proportionally less


class Selection(int):
    """A person id (an int) that also says why it was chosen: `.reason`, one line for the CLI.

    Use it as the id (`int(sel)`, `sel == 2`) or unpack it: `person, reason = select(...)`.
    """

    reason: str

    def __new__(cls, person: int, reason: str) -> Selection:
        obj = super().__new__(cls, person)
        obj.reason = reason
        return obj

    def __iter__(self) -> Iterator[int | str]:
        return iter((int(self), self.reason))


def _name(tracks: FaceTracks) -> str | None:
    return tracks.source or None


def select(tracks: FaceTracks, face_id: int | None = None, at: tuple[float, float] | None = None,
           like: str | os.PathLike[str] | np.ndarray | None = None) -> Selection:
    """The chosen person id, with `.reason` ("chose face 1 of 3: on screen longest").

    `face_id`: that person. `at`: the person whose face contains pixel (x, y) in the first frame where any
    face does. `like`: the person whose identity is nearest a reference photo's face (path or RGB array).
    Nothing: the person with the most evidence (see `evidence`). Raises NoFaceError.
    """
    ids = tracks.person_ids
    if not ids:
        raise NoFaceError("no face found", _name(tracks))
    of = f"of {len(ids)}"
    if face_id is not None:
        if face_id not in ids:
            raise NoFaceError(f"there is no face {face_id} (faces: {', '.join(map(str, ids))})", _name(tracks))
        return Selection(face_id, f"chose face {face_id} {of}: asked for by id")
    if at is not None:
        return _select_at(tracks, at, of)
    if like is not None:
        return _select_like(tracks, like, of)
    score = evidence(tracks)
    best = max(ids, key=lambda p: (score[p], -p))
    frames = {p: int((tracks.person_index == p).sum()) for p in ids}
    if len(ids) == 1:
        why = "the only face"
    elif tracks.num_frames > 1 and frames[best] > max(f for p, f in frames.items() if p != best):
        why = f"on screen longest ({frames[best]} of {tracks.num_frames} frames)"
    else:
        why = f"the clearest face (evidence {score[best]:.2f} vs {max(v for p, v in score.items() if p != best):.2f})"
    return Selection(best, f"chose face {best} {of}: {why}")


def evidence(tracks: FaceTracks) -> dict[int, float]:
    """{person: frames on screen, each weighted by detector score x size factor}, as a share of all frames."""
    side = np.sqrt(np.maximum(0, tracks.boxes[:, 2] - tracks.boxes[:, 0])
                   * np.maximum(0, tracks.boxes[:, 3] - tracks.boxes[:, 1]))
    size = np.minimum(1.0, side / (SMALL_FACE * max(1, min(tracks.width, tracks.height))))
    weight = np.clip(tracks.scores, 0.0, 1.0) * size
    return {p: float(weight[tracks.person_index == p].sum()) / max(1, tracks.num_frames)
            for p in tracks.person_ids}


def _select_at(tracks: FaceTracks, at: tuple[float, float], of: str) -> Selection:
    x, y = float(at[0]), float(at[1])
    for i in np.unique(tracks.frame_index):
        hits = [f for f in tracks.faces_in(int(i)) if f.contains(x, y)]
        if hits:
            face = min(hits, key=lambda f: float(np.hypot(*(((f.box[:2] + f.box[2:]) / 2) - (x, y)))))
            where = "" if tracks.num_frames == 1 else f" in frame {int(i)}"
            return Selection(face.person_id, f"chose face {face.person_id} {of}: under pixel {x:g},{y:g}{where}")
    raise NoFaceError(f"no face covers pixel {x:g},{y:g}", _name(tracks))


def track_embedding(tracks: FaceTracks, track_id: int) -> np.ndarray | None:
    """Identity embedding of a track's best view (computed once, kept on `tracks`)."""
    if track_id not in tracks.embeddings and track_id in tracks.chips:
        tracks.embeddings[track_id] = identity.embed_chip(tracks.chips[track_id])
    return tracks.embeddings.get(track_id)


def reference_spec(spec: str | os.PathLike[str]) -> tuple[Path, int | None]:
    """`photo.jpg` -> (photo.jpg, None); `photo.jpg:face=2` -> (photo.jpg, 2) unless a file has that whole name."""
    text = str(spec)
    match = re.fullmatch(r"(.+):face=(\d+)", text)
    if match is None or Path(text).exists():
        return Path(text), None
    return Path(match[1]), int(match[2])


def reference_embedding(like: str | os.PathLike[str] | np.ndarray, face: int | None = None) -> np.ndarray:
    """Embedding of the face in a reference photo (a path may end in `:face=N`, see `reference_spec`).

    With several faces the caller must say which (`face`, or `:face=N`), numbered as `lipdub faces` numbers a
    photo's faces (0 = leftmost); a missing photo, no face or an ambiguous photo raise a one-line LipdubError.
    """
    from lipdub.faces.detect import detect_faces

    if isinstance(like, np.ndarray):
        image, name = like, None
    else:
        from lipdub.media import read_image
        from lipdub.media.info import check_exists

        name, spec_face = reference_spec(like)
        face = spec_face if face is None else face
        check_exists(name)
        image = read_image(name)
    faces = detect_faces(image)
    if not faces:
        raise NoFaceError("no face found in the reference photo", name)
    if face is None and len(faces) > 1:
        raise NoFaceError(f"the reference photo shows {len(faces)} faces: say which one as "
                          f"{name}:face=N (N: {', '.join(str(i) for i in range(len(faces)))}, left to right, as "
                          "`lipdub faces` numbers them)", name)
    if face is not None and not 0 <= face < len(faces):
        raise NoFaceError(f"the reference photo has no face {face} (faces: "
                          f"{', '.join(str(i) for i in range(len(faces)))})", name)
    return identity.embed(image, faces[face or 0])


def person_distance(tracks: FaceTracks, person: int, ref: np.ndarray) -> float | None:
    """Distance from an embedding to the nearest of a person's tracks (None: no track has an identity)."""
    dists = [identity.distance(ref, e) for t in tracks.tracks_of(person)
             if (e := track_embedding(tracks, t)) is not None]
    return min(dists) if dists else None


def _select_like(tracks: FaceTracks, like: str | os.PathLike[str] | np.ndarray, of: str) -> Selection:
    ref = reference_embedding(like)
    dists = {p: d for p in tracks.person_ids if (d := person_distance(tracks, p, ref)) is not None}
    if not dists:
        raise NoFaceError("no face to compare with the reference photo", _name(tracks))
    pid = min(dists, key=dists.get)
    if dists[pid] >= identity.THRESHOLD:
        raise NoFaceError(f"no face resembles the reference photo (nearest: face {pid}, distance "
                          f"{dists[pid]:.2f} >= {identity.THRESHOLD})", _name(tracks))
    return Selection(pid, f"chose face {pid} {of}: looks like the reference photo (distance {dists[pid]:.2f})")
