"""Move a face's lips and jaw to a pose: a thin-plate-spline warp of the lower face, precomputed per face.

Control points are FaceMesh landmarks (lips, chin, jaw line) with displacements that are linear in the pose
parameters, plus fixed anchors (nose, cheeks, neck), so each parameter's displacement field is computed
once per face and a frame only sums them. The mouth opening is a discontinuity a smooth field cannot make, so
there are two fields: one for what lies above the lip line (upper lip, nose) and one below (lower lip, chin);
each target pixel takes the one on its side of the new lip line, blending smoothly beyond the mouth corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lipdub.engines.viseme.shapes import PARAMS, P

UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
JAW = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]
CHIN = [18, 200, 199, 175, 83, 182, 201, 208, 32, 140, 171, 313, 406, 421, 428, 262, 369, 396]
ANCHORS = [1, 2, 4, 5, 98, 327, 94, 97, 326, 164, 167, 393, 50, 280, 117, 346, 187, 411, 123, 352,
           147, 376, 205, 425, 36, 266, 93, 323, 234, 454]
UPPER_SHARE = 0.15  # part of the lip opening made by the upper lip
OUTER_FOLLOW = (0.6, 0.85)  # how far the outer upper / lower lip contour follows its inner contour
# nodes across the ROI where the spline is evaluated (then resized): 30 sets a 720p face up ~1/4 faster than 40;
# rendered poses differ by < 0.25 levels on average, up to 22 on a few lip-edge pixels (sub-pixel shifts)
GRID_NODES = 30
GEOM = [P[n] for n in ("jaw", "gap_flat", "gap_round", "lift", "width", "roll", "press")]


def _prof(a: np.ndarray, gamma: float) -> np.ndarray:
    """Opening profile across the mouth: 1 in the middle, 0 at the corners."""
    return np.clip(1.0 - a * a, 0.0, 1.0) ** gamma


def _coef(pose: np.ndarray) -> np.ndarray:
    """Weights of the basis fields for a pose: its geometric parameters, 1 for closing, the tuck."""
    p = np.asarray(pose, np.float32)
    tuck = np.clip(1.0 - (p[P["gap_flat"]] + p[P["gap_round"]] + p[P["lift"]]) / 0.015, 0.0, 1.0)
    return np.append(p[GEOM], [1.0, tuck]).astype(np.float32)


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-12))


@dataclass
class FaceFrame:
    """The face's mouth frame: centre, across (u) and down (v) unit vectors, half mouth width, scale s."""

    center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    half_width: float
    s: float

    @classmethod
    def of(cls, lm: np.ndarray) -> FaceFrame:
        left, right = lm[61], lm[291]
        u = right - left
        half = max(float(np.linalg.norm(u)) / 2, 1.0)
        u = u / (2 * half)
        v = np.array([-u[1], u[0]])
        s = max(float(np.linalg.norm(lm[152] - lm[168])), 8.0)
        return cls((lm[13] + lm[14]) / 2, u, v, half, s)

    def ab(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(across in half-widths, down in pixels) of image points."""
        d = pts - self.center
        return d @ self.u / self.half_width, d @ self.v


class MouthWarp:
    """Everything about one face that does not change with the pose: the ROI, control points, basis fields."""

    def __init__(self, landmarks: np.ndarray, frame_shape: tuple[int, ...], grid_step: int | None = None):
        lm = self.points(landmarks)
        self.lm = lm
        self.ff = ff = FaceFrame.of(lm)
        h, w = frame_shape[:2]
        self.roi = self._roi(lm, ff, h, w)
        top, bottom, left, right = self.roi
        self.size = (bottom - top, right - left)
        self.origin = np.array([left, top], np.float64)
        self._build_controls()
        self._build_fields(grid_step)

    @staticmethod
    def points(landmarks: np.ndarray) -> np.ndarray:
        """The (x, y) landmark points the warp works with (float64)."""
        return np.asarray(landmarks, np.float64)[:, :2]

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _roi(lm: np.ndarray, ff: FaceFrame, h: int, w: int) -> tuple[int, int, int, int]:
        """Lower face: cheek to cheek, nose to below the chin (room for the jaw to drop)."""
        pts = lm[JAW + [1, 50, 280, 205, 425]]
        pts = np.vstack([pts, lm[152] + ff.v * 0.3 * ff.s])
        x0, y0 = pts.min(axis=0) - 0.08 * ff.s
        x1, y1 = pts.max(axis=0) + 0.08 * ff.s
        top, bottom = int(np.clip(np.floor(y0), 0, h - 1)), int(np.clip(np.ceil(y1), 1, h))
        left, right = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.ceil(x1), 1, w))
        return top, max(bottom, top + 2), left, max(right, left + 2)

    def _build_controls(self) -> None:
        lm, ff = self.lm, self.ff
        a_up, b_up = ff.ab(lm[UPPER_INNER])
        _, b_lo = ff.ab(lm[LOWER_INNER])
        self.a_cols = a_up
        gap = np.clip(b_lo - b_up, 0, None)
        gap[[0, -1]] = 0.0
        self.source_gap = gap  # how open the source mouth is, per column (pixels)
        thick_up = np.abs(ff.ab(lm[UPPER_INNER])[1] - ff.ab(lm[UPPER_OUTER])[1])
        thick_lo = np.abs(ff.ab(lm[LOWER_OUTER])[1] - ff.ab(lm[LOWER_INNER])[1])
        self.thick = (thick_up, thick_lo)
        neck = lm[JAW] + ff.v * 0.45 * ff.s
        self.ctrl = np.vstack([lm[UPPER_OUTER[1:-1]], lm[UPPER_INNER[1:-1]], lm[LOWER_INNER[1:-1]],
                               lm[LOWER_OUTER[1:-1]], lm[[61, 291, 78, 308]], lm[JAW], lm[CHIN], neck, lm[ANCHORS]])
        self.n_cols = len(UPPER_INNER) - 2
        self.slices = {}
        i = 0
        for name, n in (("uo", 9), ("ui", 9), ("li", 9), ("lo", 9), ("corner", 4), ("jaw", len(JAW)),
                        ("chin", len(CHIN)), ("neck", len(JAW)), ("anchor", len(ANCHORS))):
            self.slices[name] = slice(i, i + n)
            i += n
        # basis displacements (face coords): one (n_ctrl, 2) per geometric parameter and variant, plus "close"
        self.basis = {var: self._basis(var) for var in ("up", "lo")}

    def _basis(self, variant: str) -> np.ndarray:
        """(n_geom + 2, n_ctrl, 2) displacements in image pixels: one per geometric parameter, then the
        closing of the source's opening, then the tuck. `variant`: the field above ('up') or below ('lo')
        the lip line; each moves both lips with its own side's motion, so its field stays smooth."""
        out = np.zeros((len(GEOM) + 2, len(self.ctrl), 2))  # (.., across, down) then rotated to image axes
        for k, name in enumerate(("jaw", "gap_flat", "gap_round", "lift", "width", "roll", "press")):
            self._param_basis(out[k], name, variant)
        self._closing_basis(out[-2], variant)
        self._tuck_basis(out[-1], variant)
        return out @ np.stack([self.ff.u, self.ff.v])  # rows: across, down

    def _param_basis(self, d: np.ndarray, name: str, variant: str) -> None:
        """Fill `d` (n_ctrl, 2: across, down) with the displacement of one unit of parameter `name`."""
        s, sl, up = self.ff.s, self.slices, variant == "up"
        a_cols = self.a_cols[1:-1]
        thick_up, thick_lo = self.thick[0][1:-1], self.thick[1][1:-1]
        profile = {"gap_flat": _prof(a_cols, 0.6), "gap_round": _prof(a_cols, 0.9)}.get(name, np.zeros_like(a_cols))
        upper = -UPPER_SHARE * s * profile - (s * _prof(a_cols, 0.8) if name == "lift" else 0.0)
        lower = (1 - UPPER_SHARE) * s * profile
        own = upper if up else lower  # both lips of this variant's field move with its own side
        if name == "press":  # pressed lips also squeeze into each other a little
            own = own + (0.12 * thick_up if up else -0.12 * thick_lo)
        extra_uo = 0.25 * thick_up if name == "press" else 0
        extra_lo = -0.25 * thick_lo if name == "press" else (-0.35 * thick_lo * _prof(a_cols, 0.8) if name == "roll"
                                                               else 0)
        # the outer contours follow the inner ones only partly: an opening mouth stretches its lips thin
        d[sl["uo"], 1] = OUTER_FOLLOW[0] * own + extra_uo if up else own
        d[sl["ui"], 1] = own
        d[sl["li"], 1] = own
        d[sl["lo"], 1] = own if up else OUTER_FOLLOW[1] * own + extra_lo
        if name == "width":
            for part in ("uo", "ui", "li", "lo"):
                d[sl[part], 0] = a_cols * self.ff.half_width
            d[sl["corner"], 0] = np.array([-1, 1, -1, 1]) * self.ff.half_width
        if name == "jaw":
            d[sl["corner"], 1] = 0.2 * s
            if not up:
                d[sl["jaw"], 1] = s * self._taper("jaw")
                d[sl["chin"], 1] = s * self._taper("chin")

    def _taper(self, part: str) -> np.ndarray:
        """How fully the jaw / chin points follow the chin: 1 near the middle, fading toward the ears."""
        a, _ = self.ff.ab(self.lm[JAW if part == "jaw" else CHIN])
        return np.clip(1.0 - (np.abs(a) - 0.8) / 2.2, 0.05, 1.0)

    def _closing_basis(self, d: np.ndarray, variant: str) -> None:
        """Close the source's own opening: upper lip down 45 %, lower lip (and jaw) up 55 %."""
        sl, gap = self.slices, self.source_gap[1:-1]
        own = 0.45 * gap if variant == "up" else -0.55 * gap
        for part in ("uo", "ui", "li", "lo"):
            d[sl[part], 1] = own
        d[sl["uo" if variant == "up" else "lo"], 1] *= OUTER_FOLLOW[0 if variant == "up" else 1]
        if variant == "lo":
            mean_gap = float(gap.max()) if gap.size else 0.0
            d[sl["jaw"], 1] = -0.55 * mean_gap * self._taper("jaw")
            d[sl["chin"], 1] = -0.55 * mean_gap * self._taper("chin")

    def _tuck_basis(self, d: np.ndarray, variant: str) -> None:
        """When the lips meet, each folds a pixel more into the seam, so the landmark-edge pixels of an open
        photo (often half teeth) disappear; it fades out as the mouth opens (see `_coef`)."""
        sl, gap = self.slices, self.source_gap[1:-1]
        thick = self.thick[0][1:-1] if variant == "up" else self.thick[1][1:-1]
        tuck = np.maximum(1.0, 0.15 * thick) * (gap > 0.5)
        sign = 1.0 if variant == "up" else -1.0
        for part in ("ui", "li"):
            d[sl[part], 1] = sign * tuck
        d[sl["uo" if variant == "up" else "lo"], 1] = 0.5 * sign * tuck

    def _build_fields(self, grid_step: int | None) -> None:
        hgt, wid = self.size
        step = grid_step or int(max(4, round(max(hgt, wid) / GRID_NODES)))
        gw, gh = max(4, int(np.ceil(wid / step))), max(4, int(np.ceil(hgt / step)))
        # node centres as cv2.resize places them, so resizing the coarse displacement is exact interpolation
        xs = (np.arange(gw) + 0.5) * wid / gw - 0.5
        ys = (np.arange(gh) + 0.5) * hgt / gh - 0.5
        gx, gy = np.meshgrid(xs, ys)
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
        self.grid_shape = (gh, gw)
        self.grid_xy = np.stack([gx, gy], axis=-1).astype(np.float32)
        self.to_grid = np.float32([gw / wid, gh / hgt])  # pixel -> node index: (x + 0.5) * to_grid - 0.5
        cell = max(wid / gw, hgt / gh)
        ctrl = self.ctrl - self.origin
        n = len(ctrl)
        d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
        lmat = np.zeros((n + 3, n + 3))
        lmat[:n, :n] = _tps_kernel(d2) + np.eye(n) * 1e-3 * self.ff.s ** 2
        lmat[:n, n] = 1
        lmat[:n, n + 1:] = ctrl
        lmat[n, :n] = 1
        lmat[n + 1:, :n] = ctrl.T
        # the spline weights of every basis displacement at once: L^-1 [B; 0] (not L^-1 itself, then times B)
        basis = np.concatenate([b.transpose(1, 0, 2).reshape(n, -1) for b in self.basis.values()], axis=1)
        rhs = np.vstack([basis, np.zeros((3, basis.shape[1]))])
        try:
            weights = np.linalg.solve(lmat, rhs)
        except np.linalg.LinAlgError:  # degenerate landmarks (all on a line): least squares instead
            weights = np.linalg.lstsq(lmat, rhs, rcond=None)[0]
        g2 = (grid[:, :1] - ctrl[:, 0]) ** 2 + (grid[:, 1:] - ctrl[:, 1]) ** 2
        values = _tps_kernel(g2) @ weights[:n] + weights[n] + grid @ weights[n + 1:]  # (n_grid, all fields)
        # fade every field to zero at the ROI border so nothing outside it changes
        edge = np.minimum(np.minimum(grid[:, 0], wid - 1 - grid[:, 0]), np.minimum(grid[:, 1], hgt - 1 - grid[:, 1]))
        ramp = np.clip((edge - 1.5 * cell) / max(0.12 * min(hgt, wid), 1.0), 0, 1)
        values *= (ramp * ramp * (3 - 2 * ramp))[:, None]
        self.fields, col = {}, 0
        for var, b in self.basis.items():  # (n_grid, k * 2) -> (k, gh, gw, 2)
            f = values[:, col: col + b.shape[0] * 2]
            col += b.shape[0] * 2
            self.fields[var] = f.reshape(gh, gw, len(b), 2).transpose(2, 0, 1, 3).astype(np.float32)
        # per-pixel coordinates by broadcasting a row and a column (the face frame is affine in them)
        px, py = np.arange(wid, dtype=np.float32)[None, :], np.arange(hgt, dtype=np.float32)[:, None]
        self.pixel_xy = (px, py)
        self.pixel_xy2 = np.empty((hgt, wid, 2), np.float32)
        self.pixel_xy2[..., 0], self.pixel_xy2[..., 1] = px, py
        dx = px.astype(np.float64) + (self.origin[0] - self.ff.center[0])
        dy = py.astype(np.float64) + (self.origin[1] - self.ff.center[1])
        u, v, half = self.ff.u, self.ff.v, self.ff.half_width
        # each sum rounded straight into float32 (as .astype would), without a full-ROI float64 temporary
        self.pixel_ab = tuple(np.add(dx * cx, dy * cy, out=np.empty((hgt, wid), np.float32), casting="same_kind")
                              for cx, cy in ((u[0] / half, u[1] / half), (v[0], v[1])))

    # ------------------------------------------------------------------ per pose
    def control_targets(self, pose: np.ndarray) -> dict[str, np.ndarray]:
        """Where the inner lip contours go (image pixels), for the seam and the mouth painter."""
        coef = _coef(pose).astype(np.float64)
        sl = self.slices
        targets = {}
        for var, part in (("up", "ui"), ("lo", "li")):
            disp = np.tensordot(coef, self.basis[var][:, sl[part]], axes=1)
            targets[part] = self.ctrl[sl[part]] + disp
        corner = np.tensordot(coef, self.basis["lo"][:, sl["corner"]], axes=1) + self.ctrl[sl["corner"]]
        targets["corners"] = corner[2:4]  # inner corners 78, 308
        return targets

    def maps(self, pose: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Backward maps over the ROI for cv2.remap (CV_32FC2, one above and one below the lip line), the
        weight of the lower one per pixel, and the inner-lip targets."""
        coef = _coef(pose)
        targets = self.control_targets(pose)
        full = []
        for var in ("up", "lo"):
            field = np.tensordot(coef, self.fields[var], axes=1)  # (gh, gw, 2) forward displacement
            x = self._invert(field)
            disp = cv2.resize(x - self.grid_xy, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            full.append(disp + self.pixel_xy2)
        return full, self._below_seam(targets), targets

    def _invert(self, field: np.ndarray, steps: int = 5) -> np.ndarray:
        """Source position x of every grid node y with x + field(x) = y, by Newton's method on the coarse grid
        (lips stretch several-fold when a mouth closes or opens, too steep for plain fixed-point iteration)."""
        gh, gw = self.grid_shape
        sx, sy = self.size[1] / gw, self.size[0] / gh
        dfx_dy, dfx_dx = np.gradient(field[..., 0], sy, sx)
        dfy_dy, dfy_dx = np.gradient(field[..., 1], sy, sx)
        jac = np.stack([1 + dfx_dx, dfx_dy, dfy_dx, 1 + dfy_dy], axis=-1).astype(np.float32)
        y = self.grid_xy
        x = y - field
        limit = 2.0 * max(sx, sy)
        for _ in range(steps):
            gx = (x[..., 0] + 0.5) * self.to_grid[0] - 0.5
            gy = (x[..., 1] + 0.5) * self.to_grid[1] - 0.5
            f = cv2.remap(field, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            j = cv2.remap(jac, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            r = y - x - f
            det = j[..., 0] * j[..., 3] - j[..., 1] * j[..., 2]
            det = np.where(np.abs(det) < 0.05, np.copysign(0.05, det), det)
            dx = (j[..., 3] * r[..., 0] - j[..., 1] * r[..., 1]) / det
            dy = (j[..., 0] * r[..., 1] - j[..., 2] * r[..., 0]) / det
            # the step, at most `limit` long (|step| as np.linalg.norm sums it; fewer temporaries per step)
            scale = np.minimum(1.0, limit / np.maximum(np.sqrt(dx * dx + dy * dy), 1e-6))
            x[..., 0] += dx * scale
            x[..., 1] += dy * scale
        return x.astype(np.float32)

    def _below_seam(self, targets: dict[str, np.ndarray]) -> np.ndarray:
        """1 below the new lip line (between the corners: a sharp step; beyond them: a widening ramp)."""
        ff = self.ff
        mid = np.vstack([targets["corners"][0], (targets["ui"] + targets["li"]) / 2, targets["corners"][1]])
        ma, mb = ff.ab(mid)
        order = np.argsort(ma)
        a, b = self.pixel_ab
        # clip((b - seam) / (1 + 0.8 * beyond) + 0.5, 0, 1), in place over the ROI (same float64 arithmetic)
        seam = np.interp(a, ma[order], mb[order])
        band = ma[order][0] - a
        np.maximum(band, a - ma[order][-1], out=band)
        np.maximum(band, 0, out=band)
        band *= ff.half_width  # how far beyond the corners (pixels)
        band *= 0.8
        band += 1.0
        np.subtract(b, seam, out=seam)
        seam /= band
        seam += 0.5
        np.clip(seam, 0.0, 1.0, out=seam)
        return seam.astype(np.float32)


def pose_key(pose: np.ndarray) -> bytes:
    """A cache key for a pose (quantised so frames with the same pose share one render)."""
    return np.round(np.asarray(pose, np.float32) * 2000).astype(np.int32).tobytes()


__all__ = ["PARAMS", "FaceFrame", "MouthWarp", "pose_key"]
