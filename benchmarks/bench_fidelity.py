"""Articulation fidelity of the default (viseme) engine: self-reenactment against the real speaker's mouth.

For each talking video in the test data, the video's first frame is the photo and the video's own audio drives
`lipdub animate` (the pipeline API, engine viseme); FaceMesh then reads both mouths frame by frame:
- corr: Pearson correlation of the aperture curves (inner-lip gap 13/14 over face height 10/152, 3-frame moving
  average); lag: the frame shift in -6..6 where it peaks (positive: lipdub late); wide: the same searched over
  -25..25; open: mean aperture generated / real; lmd: mean distance of the 40 FACEMESH_LIPS points after
  aligning the eyes (translation, rotation, inter-ocular scale), beside `frozen`, the LMD of the first frame's
  mouth held still; lmd~ and still~: the same with each mouth's average shape taken out, and the real video's
  average mouth held still (what moving the lips can change, once the photo's pose and resting mouth are set
  aside: with a correlation under 0.5 any lips moving as far as the real ones stay above still~); loud: the
  loudness baseline, per-frame RMS correlated with the real aperture; src: the lag
  (-25..25) where loudness best matches the real mouth, a rough reading of the source's own audio/video offset.
  A source counts as off-sync (left out of a second mean) where `src` and `wide` agree within a frame and are
  4 frames or more: two independent audio readings then put the real mouth that far from its sound (loudness
  alone also peaks on slow envelopes: a broad plateau is no offset).
- backward mode: the video's frames played backwards under its forward audio are the input. What the output
  shares with the real forward mouth (corr) came from the audio; `back` is its correlation with the reversed
  input mouth and must stay low.
- closures: where the engine seals the lips for a recognised P/B/M, how often the real lips are near shut too
  (within the lowest fifth of their speaking apertures, +-2 frames), beside `chance`, the same for any speaking
  frame: whether the closures are the speaker's or the recogniser's guesses.
- planned mode (`--mode planned`): no rendering; the engine's own planned lip gap against the real mouth, per
  10 s stretch of the span (with `--seconds 0`, whole videos): for trying a setting on more speech than the
  rendered modes can afford (rendering and FaceMesh on our output lose little: r 0.87-0.98 per video).
Real curves are cached in a temporary folder for the run only. Run from the repository root:
    PYTHONPATH=$PWD/src python benchmarks/bench_fidelity.py [--videos N] [--seconds S] [--start S] [--mode both|planned]
        [--lang en] [--motion none]
Settings chosen on the default run (the first 10 s) should be checked with --start 10 (five videos run longer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lipdub.media import VideoWriter, iter_frames, load_audio, probe, write_audio

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
SR = 16000
LIPS = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415]  # FACEMESH_LIPS
LAGS = range(-6, 7)
SOURCE_LAGS = range(-25, 26)
ROUND = ("u", "u:", "o:", "O", "oU", "VU")
STRETCH_S = 10.0  # planned mode: correlation per stretch of this length


@dataclass
class Mouth:
    """FaceMesh readings of one video: aperture per frame and eye-aligned lip points (NaN where no face)."""

    aperture: np.ndarray  # (n,)
    lips: np.ndarray  # (n, 40, 2)


def measure(frames) -> Mouth:  # noqa: ANN001 - any iterable of RGB frames
    """FaceMesh (tracking mode) on every frame."""
    from mediapipe.python.solutions import face_mesh

    ap, lips = [], []
    with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False) as mesh:
        for rgb in frames:
            res = mesh.process(rgb)
            if not res.multi_face_landmarks:
                ap.append(np.nan)
                lips.append(np.full((len(LIPS), 2), np.nan))
                continue
            h, w = rgb.shape[:2]
            lm = np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark])
            ap.append(np.linalg.norm(lm[13] - lm[14]) / np.linalg.norm(lm[10] - lm[152]))
            lips.append(_eye_aligned(lm)[LIPS])
    return Mouth(np.array(ap), np.array(lips))


def _eye_aligned(lm: np.ndarray) -> np.ndarray:
    """Landmarks with the eye midpoint at 0, the eye line horizontal and the inter-ocular distance 1."""
    left, right = lm[[33, 133]].mean(0), lm[[362, 263]].mean(0)
    d = right - left
    iod = float(np.hypot(*d))
    c, s = d / iod
    rot = np.array([[c, s], [-s, c]])
    return (lm - (left + right) / 2) @ rot.T / iod


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.where(np.isfinite(x), x, np.nanmean(x))
    return np.convolve(np.pad(x, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = _smooth(a[:n]), _smooth(b[:n])
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _lag(gen: np.ndarray, real: np.ndarray, lags: range = LAGS) -> int:
    """Shift (frames) maximising corr(gen[t + lag], real[t]); positive: the generated mouth is late."""
    n = min(len(gen), len(real))
    best = max(lags, key=lambda k: _corr(gen[max(k, 0): n + min(k, 0)], real[max(-k, 0): n - max(k, 0)]))
    return int(best)


def _off_sync(loud_lag: int, mouth_lag: int) -> bool:
    """Both audio readings (loudness, the generated mouth) put the real mouth >= 4 frames from its sound."""
    return abs(loud_lag - mouth_lag) <= 1 and abs(loud_lag) >= 4


def _lmd(gen: np.ndarray, real: np.ndarray) -> float:
    n = min(len(gen), len(real))
    return float(np.nanmean(np.linalg.norm(gen[:n] - real[:n], axis=-1)))


def _rms(audio: np.ndarray, fps: float, n: int) -> np.ndarray:
    hop = SR / fps
    audio = np.pad(audio, (0, max(0, int(n * hop) + 1 - len(audio))))  # a video may outlast its sound
    return np.array([np.sqrt(np.mean(audio[int(i * hop): int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)])


def figures(gen: Mouth, real: Mouth, against: Mouth | None = None) -> dict[str, float]:
    out = {"corr": _corr(gen.aperture, real.aperture), "lag": _lag(gen.aperture, real.aperture),
           "wide": _lag(gen.aperture, real.aperture, SOURCE_LAGS),
           "open": float(np.nanmean(gen.aperture) / np.nanmean(real.aperture)),
           "lmd": _lmd(gen.lips, real.lips), "frozen": _lmd(np.repeat(real.lips[:1], len(real.lips), 0), real.lips)}
    n = min(len(gen.lips), len(real.lips))
    gen_shape, real_shape = np.nanmean(gen.lips[:n], 0), np.nanmean(real.lips[:n], 0)
    out["lmd~"] = _lmd(gen.lips[:n] - gen_shape + real_shape, real.lips[:n])
    out["still~"] = _lmd(np.repeat(real_shape[None], n, 0), real.lips[:n])
    if against is not None:
        out["back"] = _corr(gen.aperture, against.aperture)
    return out


def _animate(media: Path, audio: Path, out: Path, fps: float, args: argparse.Namespace) -> Mouth:
    from lipdub.pipeline import AnimateRequest, animate

    animate(AnimateRequest(media=media, audio=audio, output=out, engine="viseme", fps=fps, use_cache=False,
                           lang=args.lang, motion=args.motion))
    return measure(iter_frames(out))


def run_video(path: Path, tmp: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    info = probe(path)
    fps = float(info.fps)
    first = int(round(args.start * fps))
    n = int(args.seconds * fps) if args.seconds else info.num_frames
    scale = min(1.0, args.max_side / max(info.width, info.height))
    size = (int(round(info.width * scale / 2)) * 2, int(round(info.height * scale / 2)) * 2)
    frames = []
    for k, rgb in enumerate(iter_frames(path)):
        if k >= first + n:
            break
        if k >= first:
            frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb)
    n = len(frames)
    if n < 2 * fps:
        return {}  # under 2 s left after --start: nothing to measure
    audio = load_audio(path, sr=SR)[int(first / fps * SR): int((first + n) / fps * SR)]
    wav, photo = tmp / f"{path.stem}.wav", tmp / f"{path.stem}.png"
    write_audio(wav, audio, SR)
    cv2.imwrite(str(photo), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    cached = tmp / f"{path.stem}.real.npz"  # the real mouth, read once per run
    if cached.exists():
        z = np.load(cached)
        real = Mouth(z["aperture"], z["lips"])
    else:
        real = measure(frames)
        np.savez(cached, aperture=real.aperture, lips=real.lips)
    rms = _rms(audio, fps, n)
    rows = {"loud": {"corr": _corr(rms, real.aperture), "src": _lag(rms, real.aperture, SOURCE_LAGS)}}
    gap, cues, activity = _plan(audio, fps, n, args)
    rows["closures"] = _closure_figures(cues, activity, real.aperture, fps)
    if args.mode == "planned":
        rows["planned"] = _stretches(gap, real.aperture, fps)
    if args.mode in ("forward", "both"):
        gen = _animate(photo, wav, tmp / f"{path.stem}.fwd.mp4", fps, args)
        rows["forward"] = figures(gen, real)
    if args.mode in ("backward", "both"):
        reversed_in = tmp / f"{path.stem}.rev.mp4"
        with VideoWriter(reversed_in, fps) as w:
            for rgb in reversed(frames):
                w.write(rgb)
        gen = _animate(reversed_in, wav, tmp / f"{path.stem}.bwd.mp4", fps, args)
        back = Mouth(real.aperture[::-1].copy(), real.lips[::-1].copy())
        rows["backward"] = figures(gen, real, against=back)
    return rows


def _plan(audio: np.ndarray, fps: float, n: int, args: argparse.Namespace) -> tuple[np.ndarray, list, np.ndarray]:
    """The viseme engine's plan for this audio: its lip gap per frame, its cues and its voice activity."""
    from lipdub.engines.viseme import VisemeEngine
    from lipdub.engines.viseme.shapes import P

    engine = VisemeEngine(lang=args.lang)
    engine.prepare(audio, fps)
    gap = engine.poses[:, P["gap_flat"]] + engine.poses[:, P["gap_round"]]
    activity = np.asarray(engine.speech_activity(), np.float32)
    return _frames(gap, n), engine.cues, _frames(activity, n)


def _frames(x: np.ndarray, n: int) -> np.ndarray:
    """`x` cut or zero-padded to the video's n frames."""
    return np.pad(x, (0, max(0, n - len(x))))[:n]


def _stretches(gap: np.ndarray, aperture: np.ndarray, fps: float) -> dict[str, float]:
    """corr of the planned gap with the real aperture per STRETCH_S stretch (a last one under 2 s is left out)."""
    step = int(round(STRETCH_S * fps))
    return {f"s{k}": _corr(gap[a: a + step], aperture[a: a + step])
            for k, a in enumerate(range(0, len(aperture), step)) if len(aperture) - a >= 2 * fps}


def _closure_figures(cues: list, activity: np.ndarray, aperture: np.ndarray, fps: float) -> dict[str, float]:
    """The share of the engine's P/B/M closures where the real lips are near shut (their lowest fifth while
    speaking, within +-2 frames), and that share over every speaking frame (chance)."""
    ap = _smooth(aperture)
    speaking = np.flatnonzero(activity[: len(ap)] > 0.5)
    if len(speaking) < 10:
        return {"n": 0, "closed": float("nan"), "chance": float("nan")}
    low = np.percentile(ap[speaking], 20)

    def shut(k: int) -> bool:
        return bool(ap[max(0, k - 2): k + 3].min() <= low)

    at = [int(round((c.start + c.end) / 2 * fps)) for c in cues if c.shape == "A"]
    hits = [shut(k) for k in at if k < len(ap)]
    return {"n": len(hits), "closed": float(np.mean(hits)) if hits else float("nan"),
            "chance": float(np.mean([shut(k) for k in speaking]))}


def phone_figures() -> None:
    """No Dutch talking video here: on espeak-ng's English and Dutch sentences (tests/data/viseme, phone
    timings known), the share of bilabials with closed lips (closure or rest) within 40 ms, and the mean
    rounded-shape weight on rounded vowels (o, u) against other vowels; without and with the transcript."""
    import json

    from lipdub.audio import cues

    here = Path(__file__).resolve().parents[1] / "tests" / "data" / "viseme"
    print(f"\n{'espeak-ng sentence':<28}{'closures':>10}{'round o/u':>11}{'others':>8}")
    for lang in ("en", "nl"):
        audio = load_audio(here / f"espeak_{lang}.flac", sr=SR)
        doc = json.loads((here / f"espeak_{lang}.json").read_text())
        starts = [p["start"] for p in doc["phones"]] + [len(audio) / SR]
        spans = [(p["phone"].strip("',"), a, b) for p, a, b in zip(doc["phones"], starts, starts[1:], strict=False)]
        for text in (None, doc["text"]):
            try:
                found = cues.extract_cues(audio, 25, text=text, lang=lang) if text else cues.extract_cues(audio, 25)
            except TypeError:  # a lipdub without transcripts
                continue
            w = cues.cue_track(found, 100, len(audio) // 160)
            hits, _ = _closures(w, [a for p, a, _ in spans if p in ("p", "b", "m")], [])
            rnd = w[:, cues.SHAPE_INDEX["E"]] + w[:, cues.SHAPE_INDEX["F"]]
            on = [rnd[int(a * 100): int(b * 100)].mean() for p, a, b in spans if p in ROUND]
            off = [rnd[int(a * 100): int(b * 100)].mean() for p, a, b in spans if p in ("a", "a:", "A", "i", "i:", "E")]
            print(f"{lang + (' + transcript' if text else ' (audio only)'):<28}{np.mean(hits):10.2f}"
                  f"{np.mean(on):11.2f}{np.mean(off):8.2f}")


FLEMISH = {  # real Dutch speech in the test data, with its transcript (SOURCES.md)
    "aud_nl_flemish_male_vl00203.wav": "De plant van de aardappel is giftig.",
    "aud_nl_flemish_male_vl04108.wav": "De Straat van Gibraltar is een zee-engte aan het uiteinde van de "
                                       "Middellandse Zee.",
    "aud_nl_flemish_male_vl09647.wav": "Dat kan met betrekkelijk weinig geld.",
}


def _closures(w: np.ndarray, bilabials: list[float], others: list[float]) -> tuple[list[bool], list[bool]]:
    """On 10 ms shape weights: for each bilabial start, are the lips closed (A or rest X) within 40 ms; for each
    other phone's centre (over 80 ms from a bilabial), are they sealed (A) there - a false closure."""
    from lipdub.audio import cues

    closed = w[:, cues.SHAPE_INDEX["A"]] + w[:, cues.SHAPE_INDEX["X"]] > 0.5
    sealed = w[:, cues.SHAPE_INDEX["A"]] > 0.5
    hits = [bool(closed[max(0, int((a - 0.04) * 100)): int((a + 0.04) * 100) + 1].any()) for a in bilabials]
    false = [bool(sealed[min(int(t * 100), len(sealed) - 1)]) for t in others
             if all(abs(t - b) > 0.08 for b in bilabials)]
    return hits, false


def dutch_closures(data: Path) -> None:
    """Real Dutch speech: bilabials placed by aligning the transcript (align.py) are the reference; closure
    recall and false closures of the cues without the transcript (audio only) and with it."""
    from lipdub.audio import cues
    from lipdub.audio.align import align

    print(f"\n{'Flemish speech (aligned reference)':<36}{'bilabials':>10}{'closed':>8}{'false':>7}")
    totals: dict[str, list[list[bool]]] = {"audio only": [[], []], "transcript": [[], []]}
    for name, text in FLEMISH.items():
        if not (data / name).exists():
            continue
        audio = load_audio(data / name, sr=SR)
        ref = [(p, a, b) for p, a, b in align(audio, text, "nl").phones if p != "SIL"]
        bil = [a for p, a, _ in ref if p in ("P", "B", "M")]
        others = [(a + b) / 2 for p, a, b in ref if p not in ("P", "B", "M")]
        for mode, kw in (("audio only", {}), ("transcript", {"text": text, "lang": "nl"})):
            w = cues.cue_track(cues.extract_cues(audio, 25, **kw), 100, len(audio) // 160)
            hits, false = _closures(w, bil, others)
            totals[mode][0] += hits
            totals[mode][1] += false
            print(f"{name[15:] + ' ' + mode:<36}{len(hits):10d}{np.mean(hits):8.2f}{np.mean(false):7.2f}")
    for mode, (hits, false) in totals.items():
        if hits:
            print(f"{'all, ' + mode:<36}{len(hits):10d}{np.mean(hits):8.2f}{np.mean(false):7.2f}")


def print_tables(results: dict[str, dict[str, dict[str, float]]]) -> None:
    """Per video and mean figures of each mode, and the means without off-sync sources."""
    closures = {v: r["closures"] for v, r in results.items() if r["closures"]["n"]}
    if closures:
        print(f"\n{'closures (P/B/M sealed)':<44}{'n':>8}{'closed':>8}{'chance':>8}")
        for v, row in closures.items():
            print(f"{v[:44]:<44}{row['n']:8d}{row['closed']:8.3f}{row['chance']:8.3f}")
        hits = sum(row["n"] * row["closed"] for row in closures.values())
        n = sum(row["n"] for row in closures.values())
        print(f"{'all':<44}{n:8d}{hits / n:8.3f}{np.mean([row['chance'] for row in closures.values()]):8.3f}")
    planned = {v: r["planned"] for v, r in results.items() if r.get("planned")}
    if planned:
        print(f"\n{'planned lip gap vs real (per 10 s stretch)':<44}{'first':>8}{'mean':>8}  stretches")
        for v, row in planned.items():
            c = list(row.values())
            print(f"{v[:44]:<44}{c[0]:8.3f}{np.mean(c):8.3f}  " + " ".join(f"{x:.2f}" for x in c))
        every = [x for row in planned.values() for x in row.values()]
        print(f"{'mean':<44}{np.mean([list(r.values())[0] for r in planned.values()]):8.3f}"
              f"{np.mean(every):8.3f}  over {len(every)} stretches")
    for mode in ("forward", "backward"):
        keys = ["corr", "lag", "wide", "open", "lmd", "frozen", "lmd~", "still~"]
        keys += ["back"] if mode == "backward" else []
        table = {v: r[mode] for v, r in results.items() if mode in r}
        if not table:
            continue
        print(f"\n{mode:<44}" + "".join(f"{k:>8}" for k in keys) + f"{'loud':>8}{'src':>6}")
        for v, row in table.items():
            print(f"{v[:44]:<44}" + "".join(f"{row[k]:8d}" if k in ("lag", "wide") else f"{row[k]:8.3f}" for k in keys)
                  + f"{results[v]['loud']['corr']:8.3f}{results[v]['loud']['src']:6d}")
        off = [v for v, row in table.items()  # judged on the forward run where there is one
               if _off_sync(results[v]["loud"]["src"], results[v].get("forward", row)["wide"])]
        kept = {v: r for v, r in table.items() if v not in off}
        for name, rows in (("mean", table), ("mean without off-sync", kept)):
            if not rows or (name != "mean" and not off):
                continue
            mean = {k: float(np.mean([row[k] for row in rows.values()])) for k in keys}
            loud = float(np.mean([results[v]["loud"]["corr"] for v in rows]))
            print(f"{name:<44}" + "".join(f"{mean[k]:8.3f}" for k in keys) + f"{loud:8.3f}")
            print(f"  |lag| <= 1 on {sum(abs(row['lag']) <= 1 for row in rows.values())} of {len(rows)} videos")
        print(f"  off-sync sources: {', '.join(off) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with the vid_* talking videos")
    ap.add_argument("--videos", type=int, default=0, help="only the first N videos (0: all)")
    ap.add_argument("--seconds", type=float, default=10.0, help="only the first S seconds of each (0: all)")
    ap.add_argument("--start", type=float, default=0.0,
                    help="begin S seconds in (e.g. 10: speech the default run never measured, a held-out check)")
    ap.add_argument("--mode", choices=["forward", "backward", "both", "planned"], default="both",
                    help="planned: no rendering, the engine's planned lip gap per 10 s stretch (fast)")
    ap.add_argument("--max-side", type=int, default=480, help="downscale frames to this longest side first")
    ap.add_argument("--lang", help="the speech's language, as `animate --lang` (en: phones from English words)")
    ap.add_argument("--motion", choices=["natural", "none"], default="natural",
                    help="the photo's head motion, as `animate --motion`. FaceMesh's aperture "
                         "(over face height) moves with head pitch too: `none` measures the lips alone")
    args = ap.parse_args()
    phone_figures()
    dutch_closures(args.data)
    videos = sorted(p for p in args.data.glob("vid_*") if p.suffix in (".mp4", ".mpg", ".mov", ".mkv"))
    videos = videos[: args.videos] if args.videos else videos
    results: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lipdub-fidelity-") as tmp:
        for i, path in enumerate(videos, 1):
            print(f"[{i}/{len(videos)}] {path.name} ...", flush=True)
            rows = run_video(path, Path(tmp), args)
            if rows:
                results[path.stem] = rows
    settings = (f"--lang {args.lang} " if args.lang else "") + ("planned" if args.mode == "planned"
                                                                 else f"--motion {args.motion}")
    print(f"\n{len(results)} videos, {args.seconds or 'all'} s each from {args.start:g} s, "
          f"{settings}, "
          f"{time.perf_counter() - t0:.0f} s "
          "(goal: corr >= 0.40, |lag| <= 1, open 0.85-1.15, lmd clearly below frozen)")
    print_tables(results)


if __name__ == "__main__":
    main()
