"""Run one step function over many tasks: inline, on local worker processes, or as Ray tasks on a cluster."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from tqdm import tqdm

from lipdub.errors import LipdubError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def default_workers() -> int:
    """One worker per core lipdub may use (`LIPDUB_THREADS`)."""
    from lipdub.settings import get_settings

    return max(1, get_settings().threads)


def _single_threaded() -> None:
    """Keep each worker on one core so N workers use N cores (no BLAS/torch/OpenCV over-subscription)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover - torch always present in practice
        pass
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
              ray_address: str | None = None, desc: str = "", unit: str = "task") -> list[R]:
    """`[fn(t) for t in tasks]` in parallel with a progress bar; results keep the order of `tasks`.

    `fn` must be a module-level function (it is pickled). `ray_address` runs the tasks on a Ray cluster
    (`"local"` starts a local Ray instance with `workers` CPUs); otherwise `workers` local processes run them
    (1: inline, in this process).
    """
    workers = default_workers() if workers is None else max(1, workers)
    if not tasks:
        return []
    with tqdm(total=len(tasks), desc=desc, unit=unit, leave=False, disable=None) as bar:
        if ray_address:
            return _run_ray(fn, tasks, ray_address, workers, bar)
        if workers == 1 or len(tasks) == 1:
            results = []
            for task in tasks:
                results.append(fn(task))
                bar.update()
            return results
        return _run_pool(fn, tasks, workers, bar)


def _run_pool(fn: Callable[[T], R], tasks: Sequence[T], workers: int, bar: tqdm) -> list[R]:
    """Local worker processes (spawned: safe with torch, mediapipe and open codecs in the parent)."""
    results: list[Any] = [None] * len(tasks)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                             initializer=_single_threaded) as pool:
        pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
                    bar.update()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return results


def _run_ray(fn: Callable[[T], R], tasks: Sequence[T], address: str, workers: int, bar: tqdm) -> list[R]:
    """One Ray task per item, gathered as they finish."""
    try:
        import ray
    except ImportError as err:
        raise LipdubError("--ray needs the optional Ray extra: pip install 'lipdub[ray]'") from err
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    remote = ray.remote(num_cpus=1)(_call)
    index = {}
    for i, task in enumerate(tasks):
        index[remote.remote(fn, task)] = i
    results: list[Any] = [None] * len(tasks)
    pending = list(index)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = ray.get(ref)
            bar.update()
    return results
