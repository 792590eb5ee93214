"""Make the edited test clips (shots cut together as an editor would) from the shared test videos.

    python tests/data/faces/make_cuts.py [/work/shared/testdata]

Writes cut_aba.mp4, cut_swap.mp4 and cut_same.mp4 next to this file (25 fps H.264, no audio); SOURCES.md
in tests/data says where every shot comes from. Run once; the tests read only the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
FPS = 25
WOMAN, MAN, OBAMA = "vid_hdtf_woman_flag_8s.mp4", "vid_LONG_60s_man_talking.mp4", "vid_obama_weekly_address_20s.mp4"


def frames(src: Path, start: float, seconds: float, size: tuple[int, int],
           crop: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    """`seconds` of `src` from `start` (25 fps), cropped to (top, bottom, left, right) and resized to (w, h)."""
    from lipdub.media import iter_frames

    first, n, out = round(start * FPS), round(seconds * FPS), []
    for i, frame in enumerate(iter_frames(src, fps=FPS)):
        if i >= first + n:
            break
        if i >= first:
            if crop is not None:
                frame = frame[crop[0]:crop[1], crop[2]:crop[3]]
            out.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    assert len(out) == n, (src, start, len(out))
    return out


def side_by_side(left: list[np.ndarray], right: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate([a, b], axis=1) for a, b in zip(left, right, strict=True)]


def write(path: Path, shots: list[list[np.ndarray]]) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.height, stream.width = shots[0][0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "20", "preset": "slow"}
        for shot in shots:
            for frame in shot:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    print(path, sum(len(s) for s in shots), "frames, shots start at",
          np.cumsum([0] + [len(s) for s in shots[:-1]]).tolist())


def main(shared: Path) -> None:
    woman, man, obama = shared / WOMAN, shared / MAN, shared / OBAMA
    sq, half = (192, 192), (160, 160)
    # woman | man | woman, each face at about the same place
    write(HERE / "cut_aba.mp4", [frames(woman, 0.0, 1.0, sq), frames(man, 10.0, 1.0, sq), frames(woman, 4.0, 1.0, sq)])
    # two people side by side; they swap sides at a cut; the woman leaves for a shot and comes back
    write(HERE / "cut_swap.mp4", [
        side_by_side(frames(woman, 0.0, 1.0, half), frames(man, 10.0, 1.0, half)),
        side_by_side(frames(man, 11.0, 1.0, half), frames(woman, 1.0, 1.0, half)),
        frames(man, 12.0, 1.0, (320, 160), crop=(48, 176, 0, 256)),
        side_by_side(frames(woman, 3.0, 1.0, half), frames(man, 13.0, 1.0, half)),
    ])
    # one person, a wide shot then a close-up from later in the same address
    write(HERE / "cut_same.mp4", [frames(obama, 2.0, 1.5, sq), frames(obama, 10.0, 1.5, sq, crop=(70, 370, 87, 387))])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "testdata")
