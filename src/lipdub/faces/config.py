"""Detector and tracker settings: one frozen record, part of the detection-cache key."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FaceSettings:
    """Knobs of detection and tracking. Changing any of them invalidates cached detections."""

    mp_confidence: float = 0.5  # mediapipe full-range detector score threshold
    hog_threshold: float = 0.0  # dlib HOG detection score threshold
    hog_upsample: int = 1  # HOG upsampling for stills and a video's first frame (finds ~40 px faces)
    hog_max_side: int = 1280  # stills larger than this are downscaled for HOG
    mesh_crop: float = 2.0  # FaceMesh crop side, in face sizes
    mesh_input: int = 256  # FaceMesh crop resolution (pixels)
    min_evidence: float = 0.5  # a FaceMesh fit with less face evidence (0..1, see detect.py) is no face
    detect_every: int = 5  # video: mediapipe detector on every n-th frame
    hog_every: int = 25  # video: HOG (no upsampling) on every n-th frame
    max_miss: int = 50  # video: frames a lost track keeps looking before it ends
    reid_threshold: float = 0.6  # identity embedding distance under which two faces are one person
    fill_gap: int = 3  # video: gaps this short inside a track are interpolated
    smooth_min_cutoff: float = 1.0  # One Euro on head pose: cutoff (Hz) at rest
    smooth_beta: float = 5.0  # ... cutoff increase per face size/second of motion
    smooth_d_cutoff: float = 1.0  # ... cutoff (Hz) of the speed estimate
    smooth_shape_min_cutoff: float = 1.0  # One Euro on expression (mouth, eyes): cutoff at rest
    smooth_shape_beta: float = 50.0  # ... high: a speaking mouth keeps its amplitude

    def key(self) -> str:
        """A stable text form, for the cache key."""
        return json.dumps(asdict(self), sort_keys=True)
