"""FaceMesh landmarks (478 points) on a face crop: the point sets we use and the crop <-> frame mapping."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import types
from collections.abc import Iterator

import cv2
import numpy as np

NUM_LANDMARKS = 478
# FaceMesh face-oval ring, clockwise from the top of the forehead (mediapipe FACEMESH_FACE_OVAL).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
# The lower half of the oval, cheek to cheek through the chin: jaw line + chin.
JAW = FACE_OVAL[FACE_OVAL.index(454):FACE_OVAL.index(234) + 1]
CHIN = 152
NOSE_TIP = 1
LIPS = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415]


def box_of(points: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) float32 extent of (N, 2) points."""
    return np.concatenate([points.min(0), points.max(0)]).astype(np.float32)


def crop_matrix(center: tuple[float, float], side: float, size: int) -> np.ndarray:
    """2x3 affine mapping the square of `side` pixels around `center` onto a `size` x `size` image."""
    s = size / max(side, 1.0)
    return np.array([[s, 0.0, size / 2 - center[0] * s], [0.0, s, size / 2 - center[1] * s]], np.float32)


def square_around(box: np.ndarray, scale: float) -> tuple[tuple[float, float], float]:
    """Center and side of a square `scale` times the larger side of `box`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (float(cx), float(cy)), float(max(box[2] - box[0], box[3] - box[1]) * scale)


_QUIET = threading.RLock()  # fd 2 is process-wide: one redirection at a time, or a thread restores /dev/null


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ log lines mediapipe writes to fd 2 while a graph starts (no env var does)."""
    with _QUIET:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _Deferred(types.ModuleType):
    """Stands in for a module during an import and loads the real one on first use of an attribute."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__name__), name)


_import_lock = threading.Lock()
_SOLUTIONS = "mediapipe.python.solutions"
# What `import mediapipe` loads and we never use (~1.5 CPU-s of a cold start): matplotlib (the drawing helpers'),
# the Tasks API (its audio part imports sounddevice) and the other legacy solutions (objectron imports attr).
_UNUSED = ("matplotlib", "matplotlib.pyplot", "mediapipe.tasks", "mediapipe.tasks.python",
           *(f"{_SOLUTIONS}.{name}" for name in ("drawing_styles", "drawing_utils", "hands", "holistic",
                                                  "objectron", "pose", "selfie_segmentation")))


def solutions() -> types.ModuleType:
    """mediapipe's legacy solutions (FaceMesh, face detection), imported without what we never use (`_UNUSED`).
    Stand-ins take those modules' place during mediapipe's import; a later use of one loads the real module."""
    with _import_lock:
        if "mediapipe" not in sys.modules and "matplotlib" not in sys.modules:
            stand_ins = {name: _Deferred(name) for name in _UNUSED}
            sys.modules.update(stand_ins)
            for name, module in stand_ins.items():  # `import a.b as c` reads b as an attribute of a
                parent, _, child = name.rpartition(".")
                if parent in stand_ins:
                    setattr(stand_ins[parent], child, module)
            try:
                solutions = importlib.import_module(_SOLUTIONS)
                for name, module in stand_ins.items():
                    parent, _, child = name.rpartition(".")
                    if parent == _SOLUTIONS:
                        setattr(solutions, child, module)
            finally:
                for name, module in stand_ins.items():
                    if sys.modules.get(name) is module:
                        del sys.modules[name]
    return importlib.import_module(_SOLUTIONS)


def _new_face_mesh(static: bool, max_faces: int):  # -> mediapipe FaceMesh
    face_mesh = solutions().face_mesh

    with quiet_native_stderr():
        mesh = face_mesh.FaceMesh(static_image_mode=static, max_num_faces=max_faces, refine_landmarks=True,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5)
        warm_up(mesh)
    return mesh


def warm_up(solution) -> None:  # noqa: ANN001 - a mediapipe SolutionBase
    """Run once on a blank image: the graph opens its models (and logs) now, while stderr is quiet."""
    solution.process(np.zeros((64, 64, 3), np.uint8))


class Mesh:
    """FaceMesh on a square crop of the frame, points mapped back to full-frame pixels.

    `static=True` detects afresh in every crop (stills, new faces). `static=False` is mediapipe's tracking
    mode: it follows the landmarks of the previous call, so one instance serves one face track.
    """

    def __init__(self, static: bool, size: int = 256) -> None:
        self.static = static
        self.size = size
        self._mesh = _new_face_mesh(static, 2 if static else 1)
        self._quiet = True

    def close(self) -> None:
        self._mesh.close()

    def reset(self) -> None:
        """Forget the tracked face (tracking mode)."""
        with quiet_native_stderr():  # reset restarts the graph, which logs again while its models open
            self._mesh.reset()
            warm_up(self._mesh)

    def __call__(self, frame: np.ndarray, center: tuple[float, float], side: float) -> np.ndarray | None:
        """(478, 2) float32 full-frame landmarks of the face nearest the crop center, or None."""
        m = crop_matrix(center, side, self.size)
        crop = cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        if self._quiet:  # the graph logs once when it first projects landmarks
            with quiet_native_stderr():
                result = self._mesh.process(crop)
            self._quiet = not result.multi_face_landmarks
        else:
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        best, best_d = None, np.inf
        for face in result.multi_face_landmarks:
            pts = np.array([(p.x, p.y) for p in face.landmark], np.float32) * self.size
            d = float(np.hypot(*(pts.mean(0) - self.size / 2)))
            if d < best_d:
                best, best_d = pts, d
        if best is None or best_d > 0.3 * self.size:  # the face found is a neighbour, not ours
            return None
        return (best - m[:, 2]) / m[0, 0]
