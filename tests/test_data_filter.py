"""`lipdub data filter`: on a mixed set with known answers, only the target's talking clips are kept."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipdub import media
from lipdub.data.cut import CutConfig, cut
from lipdub.data.filter import REASONS, FilterConfig, filter_clips
from lipdub.data.store import iter_clips, write_json


def file_hash(path) -> str:
    """Independent SHA-256 of a file (not the memoised one under test)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

PREP = Path(__file__).parent / "data" / "prep"
HOST, GUEST = PREP / "host_20s.mp4", PREP / "guest_5s.mp4"
N = 125  # frames of the composed clips (5 s)


def _add_clip(root: Path, source: str, name: str, frames: list[np.ndarray], audio: np.ndarray) -> None:
    """A clip in the layout `cut` writes (mp4 + exact wav + sidecar), from frames and 16 kHz audio."""
    folder = root / source
    folder.mkdir(parents=True, exist_ok=True)
    audio = audio[: len(frames) * 640]
    with media.VideoWriter(folder / f"{name}.mp4", 25, audio=audio, audio_rate=16000) as w:
        for f in frames:
            w.write(f)
    media.write_audio(folder / f"{name}.wav", audio, 16000)
    write_json(folder / f"{name}.json", {"source": source, "clip": name, "start": 0.0, "end": len(frames) / 25,
                                         "n_frames": len(frames), "sha256": file_hash(folder / f"{name}.mp4")})


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    """Clips with ground truth: clip key -> expected removal reason (None: kept)."""
    root = tmp_path_factory.mktemp("clips")
    cut([HOST, GUEST], root, CutConfig(), workers=1)
    truth: dict[str, str | None] = {
        c.key: (None if c.source.startswith("host_20s") else "other person") for c in iter_clips(root)}
    host = list(media.iter_frames(HOST, fps=25))[150:150 + N]
    guest = [cv2.resize(f, (256, 256)) for f in list(media.iter_frames(GUEST, fps=25))[:N]]
    host_wav = media.load_audio(HOST)[150 * 640:]
    guest_wav = media.load_audio(GUEST)
    rng = np.random.default_rng(0)
    # both on screen: the host talks while the other person moves slowly (a listener) ...
    _add_clip(root, "pair", "00000", [np.concatenate([h, guest[i // 4]], 1) for i, h in enumerate(host)], host_wav)
    truth["pair/00000"] = None
    # ... and the other way round: the other person talks, the host only moves
    _add_clip(root, "pair", "00001", [np.concatenate([host[i // 4], g], 1) for i, g in enumerate(guest)],
              guest_wav)
    truth["pair/00001"] = "other person"
    _add_clip(root, "empty", "00000", [rng.integers(90, 110, (256, 256, 3), np.uint8) for _ in range(50)],
              host_wav)
    truth["empty/00000"] = "no face"
    _add_clip(root, "short", "00000", host[:12], host_wav)
    truth["short/00000"] = "too short"
    (root / "broken").mkdir()
    (root / "broken" / "00000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + rng.bytes(4000))
    write_json(root / "broken" / "00000.json", {"source": "broken", "clip": "00000", "n_frames": 50})
    truth["broken/00000"] = "corrupt"
    return root, truth


@pytest.mark.slow
def test_filter_keeps_only_the_target_talking_and_reports_why(mixed, tmp_path):
    root, truth = mixed
    sources = {p: file_hash(p) for p in root.rglob("*.mp4")}
    report = filter_clips(root, tmp_path, [PREP / "host.jpg"], FilterConfig(), workers=2)
    got = {v["clip"]: v["reason"] for v in report["verdicts"]}
    assert got == truth
    assert set(report["by_reason"]) <= set(REASONS)
    assert report["kept"] == sum(r is None for r in truth.values())
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["removed"] == len(truth) - report["kept"]
    kept = {f"{c.source}/{c.clip}" for c in iter_clips(tmp_path)}
    assert kept == {k for k, r in truth.items() if r is None}
    for c in iter_clips(tmp_path):
        assert file_hash(c.video) == file_hash(root / c.source / f"{c.clip}.mp4")
        assert c.meta()["filter"]["distance"] < 0.6 and c.meta()["filter"]["visible"] >= 0.8
    assert {p: file_hash(p) for p in root.rglob("*.mp4")} == sources  # inputs untouched

    # resumable: a second run reuses every verdict and gives the same report
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / ".verdicts").rglob("*.json")}
    again = filter_clips(root, tmp_path, [PREP / "host.jpg"], FilterConfig(), workers=1)
    assert again["verdicts"] == report["verdicts"]
    assert report["already_done"] == 0 and again["already_done"] == len(truth)  # what `lipdub data filter` prints
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / ".verdicts").rglob("*.json")} == stamps


def test_other_reference_photo_flips_the_choice(mixed, tmp_path):
    root, truth = mixed
    report = filter_clips(root, tmp_path, [PREP / "guest.jpg"], FilterConfig(), workers=1)
    got = {v["clip"]: v["reason"] for v in report["verdicts"]}
    guest_clip = next(k for k in truth if k.startswith("guest_5s"))
    assert got[guest_clip] is None
    assert got["pair/00001"] is None and got["pair/00000"] == "other person"
    assert all(got[k] == "other person" for k in truth if k.startswith("host_20s"))


def test_min_sync_removes_lone_faces_whose_mouth_does_not_follow_the_sound(mixed, tmp_path):
    root, truth = mixed
    host_clips = [k for k in truth if k.startswith("host_20s")]
    loose = filter_clips(root, tmp_path / "a", [PREP / "host.jpg"], FilterConfig(min_sync=-1.0), workers=1)
    scores = {v["clip"]: next(iter(v["sync"].values())) for v in loose["verdicts"] if v["clip"] in host_clips}
    assert all(isinstance(s, float) for s in scores.values()) and len(set(scores.values())) > 1
    cut_at = float(np.median(list(scores.values())))
    strict = filter_clips(root, tmp_path / "b", [PREP / "host.jpg"], FilterConfig(min_sync=cut_at), workers=1)
    got = {v["clip"]: v["reason"] for v in strict["verdicts"]}
    for clip, score in scores.items():
        assert got[clip] == (None if score >= cut_at else "other person")
