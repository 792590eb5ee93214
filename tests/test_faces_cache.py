"""The detection cache (content-keyed, robust, shared by runs) and the `lipdub faces` / `lipdub cache` CLI."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from lipdub.cli import main
from lipdub.faces import FaceSettings, analyze, cache
from lipdub.faces import analysis as analyze_module

DATA = Path(__file__).parent / "data" / "faces"
PHOTO = DATA / "grp2_obama_biden_side_by_side.jpg"
CLIP = DATA / "vox_man_3s.mp4"


def _forbid_detection(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("detection ran on a cache hit")

    monkeypatch.setattr(analyze_module, "shared_detector", boom)
    monkeypatch.setattr(analyze_module, "Tracker", boom)


def _same(a, b) -> bool:
    return (a.num_frames == b.num_frames and a.track_ids == b.track_ids
            and np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.boxes, b.boxes))


def test_a_hit_skips_detection_and_returns_the_same_tracks(lipdub_home, monkeypatch, tmp_path):
    first = analyze(CLIP)
    assert cache.info()["entries"] == 1
    _forbid_detection(monkeypatch)
    again = analyze(CLIP)
    assert _same(first, again)
    assert again.chips.keys() == first.chips.keys()
    renamed = tmp_path / "another name.mp4"  # the key is the content, not the name
    shutil.copy(CLIP, renamed)
    assert _same(first, analyze(renamed))


def test_changed_content_settings_or_rate_miss(lipdub_home, tmp_path):
    analyze(PHOTO)
    edited = tmp_path / "edited.jpg"
    edited.write_bytes(PHOTO.read_bytes() + b"\0")  # still a valid JPEG, different bytes
    key = cache.cache_key
    assert key(edited, FaceSettings(), None) != key(PHOTO, FaceSettings(), None)
    assert key(PHOTO, FaceSettings(hog_upsample=0), None) != key(PHOTO, FaceSettings(), None)
    assert key(CLIP, FaceSettings(), 10.0) != key(CLIP, FaceSettings(), None)
    analyze(CLIP, fps=10)
    analyze(edited)
    analyze(PHOTO, settings=FaceSettings(hog_upsample=0))
    assert cache.info()["entries"] == 4


def test_the_native_rate_given_or_not_shares_one_entry(lipdub_home, monkeypatch):
    analyze(CLIP)  # the web app's face picker asks without a rate
    _forbid_detection(monkeypatch)
    assert analyze(CLIP, fps=25.0).num_frames == 75  # the pipeline passes the video's own rate
    assert cache.info()["entries"] == 1


def test_no_cache_neither_reads_nor_writes(lipdub_home):
    analyze(PHOTO, use_cache=False)
    assert cache.info()["entries"] == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_a_corrupt_or_foreign_entry_is_rebuilt_not_a_crash(lipdub_home, damage):
    good = analyze(PHOTO)
    entry = next(Path(cache.info()["path"]).glob("*.npz"))
    if damage == "garbage":
        entry.write_bytes(b"not a cache entry")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    else:  # a valid entry of another file under this key
        other = analyze(DATA / "grp3_voc2008_001322.jpg", use_cache=False)
        other.save(entry, extra_meta={"key": "someone else"})
    rebuilt = analyze(PHOTO)
    assert _same(good, rebuilt)
    assert cache.load(entry.stem) is not None, "the entry was rewritten"


def test_concurrent_writers_never_leave_a_torn_entry(lipdub_home):
    tracks = analyze(CLIP, use_cache=False)
    key = "k" * 64
    errors: list[str] = []

    def write() -> None:
        for _ in range(15):
            cache.store(key, tracks)

    def read() -> None:
        for _ in range(60):
            got = cache.load(key)
            if got is not None and not _same(got, tracks):
                errors.append("torn read")

    cache.store(key, tracks)
    threads = [threading.Thread(target=write) for _ in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _same(cache.load(key), tracks)
    assert not list(Path(cache.info()["path"]).glob("*.tmp")), "no temp files left behind"


def test_cache_cli_info_and_clear(lipdub_home, capsys):
    analyze(PHOTO)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "1 entry" in out and str(lipdub_home) in out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cached detection" in capsys.readouterr().out
    assert cache.info()["entries"] == 0


def test_faces_cli_json_and_preview(lipdub_home, capsys, tmp_path):
    preview = tmp_path / "out" / "p.jpg"
    assert main(["faces", str(PHOTO), "--json", "--preview", str(preview)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in report["faces"]] == [0, 1]
    assert report["faces"][0]["box"][0] < report["faces"][1]["box"][0]
    assert report["default"] in (0, 1) and report["preview"] == str(preview)
    from PIL import Image

    with Image.open(preview) as im:
        assert im.format == "JPEG" and im.size == (800, 470)


def test_faces_cli_table_writes_the_preview_in_the_current_folder(lipdub_home, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["faces", str(CLIP)]) == 0
    out = capsys.readouterr().out
    assert "1 face in a 160x160 video of 75 frames" in out
    assert "default speaker: chose face 0 of 1" in out
    assert (tmp_path / "vox_man_3s.faces.jpg").is_file()
    assert f"preview: {tmp_path / 'vox_man_3s.faces.jpg'}" in out
    assert not (DATA / "vox_man_3s.faces.jpg").exists(), "never write beside the user's input"


def test_faces_cli_says_clearly_when_there_is_no_face(lipdub_home, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["faces", str(DATA / "neg_no_human_face_cartoon.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"lipdub: error: {DATA / 'neg_no_human_face_cartoon.jpg'}: no face found"
    assert not list(tmp_path.glob("*.faces.jpg")), "no preview for a photo without faces"


def test_faces_cli_missing_file_is_one_line(lipdub_home, capsys):
    assert main(["faces", "nothere.mp4"]) == 1
    err = capsys.readouterr().err.strip()
    assert "nothere.mp4" in err and "\n" not in err


def test_two_runs_at_once_on_one_file_both_succeed_and_leave_one_good_entry(lipdub_home):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LIPDUB_HOME": str(lipdub_home)}
    cmd = [sys.executable, "-m", "lipdub", "faces", str(CLIP), "--json", "--no-preview"]
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [r.communicate(timeout=120) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [err.decode()[-300:] for _, err in outs]
    reports = [json.loads(out) for out, _ in outs]
    assert reports[0]["faces"] == reports[1]["faces"]
    assert cache.info()["entries"] == 1
    assert cache.load(next(Path(cache.info()["path"]).glob("*.npz")).stem).num_frames == 75


def test_an_entry_of_the_previous_format_is_rebuilt_with_persons(lipdub_home, monkeypatch):
    from lipdub.faces import tracks as tracks_module

    key = cache.cache_key(CLIP, FaceSettings(), None)
    old = analyze(CLIP, use_cache=False)
    with monkeypatch.context() as m:  # what a lipdub before shots and persons left in the cache
        m.setattr(tracks_module, "FORMAT_VERSION", tracks_module.FORMAT_VERSION - 1)
        cache.store(key, old)
    assert cache.load(key) is None, "an entry of another format is never read"
    rebuilt = analyze(CLIP)
    assert rebuilt.person_ids == [0] and rebuilt.shot_starts.tolist() == [0]
    hit = cache.load(key)
    assert hit is not None and hit.persons == rebuilt.persons and hit.tracks_of(0) == [0]


# ---- size cap (LRU)
def _cap(monkeypatch, entries: float, size: int) -> None:
    """Cap the cache at `entries` entries of `size` bytes (LIPDUB_CACHE_MAX_MB, settings re-read)."""
    from lipdub.settings import get_settings

    monkeypatch.setenv("LIPDUB_CACHE_MAX_MB", str(entries * size / 2**20))
    get_settings.cache_clear()


def _stored(folder: str) -> set[str]:
    return {p.stem for p in Path(folder).glob("*.npz")}


def test_over_the_cap_the_least_recently_used_entry_goes_first(lipdub_home, monkeypatch):
    tracks = analyze(PHOTO, use_cache=False)
    a, b, c, d = (ch * 64 for ch in "abcd")
    size = cache.store(a, tracks).stat().st_size
    _cap(monkeypatch, 2.5, size)
    cache.store(b, tracks)
    assert cache.load(a) is not None  # a read makes `a` the most recently used
    cache.store(c, tracks)
    folder = cache.info()["path"]
    assert _stored(folder) == {a, c}, "b, used least recently, was removed; a (read) stayed"
    cache.store(d, tracks)
    assert _stored(folder) == {c, d}
    assert cache.load(b) is None and _same(cache.load(d), tracks)
    info = cache.info()
    assert info["entries"] == 2 and info["bytes"] == 2 * size <= info["max_bytes"]


def test_an_entry_bigger_than_the_whole_cap_stays_until_the_next_write(lipdub_home, monkeypatch):
    tracks = analyze(PHOTO, use_cache=False)
    size = cache.store("a" * 64, tracks).stat().st_size
    _cap(monkeypatch, 0.5, size)
    cache.store("b" * 64, tracks)
    assert _stored(cache.info()["path"]) == {"b" * 64}  # the run that wrote it may read it back


def test_eviction_never_removes_a_write_in_progress_only_abandoned_ones(lipdub_home, monkeypatch):
    import os
    import time

    tracks = analyze(PHOTO, use_cache=False)
    size = cache.store("a" * 64, tracks).stat().st_size
    folder = Path(cache.info()["path"])
    writing, abandoned = folder / ".bbbbbbbbbbbbbbbb.x1.tmp", folder / ".cccccccccccccccc.x2.tmp"
    writing.write_bytes(b"half an entry")
    abandoned.write_bytes(b"a crashed run's half entry")
    old = time.time() - 2 * cache.ABANDONED
    os.utime(abandoned, (old, old))
    _cap(monkeypatch, 1, size)
    cache.store("d" * 64, tracks)
    assert writing.exists() and not abandoned.exists()
    assert cache.clear() == 1 and writing.exists()  # clear leaves a write in progress to finish


def test_concurrent_writers_and_readers_under_a_cap_never_fail_or_tear(lipdub_home, monkeypatch):
    tracks = analyze(PHOTO, use_cache=False)
    size = cache.store("0" * 64, tracks).stat().st_size
    _cap(monkeypatch, 3.5, size)
    keys = [f"{i:064d}" for i in range(12)]
    errors: list[str] = []

    def write(part: list[str]) -> None:
        for key in part:
            if cache.store(key, tracks) is None:
                errors.append(f"store {key} failed")

    def read() -> None:
        for _ in range(40):
            for key in keys:
                got = cache.load(key)
                if got is not None and not _same(got, tracks):
                    errors.append("torn read")

    threads = [threading.Thread(target=write, args=(keys[i::3],)) for i in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    info = cache.info()
    assert 1 <= info["entries"] <= 3 and info["bytes"] <= info["max_bytes"]
    assert all(_same(cache.load(k), tracks) for k in _stored(info["path"]))
    assert not list(Path(info["path"]).glob("*.tmp"))


def test_cache_info_shows_size_cap_and_entries_and_a_bad_cap_is_one_line(lipdub_home, monkeypatch, capsys):
    from lipdub.settings import get_settings

    monkeypatch.setenv("LIPDUB_CACHE_MAX_MB", "3")
    get_settings.cache_clear()
    analyze(PHOTO)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    size = cache.info()["bytes"]
    assert f"1 entry, {size / 1024:.1f} KiB of 3.0 MiB" in out and "LIPDUB_CACHE_MAX_MB" in out
    monkeypatch.setenv("LIPDUB_CACHE_MAX_MB", "-5")
    get_settings.cache_clear()
    assert main(["cache", "info"]) == 1
    err = capsys.readouterr().err.strip()
    assert "LIPDUB_CACHE_MAX_MB" in err and "\n" not in err
