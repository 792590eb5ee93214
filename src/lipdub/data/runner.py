"""Run one step function over many tasks: inline, on local worker processes, or as Ray tasks on a cluster.

A task whose worker dies under it (killed, out of memory, a crash in native code) is tried once more; if it
dies again it is lost: its result is `lost(task, reason)`, or without `lost` a LipdubError naming it is raised
once every other task has finished. The other tasks go on either way, and nothing waits for a dead worker.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from tqdm import tqdm

from lipdub.errors import LipdubError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

DIED = "its worker process died while running it, twice ({})"  # the one-line reason of a lost task
_started: Any = None  # in a local worker: the queue it announces each task it starts on


def default_workers() -> int:
    """One worker per core lipdub may use (`LIPDUB_THREADS`)."""
    from lipdub.settings import get_settings

    return max(1, get_settings().threads)


def _single_threaded() -> None:
    """Keep each worker on one core so N workers use N cores (no BLAS/torch/OpenCV over-subscription).
    torch reads OMP_NUM_THREADS when it is first imported, so it is set here only if already imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover
        pass


def _call(fn: Callable[[T], R], task: T) -> R:
    """The remote entry point: single-threaded, then the step function."""
    _single_threaded()
    return fn(task)


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], *, workers: int | None = None,
              ray_address: str | None = None, desc: str = "", unit: str = "task",
              lost: Callable[[T, str], R] | None = None) -> list[R]:
    """`[fn(t) for t in tasks]` in parallel with a progress bar; results keep the order of `tasks`.

    `fn` must be a module-level function (it is pickled). `ray_address` runs the tasks on a Ray cluster
    (`"local"` starts a local Ray instance with `workers` CPUs; an instance this process already joined is
    used as it is); otherwise `workers` local processes run them (1: inline, in this process). A task whose
    worker dies twice gives `lost(task, reason)` (see the module's docstring).
    """
    workers = default_workers() if workers is None else max(1, workers)
    if not tasks:
        return []
    with tqdm(total=len(tasks), desc=desc, unit=unit, leave=False, disable=None) as bar:
        if ray_address:
            results, dead = _run_ray(fn, tasks, ray_address, workers, bar)
        elif workers == 1 or len(tasks) == 1:
            results, dead = [], {}
            for task in tasks:
                results.append(fn(task))
                bar.update()
        else:
            results, dead = _run_pool(fn, tasks, workers, bar)
    for i, reason in sorted(dead.items()):
        if lost is None:
            raise LipdubError(f"task {i + 1} of {len(tasks)} ({desc or 'run'}): {reason}")
        results[i] = lost(tasks[i], reason)
    return results


# --------------------------------------------------------------------------------------------- local processes


def _worker_init(started: Any) -> None:
    global _started
    _started = started
    _single_threaded()


def _announced(fn: Callable[[T], R], task: T, i: int) -> R:
    """Run task `i` in a local worker, first telling the parent it started (so a crash names its task)."""
    _started.put(i)
    return fn(task)


def _run_pool(fn: Callable[[T], R], tasks: Sequence[T], workers: int, bar: tqdm) -> tuple[list[Any], dict]:
    """Local worker processes (spawned: safe with torch, mediapipe and open codecs in the parent).

    When a worker dies the pool breaks: the tasks that had not started go on in a new pool, and each task that
    was running then is tried again alone, so a task that dies alone is the one that kills its worker."""
    results: list[Any] = [None] * len(tasks)
    dead: dict[int, str] = {}
    todo, suspects = list(range(len(tasks))), []
    while todo or suspects:
        alone = not todo
        batch = [suspects.pop(0)] if alone else todo
        todo = []
        broken = _pool_pass(fn, tasks, batch, 1 if alone else workers, bar, results)
        if broken is None:
            continue
        unfinished, running = broken
        if alone:
            dead[batch[0]] = DIED.format("local process")
            bar.update()
            continue
        running = running or set(unfinished)  # a death before any task began: every unfinished one is a suspect
        suspects += [i for i in unfinished if i in running]
        todo = [i for i in unfinished if i not in running]
    return results, dead


def _pool_pass(fn: Callable[[T], R], tasks: Sequence[T], batch: list[int], workers: int, bar: tqdm,
               results: list[Any]) -> tuple[list[int], set[int]] | None:
    """Run `batch` on a fresh pool into `results`; None, or (unfinished tasks, those running) if a worker died."""
    ctx = mp.get_context("spawn")
    started = ctx.SimpleQueue()
    with ProcessPoolExecutor(max_workers=min(workers, len(batch)), mp_context=ctx, initializer=_worker_init,
                             initargs=(started,)) as pool:
        pending = {pool.submit(_announced, fn, tasks[i], i): i for i in batch}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool:
                        unfinished = sorted([i, *pending.values()])
                        running = set()
                        while not started.empty():
                            running.add(started.get())
                        return unfinished, running & set(unfinished)
                    bar.update()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return None


# --------------------------------------------------------------------------------------------- Ray


def connect_ray(address: str, workers: int) -> None:
    """Join the Ray cluster at `address` ('local': start a private instance with `workers` CPUs) unless joined."""
    try:
        import ray
    except ImportError as err:
        raise LipdubError("--ray needs the optional Ray extra: pip install 'lipdub[ray]'") from err
    if ray.is_initialized():
        return
    if address == "local":
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = (str(err).strip().splitlines() or [""])[0]
            raise LipdubError(f"--ray {address}: cannot join the Ray cluster ({first})") from None


def _run_ray(fn: Callable[[T], R], tasks: Sequence[T], address: str, workers: int,
             bar: tqdm) -> tuple[list[Any], dict]:
    """One Ray task per item, gathered as they finish; Ray itself runs a task again once if its worker dies."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    connect_ray(address, workers)
    remote = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_call)
    index = {remote.remote(fn, task): i for i, task in enumerate(tasks)}
    results: list[Any] = [None] * len(tasks)
    dead: dict[int, str] = {}
    pending = list(index)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                results[index[ref]] = ray.get(ref)
            except RayTaskError:  # the step function raised: as if it had run here
                raise
            except RayError as err:  # the worker or its node died, twice
                dead[index[ref]] = DIED.format(f"Ray: {type(err).__name__}")
            bar.update()
    return results, dead
