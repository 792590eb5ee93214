"""End-to-end `lipdub animate` speed and memory: frames/s, real-time factor and peak RSS per case.

Cases: a 512x512 still + 10 s of speech; a 1280x720 25 fps 10 s video; the same video at 60 s
(peak memory must not grow with length). Each case runs in its own process so its peak RSS is its own, with
its own empty LIPDUB_HOME (faces detected from scratch).
The wav2lip engine uses a protocol-weight checkpoint (same architecture and cost as the official one) and
automatic face detection; the viseme engine needs no weights.

    python benchmarks/bench_animate.py [--engine wav2lip|viseme|both] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import cold_home  # benchmarks/common.py (scripts run from benchmarks/)

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "examples" / "portrait.jpg"
SPEECH = ROOT / "examples" / "speech_nl.wav"


def make_inputs(folder: Path) -> dict[str, Path]:
    """A 512x512 still, 10 s of real speech, and 1280x720 25 fps videos of 10 s and 60 s (a slow zoom)."""
    import cv2

    from lipdub import media

    face = media.read_image(PORTRAIT)
    still = folder / "still512.png"
    cv2.imwrite(str(still), cv2.resize(face, (512, 512))[..., ::-1])
    speech = media.load_audio(SPEECH, sr=16000)
    out = {"still": still}
    for seconds in (10, 60):
        reps = int(np.ceil(seconds * 16000 / len(speech)))
        wav = folder / f"speech{seconds}.wav"
        media.write_audio(wav, np.tile(speech, reps)[: seconds * 16000], 16000)
        out[f"audio{seconds}"] = wav
        path = folder / f"video720_{seconds}s.mp4"
        with media.VideoWriter(path, 25) as writer:
            for i in range(seconds * 25):
                z = 1.0 + 0.1 * np.sin(i / 50)
                h = int(640 / z)  # 582..711 px: a slow zoom that stays inside the frame
                w = int(h * face.shape[1] / face.shape[0])
                frame = np.full((720, 1280, 3), 40, np.uint8)
                small = cv2.resize(face, (w, h))
                x0 = (1280 - w) // 2
                frame[(720 - h) // 2:(720 - h) // 2 + h, x0:x0 + w] = small
                writer.write(frame)
        out[f"video{seconds}"] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["wav2lip", "viseme", "both"], default="both")
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()
    folder = opts.keep or Path(tempfile.mkdtemp(prefix="lipdub-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(folder)
    engines = ["wav2lip", "viseme"] if opts.engine == "both" else [opts.engine]
    ckpt = folder / "protocol_wav2lip.pth"
    if "wav2lip" in engines:
        from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

        write_protocol_checkpoint(ckpt, kind="wav2lip")
    rows = []
    for engine in engines:
        extra = ["--engine", engine] + (["--checkpoint", str(ckpt)] if engine == "wav2lip" else [])
        for case, media_path, seconds in (("still 512x512 + 10 s", inputs["still"], 10.0),
                                          ("720p video 10 s", inputs["video10"], 10.0),
                                          ("720p video 60 s", inputs["video60"], 60.0)):
            audio = inputs[f"audio{int(seconds)}"]
            out = folder / f"out_{engine}_{media_path.stem}.mp4"
            # each case in its own interpreter, so RUSAGE_CHILDREN's max is this case's own peak
            code = ("import resource,subprocess,sys,json,time;t=time.perf_counter();"
                    "p=subprocess.run(sys.argv[1:]);"
                    "print(json.dumps({'rc':p.returncode,'wall':time.perf_counter()-t,"
                    "'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
            cmd = [sys.executable, "-c", code, sys.executable, "-m", "lipdub", "animate",
                   str(media_path), str(audio), "-o", str(out), "-q", *extra]
            env = {**os.environ, "LIPDUB_HOME": str(cold_home())}  # faces detected from scratch
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            if stats["rc"] != 0:
                raise SystemExit(f"{engine} {case} failed:\n{proc.stderr[-2000:]}")
            frames = int(round(seconds * 25))
            fps = frames / stats["wall"]
            rows.append((engine, case, frames, stats["wall"], fps, seconds / stats["wall"], stats["rss"] / 1024 / 1024))
    print(f"{'engine':8} {'case':22} {'frames':>6} {'wall s':>8} {'frames/s':>9} {'x real time':>11} "
          f"{'peak RSS GiB':>12}")
    for engine, case, frames, wall, fps, rtf, rss in rows:
        print(f"{engine:8} {case:22} {frames:6d} {wall:8.1f} {fps:9.1f} {rtf:11.2f} {rss:12.2f}")
    print("(wall time includes interpreter start, model load, face detection, encoding; goal for wav2lip: "
          ">= 15 frames/s on the 720p video, peak RSS <= 1 GiB and the same for 60 s as for 10 s)")


if __name__ == "__main__":
    main()
