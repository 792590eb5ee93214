"""Finding faces in photos: every person in the group photos, no false faces, landmarks, crops, selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipdub.errors import NoFaceError
from lipdub.faces import analyze, crop_box, detect_faces, identity, select
from lipdub.faces.detect import iou
from lipdub.faces.landmarks import CHIN, JAW, LIPS
from lipdub.media import VideoWriter, read_image

DATA = Path(__file__).parent / "data" / "faces"
GROUPS = {"grp2_obama_biden_side_by_side.jpg": 2, "grp3_voc2008_001322.jpg": 3,
          "grp4_four_men_beards_glasses.jpg": 4, "grp6_many_faces_friends.jpg": 6}


@pytest.fixture(scope="module")
def detected() -> dict[str, tuple[np.ndarray, list]]:
    out = {}
    for name in [*GROUPS, "img_obama_smile_teeth.jpg", "neg_no_human_face_cartoon.jpg"]:
        image = read_image(DATA / name)
        out[name] = (image, detect_faces(image))
    return out


@pytest.mark.parametrize("name", list(GROUPS))
def test_every_person_in_a_group_photo_is_found_once(detected, name):
    image, faces = detected[name]
    assert len(faces) == GROUPS[name]
    for i, a in enumerate(faces):
        for b in faces[i + 1:]:
            assert iou(a.box, b.box) < 0.1, "one face reported twice"


def test_cartoon_has_no_human_face(detected):
    assert detected["neg_no_human_face_cartoon.jpg"][1] == []


# People pasted in front of out-of-focus buildings, bokeh shapes, a heavily blurred crowd and a poster
# (made by data/faces/make_false_face_photos.py; the first four fooled the detector before issue 11's fix)
FALSE_FACES = json.loads((DATA / "false_faces.json").read_text())


@pytest.mark.parametrize("name", list(FALSE_FACES))
def test_no_false_face_on_blurred_backgrounds_and_the_person_is_the_default_choice(name):
    tracks = analyze(DATA / name, use_cache=False)
    faces = tracks.faces_in(0)
    assert len(faces) == 1, [f.box.round().tolist() for f in faces]
    assert iou(faces[0].box, np.array(FALSE_FACES[name], np.float32)) > 0.7, "the face found is the person's"
    assert select(tracks) == faces[0].track_id


def test_no_false_face_track_in_a_video_of_blurred_buildings(tmp_path):
    """The tracker's key-frame detections pass the same evidence check: one track, the woman's."""
    image = read_image(DATA / "false_buildings_woman.jpg")
    clip = tmp_path / "buildings.mp4"
    with VideoWriter(clip, 25) as writer:
        for i in range(30):  # a slow pan: every frame differs
            writer.write(np.ascontiguousarray(image[2 * i:2 * i + 880, 2 * i:2 * i + 880]))
    tracks = analyze(clip, use_cache=False)
    assert [r["frames"] for r in tracks.summary()] == [30]
    woman = np.array(FALSE_FACES["false_buildings_woman.jpg"], np.float32)
    assert iou(tracks.faces_in(29)[0].box + [58, 58, 58, 58], woman) > 0.7


def test_score_is_face_evidence_that_falls_with_blur(detected):
    image, (sharp,) = detected["img_obama_smile_teeth.jpg"]
    assert 0.8 < sharp.score <= 1.0
    for name in GROUPS:
        assert all(0.5 <= f.score <= 1.0 for f in detected[name][1])
    (soft,) = detect_faces(cv2.GaussianBlur(image, (0, 0), 0.08 * sharp.width))
    assert iou(soft.box, sharp.box) > 0.7 and soft.score < sharp.score - 0.15
    assert detect_faces(cv2.GaussianBlur(image, (0, 0), 0.15 * sharp.width)) == [], "eyes and mouth are gone"


@pytest.mark.parametrize("name", list(GROUPS))
def test_faces_are_numbered_left_to_right_with_478_landmarks_inside_the_frame(detected, name):
    image, faces = detected[name]
    assert [f.track_id for f in faces] == list(range(len(faces)))
    centers = [float(f.box[0] + f.box[2]) / 2 for f in faces]
    assert centers == sorted(centers)
    h, w = image.shape[:2]
    for face in faces:
        lm = face.landmarks
        assert lm.shape == (478, 2)
        assert np.all(lm[:, 0] > -0.05 * w) and np.all(lm[:, 0] < 1.05 * w)
        # anatomy, as a check that the points belong to this face: lips under the nose, chin under the lips
        assert lm[LIPS, 1].mean() > lm[1, 1] and lm[CHIN, 1] > lm[LIPS, 1].max()
        assert face.contains(*lm[LIPS].mean(0))


def test_the_saved_hog_detector_is_dlibs_own():
    """The HOG model is read from a saved copy (fast start-up): it must find what dlib's built-in one finds."""
    import dlib

    from lipdub.faces.detect import _hog

    image = np.ascontiguousarray(read_image(DATA / "grp4_four_men_beards_glasses.jpg"))
    saved = _hog().run(image, 0, -0.5)
    built = dlib.get_frontal_face_detector().run(image, 0, -0.5)
    assert len(saved[0]) >= 4
    assert [(r.left(), r.top(), r.right(), r.bottom()) for r in saved[0]] == \
        [(r.left(), r.top(), r.right(), r.bottom()) for r in built[0]]
    assert np.allclose(saved[1], built[1])


def test_face_detection_loads_no_matplotlib_and_mediapipe_drawing_still_works():
    """mediapipe is imported without its drawing helpers' matplotlib, its Tasks API (sounddevice) and objectron's
    attr (start-up); they load when used."""
    code = ("import sys; from lipdub.faces import detect_faces; from lipdub.media import read_image; "
            f"assert len(detect_faces(read_image({str(DATA / 'img_obama_smile_teeth.jpg')!r}))) == 1; "
            "assert not {'matplotlib', 'sounddevice', 'attr', 'mediapipe.tasks.python'} & set(sys.modules); "
            "import mediapipe as mp; assert callable(mp.solutions.drawing_utils.plt.figure); "
            "assert mp.solutions.objectron.Objectron and mp.tasks.vision.FaceLandmarker")
    src = str(Path(__file__).parents[1] / "src")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": src})


def test_small_faces_are_found(detected):
    smallest = min(f.width for name in GROUPS for f in detected[name][1])
    assert smallest < 80, "the test photos should exercise faces under 80 px"


@pytest.mark.parametrize("name", [*GROUPS, "img_obama_smile_teeth.jpg"])
def test_crop_box_holds_the_whole_jaw_and_chin(detected, name):
    image, faces = detected[name]
    h, w = image.shape[:2]
    for face in faces:
        top, bottom, left, right = crop_box(face, image.shape)
        assert all(isinstance(v, int) for v in (top, bottom, left, right))
        assert 0 <= top < bottom <= h and 0 <= left < right <= w
        jaw = face.landmarks[JAW]
        assert bottom > jaw[:, 1].max() or bottom == h, "the chin must be inside the crop"
        assert bottom - jaw[:, 1].max() >= 0.03 * face.height or bottom == h, "a margin below the chin"
        assert left <= jaw[:, 0].min() and right > jaw[:, 0].max()
        assert top <= face.box[1] + 1
        assert crop_box(face, image.shape) == (top, bottom, left, right)


def test_crop_box_is_clipped_at_the_frame_edge(detected):
    image, faces = detected["img_obama_smile_teeth.jpg"]
    face = faces[0]
    dy = image.shape[0] - float(face.landmarks[JAW, 1].max()) + 5  # the chin now lies below the frame
    shifted = type(face)(box=face.box + [0, dy, 0, dy], landmarks=face.landmarks + [0, dy])
    top, bottom, left, right = crop_box(shifted, image.shape)
    assert bottom == image.shape[0]


def test_still_analysis_matches_detection_and_is_one_frame():
    tracks = analyze(DATA / "grp4_four_men_beards_glasses.jpg", use_cache=False)
    assert tracks.num_frames == 1 and tracks.track_ids == [0, 1, 2, 3]
    summary = tracks.summary()
    assert [r["frames"] for r in summary] == [1, 1, 1, 1]
    assert [r["box"][0] for r in summary] == sorted(r["box"][0] for r in summary)
    assert tracks.strength(2).tolist() == [1.0]


@pytest.fixture(scope="module")
def pair():
    return analyze(DATA / "grp2_obama_biden_side_by_side.jpg", use_cache=False)


def test_select_by_pixel_picks_the_face_under_it(pair):
    for face in pair.faces_in(0):
        x, y = face.landmarks[1]  # nose tip
        assert select(pair, at=(x, y)) == face.track_id
    with pytest.raises(NoFaceError, match="grp2_obama_biden_side_by_side.jpg: no face covers pixel 2,2"):
        select(pair, at=(2, 2))


def test_select_by_reference_photo_picks_the_same_person(pair):
    obama = select(pair, like=DATA / "img_obama_smile_teeth.jpg")
    biden = select(pair, like=DATA / "img_biden_older_smile_teeth.jpg")
    assert (obama, biden) == (0, 1)  # Obama stands on the left in this photo
    assert "looks like the reference photo" in obama.reason


def test_select_by_reference_without_face_or_without_match_is_a_clear_error(pair):
    with pytest.raises(NoFaceError, match="neg_no_human_face_cartoon.jpg: no face found in the reference"):
        select(pair, like=DATA / "neg_no_human_face_cartoon.jpg")
    six = analyze(DATA / "grp6_many_faces_friends.jpg", use_cache=False)
    with pytest.raises(NoFaceError, match="no face resembles the reference photo"):
        select(six, like=DATA / "img_obama_smile_teeth.jpg")


def test_select_by_id_default_and_errors(pair):
    assert select(pair, face_id=1) == 1
    track_id, reason = select(pair, face_id=1)  # the pipeline unpacks (id, reason)
    assert (track_id, reason) == (1, "chose face 1 of 2: asked for by id")
    with pytest.raises(NoFaceError, match="there is no face 7"):
        select(pair, face_id=7)
    chosen = select(pair)  # by evidence (score x presence x size), not by size alone (issue 11)
    from lipdub.faces.select import evidence

    weights = evidence(pair)
    assert chosen == max(weights, key=weights.get) and chosen.reason.startswith(f"chose face {int(chosen)} of 2")
    empty = analyze(DATA / "neg_no_human_face_cartoon.jpg", use_cache=False)
    with pytest.raises(NoFaceError, match="neg_no_human_face_cartoon.jpg: no face found"):
        select(empty)


def test_identity_separates_people_and_matches_the_same_one(detected):
    image, (left, right) = detected["grp2_obama_biden_side_by_side.jpg"]
    ref_image, (ref,) = detected["img_obama_smile_teeth.jpg"]
    a, b, r = identity.embed(image, left), identity.embed(image, right), identity.embed(ref_image, ref)
    assert a.shape == (128,)
    assert identity.distance(a, r) < identity.THRESHOLD < identity.distance(b, r)
