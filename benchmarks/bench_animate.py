"""End-to-end `lipdub animate` speed and memory: frames/s, real-time factor and peak RSS per case.

Cases: a 512x512 still + 10 s of speech; a 1280x720 still (the portrait on a 720p canvas) + 10 s; a 1280x720 25 fps
10 s video; the same video at 60 s (peak memory
must not grow with length). Each case runs in its own process (so its peak RSS is its own) with its own empty
LIPDUB_HOME, as a new user has it: face detection is part of the figure (cold cache; a video's first run analyses
its faces while it renders, `pipeline._Speculation`, so the video cases measure that overlapped path). The wav2lip
engine uses a protocol-weight checkpoint (same architecture and cost as the official one) and automatic face
detection; the viseme engine needs no weights. `--hog` runs every case twice, alone and beside a process that keeps one
core busy: memory must not depend on the machine's load. `--precision` passes LIPDUB_PRECISION.

    python benchmarks/bench_animate.py [--engine wav2lip|viseme|both] [--cases still,still720,10,60] [--hog]
        [--keep DIR]

`--keep DIR` keeps the inputs and outputs there; a later run with the same folder reuses its videos.
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

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "examples" / "portrait.jpg"
SPEECH = ROOT / "examples" / "speech_nl.wav"


def make_inputs(folder: Path) -> dict[str, Path]:
    """A 512x512 and a 1280x720 still, 10 s of real speech, and 1280x720 25 fps videos of 10 s and 60 s (a slow
    zoom)."""
    import cv2
    from common import still_720p  # benchmarks/common.py (scripts run from benchmarks/)

    from lipdub import media

    face = media.read_image(PORTRAIT)
    out = {"still": folder / "still512.png", "still720": folder / "still720.png"}
    cv2.imwrite(str(out["still"]), cv2.resize(face, (512, 512))[..., ::-1])
    cv2.imwrite(str(out["still720"]), still_720p(PORTRAIT)[..., ::-1])
    speech = media.load_audio(SPEECH, sr=16000)
    for seconds in (10, 60):
        reps = int(np.ceil(seconds * 16000 / len(speech)))
        wav = folder / f"speech{seconds}.wav"
        media.write_audio(wav, np.tile(speech, reps)[: seconds * 16000], 16000)
        out[f"audio{seconds}"] = wav
        path = out[f"video{seconds}"] = folder / f"video720_{seconds}s.mp4"
        if path.exists():  # made by an earlier run into the same --keep folder
            continue
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
    return out


CASES = {"still": ("still 512x512 + 10 s", "still", 10), "still720": ("still 1280x720 + 10 s", "still720", 10),
         "10": ("720p video 10 s", "video10", 10),
         "60": ("720p video 60 s", "video60", 60)}
HOG = "while True: pass"  # one busy core, as another program on the machine would


def run_case(media_path: Path, audio: Path, out: Path, extra: list[str], env: dict[str, str]) -> dict:
    """Run `lipdub animate` in its own interpreter with a fresh LIPDUB_HOME; wall seconds and peak RSS (KiB)."""
    # RUSAGE_CHILDREN's max in a fresh wrapper interpreter is this case's own peak
    code = ("import resource,subprocess,sys,json,time;t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:]);"
            "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
            "print(json.dumps({'rc':p.returncode,'wall':time.perf_counter()-t,"
            "'cpu':u.ru_utime+u.ru_stime,'rss':u.ru_maxrss}))")
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "lipdub", "animate",
           str(media_path), str(audio), "-o", str(out), "-q", *extra]
    with tempfile.TemporaryDirectory(prefix="lipdub-home-") as home:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "LIPDUB_HOME": home})
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    if stats["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed:\n{proc.stderr[-2000:]}")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["wav2lip", "viseme", "both"], default="both")
    parser.add_argument("--cases", default="still,still720,10,60", help="comma-separated: still, still720, 10, 60")
    parser.add_argument("--hog", action="store_true", help="also run each case beside a CPU hog process")
    parser.add_argument("--precision", help="LIPDUB_PRECISION for the wav2lip engine (default: fp32)")
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()
    load = os.getloadavg()[0]
    folder = opts.keep or Path(tempfile.mkdtemp(prefix="lipdub-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(folder)
    engines = ["wav2lip", "viseme"] if opts.engine == "both" else [opts.engine]
    ckpt = folder / "protocol_wav2lip.pth"
    if "wav2lip" in engines:
        from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

        write_protocol_checkpoint(ckpt, kind="wav2lip")
    env = dict(os.environ)
    if opts.precision:
        env["LIPDUB_PRECISION"] = opts.precision
    rows = []
    for engine in engines:
        extra = ["--engine", engine] + (["--checkpoint", str(ckpt)] if engine == "wav2lip" else [])
        for key in opts.cases.split(","):
            case, media_key, seconds = CASES[key]
            audio = inputs[f"audio{seconds}"]
            out = folder / f"out_{engine}_{media_key}.mp4"
            for hog in ([False, True] if opts.hog else [False]):
                hogger = subprocess.Popen([sys.executable, "-c", HOG]) if hog else None
                try:
                    stats = run_case(inputs[media_key], audio, out, extra, env)
                finally:
                    if hogger is not None:
                        hogger.kill()
                        hogger.wait()
                frames = seconds * 25
                rows.append((engine, case + (" +hog" if hog else ""), frames, stats["wall"], stats["cpu"],
                             frames / stats["wall"], seconds / stats["wall"], stats["rss"] / 1024 / 1024))
    print(f"load average before the runs: {load:.1f} on {os.cpu_count()} cores (figures from a loaded machine "
          "are rough)")
    print(f"{'engine':8} {'case':27} {'frames':>6} {'wall s':>8} {'CPU s':>7} {'frames/s':>9} {'x real time':>11} "
          f"{'peak RSS GiB':>12}")
    for engine, case, frames, wall, cpu, fps, rtf, rss in rows:
        print(f"{engine:8} {case:27} {frames:6d} {wall:8.1f} {cpu:7.1f} {fps:9.1f} {rtf:11.2f} {rss:12.3f}")
    print("(CPU s: user + sys of the whole process, all threads; the steadier figure on a shared machine)")
    print("(cold cache: wall time includes interpreter start, model load, face detection, encoding. Goals: wav2lip "
          ">= 25 frames/s on 720p video, peak RSS <= 1 GiB for 10 s and 60 s, with or without the hog; viseme "
          ">= 60 frames/s on 720p video, >= 100 frames/s on the 720p still)")


if __name__ == "__main__":
    main()
