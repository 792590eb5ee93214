"""Beyond one machine: a worker that dies under a task fails that task with a reason (never a hang) while the
others finish, on local processes and on a local Ray instance; and `animate --split` renders pieces of one
output on workers whose joined output equals a one-machine run."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from lipdub.data.runner import run_tasks
from lipdub.errors import LipdubError


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (head on 127.0.0.1, 2 CPUs) shared by this module's tests: Ray starts slowly."""
    ray = pytest.importorskip("ray")  # the optional extra (lipdub[ray])
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    yield "local"
    ray.shutdown()


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
