"""Move one face of a still: head pose by a smooth warp of head, hair and neck; eyelids and brows locally.

Head. For rotations of a few degrees the motion of every point is linear in the pose, so five displacement
fields (yaw, pitch, roll, shift across, shift down) are computed once per face on a coarse grid and a frame
only sums them. Yaw and pitch move a point by its depth (an ellipsoid head with a nose on it: the face turns,
its outline stays), roll turns it about the neck. Every field is weighted by a head mask: 1 over the face,
hair and chin, fading smoothly to 0 through the neck and the background around them, and 0 near the photo's
border, so the photo's corners and border never change and nothing tears.

Eyes and brows. A blink lowers the upper lid onto the lower one (which rises a fifth of the way): the lid
skin between the lid and the brow stretches down over the eye, the eye itself stays in place under it. At
full closure the two lid margins meet on one line; at zero it is the photo's own eye. A brow lift moves the
brow up, stretching the skin between it and the eye.
"""

from __future__ import annotations

import cv2
import numpy as np

# FaceMesh eye contours: (corner, corner, upper lid, lower lid), brow (lower contour, upper contour)
EYES = {
    "right": ((33, 133), [246, 161, 160, 159, 158, 157, 173], [7, 163, 144, 145, 153, 154, 155],
              [46, 53, 52, 65, 55], [70, 63, 105, 66, 107]),
    "left": ((263, 362), [466, 388, 387, 386, 385, 384, 398], [249, 390, 373, 374, 380, 381, 382],
             [276, 283, 282, 295, 285], [300, 293, 334, 296, 336]),
}
EAR_POINTS = {"right": (33, 160, 158, 133, 153, 144), "left": (362, 385, 387, 263, 373, 380)}
LOWER_SHARE = 0.2  # part of the closing made by the lower lid
CLOSED_EAR = 0.14  # an eye this narrow in the photo is closed: it never blinks
FADE = 0.6  # the head motion fades out over this much more of the head's radius


def eye_aspect_ratio(lm: np.ndarray, eye: str) -> float:
    """Soukupova & Cech's EAR: lid-to-lid height over corner-to-corner width (about 0.3 open, < 0.1 shut)."""
    p1, p2, p3, p4, p5, p6 = (np.asarray(lm[i], np.float64) for i in EAR_POINTS[eye])
    width = max(float(np.linalg.norm(p1 - p4)), 1e-6)
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2 * width))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class FaceAxes:
    """The face's own frame: centre, across (u) and down (v) unit vectors, width and height in pixels."""

    def __init__(self, lm: np.ndarray):
        across = lm[454] - lm[234]
        self.width = max(float(np.linalg.norm(across)), 4.0)
        self.u = across / self.width
        self.v = np.array([-self.u[1], self.u[0]])
        self.height = max(float(abs((lm[152] - lm[10]) @ self.v)), 4.0)
        self.center = (lm[10] + lm[152]) / 2

    def xy(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = pts - self.center
        return d @ self.u, d @ self.v

    def to_image(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """(..., 2) image displacement of a face-frame displacement."""
        return dx[..., None] * self.u + dy[..., None] * self.v


class HeadWarp:
    """One face of one still: head-pose fields and the lid/brow geometry, ready to pose frame after frame."""

    def __init__(self, landmarks: np.ndarray, shape: tuple[int, ...], reach: float = 1.0):
        self.lm = np.asarray(landmarks, np.float64)[:, :2]
        self.shape = shape[:2]
        self.ax = FaceAxes(self.lm)
        self.reach = reach  # < 1 shrinks the fade-out (a neighbour's head is close)
        self.open_eyes = [e for e in EYES if eye_aspect_ratio(self.lm, e) >= CLOSED_EAR]
        self._build_head()
        self._build_eyes()
        self.lm_basis = self.basis(self.lm)

    # ------------------------------------------------------------------ head
    def head_mask(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weight of the head motion, depth in pixels) at image points."""
        ax = self.ax
        x, y = ax.xy(pts)
        yc = -0.12 * ax.height
        ay = np.where(y < yc, 0.78 * ax.height, 0.62 * ax.height)
        r = np.hypot(x / (0.72 * ax.width), (y - yc) / ay)
        outer = 1.0 + FADE * self.reach
        weight = _smoothstep((outer - r) / (outer - 1.0))
        h, w = self.shape
        band = max(4.0, 0.04 * min(h, w))  # untouched border (the coarse grid may blur half of it)
        dx = np.minimum(pts[..., 0], w - 1 - pts[..., 0])
        dy = np.minimum(pts[..., 1], h - 1 - pts[..., 1])
        ramp = 0.08 * min(h, w)
        weight = weight * _smoothstep((np.minimum(dx, dy) - band) / ramp)
        weight = weight * _smoothstep((np.maximum(dx, dy) - 3 * band) / ramp)  # the corners stay too
        rz = np.hypot(x / (0.62 * ax.width), (y - yc) / (0.7 * ax.height))
        depth = 0.5 * ax.width * np.clip(1 - rz * rz, 0, 1) ** 2  # a rounded face: the middle turns, the edge stays
        nose = np.sum((pts - self.lm[1]) ** 2, axis=-1) / (0.1 * ax.width) ** 2
        depth = depth + 0.18 * ax.width * np.exp(-0.5 * nose)
        return weight, depth

    def basis(self, pts: np.ndarray) -> np.ndarray:
        """(..., 5, 2) image displacement per unit of yaw, pitch, roll (radians), shift across, down (pixels)."""
        ax = self.ax
        weight, depth = self.head_mask(pts)
        x, y = ax.xy(pts)
        pivot = 0.75 * ax.height
        zero = np.zeros_like(x)
        fields = [ax.to_image(depth, zero), ax.to_image(zero, depth), ax.to_image(-(y - pivot), x),
                  ax.to_image(np.ones_like(x), zero), ax.to_image(zero, np.ones_like(x))]
        return np.stack(fields, axis=-2) * weight[..., None, None]

    def _build_head(self) -> None:
        h, w = self.shape
        ys, xs = np.mgrid[0:h:8, 0:w:8]
        weight, _ = self.head_mask(np.stack([xs, ys], -1).astype(np.float64))
        inside = np.argwhere(weight > 0)
        if len(inside) == 0:
            self.roi = (0, 0, 0, 0)
            return
        (r0, c0), (r1, c1) = inside.min(0), inside.max(0)
        top, bottom = max(0, ys[r0, 0] - 8), min(h, ys[r1, 0] + 9)
        left, right = max(0, xs[0, c0] - 8), min(w, xs[0, c1] + 9)
        self.roi = (int(top), int(bottom), int(left), int(right))
        hgt, wid = bottom - top, right - left
        step = max(4.0, max(hgt, wid) / 48)
        gw, gh = max(4, int(np.ceil(wid / step))), max(4, int(np.ceil(hgt / step)))
        gx = (np.arange(gw) + 0.5) * wid / gw - 0.5  # node centres where cv2.resize puts them
        gy = (np.arange(gh) + 0.5) * hgt / gh - 0.5
        nodes = np.stack(np.meshgrid(gx, gy), -1)
        self.grid_xy = nodes.astype(np.float32)
        self.to_grid = np.float32([gw / wid, gh / hgt])
        self.fields = self.basis(nodes + [left, top]).transpose(2, 0, 1, 3).astype(np.float32)  # (5, gh, gw, 2)

    def head_map(self, coef: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
        """Backward displacement (H, W, 2) over the ROI for a pose, for `cv2.remap(roi, d, None, INTER_LINEAR |
        WARP_RELATIVE_MAP)` on the ROI itself (the motion is 0 at the ROI's edge, so no sample leaves it), or None
        if it does not move. `out`: a float32 (H, W, 2) array to write it into."""
        if self.roi[1] <= self.roi[0] or not np.any(np.abs(coef) > 1e-6):
            return None
        top, bottom, left, right = self.roi
        field = np.tensordot(np.asarray(coef, np.float32), self.fields, axes=1)  # forward displacement
        x = self.grid_xy - field
        for _ in range(2):  # x + field(x) = y: a few fixed-point steps (the field is small and smooth)
            gx = (x[..., 0] + 0.5) * self.to_grid[0] - 0.5
            gy = (x[..., 1] + 0.5) * self.to_grid[1] - 0.5
            x = self.grid_xy - cv2.remap(field, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # relative to each pixel: no absolute-coordinate array to add and convert every frame
        return cv2.resize(x - self.grid_xy, (right - left, bottom - top), dst=out, interpolation=cv2.INTER_LINEAR)

    # ------------------------------------------------------------------ eyes and brows
    def _build_eyes(self) -> None:
        """Per eye: the lid curves and the lid/brow frame over a small ROI around both eyes and brows."""
        lm, ax = self.lm, self.ax
        self.eyes = {}
        boxes = []
        for name, (corners, upper, lower, brow_lo, brow_up) in EYES.items():
            c0, c1 = lm[corners[0]], lm[corners[1]]
            if (c1 - c0) @ ax.u < 0:
                c0, c1 = c1, c0
            centre, half = (c0 + c1) / 2, max(float(np.linalg.norm(c1 - c0)) / 2, 1.0)
            ue = (c1 - c0) / (2 * half)
            ve = np.array([-ue[1], ue[0]])
            ab = lambda p, centre=centre, ue=ue, ve=ve, half=half: ((p - centre) @ ue / half, (p - centre) @ ve)  # noqa: E731
            a_up, b_up = ab(lm[[corners[0], *upper, corners[1]]])
            a_lo, b_lo = ab(lm[[corners[0], *lower, corners[1]]])
            _, b_brow = ab(lm[brow_lo])
            _, b_top = ab(lm[brow_up])
            lid_to_brow = max(float(b_up.min() - b_brow.mean()), 0.5 * half)
            eye = dict(centre=centre, ue=ue, ve=ve, half=half, ab=ab, up=(np.sort(a_up), b_up[np.argsort(a_up)]),
                       lo=(np.sort(a_lo), b_lo[np.argsort(a_lo)]), skin=0.85 * lid_to_brow, under=0.35 * half,
                       brow=(lm[brow_lo + brow_up].mean(0), float(b_brow.mean()), float(b_top.mean()),
                             float(np.ptp(ab(lm[brow_lo + brow_up])[0])) * half / 2, float(b_up.min())))
            self.eyes[name] = eye
            pts = np.vstack([centre + ue * half * s + ve * t for s in (-1.4, 1.4)
                             for t in (b_top.mean() - 1.4 * lid_to_brow, b_lo.max() + 0.5 * half)])
            boxes.append(pts)
        pts = np.vstack(boxes)
        h, w = self.shape
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        self.eye_roi = (max(0, y0), min(h, y1 + 1), max(0, x0), min(w, x1 + 1))
        top, bottom, left, right = self.eye_roi
        px, py = np.meshgrid(np.arange(left, right, dtype=np.float64), np.arange(top, bottom, dtype=np.float64))
        self.eye_px = np.stack([px, py], -1)
        self.brow_field = self.brow_shape(self.eye_px).astype(np.float32)
        self.eye_px = self.eye_px.astype(np.float32)
        for eye in self.eyes.values():  # the lid frame of every pixel near the eye, once
            a, b = eye["ab"](self.eye_px.astype(np.float64))
            near = np.abs(a) < 1.4
            up, lo = np.interp(a[near], *eye["up"]), np.interp(a[near], *eye["lo"])
            eye["pixels"] = dict(where=np.flatnonzero(near), b=b[near], up=up, gap=np.maximum(lo - up, 0),
                                 lo=lo, follow=float(self.ax.v @ eye["ve"]))

    def brow_shape(self, pts: np.ndarray) -> np.ndarray:
        """How much of a brow lift each point takes: 1 on the brows, 0 at the upper lids and high on the
        forehead, fading out past the brow ends."""
        out = np.zeros(pts.shape[:-1])
        for eye in self.eyes.values():
            centre_b, b_lo, b_top, half_len, lid = eye["brow"]
            a, b = eye["ab"](pts)
            a_mid, _ = eye["ab"](centre_b)
            along = np.abs(a * eye["half"] - a_mid * eye["half"]) / max(half_len, 1.0)
            gap = max(lid - b_lo, 1.0)
            rise = _smoothstep((lid - b) / gap)  # 0 at the lid, 1 at the brow's lower edge
            fall = _smoothstep(1 - (b_top - b) / (1.4 * gap))  # 1 at the brow's top, 0 high above
            out = np.maximum(out, np.minimum(rise, fall) * _smoothstep((1.6 - along) / 0.6))
        return out

    @staticmethod
    def _lid_source(px: dict, b: np.ndarray, close: float, skin: float, under: float) -> np.ndarray:
        """Down-coordinate of the photo pixel each pixel (at down-coordinate b) of the closing eye shows."""
        up, lo, gap = px["up"], px["lo"], px["gap"]
        up2, lo2 = up + (1 - LOWER_SHARE) * close * gap, lo - LOWER_SHARE * close * gap
        top, bottom = up - skin, lo + under
        src = b.copy()
        # the lid skin stretches near the brow; the lash line keeps its own width (slope 1 at the margin)
        lid = (b >= top) & (b < up2)
        s = (b[lid] - top[lid]) / np.maximum(up2[lid] - top[lid], 1e-6)
        src[lid] = top[lid] + skin * np.clip(s, 0, 1) ** ((up2[lid] - top[lid]) / skin)
        under_lid = (b >= lo2) & (b < bottom)
        src[under_lid] = (lo + (b - lo2) * (bottom - lo) / np.maximum(bottom - lo2, 1e-6))[under_lid]
        return src

    def eye_map(self, close: float, lift: float) -> np.ndarray | None:
        """Backward map (CV_32FC2) over `eye_roi` for a blink closure (0..1) and a brow lift (pixels)."""
        if close <= 1e-3 and abs(lift) < 0.02:
            return None
        shift = (lift * self.brow_field)[..., None] * self.ax.v.astype(np.float32)
        src = self.eye_px - shift  # content moves up: sample below
        if close > 1e-3:
            flat = src.reshape(-1, 2)
            for name in self.open_eyes:
                eye = self.eyes[name]
                px = eye["pixels"]
                b = px["b"] - lift * self.brow_field.reshape(-1)[px["where"]] * px["follow"]
                b_src = self._lid_source(px, b, close, eye["skin"], eye["under"])
                flat[px["where"]] += ((b_src - b)[:, None] * eye["ve"]).astype(np.float32)
        return src

    def move_landmarks(self, coef: np.ndarray, close: float, lift: float) -> np.ndarray:
        """Where the photo's landmarks go for this pose, closure and lift (the engine draws the mouth there)."""
        lm = self.lm.copy()
        if lift:
            lm -= lift * self.brow_shape(lm)[:, None] * self.ax.v
        if close > 1e-3:
            for name in self.open_eyes:
                eye = self.eyes[name]
                corners, upper, lower = EYES[name][:3]
                for idx, share in ((upper, 1 - LOWER_SHARE), (lower, -LOWER_SHARE)):
                    a, _ = eye["ab"](lm[idx])
                    gap = np.maximum(np.interp(a, *eye["lo"]) - np.interp(a, *eye["up"]), 0)
                    lm[idx] += (share * close * gap)[:, None] * eye["ve"]
        return lm + np.tensordot(np.asarray(coef, np.float64), self.lm_basis, axes=([0], [1]))
