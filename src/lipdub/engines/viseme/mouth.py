"""Paint the inside of an opened mouth: dark cavity, upper (and lower) incisors, tongue, soft lip shadow.

Colours come from the face itself (lip colour for the cavity and tongue, skin brightness for the teeth), so a
dim photo does not get glowing teeth. Everything is drawn in a small crop around the opening.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lipdub.engines.viseme.shapes import P
from lipdub.engines.viseme.warp import LOWER_INNER, LOWER_OUTER, UPPER_INNER, UPPER_OUTER, FaceFrame
from lipdub.media.image import blend

TEETH_HEIGHT = 0.075  # visible upper incisor height, in units of s
LOW_TEETH_HEIGHT = 0.04
PAINT_BLUR = 0.004  # the painted interior's softness (Gaussian std. dev.), in units of s


@dataclass
class MouthColours:
    """Colours sampled from the source face."""

    lip: np.ndarray  # RGB float
    teeth: np.ndarray

    @classmethod
    def sample(cls, image: np.ndarray, lm: np.ndarray) -> MouthColours:
        """Median lip colour (between the outer and inner contours) and teeth shade from the skin brightness."""
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        for outer, inner in ((UPPER_OUTER, UPPER_INNER), (LOWER_OUTER, LOWER_INNER)):
            poly = np.vstack([lm[outer], lm[inner][::-1]]).round().astype(np.int32)
            cv2.fillPoly(mask, [poly], 1)
        pix = image[mask > 0]
        lip = np.median(pix, axis=0).astype(np.float32) if len(pix) else np.float32([150, 90, 90])
        cheeks = lm[[50, 280, 205, 425, 18, 200]].round().astype(int)
        cheeks[:, 0] = cheeks[:, 0].clip(0, w - 1)
        cheeks[:, 1] = cheeks[:, 1].clip(0, h - 1)
        skin = image[cheeks[:, 1], cheeks[:, 0]].astype(np.float32).mean(axis=0)
        light = float(np.clip(skin.mean() / 160.0, 0.7, 1.0))  # lighting, not skin tone: a mild factor
        tint = 0.75 + 0.25 * skin / max(float(skin.mean()), 1.0)  # the face's light, reflected: warm on warm skin
        teeth = np.float32([234, 228, 220]) * light * tint
        return cls(lip, np.clip(teeth, 0, 255))


TEXTURE_DEPTH = 0.16  # deepest part of a source opening kept, in units of s
TEXTURE_SIZE = (48, 160)  # rows (depth), columns (across the mouth)


@dataclass
class SourceMouth:
    """A photo's own mouth interior (real teeth), resampled into face-normalised coordinates: columns run
    corner to corner (a in -1..1), rows go down from the upper inner lip (depth / s in 0..TEXTURE_DEPTH).
    Normalised, it can dress the mouth of any later frame of the same face."""

    texture: np.ndarray  # (rows, cols, 3) float32
    depth: np.ndarray  # (cols,) how deep the opening was in each column, in units of s

    @property
    def size(self) -> float:
        """Open area (in s^2 units, roughly): bigger openings show more of the teeth."""
        return float(self.depth.mean())

    @staticmethod
    def _opening(lm: np.ndarray, ff: FaceFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(a, upper inner lip line, depth in units of s) across the mouth; None when it is closed."""
        (ua, ub), (la, lb) = ff.ab(lm[UPPER_INNER]), ff.ab(lm[LOWER_INNER])
        a = np.linspace(-1, 1, TEXTURE_SIZE[1])
        top = np.interp(a, ua, ub)
        depth = np.clip(np.interp(a, la, lb) - top, 0, None) / ff.s
        return None if float(depth.max()) * ff.s < max(3.0, 0.02 * ff.s) else (a, top, depth)

    @classmethod
    def size_of(cls, lm: np.ndarray, ff: FaceFrame) -> float | None:
        """The `size` the mouth of these landmarks would have, from the landmarks alone (None: closed)."""
        opening = cls._opening(lm, ff)
        return None if opening is None else float(opening[2].astype(np.float32).mean())

    @classmethod
    def of(cls, roi: np.ndarray, origin: np.ndarray, lm: np.ndarray, ff: FaceFrame) -> SourceMouth | None:
        """None when the mouth is closed (nothing inside to reuse)."""
        opening = cls._opening(lm, ff)
        if opening is None:
            return None
        a, top, depth = opening
        rows = TEXTURE_SIZE[0]
        d = np.linspace(0, TEXTURE_DEPTH, rows)[:, None] * ff.s
        b = top[None, :] + d
        x = ff.center[0] + a[None] * ff.half_width * ff.u[0] + b * ff.v[0] - origin[0]
        y = ff.center[1] + a[None] * ff.half_width * ff.u[1] + b * ff.v[1] - origin[1]
        tex = cv2.remap(roi, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        return cls(tex, depth.astype(np.float32))


def _reuse_interior(img: np.ndarray, src: SourceMouth, ff: FaceFrame, a: np.ndarray, depth: np.ndarray,
                    pose: np.ndarray) -> np.ndarray:
    """Show the source's own interior (its real teeth) hanging from the new upper lip, as deep as the source
    opening was; below that, and on shapes that hide the teeth, the painted cavity stays."""
    rows, cols = TEXTURE_SIZE
    gx = ((np.clip(a, -1, 1) + 1) * 0.5 * (cols - 1)).astype(np.float32)
    gy = (depth / ff.s / TEXTURE_DEPTH * (rows - 1)).astype(np.float32)
    sampled = cv2.remap(src.texture, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gap_s = np.interp(a, np.linspace(-1, 1, cols), src.depth).astype(np.float32) * ff.s
    show = np.clip(gap_s - depth - 0.5, 0, 1) * np.clip((gap_s - 2.0) / 3.0, 0, 1)
    show *= float(np.clip(1.5 * pose[P["teeth_up"]], 0, 1)) * (np.abs(a) < 1)
    return img + (sampled - img) * show[..., None]


@dataclass
class _Opening:
    """The new mouth opening on a pixel crop: face coordinates of every crop pixel and the lip lines there."""

    x0: int
    y0: int
    inside: np.ndarray  # anti-aliased polygon coverage (h, w)
    a: np.ndarray  # across, in half mouth widths
    b: np.ndarray  # down, in pixels
    top: np.ndarray  # upper inner lip line (b units) at each pixel's a
    bottom: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return np.maximum(self.bottom - self.top, 1e-3)


def _opening(shape: tuple[int, ...], origin: np.ndarray, ff: FaceFrame,
             targets: dict[str, np.ndarray]) -> _Opening | None:
    """The opening between the new inner lip contours (None when the lips meet or it is under 2 px^2)."""
    h, w = shape[:2]
    ui, li = targets["ui"], targets["li"]
    overlap = np.minimum((li - ui) @ ff.v, 0.0)  # pressed lips may cross: they only meet
    li = li - overlap[:, None] * ff.v
    if float(((li - ui) @ ff.v).max()) < 0.75:  # lips meet everywhere: nothing inside shows
        return None
    upper = np.vstack([targets["corners"][0], ui, targets["corners"][1]]) - origin
    lower = np.vstack([targets["corners"][0], li, targets["corners"][1]]) - origin
    poly = np.vstack([upper, lower[::-1]])
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
    if area < 2.0:
        return None
    x0, y0 = np.floor(poly.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - [x0, y0]) * 8).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
    px, py = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    d = np.stack([px + origin[0] - ff.center[0], py + origin[1] - ff.center[1]], axis=-1)
    a = (d @ ff.u).astype(np.float32) / ff.half_width
    (ua, ub), (la, lb) = ff.ab(upper + origin), ff.ab(lower + origin)
    return _Opening(int(x0), int(y0), mask.astype(np.float32) / 255.0, a, (d @ ff.v).astype(np.float32),
                    np.interp(a, ua, ub).astype(np.float32), np.interp(a, la, lb).astype(np.float32))


def _cavity(o: _Opening, pose: np.ndarray, lip: np.ndarray, th_up: float) -> np.ndarray:
    """Dark cavity (darker mid-depth), with the tongue lying low or its tip raised behind the teeth (L)."""
    a, b, top, bottom, gap = o.a, o.b, o.top, o.bottom, o.gap
    depth = np.clip((b - top) / gap, 0, 1)
    img = np.empty((*a.shape, 3), np.float32)
    img[:] = lip * 0.2 + 5
    img *= (0.75 + 0.25 * np.abs(2 * depth - 1))[..., None]
    if pose[P["tongue_low"]] > 0.02:
        t = pose[P["tongue_low"]]
        tongue = np.clip(1 - ((a / 0.7) ** 2 + ((bottom + 0.1 * gap - b) / np.maximum(0.55 * gap, 1)) ** 2), 0, 1)
        img += (lip * np.float32([0.95, 0.7, 0.72]) - img) * (t * np.sqrt(tongue) * 0.9)[..., None]
    if pose[P["tongue_up"]] > 0.02:
        t = pose[P["tongue_up"]]
        cy = top + np.minimum(th_up, 0.6 * gap) + 0.2 * gap
        tongue = np.clip(1 - ((a / 0.45) ** 2 + ((b - cy) / np.maximum(0.3 * gap, 1)) ** 2), 0, 1) ** 0.5
        img += (lip * 0.8 - img) * (t * tongue)[..., None]
    return img


# Where the upper teeth meet, across the mouth (half mouth widths): the midline, then central incisor (8.5 mm along
# the arch), lateral (6.5), canine (7.5), premolar; equal steps along the arch project closer together as the arch
# turns away, so the corner teeth look narrow. Each seam is faint (real teeth at video size show little of them).
TOOTH_SEAMS = np.sin(np.pi / 2 * np.cumsum([0.0, 8.5, 6.5, 7.5]) / 29.5).astype(np.float32)  # 0, .44, .72, .93
SEAM_DEPTH = np.float32([0.10, 0.07, 0.05, 0.04])  # how much darker each seam is than the tooth beside it


def _tooth_relief(a: np.ndarray, ff: FaceFrame) -> np.ndarray:
    """Brightness factor across the teeth: each tooth slightly convex (brighter in its middle), soft seams
    between neighbours, fading toward the corners."""
    x = np.abs(np.clip(a, -1, 1))
    width = max(0.7, 0.008 * ff.s) / ff.half_width  # seam width, in half mouth widths
    relief = np.ones_like(x)
    for seam, depth in zip(TOOTH_SEAMS, SEAM_DEPTH, strict=True):
        relief -= depth * np.exp(-(((x - seam) / width) ** 2))
    return relief


def _teeth(img: np.ndarray, o: _Opening, ff: FaceFrame, th_up: float, th_lo: float, shade: np.ndarray) -> None:
    """Upper (and lower) teeth, in place: bright in the middle, receding into shade toward the corners, shaded
    under the upper lip, with soft seams between them."""
    a, b, top, bottom, gap = o.a, o.b, o.top, o.bottom, o.gap
    a_in = np.clip(np.abs(a), 0, 1)
    fade = np.clip(1.0 - a_in ** 3, 0, 1) * (1.0 - 0.55 * a_in ** 2)
    relief = _tooth_relief(a, ff)
    if th_up > 0.3:
        edge = np.clip(top + np.minimum(th_up, 0.75 * gap) * np.clip(1.1 - a_in ** 2, 0, 1) - b + 0.5, 0, 1)
        tooth = (edge * np.clip(fade * 1.4, 0, 1))[..., None]
        lit = (0.72 + 0.28 * np.clip((b - top) / max(th_up, 1.0), 0, 1) ** 0.6) * relief * fade  # lip shadow
        img += (shade * lit[..., None] - img) * tooth
    if th_lo > 0.3:
        edge = np.clip(b - (bottom - np.minimum(th_lo, 0.4 * gap) * np.clip(1 - a_in ** 2, 0, 1)) + 0.5, 0, 1)
        tooth = (edge * fade)[..., None] * 0.85
        img += (shade * 0.72 * (relief * fade)[..., None] - img) * tooth


def paint_mouth(roi: np.ndarray, origin: np.ndarray, ff: FaceFrame, targets: dict[str, np.ndarray],
                pose: np.ndarray, colours: MouthColours, source: SourceMouth | None = None) -> np.ndarray:
    """Draw the mouth interior into `roi` (in place) inside the new inner-lip contour; return its alpha.

    `source`: the photo's own open mouth, reused for the teeth where it showed them."""
    alpha = np.zeros(roi.shape[:2], np.float32)
    o = _opening(roi.shape, origin, ff, targets)
    if o is None:
        return alpha
    th_up = TEETH_HEIGHT * ff.s * pose[P["teeth_up"]]
    th_lo = LOW_TEETH_HEIGHT * ff.s * pose[P["teeth_low"]]
    img = _cavity(o, pose, colours.lip, th_up)
    _teeth(img, o, ff, th_up, th_lo, colours.teeth)
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, PAINT_BLUR * ff.s))  # no crisper than a camera's mouth
    if source is not None:  # the photo's own mouth interior (real teeth) where it had one
        img = _reuse_interior(img, source, ff, o.a, o.b - o.top, pose)
    # lips cast a soft shadow on the inside of the opening
    soft = cv2.GaussianBlur(o.inside, (0, 0), max(0.6, 0.12 * float(np.median(o.gap))))
    img *= np.clip(0.45 + 0.55 * soft * 1.6, 0.45, 1.0)[..., None]
    h, w = o.inside.shape
    roi[o.y0:o.y0 + h, o.x0:o.x0 + w] = blend(roi[o.y0:o.y0 + h, o.x0:o.x0 + w], img, o.inside)
    alpha[o.y0:o.y0 + h, o.x0:o.x0 + w] = o.inside
    return alpha
