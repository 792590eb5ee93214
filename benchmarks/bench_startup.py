"""Start-up: wall and CPU time of the whole `lipdub animate` process on a photo and 3 s of speech, and where it goes.

Runs `python -m lipdub animate examples/portrait.jpg <first 3 s of examples/speech_nl.wav>` (viseme engine, the
default without weights) as a new process each time: cold (a new empty LIPDUB_HOME: faces are detected) and warm
(the face cache filled by an earlier run), plus `lipdub --help`. CPU is the process's user + sys time: on a shared
machine it is the steadier figure; the wall time is the goal (< 3 s). Then one run of each kind with timers around
the pipeline's stages (wall, and the process's CPU while each ran: the faces run beside the engine and the speech,
so those two overlap) and one with `-X importtime`, summed by package.

    python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "examples" / "portrait.jpg"
SPEECH = ROOT / "examples" / "speech_nl.wav"

# stage timers: this runs inside the measured process, wrapping pipeline functions before the CLI starts
STAGES = """
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
spent = {}
def wrap(module, name, label):
    fn = getattr(module, name)
    def timed(*args, **kwargs):
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            old = spent.get(label, (0.0, 0.0))
            spent[label] = (old[0] + time.perf_counter() - w, old[1] + time.process_time() - c)
    setattr(module, name, timed)
import lipdub.cli, lipdub.pipeline as p
spent["imports (cli, pipeline)"] = (time.perf_counter() - w0, time.process_time() - c0)
wrap(lipdub.cli, "build_parser", "argument parser")
wrap(p, "_prepare_speakers", "speech: cues, articulation, VAD")
wrap(p, "_track_faces", "faces: detection (cold) / cache (warm), beside speech")
wrap(p, "_living_still", "photo motion plan")
wrap(p, "stream", "render + encode frames")
wrap(p, "soundtrack", "soundtrack")
code = lipdub.cli.main(sys.argv[1:])
spent["total in process"] = (time.perf_counter() - w0, time.process_time() - c0)
print("STAGES " + json.dumps(spent), file=sys.stderr)
sys.exit(code)
"""


def speech_3s(folder: Path) -> Path:
    import numpy as np

    from lipdub import media

    audio = media.load_audio(SPEECH, sr=16000)
    path = folder / "speech3.wav"
    media.write_audio(path, np.asarray(audio[: 3 * 16000]), 16000)
    return path


def run(args: list[str], home: Path, prefix: list[str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one process."""
    env = {**os.environ, "LIPDUB_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = [sys.executable, *(["-m", "lipdub"] if prefix is None else prefix), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stderr


def imports_by_package(stderr: str, top: int = 8) -> list[tuple[str, float]]:
    """Self import time summed by top-level package, largest first (ms)."""
    total: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            total[m[2].split(".")[0]] += int(m[1]) / 1000
    return sorted(total.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    opt = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lipdub-bench-startup-"))
    audio = speech_3s(work)
    animate = ["animate", str(PORTRAIT), str(audio), "-o", str(work / "out.mp4"), "-q"]
    warm_home = work / "warm-home"
    run(animate, warm_home)  # fills the face cache

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are only as quiet as that)")
    rows = {"python -c pass": [run(["-c", "pass"], warm_home, prefix=[])[:2] for _ in range(opt.repeats)],
            "lipdub --help": [run(["--help"], warm_home)[:2] for _ in range(opt.repeats)],
            "animate, cold LIPDUB_HOME": [run(animate, Path(tempfile.mkdtemp(dir=work)))[:2]
                                          for _ in range(opt.repeats)],
            "animate, warm (faces cached)": [run(animate, warm_home)[:2] for _ in range(opt.repeats)]}
    print(f"{'whole process':32s} {'best wall s':>11s} {'its CPU s':>10s} {'median CPU s':>13s}")
    for name, runs in rows.items():
        wall, cpu = min(runs)
        median_cpu = sorted(c for _, c in runs)[len(runs) // 2]
        print(f"{name:32s} {wall:11.2f} {cpu:10.2f} {median_cpu:13.2f}")

    for kind, home in (("cold", Path(tempfile.mkdtemp(dir=work))), ("warm", warm_home)):
        _, _, err = run(animate, home, prefix=["-c", STAGES])
        spent = json.loads(err.split("STAGES ", 1)[1])
        print(f"\n{kind}: stages (lazy imports count in the stage that triggers them)   wall s   CPU s")
        for name, (wall, cpu) in spent.items():
            print(f"  {name:62s} {wall:6.2f} {cpu:7.2f}")
        _, _, err = run(animate, Path(tempfile.mkdtemp(dir=work)) if kind == "cold" else home,
                        prefix=["-X", "importtime", "-m", "lipdub"])
        print("  imports by package (ms, self time; wall): " +
              ", ".join(f"{name} {ms:.0f}" for name, ms in imports_by_package(err)))


if __name__ == "__main__":
    main()
