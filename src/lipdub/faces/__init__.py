"""lipdub.faces: find every face, track it through a video, choose who speaks, cache the detections.

`detect_faces(image)` for one image, `analyze(path)` for a photo or a whole video (cached), `select(...)`
to choose the speaking face, `crop_box(face, shape)` for the crop an engine generates in.
"""

from lipdub.errors import NoFaceError
from lipdub.faces.analysis import analyze
from lipdub.faces.config import FaceSettings
from lipdub.faces.crop import crop_box
from lipdub.faces.detect import detect_faces
from lipdub.faces.select import Selection, select
from lipdub.faces.tracks import FaceTracks
from lipdub.faces.types import Face

__all__ = ["Face", "FaceSettings", "FaceTracks", "NoFaceError", "Selection", "analyze", "crop_box",
           "detect_faces", "select"]
