"""Who a face is: dlib's 128-d ResNet embedding of an aligned face chip; small distance = same person.

Measured on the shared test media (benchmarks/identity_threshold.py, 63 faces of 14 people): one view of a
person against another of the same recording 0.10-0.51, of another recording (glasses on/off) up to 0.58;
different people 0.54-1.02. Means of 3 views (what a track's identity is, lipdub.faces.tracker): the same
person <= 0.40 (one recording <= 0.32), different people >= 0.56. PERSON_THRESHOLD 0.45 groups a video's
tracks with a margin of >= 0.09 to different people even for single views; a reference photo is matched
to the nearest person under THRESHOLD, the looser 0.6, because it comes from another recording.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lipdub.faces.types import Face

THRESHOLD = 0.6  # a reference photo against a video: the nearest person, if nearer than this
PERSON_THRESHOLD = 0.45  # tracks of one video: one person when nearer than this (lipdub.faces.persons)
CHIP_SIZE = 150


@lru_cache(maxsize=1)
def five_points():  # -> dlib.shape_predictor
    """dlib's 5-point model (chips here, landmark agreement in faces.detect): loaded once per process."""
    import dlib
    import face_recognition_models as frm

    return dlib.shape_predictor(frm.pose_predictor_five_point_model_location())


@lru_cache(maxsize=1)
def _net():  # -> dlib.face_recognition_model_v1
    """The embedding network, loaded only when an embedding is asked for (a photo's chip does not need it)."""
    import dlib
    import face_recognition_models as frm

    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


def _rect(face: Face):  # -> dlib.rectangle
    """The box dlib's 5-point model was trained on (HOG-like), from our landmark box."""
    import dlib

    x1, y1, x2, y2 = (float(v) for v in face.box[:4])
    w, h = x2 - x1, y2 - y1
    return dlib.rectangle(round(x1 - 0.065 * w), round(y1 + 0.05 * h), round(x1 + 0.99 * w), round(y1 + 0.96 * h))


def chip(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    """(150, 150, 3) uint8 face aligned on eyes and nose: what `embed_chip` reads."""
    import dlib

    image = np.ascontiguousarray(image_rgb)
    return np.asarray(dlib.get_face_chip(image, five_points()(image, _rect(face)), size=CHIP_SIZE), np.uint8)


def embed_chip(face_chip: np.ndarray) -> np.ndarray:
    """(128,) float32 embedding of an aligned chip."""
    return np.asarray(_net().compute_face_descriptor(np.ascontiguousarray(face_chip)), np.float32)


def embed(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    """(128,) float32 identity embedding of `face` in `image_rgb`."""
    return embed_chip(chip(image_rgb, face))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings (< THRESHOLD: the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))
