"""lipdub.faces: find every face, track it through a video, choose who speaks, cache the detections.

`detect_faces(image)` for one image, `analyze(path)` for a photo or a whole video (cached), `select(...)`
to choose the speaking face, `crop_box(face, shape)` for the crop an engine generates in.

Detectors: mediapipe BlazeFace (fast, misses small faces) + dlib HOG (finds 40-60 px and turned faces, slow,
so videos run it on key frames only), each candidate confirmed by FaceMesh on its crop, which also gives the
478 landmarks and then tracks the face at ~2 ms a frame. S3FD (Wav2Lip's) costs ~5 s a frame on this CPU.
Details and measurements: lipdub.faces.detect.
"""

from lipdub.errors import NoFaceError
from lipdub.faces.analysis import BackgroundAnalysis, analyze, is_cached
from lipdub.faces.config import FaceSettings
from lipdub.faces.crop import crop_box
from lipdub.faces.detect import detect_faces
from lipdub.faces.select import Selection, select
from lipdub.faces.tracks import FaceTracks
from lipdub.faces.types import Face

__all__ = ["BackgroundAnalysis", "Face", "FaceSettings", "FaceTracks", "NoFaceError", "Selection", "analyze",
           "crop_box", "detect_faces", "is_cached", "select"]
