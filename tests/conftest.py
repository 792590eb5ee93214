"""Test-wide setup: every test run gets its own LIPDUB_HOME so no user cache or weights are read or written."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="lipdub-test-home-")
os.environ["LIPDUB_HOME"] = _HOME
os.environ.setdefault("LIPDUB_THREADS", "2")
# OpenMP threads (torch, MKL, oneDNN) waiting for work sleep instead of spinning. Set before anything imports torch
# (libgomp reads it once), and inherited by the CLI runs in subprocesses. The two pytest workers share 2 cores, so a
# test's 2 torch threads mostly have one core: spinning, one thread burns the core the other needs. Measured beside a
# 1-thread job (Wav2Lip inference, batch 8): 2 threads 3.1-4.9 s spinning, 1.2-1.6 s sleeping (1 thread: 1.3-2.1 s);
# test_wav2lip_engine.py + test_wav2lip_model.py beside it: 71.5 / 45.3 / 43.6 s spinning, 44.1 / 38.3 / 41.8 s asleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DATA = Path(__file__).parent / "data"
# started first, so that under pytest-xdist (two processes, whole files each) the longest file does not end last.
# xdist gives the first worker the 1st and the 3rd file at once (a worker gets its next file when it has <= 2 tests
# left), so the 3rd is a short one: whatever stands there waits behind the 8-minute expert run. The rest, longest
# first (seconds per file in a whole-suite run on a busy machine: web_api 194, animate 149, web_browser 114,
# viseme 101, cli_args 74, train_chain 66, web_ray 59, motion 52, train_run 48, split 47, data_filter 45, cues 37;
# all others < 35), so the last files to start are short ones and the two workers end together (in alphabetical
# order the 3-minute web API file was among the last to start: whether the workers ended together depended on
# when the expert run ended).
LONGEST_FIRST = ("test_train_expert.py", "test_train.py", "test_mel.py", "test_web_api.py", "test_animate.py",
                 "test_web_browser.py", "test_viseme.py", "test_cli_args.py", "test_train_chain.py",
                 "test_web_ray.py", "test_motion.py", "test_train_run.py", "test_split.py", "test_data_filter.py",
                 "test_cues.py")
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def lipdub_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty LIPDUB_HOME for one test (settings re-read)."""
    from lipdub.settings import get_settings

    home = tmp_path / "lipdub-home"
    monkeypatch.setenv("LIPDUB_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def ray_local() -> str:
    """One local Ray instance (head on 127.0.0.1, 2 CPUs) for the whole run, as `--ray local` would start it:
    Ray starts slowly, so every test that runs on Ray shares it. Its workers import what this process can."""
    import ray  # the optional extra (lipdub[ray]), part of the dev install

    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    yield "local"
    ray.shutdown()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files in LONGEST_FIRST run first; everything else keeps its order."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
