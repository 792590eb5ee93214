"""Motion layer speed: ms per 1280x720 frame for a talking portrait (goal: <= 5 ms a frame on 2 cores).

Times `Motion.frame(i)` (warped frame + moved landmarks) over every frame of the speech, the one-off set-up
(speech features, plan, fields) separately, and beside it the viseme engine's cost on the still (the pipeline
draws the mouth on the still and then moves the frame, so the engine never sees a moving face).
The machine may be shared: each figure is the best of a few runs, with CPU time (user + system) alongside, and
the page faults a frame (fresh big arrays every frame once cost more than the warp).
Usage:
    python benchmarks/bench_motion.py [--portrait examples/portrait.jpg] [--audio examples/speech_nl.wav]
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import numpy as np
from common import best_of, still_720p  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.engines.base import FrameJob
from lipdub.engines.viseme import VisemeEngine
from lipdub.faces import crop_box, detect_faces
from lipdub.media import load_audio
from lipdub.motion import Motion, voice_of

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portrait", type=Path, default=ROOT / "examples" / "portrait.jpg")
    ap.add_argument("--audio", type=Path, default=ROOT / "examples" / "speech_nl.wav")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    image = still_720p(args.portrait)
    face = max(detect_faces(image), key=lambda f: f.area)
    face.track_id = 0
    audio = load_audio(args.audio, sr=16000)
    n = int(np.ceil(len(audio) * args.fps / 16000))
    voice_of(audio[:16000], 0, args.fps, int(args.fps))  # load the voice-activity model outside the timing
    holder = {}

    def setup() -> None:
        voice = voice_of(audio, 0, args.fps, n)
        holder["motion"] = Motion(image, [face], {0: voice}, args.fps, n, "natural", seed=0)

    wall, cpu = best_of(setup, args.repeats)
    print(f"set-up ({n / args.fps:.1f} s of speech, 1280x720): {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")
    motion = holder["motion"]

    def frames() -> None:  # each frame dropped when done, as the pipeline writes and drops it
        for i in range(n):
            motion.frame(i)

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = best_of(frames, args.repeats)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (n * args.repeats)
    print(f"motion layer: {wall / n * 1000:.2f} ms per 720p frame wall, {cpu / n * 1000:.2f} ms/frame CPU "
          f"over {n} frames, {faults:.0f} page faults/frame (goal <= 5 ms)")
    # the pipeline's path: the engine draws the mouth on the still, then the frame's motion moves it
    engine = VisemeEngine()
    engine.prepare(audio, args.fps)
    k = min(n, 50)
    jobs = [FrameJob(index=i, frame=image, face=face, box=crop_box(face, image.shape)) for i in range(k)]
    wall, cpu = best_of(lambda: engine.render(jobs), 1)
    print(f"viseme engine on the still: {wall / k * 1000:.1f} ms/frame wall, {cpu / k * 1000:.1f} ms CPU")

if __name__ == "__main__":
    main()
