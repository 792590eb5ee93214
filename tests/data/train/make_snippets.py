"""How the training fixture snippets were made (run once by hand; tests only read the .mp4 files).

Each snippet is a fixed face crop of a real talking-head video, resized to 128x128, H.264 + AAC 16 kHz mono.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/testdata")
OUT = Path(__file__).parent
SNIPPETS = {  # name: (source file, start s, end s, crop box (top, bottom, left, right))
    "man_talking_crop128.mp4": ("vid_LONG_60s_man_talking.mp4", 0.0, 20.0, (50, 234, 50, 220)),
    "voxceleb_man_crop128.mp4": ("vid_voxceleb2_man_224px_12s.mp4", 0.0, 11.96, (0, 170, 25, 205)),
}


def load_audio16k(path: Path, start: float, end: float) -> np.ndarray:
    """Mono 16 kHz float32 samples of [start, end)."""
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = [r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in res.resample(f)]
        chunks += [r.to_ndarray().reshape(-1) for r in res.resample(None)]
    wav = np.concatenate(chunks)
    return wav[int(start * 16000):int(end * 16000)]


def main() -> None:
    for name, (src, start, end, (t, b, l, r)) in SNIPPETS.items():
        n_frames = round((end - start) * 25)
        wav = load_audio16k(SHARED / src, start, end)[: n_frames * 640]
        with av.open(str(SHARED / src)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)
                      if float(f.pts * f.time_base) >= start - 1e-3][:n_frames]
        with av.open(str(OUT / name), "w") as out:
            vs = out.add_stream("libx264", rate=25, options={"crf": "18"})
            vs.width = vs.height = 128
            vs.pix_fmt = "yuv420p"
            aus = out.add_stream("aac", rate=16000, layout="mono")
            aus.bit_rate = 48000
            for rgb in frames:
                crop = cv2.resize(rgb[t:b, l:r], (128, 128), interpolation=cv2.INTER_AREA)
                out.mux(vs.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")))
            out.mux(vs.encode())
            af = av.AudioFrame.from_ndarray(wav[None].astype(np.float32), format="flt", layout="mono")
            af.sample_rate = 16000
            af.time_base = Fraction(1, 16000)
            af.pts = 0
            out.mux(aus.encode(af))
            out.mux(aus.encode())
        print(name, len(frames), "frames", len(wav) / 16000, "s", (OUT / name).stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
