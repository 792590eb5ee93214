"""Preview image for `lipdub faces`: the first frame with numbered boxes, plus a contact sheet of tracks.

Numbers and colours are person ids; each track's thumbnail (its best frame) is labelled with its person,
shot and frames, so the tracks of one person across shots can be told apart and checked."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lipdub.faces.tracks import FaceTracks

COLORS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (255, 64, 255), (0, 220, 220)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def preview(first_frame: np.ndarray | None, tracks: FaceTracks, max_side: int = 1280, min_side: int = 480
            ) -> Image.Image:
    """Numbered boxes on the first frame (or the still); for videos a strip of each track's best view below."""
    if first_frame is None:
        first_frame = np.zeros((max(tracks.height, 1), max(tracks.width, 1), 3), np.uint8)
    im = Image.fromarray(first_frame)
    scale = min(max(1.0, min_side / max(im.size)), max_side / max(im.size))
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(im)
    line = max(2, round(max(im.size) / 400))
    font = _font(max(14, round(max(im.size) / 40)))
    for face in tracks.faces_in(0):
        color = COLORS[face.person_id % len(COLORS)]
        x1, y1, x2, y2 = (float(v) * scale for v in face.box)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        draw.text((x1 + line, max(0.0, y1 - font.size - 2 * line)), str(face.person_id), fill=color, font=font,
                  stroke_width=line, stroke_fill=(0, 0, 0))
    if tracks.num_frames <= 1 or not tracks.thumbs:
        return im
    return _with_contact_sheet(im, tracks, font)


def _with_contact_sheet(im: Image.Image, tracks: FaceTracks, font: ImageFont.ImageFont) -> Image.Image:
    """Append rows of track thumbnails, grouped by person, each labelled `face P, shot S: first-last`."""
    cell, pad = 128, 8
    info = {r["id"]: r for r in tracks.summary()}
    ids = sorted((t for t in tracks.track_ids if t in tracks.thumbs), key=lambda t: (info[t]["person"], t))
    per_row = max(1, (im.width - pad) // (cell + pad))
    rows = (len(ids) + per_row - 1) // per_row
    label_h = 2 * (font.size + 3)
    sheet = Image.new("RGB", (im.width, im.height + rows * (cell + label_h + pad) + pad), (24, 24, 24))
    sheet.paste(im, (0, 0))
    draw = ImageDraw.Draw(sheet)
    small = _font(max(12, font.size - 2))
    for k, tid in enumerate(ids):
        x = pad + (k % per_row) * (cell + pad)
        y = im.height + pad + (k // per_row) * (cell + label_h + pad)
        thumb = Image.fromarray(tracks.thumbs[tid])
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + label_h + (cell - thumb.height) // 2))
        r = info[tid]
        color = COLORS[r["person"] % len(COLORS)]
        draw.text((x, y), f"face {r['person']}", fill=color, font=small)
        draw.text((x, y + label_h // 2), f"shot {r['shot']}: {r['first_frame']}-{r['last_frame']}", fill=color,
                  font=small)
    return sheet
