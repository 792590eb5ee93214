"""Find every face in an image: two detectors for recall, FaceMesh on each crop to confirm and add landmarks,
and a face-evidence check on the result that rejects what only looks like a face to one model.

Why this combination (numbers from docs FACES.md, measured on 2 CPU cores):
- mediapipe's full-range BlazeFace is fast (~5 ms a 1280x720 frame) but misses small faces (60 px) and
  half of a 6-person group photo;
- dlib's HOG finds those (all faces of the 2/3/4/6-person test photos, 40 px faces with 1x upsampling)
  but costs 50-250 ms a frame, so videos run it on a few key frames only;
- FaceMesh on a square crop around each candidate confirms it is a human face (the cartoon negative gives
  nothing) and returns 478 landmarks (lips, jaw, chin) in ~4 ms; in tracking mode it then follows the face
  at ~2 ms a frame, which is what makes videos fast.
Wav2Lip's S3FD would take ~5 s a frame here; dlib's CNN detector 8 s; both are out.

FaceMesh alone does not prove a face: on out-of-focus backgrounds (windows of blurred buildings, bokeh
shapes) BlazeFace fires at 0.5-0.7 and FaceMesh fits a plausible 478-point face to it (issue 11). So every
fit must pass three independent looks, and their product is `Face.score`, the face evidence (0..1):
- a second look: BlazeFace short-range on a crop centred on the fitted face at the model's own scale
  (real faces 0.79-0.96 on the test photos and videos, false fits 0.56-0.77);
- landmark agreement: dlib's 5-point model (eye corners, nose base: a different model, trained on
  different data) placed in the fitted box must land on FaceMesh's own points (real faces 0.01-0.11
  inter-ocular distances apart, false fits mostly 0.20-0.74), mapped to 0..1 by a logistic at 0.15;
- stability: FaceMesh run again on a crop centred on its own fit must land on the same points (real faces
  drift 0.004-0.031 inter-ocular distances on the test photos and video frames, false fits 0.085 or more
  or no fit at all), mapped to 0..1 by a logistic at 0.07. A false fit in a video frame passed the first
  two looks (0.82 x 0.72) and drifted 0.69.
A fit with evidence under `FaceSettings.min_evidence` is no face. Out-of-focus faces: the evidence falls
with blur (sharp 0.89-0.93 on the test portraits, 0.52-0.88 under a Gaussian blur of 3% of the face width,
0.59-0.62 at 8%, when found); a face blurred beyond ~10% of its width (no eye or mouth left) is not reported:
it is no face anyone can animate, whether it is a real person far behind the subject or a blob.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from lipdub.faces.config import FaceSettings
from lipdub.faces.landmarks import Mesh, box_of, crop_matrix, quiet_native_stderr, solutions, square_around, warm_up
from lipdub.faces.types import Face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes of one face: they overlap well, or one's center lies inside the other."""
    if iou(a, b) > 0.3:
        return True
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    return bool((b[0] <= ca[0] <= b[2] and b[1] <= ca[1] <= b[3]) or (a[0] <= cb[0] <= a[2] and a[1] <= cb[1] <= a[3]))


def _pixel_box(detection, w: int, h: int) -> np.ndarray:  # noqa: ANN001 - a mediapipe Detection
    """(x1, y1, x2, y2) pixels of a mediapipe detection in a w x h image."""
    r = detection.location_data.relative_bounding_box
    return np.array([r.xmin * w, r.ymin * h, (r.xmin + r.width) * w, (r.ymin + r.height) * h], np.float32)


HOG_MODEL = Path(__file__).with_name("frontal_face_hog.svm")  # dlib.get_frontal_face_detector().save(HOG_MODEL)


@lru_cache(maxsize=1)
def _hog():  # -> dlib.fhog_object_detector
    """dlib's frontal face detector, read from its saved copy (~2 ms; building it takes ~1 CPU-s of start-up)."""
    import dlib

    try:
        return dlib.fhog_object_detector(str(HOG_MODEL))
    except RuntimeError:  # a dlib that cannot read the saved file
        return dlib.get_frontal_face_detector()


# FaceMesh points where dlib's 5-point model puts its parts: eye corners (outer, inner) of each eye, nose base.
FIVE_POINTS = [263, 362, 33, 133, 2]
SECOND_LOOK_SIZE = 128  # BlazeFace short-range input side
AGREEMENT_MID, AGREEMENT_WIDTH = 0.15, 0.025  # logistic: 0.05 apart -> 0.98, 0.15 -> 0.5, 0.2 -> 0.12
REFIT_CROP = 1.6  # stability: the second FaceMesh crop, in sizes of the fitted face (the first: mesh_crop)
STABILITY_MID, STABILITY_WIDTH = 0.07, 0.012  # logistic on the drift: 0.03 -> 0.97, 0.085 -> 0.22


def landmark_agreement(image: np.ndarray, points: np.ndarray) -> float:
    """0..1: how well dlib's 5-point model, run in the fitted face's box, lands on FaceMesh's points."""
    from lipdub.faces.identity import _rect, five_points  # _rect: the box the 5-point model expects

    box = box_of(points)
    margin = 0.5 * float(max(box[2] - box[0], box[3] - box[1]))  # dlib copies what it reads: a crop is cheaper
    x0, y0 = (max(0, int(v - margin)) for v in box[:2])
    x1, y1 = int(box[2] + margin) + 1, int(box[3] + margin) + 1
    shift = np.array([x0, y0], np.float32)
    shape = five_points()(np.ascontiguousarray(image[y0:y1, x0:x1]), _rect(Face(box=box - np.tile(shift, 2))))
    dlib_pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], np.float32) + shift
    apart = float(np.linalg.norm(dlib_pts - points[FIVE_POINTS], axis=1).mean()) / _eye_distance(points)
    return _logistic(apart, AGREEMENT_MID, AGREEMENT_WIDTH)


def _eye_distance(points: np.ndarray) -> float:
    """Outer eye corner to outer eye corner: the face's own length unit."""
    return float(np.linalg.norm(points[33] - points[263])) + 1e-6


def _logistic(x: float, mid: float, width: float) -> float:
    """1 well under `mid`, 0.5 at `mid`, 0 well over it."""
    return float(1.0 / (1.0 + np.exp(np.clip((x - mid) / width, -50, 50))))


class Detector:
    """Candidate face boxes from mediapipe full-range + dlib HOG, and FaceMesh to confirm them."""

    def __init__(self, settings: FaceSettings | None = None) -> None:
        face_detection = solutions().face_detection

        self.settings = settings or FaceSettings()
        conf = self.settings.mp_confidence
        with quiet_native_stderr():  # full range (faces up to ~5 m) and short range (close-ups filling the frame)
            self._mp = [face_detection.FaceDetection(model_selection=m, min_detection_confidence=conf) for m in (1, 0)]
            for mp_detector in self._mp:
                warm_up(mp_detector)
        self._mesh = Mesh(static=True, size=self.settings.mesh_input)

    def close(self) -> None:
        for mp_detector in self._mp:
            mp_detector.close()
        self._mesh.close()

    def mediapipe(self, image: np.ndarray, short_range: bool = True) -> list[tuple[np.ndarray, float]]:
        """Boxes + scores from BlazeFace full-range, plus (`short_range`) close-ups the first missed."""
        h, w = image.shape[:2]
        out: list[tuple[np.ndarray, float]] = []
        for mp_detector in self._mp[: 2 if short_range else 1]:
            result = mp_detector.process(image)
            for det in result.detections or []:
                box = _pixel_box(det, w, h)
                if not any(same_face(box, b) for b, _ in out):
                    out.append((box, float(det.score[0])))
        return out

    def hog(self, image: np.ndarray, upsample: int = 0) -> list[tuple[np.ndarray, float]]:
        """Boxes + scores from dlib HOG; large images are downscaled first (see FaceSettings.hog_max_side)."""
        scale = min(1.0, self.settings.hog_max_side / max(image.shape[:2]))
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rects, scores, _ = _hog().run(np.ascontiguousarray(small), upsample, self.settings.hog_threshold)
        return [(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32) / scale, float(s))
                for r, s in zip(rects, scores, strict=True)]

    def candidates(self, image: np.ndarray, *, hog_upsample: int | None = None
                   ) -> list[tuple[np.ndarray, float]]:
        """Boxes of both detectors, duplicates merged (mediapipe's box wins: it is better centred).

        `hog_upsample` None skips HOG and mediapipe's short-range model (the cheap key-frame pass)."""
        found = self.mediapipe(image, short_range=hog_upsample is not None)
        if hog_upsample is not None:
            for box, score in self.hog(image, hog_upsample):
                if not any(same_face(box, b) for b, _ in found):
                    found.append((box, min(1.0, 0.5 + 0.25 * score)))
        return found

    def second_look(self, image: np.ndarray, points: np.ndarray) -> float:
        """BlazeFace short-range score of the fitted face, on a crop twice its size at the model's input size.

        Only a detection on the fitted face counts (0 if none): the crop may hold a real face beside it."""
        center, side = square_around(box_of(points), 2.0)
        m = crop_matrix(center, side, SECOND_LOOK_SIZE)
        crop = cv2.warpAffine(image, m, (SECOND_LOOK_SIZE,) * 2, borderMode=cv2.BORDER_REPLICATE,
                              flags=cv2.INTER_AREA if side > SECOND_LOOK_SIZE else cv2.INTER_LINEAR)
        fitted = box_of(points * m[0, 0] + m[:, 2])
        scores = [float(det.score[0]) for det in self._mp[1].process(crop).detections or []
                  if iou(_pixel_box(det, SECOND_LOOK_SIZE, SECOND_LOOK_SIZE), fitted) > 0.3]
        return max(scores, default=0.0)

    def stability(self, image: np.ndarray, points: np.ndarray) -> float:
        """0..1: FaceMesh fitted again on a crop centred on its own fit lands where it did (a face is where the
        mesh converges whatever the crop; a face hallucinated in a background moves with the crop)."""
        again = self._mesh(image, *square_around(box_of(points), REFIT_CROP))
        if again is None:
            return 0.0
        drift = float(np.linalg.norm(again - points, axis=1).mean()) / _eye_distance(points)
        return _logistic(drift, STABILITY_MID, STABILITY_WIDTH)

    def evidence(self, image: np.ndarray, points: np.ndarray) -> float:
        """0..1 evidence that a FaceMesh fit is a human face: agreement x stability x second look.

        The cheaper looks come first; once the product is under `min_evidence` (most false fits stop at the
        first) it is returned as is, an upper bound, without the remaining looks."""
        evidence = 1.0
        for look in (landmark_agreement, self.stability, self.second_look):
            evidence *= look(image, points)
            if evidence < self.settings.min_evidence:
                break
        return evidence

    def examine(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float] | None:
        """FaceMesh landmarks of the face in `box` and their face evidence, or None when no face is there."""
        center, side = square_around(box, self.settings.mesh_crop)
        points = self._mesh(image, center, side)
        if points is None:
            return None
        evidence = self.evidence(image, points)
        return (points, evidence) if evidence >= self.settings.min_evidence else None

    def confirm(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """FaceMesh landmarks of the face in `box`, or None when there is no human face there."""
        found = self.examine(image, box)
        return None if found is None else found[0]

    def faces(self, image: np.ndarray, hog_upsample: int | None = None) -> list[Face]:
        """Every confirmed face (score: its evidence), landmark boxes, duplicates removed, sorted left to right."""
        up = self.settings.hog_upsample if hog_upsample is None else hog_upsample
        faces: list[Face] = []
        for box, _ in sorted(self.candidates(image, hog_upsample=up), key=lambda c: -c[1]):
            found = self.examine(image, box)
            if found is None:
                continue
            points, evidence = found
            lm_box = box_of(points)
            if any(iou(lm_box, f.box) > 0.4 for f in faces):
                continue
            faces.append(Face(box=lm_box, score=evidence, landmarks=points))
        faces.sort(key=lambda f: float(f.box[0] + f.box[2]))
        return faces


_SHARED_LOCK = threading.RLock()  # mediapipe graphs take one frame at a time


_SHARED: dict[FaceSettings, Detector] = {}


def shared_detector(settings: FaceSettings | None = None) -> Detector:
    """One detector per settings per process: building the graphs costs ~0.3 s, so callers reuse this one.
    Use it under `shared_lock()`."""
    settings = settings or FaceSettings()
    with _SHARED_LOCK:
        if settings not in _SHARED:
            _SHARED[settings] = Detector(settings)
        return _SHARED[settings]


def shared_lock() -> threading.RLock:
    return _SHARED_LOCK


def detect_faces(image_rgb: np.ndarray) -> list[Face]:
    """Every face in an RGB image with (478, 2) landmarks, sorted left to right, `track_id` 0..n-1."""
    with _SHARED_LOCK:
        faces = shared_detector(FaceSettings()).faces(np.ascontiguousarray(image_rgb))
    for i, face in enumerate(faces):
        face.track_id = i
    return faces
