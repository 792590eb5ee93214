"""Beyond one machine: a worker that dies under a task fails that task with a reason (never a hang) while the
others finish, on local processes and on a local Ray instance; and `animate --split` renders pieces of one
output on workers whose joined output equals a one-machine run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipdub import media
from lipdub.data.runner import run_tasks
from lipdub.errors import LipdubError
from lipdub.media.atomic import sequence_files


def double_or_die(task: int) -> int:
    """A step function: 2 * task, except task -1 exits its process and -9 kills it (as the OOM killer would)."""
    if task == -1:
        os._exit(3)
    if task == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    return 2 * task


def _lost(task: int, reason: str) -> str:
    return f"lost {task}: {reason}"


def test_a_local_worker_that_dies_fails_its_task_and_the_others_finish():
    out = run_tasks(double_or_die, [1, -1, 2, 3, 4], workers=2, lost=_lost)
    assert out[0] == 2 and out[2:] == [4, 6, 8]
    assert out[1].startswith("lost -1: its worker process died") and "\n" not in out[1]
    # a step without `lost` (the data steps): one error naming the task, raised after the others ran
    with pytest.raises(LipdubError, match=r"task 2 of 3 \(step\): its worker process died"):
        run_tasks(double_or_die, [1, -9, 2], workers=2, desc="step")


def test_a_ray_worker_that_dies_fails_its_task_and_the_others_finish(ray_local):
    out = run_tasks(double_or_die, [1, -9, 2], ray_address=ray_local, lost=_lost)
    assert out[0] == 2 and out[2] == 4
    assert out[1].startswith("lost -9: its worker process died while running it, twice (Ray: ")


# --------------------------------------------------------------------------------------------- animate --split

VIDEO = Path(__file__).parent / "data" / "pipeline" / "talk_2s.mp4"  # 50 frames of a talking man, 224 px
SPEECH = Path(__file__).parent / "data" / "mix" / "flemish_vl09647_22k.flac"  # 2.2 s: 55 output frames


def _frames(pattern: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sequence_files(pattern)]


def test_piece_ranges_cover_the_output_once_and_start_on_a_batch():
    from lipdub.split import piece_ranges

    for n, pieces, align in [(55, 3, 16), (55, 2, 1), (10, 8, 4), (3, 5, 16)]:
        ranges = piece_ranges(n, pieces, align)
        assert [i for r in ranges for i in r] == list(range(n)) and len(ranges) <= pieces
        assert all(r.start % align == 0 for r in ranges)


@pytest.mark.slow  # three renders of 55 frames (157 s with Ray start on a 2-core machine at load 12-15)
def test_split_on_ray_equals_one_machine_run_frame_for_frame_and_joins_a_video(tmp_path, ray_local, monkeypatch):
    from lipdub.pipeline import AnimateRequest, animate
    from lipdub.settings import get_settings
    from lipdub.split import animate_split

    def request(output: Path) -> AnimateRequest:
        return AnimateRequest(media=VIDEO, audio=SPEECH, output=output, engine="viseme")

    with monkeypatch.context() as m:  # the one-machine run analyses the faces itself (a cold cache)
        m.setenv("LIPDUB_HOME", str(tmp_path / "home"))
        get_settings.cache_clear()
        animate(request(tmp_path / "one" / "%05d.png"))
    get_settings.cache_clear()
    one = _frames(tmp_path / "one" / "%05d.png")

    result = animate_split(request(tmp_path / "split" / "%05d.png"), 2, ray_address=ray_local)
    split = _frames(tmp_path / "split" / "%05d.png")
    assert result.frames == len(one) == len(split) == 55
    different = [i for i, (a, b) in enumerate(zip(one, split, strict=True)) if not np.array_equal(a, b)]
    assert different == []  # the 2nd piece starts at frame 32 (2 batches): its mouth is what the whole run drew
    assert (tmp_path / "split" / "audio.wav").read_bytes() == (tmp_path / "one" / "audio.wav").read_bytes()

    # a video: pieces without sound, copied into one stream, the whole soundtrack encoded once
    video = tmp_path / "split.mp4"
    animate_split(request(video), 2, ray_address=ray_local)
    info = media.probe(video)
    assert info.has_audio and abs(info.duration - 55 / 25) < 0.03
    decoded = list(media.iter_frames(video))
    assert len(decoded) == 55
    error = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(decoded, one, strict=True)]
    assert max(error) < 3.0  # every frame in its place (H.264 loses a little), also on both sides of the join
    sound, wanted = media.load_audio(video), media.load_audio(tmp_path / "one" / "audio.wav")
    assert abs(len(sound) - len(wanted)) <= 0.03 * media.SAMPLE_RATE
    n = min(len(sound), len(wanted))
    assert np.corrcoef(sound[:n], wanted[:n])[0, 1] > 0.95  # one continuous soundtrack, not shifted


@pytest.mark.parametrize("flags, problem", [
    (["--ray", "local"], "argument --ray: give --split N too"),
    (["--split", "2", "--no-cache"], "argument --split: the workers share the face analysis through the cache"),
    (["--split", "0"], "argument --split:"),
])
def test_split_flags_are_checked_before_any_work(tmp_path, capsys, flags, problem):
    from lipdub.cli import main

    try:
        code = main(["animate", str(VIDEO), str(SPEECH), "-o", str(tmp_path / "out.mp4"), *flags])
    except SystemExit as stop:  # argparse's own checks (ranges) exit while parsing
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and problem in err and "\n" not in err
    assert not (tmp_path / "out.mp4").exists()
