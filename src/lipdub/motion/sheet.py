"""A contact sheet of a living still, to judge its motion at a glance: head frames over time, one blink frame
by frame, and the plan's curves (head angles, blinks, brows) over the speech."""

from __future__ import annotations

import cv2
import numpy as np

from lipdub.motion.layer import Motion
from lipdub.motion.plan import Voice

WHITE = (255, 255, 255)
INK = (20, 20, 20)


def motion_sheet(motion: Motion, track_id: int | None, voice: Voice, fps: float, tile: int = 200,
                 columns: int = 8) -> np.ndarray:
    """RGB sheet for the face `track_id` of `motion` (its speech in `voice`)."""
    mover = next(m for m in motion.movers if m.face.track_id == track_id)
    n, ax = motion.n_frames, mover.warp.ax
    c = mover.controls
    centre = ax.center - 0.1 * ax.height * ax.v
    side = int(round(1.9 * ax.height))
    times = np.linspace(0, n - 1, columns).round().astype(int)
    head = [_label(_crop(motion.frame(i)[0], centre, side, tile),
                   f"{i / fps:.1f}s y{np.degrees(c.yaw[i]):+.1f} p{np.degrees(c.pitch[i]):+.1f} "
                   f"r{np.degrees(c.roll[i]):+.1f}") for i in times]
    rows = [np.hstack(head)]
    blink = _first_blink(c.blink)
    if blink is not None:
        eyes = mover.warp.lm[[33, 263]].mean(0)
        eside = int(round(0.75 * ax.width))
        frames = range(max(0, blink - 3), min(n, blink - 3 + columns))
        tiles = [_label(_crop(motion.frame(i)[0], eyes, eside, tile, aspect=0.5),
                        f"{i / fps:.2f}s closed {c.blink[i]:.2f}") for i in frames]
        tiles += [np.full_like(tiles[0], 255)] * (columns - len(tiles))
        rows.append(np.hstack(tiles))
    rows.append(_chart(c, voice, fps, rows[0].shape[1], ax.height))
    return np.vstack(rows)


def _first_blink(closure: np.ndarray) -> int | None:
    """Index of the first fully shut frame, or None."""
    shut = np.flatnonzero(closure >= 0.99)
    return int(shut[0]) if len(shut) else None


def _crop(frame: np.ndarray, centre: np.ndarray, side: int, tile: int, aspect: float = 1.0) -> np.ndarray:
    """A side x side*aspect crop around `centre` (grey beyond the photo), resized to tile x tile*aspect."""
    hgt = int(round(side * aspect))
    x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - hgt / 2))
    pad = max(side, hgt)
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    crop = padded[y0 + pad: y0 + pad + hgt, x0 + pad: x0 + pad + side]
    size = (tile, int(round(tile * aspect)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if side > tile else cv2.INTER_CUBIC)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    band = np.full((22, image.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.36, INK, 1, cv2.LINE_AA)
    return cv2.copyMakeBorder(np.vstack([image, band]), 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=WHITE)


def _chart(c, voice: Voice, fps: float, width: int, face_height: float, height: int = 220) -> np.ndarray:
    """Curves over time: speech (grey band), yaw/pitch/roll (degrees), blinks (black), brow lift (green)."""
    img = np.full((height, width, 3), 255, np.uint8)
    n = len(c.blink)
    x = np.linspace(8, width - 8, max(n, 2))[:n]
    top, mid, low = 20, 100, 205  # head lines around `mid` (±3 degrees), blinks and brows down to `low`
    step = (width - 16) / max(n - 1, 1)
    for i in np.flatnonzero(voice.active > 0.5):
        cv2.rectangle(img, (int(x[i] - step / 2), top), (int(np.ceil(x[i] + step / 2)), top + 8), (170, 170, 170), -1)
    for deg in (-3, 0, 3):
        y = int(mid - deg * 22)
        cv2.line(img, (0, y), (width, y), (200, 200, 200) if deg else (160, 160, 160), 1)
        cv2.putText(img, f"{deg:+d}", (2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, INK, 1, cv2.LINE_AA)
    curves = [(np.degrees(c.yaw), (200, 40, 40), 22), (np.degrees(c.pitch), (40, 40, 200), 22),
              (np.degrees(c.roll), (230, 140, 0), 22)]
    for values, colour, scale in curves:
        pts = np.stack([x, mid - values * scale], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
    pts = np.stack([x, low - c.blink * 40], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, INK, 1, cv2.LINE_AA)
    pts = np.stack([x, low - 40 - c.brow / 0.04 * 40], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, (0, 150, 0), 1, cv2.LINE_AA)
    for s in range(int(n / fps) + 1):
        cv2.putText(img, f"{s}s", (int(8 + s * fps * (width - 16) / max(n, 1)), height - 2),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, INK, 1, cv2.LINE_AA)
    legend = "yaw (red)  pitch (blue)  roll (orange), degrees;  blink closure (black);  brow lift (green);  " \
             "speech (grey)"
    cv2.putText(img, legend, (30, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, INK, 1, cv2.LINE_AA)
    return img
