"""VideoWriter's colours: stored yuv420p is FFmpeg's (swscale's) BT.709 limited-range conversion, +-1 level."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipdub.media import VideoWriter, iter_frames, read_image

ROOT = Path(__file__).parent.parent
PORTRAIT = ROOT / "examples" / "portrait.jpg"
VIDEO = Path(__file__).parent / "data" / "faces" / "vox_man_3s.mp4"
SATURATED = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
             (255, 255, 255), (0, 0, 0), (128, 128, 128), (64, 64, 64)]
BLOCK = 13  # odd: block edges fall inside a chroma pair and between chroma rows


def colour_chart(height: int = 96, width: int = 130) -> np.ndarray:
    """Saturated blocks (primaries, secondaries, greys), grey and colour ramps, a full-saturation hue sweep."""
    chart = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(SATURATED):
        chart[2:34, i * BLOCK:(i + 1) * BLOCK] = colour  # bands meet at even and odd rows: chroma siting shows
    ramp = np.linspace(0, 255, width)
    chart[34:49] = np.stack([ramp, ramp, ramp], -1).round()
    chart[49:66] = np.stack([ramp, 255 - ramp, ramp / 2], -1).round()
    hue = np.linspace(0, 179, width)[None].repeat(height - 66, 0)
    value = np.linspace(255, 40, height - 66)[:, None].repeat(width, 1)
    hsv = np.stack([hue, np.full_like(hue, 255), value], -1).astype(np.uint8)
    chart[66:] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return chart


def swscale_yuv(rgb: np.ndarray) -> np.ndarray:
    """FFmpeg's conversion of an even-sized RGB frame: yuv420p BT.709 limited range, as (H * 3/2, W)."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG").to_ndarray()


def stored_yuv(path: Path) -> tuple[np.ndarray, av.VideoFrame]:
    """The first frame of a video as stored: its yuv420p planes (H * 3/2, W) and the decoded frame."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        return frame.to_ndarray(), frame


def real_frames() -> dict[str, np.ndarray]:
    portrait = read_image(PORTRAIT)
    return {"chart": colour_chart(), "portrait": portrait[40:137, 60:191],  # 131x97: odd, padded by the writer
            "video": next(iter_frames(VIDEO)), "tiny": colour_chart()[:5, 60:69]}


@pytest.mark.parametrize("name", ["chart", "portrait", "video", "tiny"])
def test_stored_planes_are_swscales_conversion_within_one_level(tmp_path, name):
    rgb = real_frames()[name]
    out = tmp_path / f"{name}.mp4"
    with VideoWriter(out, 25, crf=0) as writer:  # crf 0: x264 lossless, the file holds the converted planes
        writer.write(rgb)
    stored, frame = stored_yuv(out)
    padded = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
    diff = stored.astype(int) - swscale_yuv(padded)
    assert stored.shape == diff.shape and np.abs(diff).max() <= 1, f"{name}: {np.abs(diff).max()} levels off"
    luma, chroma = diff[:len(padded)].mean(), diff[len(padded):].mean()  # no shift: as bright, as saturated
    assert abs(luma) < 0.03 and abs(chroma) < 0.03, f"{name}: luma {luma:+.2f}, chroma {chroma:+.2f} on average"
    assert (frame.colorspace, frame.color_range) == (1, 1)  # tagged BT.709, limited range


def test_colour_chart_comes_back_as_rgb(tmp_path):
    chart = colour_chart()
    out = tmp_path / "chart.mp4"
    with VideoWriter(out, 25) as writer:  # the default quality
        for _ in range(3):
            writer.write(chart)
    back = next(iter_frames(out)).astype(int)
    for i, colour in enumerate(SATURATED):  # block interiors, away from the chroma bleed of the edges
        block = back[6:30, i * BLOCK + 3:(i + 1) * BLOCK - 3].reshape(-1, 3).mean(0)
        assert np.abs(block - colour).max() < 6, (colour, block.round())
    ramps = np.s_[37:46, 4:-4]
    assert np.abs(back[ramps] - chart[ramps]).mean() < 2.5
    sweep = np.s_[70:, 4:-4]
    assert np.abs(back[sweep] - chart[sweep]).mean() < 4
