"""Viseme engine speed: `lipdub animate` on a talking-head video with real speech first (what a user waits
for, faces detected from scratch in an empty LIPDUB_HOME), then its parts: cue extraction vs real time and
rendering on a 1280x720 still, and the H.264 encoder alone on those frames (the end-to-end ceiling at 720p).

The machine is shared, so each part figure is the best of a few runs, with CPU time alongside (CPU time says
what the work costs whatever the other load). Goals: >= 100 frames/s rendering, cue extraction >= 20x real time.
Usage:
    python benchmarks/bench_viseme.py [--video tests/data/prep/host_20s.mp4]
        [--speech tests/data/viseme/dutch_vl04108.flac]
        [--portrait tests/data/viseme/portraits/img_eastasian_man_teeth_headsetmic.jpg]
        [--audio tests/data/viseme/long_silence_12s.flac] [--fps 25]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common import best_of, cold_home, still_720p  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.audio import cues, vad
from lipdub.engines.base import FrameJob
from lipdub.engines.viseme import VisemeEngine
from lipdub.faces import crop_box, detect_faces
from lipdub.media import load_audio

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "tests" / "data" / "viseme"


def bench_video(video: Path, speech: Path) -> None:
    """End to end on a video with real speech: once cold (detection from scratch), once with the face cache hit."""
    import tempfile
    import time

    from lipdub.pipeline import AnimateRequest, animate

    cold_home()
    for label in ("cold (faces detected)", "face cache hit"):
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), time.process_time()
            result = animate(AnimateRequest(media=video, output=Path(tmp) / "out.mp4", audio=speech,
                                            engine="viseme"))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"animate video, {label:22}: {result.frames / wall:6.1f} frames/s, {result.duration / wall:5.2f}x "
              f"real time  ({result.frames} frames {result.fps:g} fps of {video.name} + {speech.name}, "
              f"cpu {cpu:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=ROOT / "tests" / "data" / "prep" / "host_20s.mp4")
    ap.add_argument("--speech", type=Path, default=HERE / "dutch_vl04108.flac")
    ap.add_argument("--portrait", type=Path, default=HERE / "portraits" / "img_eastasian_man_teeth_headsetmic.jpg")
    ap.add_argument("--audio", type=Path, default=HERE / "long_silence_12s.flac")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    bench_video(args.video, args.speech)

    print(f"parts, on a 1280x720 still of {args.portrait.name} and {args.audio.name}:")
    audio = load_audio(args.audio, sr=16000)
    seconds = len(audio) / 16000
    frame = still_720p(args.portrait)
    face = max(detect_faces(frame), key=lambda f: f.area)
    box = crop_box(face, frame.shape)

    vad.chunk_probabilities(audio[:16000])  # load models once, outside the timings
    cues.recognize_phones(audio[:16000])
    def fresh_vad() -> None:
        vad._recent.clear()  # time the model, not the memo of the last answer
        vad.speech_probability(audio, args.fps)

    wall, cpu = best_of(fresh_vad, args.repeats)
    print(f"voice activity     : {seconds / wall:7.1f}x real time  (cpu {cpu:.2f} s for {seconds:.1f} s audio)")
    wall, cpu = best_of(lambda: cues.recognize_phones(audio), args.repeats)
    print(f"phone recognition  : {seconds / wall:7.1f}x real time  (cpu {cpu:.2f} s)")
    def fresh_cues() -> None:
        vad._recent.clear()
        cues.extract_cues(audio, args.fps)

    wall, cpu = best_of(fresh_cues, args.repeats)
    print(f"cue extraction     : {seconds / wall:7.1f}x real time  (cpu {cpu:.2f} s)  goal >= 20x")
    from lipdub.audio.words import recognize_words

    recognize_words(audio[:16000])  # the English model loads once (~1 s), outside the timing
    wall, cpu = best_of(lambda: (vad._recent.clear(), cues.extract_cues(audio, args.fps, lang="en")), 1)
    print(f"cues, --lang en    : {seconds / wall:7.1f}x real time  (cpu {cpu:.2f} s; phones through English words, "
          "an option)")

    engine = VisemeEngine()
    vad._recent.clear()
    wall, cpu = best_of(lambda: engine.prepare(audio, args.fps), 1)
    n = len(engine.poses)
    print(f"engine.prepare     : {seconds / wall:7.1f}x real time  ({n} frames)")
    jobs = [FrameJob(index=i, frame=frame, face=face, box=box) for i in range(n)]

    def render_all(fresh: bool) -> None:
        if fresh:
            engine._renderers.clear()
        for i in range(0, n, engine.batch_size):
            engine.render(jobs[i:i + engine.batch_size])

    wall, cpu = best_of(lambda: render_all(True), args.repeats)
    print(f"render 1280x720    : {n / wall:7.1f} frames/s  (cpu {1000 * cpu / n:.2f} ms/frame, face prepared "
          f"and pose cache filled inside the timing)  goal >= 100")
    engine._renderers.clear()
    render_all(False)
    renderer = next(iter(engine._renderers.values()))
    distinct = [engine.poses[i] for i in range(0, n, 7)]
    wall, cpu = best_of(lambda: [renderer._render(frame, p) for p in distinct], args.repeats)
    print(f"uncached pose      : {len(distinct) / wall:7.1f} frames/s  (cpu {1000 * cpu / len(distinct):.2f} "
          f"ms/frame, ROI {renderer.warp.size[1]}x{renderer.warp.size[0]})")

    # the encoder's input: the still with each frame's mouth, swaying a little as a living still's head does
    import cv2

    from lipdub.engines.viseme.render import apply_patch

    h, w = frame.shape[:2]
    sway = [cv2.getRotationMatrix2D((w / 2, h / 2), math.sin(i / 9), 1.0) for i in range(100)]
    frames = [cv2.warpAffine(apply_patch(frame, renderer.render(frame, engine.poses[i % n])), m, (w, h),
                             borderMode=cv2.BORDER_REPLICATE) for i, m in enumerate(sway)]
    bench_encoder(frames, args.fps, args.repeats)


def bench_encoder(frames: list, fps: float, repeats: int) -> None:
    """`media.VideoWriter` alone (RGB -> BT.709 yuv420p, libx264 crf 18, its own thread) per x264 preset."""
    import os
    import tempfile

    from lipdub.media import VideoWriter
    from lipdub.media.writer import Yuv420

    def convert() -> None:
        yuv = Yuv420(frames[0].shape[1], frames[0].shape[0])  # what VideoWriter.write does on its caller's thread
        for f in frames:
            yuv(f)

    wall, cpu = best_of(convert, repeats)
    print(f"RGB -> yuv420p     : {1000 * cpu / len(frames):6.2f} CPU-ms/frame (OpenCV, part of every encode below)")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("veryfast", "superfast", "ultrafast"):
            out = Path(tmp) / f"{preset}.mp4"

            def encode(preset: str = preset, out: Path = out) -> None:
                with VideoWriter(out, fps, preset=preset) as writer:
                    for f in frames:
                        writer.write(f)

            wall, cpu = best_of(encode, repeats)
            size = os.path.getsize(out) / 1e6 * (10 * fps / len(frames))
            print(f"encode {preset:11s}: {len(frames) / wall:7.1f} frames/s  ({1000 * cpu / len(frames):5.2f} CPU-ms/"
                  f"frame, {size:.2f} MB per 10 s{', the default' if preset == 'veryfast' else ''})")


if __name__ == "__main__":
    main()
