"""Live sessions: latency, CPU per 20 ms push, and how well the live mouth follows speech next to an offline
render of the same audio.

1. Speed: a 1280x720 portrait driven by speech in 20 ms pushes as fast as it runs: the look-ahead latency (audio
   pushed minus the newest frame's timestamp, after every push) p50/p95/max, wall and CPU time per push
   p50/p95/mean (real time needs < 20 ms CPU per push on one core), and frames out vs audio in at the end.
2. Fidelity: the same speech through a live session and through the offline viseme engine (`lipdub animate`'s,
   with phones), FaceMesh reading the mouth opening back from both renders: the correlation of live with
   offline, and of each with the speech loudness, side by side.

The machine may be shared: CPU time is the figure that does not depend on other load.
Usage:
    python benchmarks/bench_live.py [--portrait tests/data/viseme/portraits/img_obama_smile_teeth.jpg]
        [--audio tests/data/viseme/long_silence_12s.flac] [--seconds 60] [--lookahead-ms 150]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import still_720p  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.live import LiveSession
from lipdub.media import load_audio

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "tests" / "data" / "viseme"
PUSH = 320  # 20 ms at 16 kHz


def bench_speed(portrait: Path, audio: np.ndarray, seconds: float, lookahead_ms: float) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        still = Path(tmp) / "still_720p.jpg"
        Image.fromarray(still_720p(portrait)).save(still, quality=95)
        t0 = time.perf_counter()
        session = LiveSession(still, lookahead_ms=lookahead_ms)
        setup = time.perf_counter() - t0
    stream = np.resize(audio, int(seconds * 16000)).astype(np.float32)
    latency, wall, cpu, frames, newest = [], [], [], 0, None
    for k in range(0, len(stream), PUSH):
        w0, c0 = time.perf_counter(), time.process_time()
        out = session.push(stream[k:k + PUSH])
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        frames += len(out)
        newest = out[-1][0] if out else newest
        if newest is not None:
            latency.append(session.pushed_seconds - newest)
    frames += len(session.close())
    ms = lambda x, q: np.percentile(x, q) * 1000  # noqa: E731
    print(f"speed, 1280x720 portrait, {seconds:g} s of speech in 20 ms pushes (set-up {setup:.1f} s):")
    print(f"  look-ahead latency: p50 {ms(latency, 50):.0f} ms, p95 {ms(latency, 95):.0f} ms, "
          f"max {max(latency) * 1000:.0f} ms (bound {lookahead_ms:g} ms)")
    print(f"  per 20 ms push: wall p50 {ms(wall, 50):.1f} / p95 {ms(wall, 95):.1f} ms, cpu p50 {ms(cpu, 50):.1f} / "
          f"p95 {ms(cpu, 95):.1f} / mean {np.mean(cpu) * 1000:.1f} ms ({np.mean(cpu) / 0.02:.2f} of a core)")
    print(f"  frames out {frames} for {len(stream) / 16000:g} s of audio at 25 fps (expected "
          f"{int(np.ceil(len(stream) * 25 / 16000))})")


def openings(frames: list[np.ndarray]) -> np.ndarray:
    """Inner-lip gap over nose-bridge-to-chin length, by FaceMesh (as tests/test_viseme.py measures it)."""
    from mediapipe.python.solutions import face_mesh as mp_mesh

    mesh = mp_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    out = []
    for f in frames:
        res = mesh.process(f)
        if not res.multi_face_landmarks:
            out.append(np.nan)
            continue
        h, w = f.shape[:2]
        p = np.array([(q.x * w, q.y * h) for q in res.multi_face_landmarks[0].landmark])
        out.append(np.linalg.norm(p[14] - p[13]) / np.linalg.norm(p[152] - p[168]))
    return np.array(out)


def bench_fidelity(portrait: Path, audio: np.ndarray, lookahead_ms: float) -> None:
    import librosa

    from lipdub.engines.base import FrameJob
    from lipdub.engines.viseme import VisemeEngine
    from lipdub.engines.viseme.render import apply_patch
    from lipdub.faces import crop_box, detect_faces
    from lipdub.media import read_image

    session = LiveSession(portrait, motion="none", lookahead_ms=lookahead_ms)
    live = []
    for k in range(0, len(audio), PUSH):
        live += [f for _, f in session.push(audio[k:k + PUSH])]
    live += [f for _, f in session.close()]
    image = read_image(portrait)
    engine = VisemeEngine()
    n = engine.prepare(audio, 25)
    face = max(detect_faces(image), key=lambda f: f.area)
    box = crop_box(face, image.shape)
    offline = [apply_patch(image, p) for p in engine.render([FrameJob(i, image, face, box) for i in range(n)])]
    m = min(len(live), len(offline))
    a, b = openings(live[:m]), openings(offline[:m])
    rms = librosa.feature.rms(y=audio, frame_length=1280, hop_length=640, center=True)[0]
    loud = np.convolve(20 * np.log10(np.maximum(rms, 1e-4)), np.ones(3) / 3, mode="same")[:m]
    ok = np.isfinite(a) & np.isfinite(b)
    r = lambda x, y: float(np.corrcoef(x[ok], y[ok])[0, 1])  # noqa: E731
    lag = max(range(-4, 5), key=lambda d: r(np.roll(a, -d), b))
    print(f"fidelity, {m} frames of {portrait.name} + speech, mouth opening read by FaceMesh:")
    print(f"  {'':28}{'live':>8}{'offline':>9}")
    print(f"  {'correlation with loudness':28}{r(a, loud):8.2f}{r(b, loud):9.2f}")
    print(f"  {'opening p80 / max':28}{np.nanquantile(a, 0.8):5.3f}/{np.nanmax(a):.2f}"
          f"{np.nanquantile(b, 0.8):6.3f}/{np.nanmax(b):.2f}")
    print(f"  live vs offline opening: r = {r(a, b):.2f} (best at a shift of {lag * 40:+d} ms: "
          f"r = {r(np.roll(a, -lag), b):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--portrait", type=Path, default=HERE / "portraits" / "img_obama_smile_teeth.jpg")
    ap.add_argument("--audio", type=Path, default=HERE / "long_silence_12s.flac")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the speed run (the audio looped)")
    ap.add_argument("--lookahead-ms", type=float, default=150.0)
    args = ap.parse_args()
    audio = load_audio(args.audio, sr=16000)
    bench_speed(args.portrait, audio, args.seconds, args.lookahead_ms)
    bench_fidelity(args.portrait, audio, args.lookahead_ms)


if __name__ == "__main__":
    main()
