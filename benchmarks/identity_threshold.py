"""Where to put the identity threshold: dlib 128-d distances between faces of the same and of different people.

Reads the shared test media (default ../shared/testdata): every talking-head video is one person (faces sampled
across its length, so pose, expression and lighting vary), every single-face photo another, and the known
repeats (Obama's photo, his side-by-side portrait and his weekly-address video; Biden's photo and portrait)
are the same person. Prints the distance ranges and the gap a threshold must sit in.

    python benchmarks/identity_threshold.py [--data ../shared/testdata] [--samples 6]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# person of each file; files of one person share a name. grp2_obama_biden: left = obama, right = biden
# (the two VoxCeleb2 clips show one actor: checked by eye)
SAME = {"img_obama_smile_teeth.jpg": "obama", "vid_obama_weekly_address_20s.mp4": "obama",
        "img_biden_older_smile_teeth.jpg": "biden", "vid_voxceleb2_man_224px_12s.mp4": "voxceleb2",
        "vid_voxceleb2_tinted_glasses_224px_14s.mp4": "voxceleb2"}


def _largest(image: np.ndarray):
    from lipdub.faces import detect_faces

    found = detect_faces(image)
    return max(found, key=lambda f: f.area) if found else None


def embeddings(data: Path, samples: int) -> list[tuple[str, str, np.ndarray]]:
    """(person, where, embedding) of every usable face."""
    from lipdub.faces import detect_faces, identity
    from lipdub.media import iter_frames, probe, read_image

    out = []
    for path in sorted(data.iterdir()):
        if path.name.startswith("img_"):
            image = read_image(path)
            if (face := _largest(image)) is not None:
                out.append((SAME.get(path.name, path.stem), path.name, identity.embed(image, face)))
        elif path.name == "grp2_obama_biden_side_by_side.jpg":
            image = read_image(path)
            faces = sorted(detect_faces(image), key=lambda f: float(f.box[0]))
            for who, face in zip(("obama", "biden"), faces, strict=False):
                out.append((who, path.name, identity.embed(image, face)))
        elif path.name.startswith("vid_"):
            n = probe(path).num_frames
            wanted = set(np.linspace(0, n - 1, samples).round().astype(int).tolist())
            for i, frame in enumerate(iter_frames(path)):
                if i in wanted and (face := _largest(frame)) is not None:
                    out.append((SAME.get(path.name, path.stem), f"{path.name}@{i}", identity.embed(frame, face)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "testdata")
    parser.add_argument("--samples", type=int, default=6, help="frames sampled per video")
    args = parser.parse_args()
    from lipdub.faces import identity

    embs = embeddings(args.data, args.samples)
    same, diff = [], []
    for (pa, wa, ea), (pb, wb, eb) in itertools.combinations(embs, 2):
        (same if pa == pb else diff).append((identity.distance(ea, eb), wa, wb))
    same.sort()
    diff.sort()
    print(f"{len(embs)} faces of {len({p for p, _, _ in embs})} people")
    print(f"same person     ({len(same)} pairs): {same[0][0]:.3f} .. {same[-1][0]:.3f}, "
          f"99th pct {np.percentile([d for d, _, _ in same], 99):.3f}; largest: {same[-1][1]} vs {same[-1][2]}")
    print(f"different people ({len(diff)} pairs): {diff[0][0]:.3f} .. {diff[-1][0]:.3f}, "
          f"1st pct {np.percentile([d for d, _, _ in diff], 1):.3f}; smallest: {diff[0][1]} vs {diff[0][2]}")
    within = [d for d, wa, wb in same if wa.split("@")[0] == wb.split("@")[0]]
    across = [d for d, wa, wb in same if wa.split("@")[0] != wb.split("@")[0]]
    print(f"same person, one recording ({len(within)} pairs): max {max(within):.3f}; "
          f"across recordings ({len(across)} pairs): {min(across):.3f} .. {max(across):.3f}")
    for d, wa, wb in diff[:5]:
        print(f"  close different people: {d:.3f} {wa} vs {wb}")
    for d, wa, wb in same[-5:]:
        print(f"  far same person: {d:.3f} {wa} vs {wb}")
    print(f"gap: {same[-1][0]:.3f} .. {diff[0][0]:.3f}; threshold in use {identity.THRESHOLD}")
    track_means(embs)


def track_means(embs: list[tuple[str, str, np.ndarray]]) -> None:
    """Tracks as the tracker sees them: each video's samples split into two halves, each half's mean."""
    from lipdub.faces import identity

    tracks: list[tuple[str, str, np.ndarray]] = []
    files = sorted({w.split("@")[0] for _, w, _ in embs if "@" in w})
    for f in files:
        own = [(p, e) for p, w, e in embs if w.split("@")[0] == f]
        for k, part in enumerate((own[: len(own) // 2], own[len(own) // 2:])):
            if part:
                tracks.append((part[0][0], f"{f}#{k}", np.mean([e for _, e in part], 0)))
    same, diff = [], []
    for (pa, _, ea), (pb, _, eb) in itertools.combinations(tracks, 2):
        (same if pa == pb else diff).append(identity.distance(ea, eb))
    within = [identity.distance(a[2], b[2]) for a, b in itertools.combinations(tracks, 2)
              if a[1].split("#")[0] == b[1].split("#")[0]]
    print(f"mean of half a video's samples: same person {min(same):.3f} .. {max(same):.3f} "
          f"(one recording: max {max(within):.3f}); different people {min(diff):.3f} .. {max(diff):.3f}")


if __name__ == "__main__":
    main()
