"""`lipdub data cut`: clips end in silences, are frame-exact at 25 fps / 16 kHz, resume, and run on Ray."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from lipdub.data.cut import CutConfig, cut, plan_clips
from lipdub.data.runner import run_tasks
from lipdub.data.store import iter_clips, settings_hash


def file_hash(path) -> str:
    """Independent SHA-256 of a file (not the memoised one under test)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

PREP = Path(__file__).parent / "data" / "prep"
HOST, GUEST = PREP / "host_20s.mp4", PREP / "guest_5s.mp4"


def _audio_16k(path: Path) -> np.ndarray:
    """The file's audio as 16 kHz mono float32, decoded here with PyAV (independent of lipdub.media)."""
    out = []
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in c.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in res.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
    return np.concatenate(out)


@pytest.fixture(scope="module")
def host_clips(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips")
    cut([HOST], out, CutConfig(max_len=10, piece=5), workers=1)
    return out


def test_boundaries_fall_in_silence(host_clips):
    wav = _audio_16k(HOST)
    win = 320  # 20 ms
    rms = np.sqrt((wav[: len(wav) // win * win].reshape(-1, win) ** 2).mean(axis=1))
    loud = np.percentile(rms, 95)
    clips = [c.meta() for c in iter_clips(host_clips)]
    assert len(clips) >= 3
    checked = 0
    for meta in clips:
        for t, kind in zip((meta["start"], meta["end"]), meta["cut_in"], strict=True):
            if kind != "silence":
                continue
            seg = wav[max(0, int((t - 0.03) * 16000)): int((t + 0.03) * 16000)]
            assert np.sqrt((seg**2).mean()) < 0.05 * loud, f"boundary at {t:.2f} s is not quiet"
            checked += 1
    assert checked >= 2 * len(clips) - 2
    # clips keep nearly all of this continuously talking source, each within the length limit
    durations = [m["n_frames"] / 25 for m in clips]
    assert max(durations) <= 10 + 2 * CutConfig().pad
    assert sum(durations) > 0.9 * len(wav) / 16000


def test_clips_are_frame_exact_25fps_16k(host_clips):
    source = _audio_16k(HOST)
    for clip in iter_clips(host_clips):
        meta = clip.meta()
        n = meta["n_frames"]
        with av.open(str(clip.video)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            assert v.average_rate == 25 and a.rate == 16000
            assert abs(float(v.duration * v.time_base) - float(a.duration * a.time_base)) < 1e-3
            assert sum(1 for _ in c.decode(video=0)) == n
        wav = _audio_16k(clip.wav)
        assert len(wav) == n * 640
        # the clip's audio is the source's audio from its first frame on: best alignment within 1 ms
        s0 = meta["start_frame"] * 640
        lags = range(-320, 321, 4)
        scores = [float(np.dot(wav[320:-320], source[s0 + 320 + lag: s0 + len(wav) - 320 + lag])) for lag in lags]
        assert abs(list(lags)[int(np.argmax(scores))]) <= 16


def test_rerun_skips_finished_work_and_leaves_sources_alone(host_clips):
    before_hash = file_hash(HOST)
    mtimes = {p: p.stat().st_mtime_ns for p in host_clips.rglob("*") if p.is_file()}
    res = cut([HOST], host_clips, CutConfig(max_len=10, piece=5), workers=1)
    assert res["skipped"] == 1 and res["sources"] == 1
    assert {p: p.stat().st_mtime_ns for p in host_clips.rglob("*") if p.is_file()} == mtimes
    assert file_hash(HOST) == before_hash


def test_interrupted_cut_redoes_only_the_missing_clip(host_clips, tmp_path):
    work = tmp_path / "clips"
    shutil.copytree(host_clips, work)
    source_dir = next(p for p in work.iterdir() if p.is_dir())
    (source_dir / "cut.json").unlink()  # as if the run stopped while encoding clip 00001
    (source_dir / "00001.json").unlink()
    (source_dir / "00001.mp4").unlink()
    kept = {p: p.stat().st_mtime_ns for p in source_dir.iterdir() if p.name[:5] != "00001"}
    res = cut([HOST], work, CutConfig(max_len=10, piece=5), workers=1)
    assert res["skipped"] == 0 and res["clips"] == len(list(iter_clips(host_clips)))
    assert (source_dir / "00001.mp4").exists() and (source_dir / "cut.json").exists()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert json.loads((source_dir / "00001.json").read_text())["start_frame"] == \
        json.loads((host_clips / source_dir.name / "00001.json").read_text())["start_frame"]


def test_plan_splits_long_speech_into_pieces_and_merges_or_drops_fragments():
    speech = [(1.0, 24.0), (24.4, 24.8), (30.0, 30.3), (33.0, 36.0)]
    spans = plan_clips(speech, n_frames=40 * 25, cfg=CutConfig(max_len=10, piece=5, min_len=1.0))
    secs = [(s.start_frame / 25, s.end_frame / 25) for s in spans]
    long_part = [s for s in spans if s.end_frame <= 26 * 25]
    assert len(long_part) == 5 and all(4 <= s.n_frames / 25 <= 6.5 for s in long_part)
    for a, b in zip(long_part[:-1], long_part[1:], strict=True):  # pieces are contiguous
        assert a.end_frame == b.start_frame and a.cut_in[1] == b.cut_in[0] == "piece"
    assert long_part[-1].end_frame / 25 >= 24.8  # the 0.4 s fragment joined the last piece
    assert not any(s <= 30.1 < e for s, e in secs)  # the isolated 0.3 s fragment is dropped
    assert any(s <= 33.0 and e >= 36.0 for s, e in secs)


def test_crop_and_pieces_on_real_video(tmp_path):
    cut([GUEST], tmp_path, CutConfig(max_len=3, piece=1.5, crop="right-half"), workers=1)
    clips = list(iter_clips(tmp_path))
    assert len(clips) >= 3
    for clip in clips:
        with av.open(str(clip.video)) as c:
            frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (112, 224)
        assert clip.meta()["n_frames"] / 25 <= 3 + 2 * CutConfig().pad
        assert clip.meta()["crop"] == [112, 0, 112, 224]


def test_same_step_runs_in_local_processes_and_on_ray(tmp_path, ray_local):
    tasks = [{"i": i} for i in range(4)]
    expected = [settings_hash(t) for t in tasks]
    assert run_tasks(settings_hash, tasks, workers=2) == expected
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    res = cut([GUEST], on_ray, CutConfig(max_len=3, piece=1.5), workers=2, ray_address=ray_local)
    cut([GUEST], local, CutConfig(max_len=3, piece=1.5), workers=1)
    spans = {c.clip: (c.meta()["start_frame"], c.meta()["end_frame"]) for c in iter_clips(local)}
    assert res["clips"] == len(spans) >= 3
    assert {c.clip: (c.meta()["start_frame"], c.meta()["end_frame"]) for c in iter_clips(on_ray)} == spans
    summary = json.loads(next(on_ray.glob("guest_5s-*/cut.json")).read_text())
    assert summary["source_hash"] == file_hash(GUEST)


def test_unreadable_episode_is_reported_and_the_others_are_cut(tmp_path):
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    shutil.copy(GUEST, episodes / "good.mp4")
    (episodes / "broken.mp4").write_bytes(GUEST.read_bytes()[: GUEST.stat().st_size // 2])  # moov lost
    res = cut([episodes], tmp_path / "clips", CutConfig(max_len=3, piece=1.5), workers=1)
    assert [Path(f["source"]).name for f in res["failed"]] == ["broken.mp4"]
    assert res["clips"] >= 3 and all(c.source.startswith("good-") for c in iter_clips(tmp_path / "clips"))
