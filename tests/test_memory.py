"""What keeps the wav2lip path's memory down, checked on the process itself (/proc), not on timings or peaks:
the figures (peak RSS per case) live in benchmarks/bench_animate.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lipdub.engines.wav2lip.checkpoint import load_state_dict
from lipdub.engines.wav2lip.engine import off_the_file
from lipdub.media.threads import _malloc_trim

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux only)")


def mapped(path: Path) -> bool:
    """Whether `path` is memory-mapped into this process."""
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


def tiny_network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(6, 16, 3), nn.BatchNorm2d(16), nn.Conv2d(16, 3, 1))


def loaded(path: Path) -> nn.Module:
    """`tiny_network` assigned from the checkpoint's memory-mapped tensors, as `load_model` does."""
    with torch.device("meta"):
        model = tiny_network()
    model.load_state_dict(load_state_dict(path), assign=True)
    return model.eval()


def test_converted_weights_leave_the_checkpoint_file(tmp_path):
    ckpt = tmp_path / "tiny.pth"
    torch.save(tiny_network().state_dict(), ckpt)
    as_is = off_the_file(loaded(ckpt), torch.float32, torch.contiguous_format)
    assert mapped(ckpt)  # nothing converted: the weights are read from the mapping, no copy of them is made
    del as_is
    model = loaded(ckpt)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model = off_the_file(model, torch.float32, torch.channels_last)
    assert not mapped(ckpt)  # channels_last copied the 4-D weights: no tensor keeps the file's pages resident
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


# a thread frees 256 MiB of 1 MiB blocks that glibc keeps in its arena (a freed 8 MiB block has raised the mmap
# threshold, and a small block after each big one keeps the arena from shrinking at its top): resident until trimmed
FREED_BUT_RESIDENT = """
import re, threading
from lipdub.media.threads import return_freed_memory

def anon_mib():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024

def churn():
    big = bytearray(8 << 20)
    del big
    blocks = []
    for _ in range(256):
        blocks.append((bytearray(1 << 20), bytearray(64)))
    for pair in blocks:
        pair[0][::4096] = b"x" * len(pair[0][::4096])
    pins = [small for _, small in blocks]
    blocks.clear()
    churn.pins = pins

thread = threading.Thread(target=churn)
thread.start()
thread.join()
before = anon_mib()
return_freed_memory()
print(before, anon_mib())
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="glibc's malloc_trim only (elsewhere the call does nothing)")
def test_freed_heap_pages_return_to_the_system():
    src = Path(__file__).resolve().parent.parent / "src"
    out = subprocess.run([sys.executable, "-c", FREED_BUT_RESIDENT], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(src)})
    before, after = map(int, out.stdout.split())
    assert before - after >= 200, (before, after)  # of the 256 MiB freed


def test_a_first_run_s_face_analysis_decodes_no_further_ahead_than_its_renderer_needs(lipdub_home):
    """While a cold video renders, its analysis hands decoded frames on (2.6 MiB each at 720p): once the engine is
    loaded, at most its batch (+ the frames the fades and the gap filling look at) may wait, however far the
    analysis could run ahead."""
    import time

    from lipdub import faces
    from lipdub.faces.config import FaceSettings

    video = Path(__file__).parent / "data" / "faces" / "cut_aba.mp4"  # 75 frames
    analysed: list[int] = []
    analysis = faces.BackgroundAnalysis(video, 25.0, ahead=20, progress=lambda done, total: analysed.append(done))
    try:
        frames = analysis.frames()
        next(frames)
        analysis.keep_ahead(2)
        taken = 1 + sum(1 for _, _ in zip(range(29), frames, strict=False))  # the first 20 ahead go first
        settled, deadline = (-1, 0.0), time.monotonic() + 30  # the analysis runs as far ahead as it may
        while time.monotonic() < deadline and (analysed[-1] != settled[0] or time.monotonic() < settled[1]):
            if analysed[-1] != settled[0]:
                settled = (analysed[-1], time.monotonic() + 1.0)  # still for a second: it waits for the caller
            time.sleep(0.05)
        waiting = analysed[-1] - taken
        assert 0 < waiting <= 2 + FaceSettings().fill_gap + 2, waiting
        assert len(list(frames)) == 75 - taken  # and every frame still comes, in order
    finally:
        analysis.close()
