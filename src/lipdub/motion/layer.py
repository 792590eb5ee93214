"""A still that lives: every output frame is the photo with each face moved by its own plan.

Speaking faces follow their speech (the chosen style); every other face only blinks (`idle`). Each face's
warp touches only its own head region, shrunk where a neighbour is near, and the faces are warped one after
the other, so two moving heads never pull at the same pixels.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from lipdub.faces.types import Face
from lipdub.motion.plan import Controls, Voice, plan_face
from lipdub.motion.warp import FADE, HeadWarp


class _Scratch(threading.local):
    """One face's head-warp buffers, reused frame after frame (each thread has its own): fresh multi-megabyte
    arrays every frame cost more than the warp, in page faults, as the allocator returns them to the system."""

    def __init__(self, roi: tuple[int, int, int, int]):
        top, bottom, left, right = roi
        shape = (max(bottom - top, 0), max(right - left, 0))
        self.map = np.empty((*shape, 2), np.float32)
        self.bgra = np.empty((*shape, 4), np.uint8)
        self.moved = np.empty((*shape, 4), np.uint8)


@dataclasses.dataclass
class _Mover:
    face: Face
    warp: HeadWarp
    controls: Controls
    scratch: _Scratch = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.scratch = _Scratch(self.warp.roi)

    def pose(self, i: int) -> tuple[np.ndarray, float, float]:
        """(yaw, pitch, roll, shift across, shift down) in radians and pixels, blink closure, brow lift (px)."""
        c, height = self.controls, self.warp.ax.height
        coef = np.array([c.yaw[i], c.pitch[i], c.roll[i], c.tx[i] * height, c.ty[i] * height], np.float32)
        return coef, float(c.blink[i]), float(c.brow[i] * height)


class Motion:
    """Per-frame moving copies of one still. `frame(i) -> (frame, {track_id: Face})`; faces keep their ids."""

    def __init__(self, still: np.ndarray, faces: Sequence[Face], voices: dict[int, Voice], fps: float,
                 n_frames: int, style: str = "natural", seed: int = 0):
        self.still = still
        self.n_frames = n_frames
        faces = [f for f in faces if f.landmarks is not None]
        reach = _reaches(faces, set(voices))
        self.movers: list[_Mover] = []
        self._faces: tuple[int, dict] = (-1, {})
        # quiet faces first, speakers last: a speaker's head warp then carries any blink under its fade
        order = sorted(range(len(faces)), key=lambda k: faces[k].track_id in voices)
        for k in order:
            face = faces[k]
            tid = face.track_id
            speaking = tid in voices
            voice = voices[tid] if speaking else Voice.silent(n_frames)
            face_seed = (seed * 1_000_003 + 7919 * (k + 1) + (tid or 0)) % 2 ** 32
            controls = plan_face(voice, fps, style if speaking else "idle", face_seed)
            self.movers.append(_Mover(face, HeadWarp(face.landmarks, still.shape, reach[k]), controls))

    def faces(self, i: int) -> dict[int | None, Face]:
        """Each face as it is in output frame i (landmarks and box moved with the warp)."""
        out = {}
        for m in self.movers:
            coef, close, lift = m.pose(i)
            lm = m.warp.move_landmarks(coef, close, lift).astype(np.float32)
            shift = (lm - m.warp.lm).mean(axis=0)
            box = np.asarray(m.face.box, np.float32) + np.tile(shift, 2).astype(np.float32)
            out[m.face.track_id] = dataclasses.replace(m.face, box=box, landmarks=lm)
        return out

    def face(self, i: int, track_id: int | None) -> Face | None:
        """One face as it is in output frame i (the faces of the latest frame asked for are kept)."""
        if self._faces[0] != i:
            self._faces = (i, self.faces(i))
        return self._faces[1].get(track_id)

    def frame(self, i: int) -> tuple[np.ndarray, dict[int | None, Face]]:
        """Output frame i: the photo with every face moved, and the faces as they now are."""
        out = self.apply(i, self.still)
        self._faces = (i, self.faces(i))
        return out, self._faces[1]

    def apply(self, i: int, image: np.ndarray) -> np.ndarray:
        """`image` (the still, or the still with a new mouth drawn on it) with every face moved for frame i."""
        out = image.copy()
        for m in self.movers:
            coef, close, lift = m.pose(i)
            eyes = m.warp.eye_map(close, lift)  # absolute coordinates into the whole frame
            if eyes is not None:
                top, bottom, left, right = m.warp.eye_roi
                out[top:bottom, left:right] = cv2.remap(out, eyes, None, cv2.INTER_LINEAR,
                                                        borderMode=cv2.BORDER_REPLICATE)
            head = m.warp.head_map(coef, m.scratch.map)  # relative to each pixel of the head's ROI
            if head is not None:
                top, bottom, left, right = m.warp.roi
                _move(out[top:bottom, left:right], head, m.scratch)
        return out


def _move(roi: np.ndarray, head: np.ndarray, scratch: _Scratch) -> None:
    """Move the ROI (a view into the frame) in place by the relative map `head`. A colour ROI is remapped as
    BGRA: OpenCV's vectorised bilinear remap serves 4 channels in about half the time of 3 (the same pixels)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP
    if roi.ndim == 3 and roi.shape[2] == 3:
        cv2.cvtColor(roi, cv2.COLOR_BGR2BGRA, dst=scratch.bgra)
        cv2.remap(scratch.bgra, head, None, flags, dst=scratch.moved, borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(scratch.moved, cv2.COLOR_BGRA2BGR, dst=roi)
    else:
        roi[...] = cv2.remap(roi, head, None, flags, borderMode=cv2.BORDER_REPLICATE)


def _reaches(faces: list[Face], speaking: set) -> list[float]:
    """How far each face's head warp may fade out (1 = full): a speaker's fade stops short of the other
    faces, and two speakers share the room between them."""
    from lipdub.motion.warp import FaceAxes

    axes = [FaceAxes(np.asarray(f.landmarks, np.float64)[:, :2]) for f in faces]
    reach = [1.0] * len(faces)
    for k, ak in enumerate(axes):
        if faces[k].track_id not in speaking:
            continue
        for j, aj in enumerate(axes):
            if j == k:
                continue
            d = float(np.linalg.norm(aj.center - ak.center))
            own = _radius(ak, aj.center - ak.center)
            if faces[j].track_id in speaking:
                room = d * own / (own + _radius(aj, ak.center - aj.center))
            else:
                room = d - 0.6 * aj.width
            reach[k] = min(reach[k], float(np.clip((room / own - 1) / FADE, 0.15, 1.0)))
    return reach


def _radius(ax, direction: np.ndarray) -> float:
    """Radius of a face's full-motion ellipse (see HeadWarp.head_mask) towards `direction`."""
    d = direction / max(float(np.linalg.norm(direction)), 1e-6)
    x, y = float(d @ ax.u), float(d @ ax.v)
    return 1.0 / float(np.hypot(x / (0.72 * ax.width), y / ((0.78 if y < 0 else 0.62) * ax.height)))
