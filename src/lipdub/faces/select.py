"""Which face speaks: by id, by a pixel inside it, by a reference photo, or the most present one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lipdub.errors import NoFaceError
from lipdub.faces import identity
from lipdub.faces.tracks import FaceTracks


class Selection(int):
    """A track id (an int) that also says why it was chosen: `.reason`, one line for the CLI.

    Use it as the id (`int(sel)`, `sel == 2`) or unpack it: `track_id, reason = select(...)`.
    """

    reason: str

    def __new__(cls, track_id: int, reason: str) -> Selection:
        obj = super().__new__(cls, track_id)
        obj.reason = reason
        return obj

    def __iter__(self) -> Iterator[int | str]:
        return iter((int(self), self.reason))


def _name(tracks: FaceTracks) -> str | None:
    return tracks.source or None


def select(tracks: FaceTracks, face_id: int | None = None, at: tuple[float, float] | None = None,
           like: str | os.PathLike[str] | np.ndarray | None = None) -> Selection:
    """The chosen track id, with `.reason` ("chose face 1 of 3: present in most frames").

    `face_id`: that track. `at`: the face containing pixel (x, y) in the first frame where any face does.
    `like`: the track whose identity embedding is nearest a reference photo's face (path or RGB array).
    Nothing: the face present in most frames, largest on ties. Raises NoFaceError.
    """
    ids = tracks.track_ids
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
    rows = tracks.summary()
    best = max(rows, key=lambda r: (r["frames"], r["size"][0] * r["size"][1], -r["id"]))
    why = "the only face" if len(rows) == 1 else (
        "present in most frames" if tracks.num_frames > 1 and sum(r["frames"] == best["frames"] for r in rows) == 1
        else "the largest")
    return Selection(best["id"], f"chose face {best['id']} {of}: {why}")


def _select_at(tracks: FaceTracks, at: tuple[float, float], of: str) -> Selection:
    x, y = float(at[0]), float(at[1])
    for i in np.unique(tracks.frame_index):
        hits = [f for f in tracks.faces_in(int(i)) if f.contains(x, y)]
        if hits:
            face = min(hits, key=lambda f: float(np.hypot(*(((f.box[:2] + f.box[2:]) / 2) - (x, y)))))
            where = "" if tracks.num_frames == 1 else f" in frame {int(i)}"
            return Selection(face.track_id, f"chose face {face.track_id} {of}: under pixel {x:g},{y:g}{where}")
    raise NoFaceError(f"no face covers pixel {x:g},{y:g}", _name(tracks))


def track_embedding(tracks: FaceTracks, track_id: int) -> np.ndarray | None:
    """Identity embedding of a track's best view (computed once, kept on `tracks`)."""
    if track_id not in tracks.embeddings and track_id in tracks.chips:
        tracks.embeddings[track_id] = identity.embed_chip(tracks.chips[track_id])
    return tracks.embeddings.get(track_id)


def reference_embedding(like: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """Embedding of the largest face of a reference photo. NoFaceError when it shows no face."""
    from lipdub.faces.detect import detect_faces

    if isinstance(like, np.ndarray):
        image, name = like, None
    else:
        from lipdub.media import read_image

        image, name = read_image(like), Path(like)
    faces = detect_faces(image)
    if not faces:
        raise NoFaceError("no face found in the reference photo", name)
    return identity.embed(image, max(faces, key=lambda f: f.area))


def _select_like(tracks: FaceTracks, like: str | os.PathLike[str] | np.ndarray, of: str) -> Selection:
    ref = reference_embedding(like)
    dists = {tid: identity.distance(ref, e) for tid in tracks.track_ids
             if (e := track_embedding(tracks, tid)) is not None}
    if not dists:
        raise NoFaceError("no face to compare with the reference photo", _name(tracks))
    tid = min(dists, key=dists.get)
    if dists[tid] >= identity.THRESHOLD:
        raise NoFaceError(f"no face resembles the reference photo (nearest: face {tid}, distance "
                          f"{dists[tid]:.2f} >= {identity.THRESHOLD})", _name(tracks))
    return Selection(tid, f"chose face {tid} {of}: looks like the reference photo (distance {dists[tid]:.2f})")
