"""Make the false-face test photos: real people in front of out-of-focus backgrounds that fool a detector.

Issue 11: on a portrait of a woman in front of out-of-focus buildings, a box over the blurred background was
reported as a second, larger face. These photos rebuild that situation from the shared test data: a person
cut out of a shared portrait (mediapipe selfie segmentation) is pasted, smaller than the false face the old
detector found, in front of
- buildings: rows of windows drawn here (the shared data holds no photo of buildings), strongly blurred;
- a crowd of out-of-focus shapes: random ellipses, strongly blurred (bokeh);
- a crowd of real people so out of focus (Gaussian sigma 12% of their face width) that no eye or mouth is
  left: not a face anyone can animate, so not a face (milder blur keeps a face: see detect.py);
- a poster (the cartoon test image and printed text) in focus, in front of a blurred photo background.
The random layouts are the ones (seeds) where the detector before the fix reported a false face.
Run once from the repository root; writes false_*.jpg and false_faces.json (where each person's face is):

    python tests/data/faces/make_false_face_photos.py
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SHARED = Path("/work/shared/testdata")
HERE = Path(__file__).resolve().parent


def buildings(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Buildings side by side under a sky, each with a grid of dark windows."""
    img = np.zeros((h, w, 3), np.uint8)
    x = 0
    while x < w:
        bw, top = int(rng.integers(150, 450)), int(rng.integers(0, h // 3))
        img[:, x:x + bw] = rng.integers(80, 230, 3)
        img[:top, x:x + bw] = (170, 200, 235)
        ww, wh = int(rng.integers(12, 50)), int(rng.integers(18, 70))
        gx, gy = ww + int(rng.integers(8, 40)), wh + int(rng.integers(10, 50))
        dark = rng.integers(10, 90, 3)
        for yy in range(top + 15, h, gy):
            for xx in range(x + 10, x + bw - ww, gx):
                img[yy:yy + wh, xx:xx + ww] = dark
        x += bw
    return img


def shapes(rng: np.random.Generator, w: int, h: int, n: int = 60) -> np.ndarray:
    """Random coloured ellipses on a plain ground."""
    img = np.full((h, w, 3), rng.integers(40, 200, 3), np.uint8)
    for _ in range(n):
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(15, 120)), int(rng.integers(15, 160)))
        cv2.ellipse(img, center, axes, float(rng.integers(0, 180)), 0, 360, color, -1)
    return img


def drawn_background(seed: int, w: int, h: int) -> np.ndarray:
    """Buildings (7 in 10 seeds) or shapes, as the search that found the failing layouts drew them."""
    rng = np.random.default_rng(seed)
    return buildings(rng, w, h) if rng.random() < 0.7 else shapes(rng, w, h)


def photo_background(name: str, w: int, h: int, columns: slice = slice(None)) -> np.ndarray:
    """A shared photo (or a band of its columns) stretched to w x h."""
    return cv2.resize(read(name)[:, columns], (w, h), interpolation=cv2.INTER_AREA)


def read(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SHARED / name)), cv2.COLOR_BGR2RGB)


def cut_out(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A portrait, its person mask (0..1) and its face box (found by lipdub on the original portrait)."""
    from mediapipe.python.solutions import selfie_segmentation

    from lipdub.faces import detect_faces

    image = read(name)
    with selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = seg.process(image).segmentation_mask
    mask = cv2.GaussianBlur(np.clip((mask - 0.3) / 0.4, 0, 1), (0, 0), 2)
    (face,) = detect_faces(image)
    return image, mask, face.box


def paste(back: np.ndarray, person: str, face_px: int, at: tuple[float, float]) -> tuple[np.ndarray, list[int]]:
    """`back` with the person of `person` pasted, face `face_px` wide centred at `at` (fractions of w, h)."""
    image, mask, box = cut_out(person)
    s = face_px / (box[2] - box[0])
    image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, None, fx=s, fy=s)
    box = box * s
    h, w = back.shape[:2]
    dx, dy = int(at[0] * w - (box[0] + box[2]) / 2), int(at[1] * h - (box[1] + box[3]) / 2)
    x0, y0, x1, y1 = max(0, dx), max(0, dy), min(w, dx + image.shape[1]), min(h, dy + image.shape[0])
    a = mask[y0 - dy:y1 - dy, x0 - dx:x1 - dx, None]
    out = back.astype(np.float32)
    out[y0:y1, x0:x1] = a * image[y0 - dy:y1 - dy, x0 - dx:x1 - dx] + (1 - a) * out[y0:y1, x0:x1]
    return np.clip(out, 0, 255).astype(np.uint8), [round(float(v)) for v in box + [dx, dy, dx, dy]]


def poster(back: np.ndarray) -> np.ndarray:
    """An in-focus poster on the right: the cartoon test image above two lines of print."""
    h, w = back.shape[:2]
    x0, y0, pw, ph = int(0.58 * w), int(0.12 * h), int(0.32 * w), int(0.6 * h)
    back[y0:y0 + ph, x0:x0 + pw] = (235, 230, 220)
    art = cv2.resize(read("neg_no_human_face_cartoon.jpg"), (pw - 20, int((pw - 20) * 148 / 199)))
    back[y0 + 10:y0 + 10 + art.shape[0], x0 + 10:x0 + 10 + art.shape[1]] = art
    for i, line in enumerate(["OPEN DAY", "10:00 - 18:00"]):
        cv2.putText(back, line, (x0 + 15, y0 + art.shape[0] + 60 + 50 * i), cv2.FONT_HERSHEY_DUPLEX, 1.2,
                    (30, 30, 90), 2, cv2.LINE_AA)
    return back


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


PHOTOS = {  # name: (background, person, face width, face centre)
    # the case: a woman in front of out-of-focus buildings (old detector: 2 false faces, both larger)
    "false_buildings_woman.jpg": (lambda: blurred(drawn_background(3112, 1000, 1000), 9),
                                  "img_eastasian_woman_closed_mouth.jpg", 180, (0.25, 0.35)),
    "false_buildings_glasses.jpg": (lambda: blurred(drawn_background(3035, 800, 750), 6),
                                    "img_southasian_man_glasses_beard_teeth.jpg", 90, (0.5, 0.45)),
    "false_buildings_curly.jpg": (lambda: blurred(drawn_background(3143, 1000, 1000), 9),
                                  "img_young_man_glasses_curly_pursed_lips.jpg", 180, (0.75, 0.45)),
    "false_bokeh_shapes.jpg": (lambda: blurred(drawn_background(3130, 1280, 1100), 20),
                               "img_obama_smile_teeth.jpg", 130, (0.25, 0.45)),
    "false_blurred_crowd.jpg": (lambda: blurred(photo_background("grp6_many_faces_friends.jpg", 1000, 692), 12),
                                "img_woman_surprised_open_mouth.jpg", 130, (0.5, 0.4)),
    # the flag and curtains left of Obama in his portrait (no face in that band), out of focus, and a poster
    "false_poster.jpg": (lambda: poster(blurred(photo_background("img_obama_smile_teeth.jpg", 900, 700,
                                                                 slice(0, 330)), 8)),
                         "img_eastasian_man_teeth_headsetmic.png", 150, (0.3, 0.35)),
}


def main() -> None:
    where = {}
    for name, (background, person, face_px, at) in PHOTOS.items():
        image, box = paste(background(), person, face_px, at)
        cv2.imwrite(str(HERE / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
        where[name] = box
        print(name, image.shape[1], "x", image.shape[0], "face", box)
    (HERE / "false_faces.json").write_text(json.dumps(where, indent=1) + "\n")


if __name__ == "__main__":
    main()
