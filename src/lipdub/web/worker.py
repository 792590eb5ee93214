"""The job queue: N manager threads, each running one job at a time in its own spawned process, or as a Ray task
on a cluster (`serve --ray`); cancel kills the process (`ray.cancel` on Ray)."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lipdub.web.store import Job, Store

log = logging.getLogger(__name__)

Runner = Callable[..., Any]  # runner(request: AnimateRequest, progress) -> AnimateResult, like pipeline.animate

# share of the bar each stage owns, in order; unknown stages keep the current percent. "starting": the job's
# process starts and imports the engine; "preparing": the engine loads and reads the speech (the pipeline says
# nothing until it detects); generating streams into the encoder, so it owns nearly all the rest
STAGES = {"starting": (0.0, 1.0), "preparing": (1.0, 4.0), "detecting": (5.0, 20.0),
          "generating": (25.0, 73.0), "encoding": (98.0, 2.0), "done": (100.0, 0.0)}
PROGRESS_EVERY = 0.25  # seconds between progress messages / database writes
ETA_FROM = 0.1  # the ETA is shown once the generating stage is this far in ...
ETA_AFTER = 1.0  # ... and has run this many seconds
ETA_SMOOTH = 0.3  # weight of a new estimate against the previous one counted down


def stage_percent(stage: str, done: int, total: int, current: float) -> float:
    """Overall percent for `done/total` of `stage`; never goes back (streamed stages may interleave)."""
    if stage not in STAGES:
        return current
    start, span = STAGES[stage]
    frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return max(current, min(start + span * frac, 100.0))


def eta_seconds(started: float, percent: float, now: float, stage_started: float | None = None,
                stage_frac: float = 0.0) -> float | None:
    """Seconds left: from the current stage's own pace once it is 5% in (stages run at very different
    speeds), else extrapolated from the whole job; None until there is enough to go on."""
    if percent >= 100.0:
        return None
    if stage_started is not None and stage_frac >= 0.05:
        return (now - stage_started) * (1.0 - stage_frac) / stage_frac
    if percent < 2.0:
        return None
    return (now - started) * (100.0 - percent) / percent


class StableEta:
    """The ETA a user sees: None until the long stage (generating) has a steady pace, then its estimate
    smoothed against the previous one counted down, so it neither jumps nor appears from start-up noise."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.at = 0.0

    def update(self, now: float, stage: str, stage_started: float, stage_frac: float, percent: float) -> float | None:
        if self.value is not None:  # count down between estimates (and through the short encoding stage)
            self.value, self.at = max(0.0, self.value - (now - self.at)), now
        if stage != "generating" or stage_frac < ETA_FROM or now - stage_started < ETA_AFTER:
            return None if self.value is None else round(self.value, 1)
        raw = eta_seconds(stage_started, percent, now, stage_started, stage_frac)
        if raw is not None:
            self.value = raw if self.value is None else (1 - ETA_SMOOTH) * self.value + ETA_SMOOTH * raw
            self.at = now
        return None if self.value is None else round(self.value, 1)


def _orphan_guard(parent_pid: int) -> None:
    """End this job process if the server that started it dies (it would otherwise finish unseen)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _child(runner: Runner, request: Any, conn: Connection, log_path: str, parent_pid: int, threads: int) -> None:
    """Entry point of a local job process: run the job, stream progress and the outcome back through `conn`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the server, which stops or re-queues jobs
    threading.Thread(target=_orphan_guard, args=(parent_pid,), daemon=True).start()
    _run_job(runner, request, conn, log_path, threads)


def _ray_child(runner: Runner, request: Any, queue: Any, log_path: str, threads: int) -> None:
    """Entry point of a job as a Ray task (`serve --ray`): the same job, its messages through a Ray queue."""
    _run_job(runner, request, _QueueConn(queue), log_path, threads)


class _QueueConn:
    """The sending end of a Ray job's messages (what the Pipe is to a local job process)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def send(self, message: tuple) -> None:
        self.queue.put(message)

    def close(self) -> None:
        pass


def _run_job(runner: Runner, request: Any, conn: Any, log_path: str, threads: int) -> None:
    """Run `runner`, sending ("progress", stage, done, total) messages, then ("done", result) or ("error", line)."""
    os.environ["LIPDUB_THREADS"] = str(threads)  # jobs running side by side share the CPU budget
    from lipdub.settings import get_settings

    get_settings.cache_clear()
    conn.send(("progress", "preparing", 0, 1))  # the process is up; the engine and the speech load next
    last = [0.0, ""]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last[1] or now - last[0] >= PROGRESS_EVERY or done >= total:
            last[0], last[1] = now, stage
            conn.send(("progress", stage, int(done), int(total)))

    from lipdub.errors import LipdubError

    try:
        result = runner(request, progress)
        conn.send(("done", _plain(dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result)))
    except LipdubError as err:
        conn.send(("error", str(err)))
    except BaseException as err:  # noqa: BLE001 - every failure must reach the user as one line
        Path(log_path).write_text(traceback.format_exc())
        conn.send(("error", f"internal error ({type(err).__name__}: {err}); details in the server's job log"))
    finally:
        conn.close()


class _LocalJob:
    """A job running in its own spawned process on this machine; cancel kills the process."""

    def __init__(self, ctx: Any, runner: Runner, request: Any, log_path: str, threads: int) -> None:
        self.parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(runner, request, child, log_path, os.getpid(), threads),
                                name="lipdub-job", daemon=True)
        self.proc.start()
        child.close()

    def poll(self, timeout: float) -> tuple | None:
        """The job's next message within `timeout` s; ("error", reason) once its process has died."""
        if self.parent.poll(timeout):
            try:
                return self.parent.recv()
            except EOFError:
                return ("error", f"the job's process died (exit code {self._exitcode()})")
        if not self.proc.is_alive() and not self.parent.poll(0):
            return ("error", f"the job's process died (exit code {self._exitcode()})")
        return None

    def _exitcode(self) -> int | None:
        self.proc.join(2)
        return self.proc.exitcode

    def kill(self) -> None:
        self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.parent.close()

    def finish(self) -> None:
        self.proc.join(10)
        self.parent.close()


class _RayJob:
    """A job running as a Ray task on the cluster (one CPU; Ray runs it once more if its worker dies);
    cancel is `ray.cancel(force=True)`, which ends the worker process."""

    def __init__(self, runner: Runner, request: Any, log_path: str, threads: int) -> None:
        import ray
        from ray.util.queue import Queue

        from lipdub.batch import absolute

        request = absolute(request)  # the worker runs in another working folder (or on another machine)
        self.queue = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_ray_child)
        self.ref = task.remote(runner, request, self.queue, log_path, threads)

    def poll(self, timeout: float) -> tuple | None:
        """The job's next message within `timeout` s; ("error", reason) if the task ended without an outcome."""
        import ray
        from ray.exceptions import RayError
        from ray.util.queue import Empty

        try:
            return self.queue.get(timeout=timeout)
        except Empty:
            pass
        ready, _ = ray.wait([self.ref], timeout=0)
        if not ready or not self.queue.empty():  # a finished task's messages are all queued by now
            return None
        try:
            ray.get(self.ref)
        except RayError as err:
            return ("error", f"the job's Ray worker died, twice ({type(err).__name__})")
        return ("error", "the job's Ray task ended without an outcome")

    def kill(self) -> None:
        import ray

        ray.cancel(self.ref, force=True)
        self.finish()

    def finish(self) -> None:
        import ray

        ray.kill(self.queue.actor)


def _plain(value: Any) -> Any:
    """JSON-friendly copy: paths become strings, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class JobQueue:
    """Runs queued jobs from `store` with `workers` concurrent processes.

    `make_request(job)` turns a stored job into the runner's argument; `job_dir(job_id)` is where its output
    and partial files live (emptied on cancel/failure); `describe_error` rewrites messages for the user.
    """

    def __init__(self, store: Store, runner: Runner, make_request: Callable[[Job], Any],
                 job_dir: Callable[[str], Path], workers: int = 1,
                 describe_error: Callable[[Job, str], str] = lambda job, msg: msg,
                 ray_address: str | None = None) -> None:
        self.store, self.runner, self.make_request, self.job_dir = store, runner, make_request, job_dir
        self.workers, self.describe_error = workers, describe_error
        self.ray_address = ray_address  # jobs run as Ray tasks on this cluster ('local': a private instance)
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}  # running job id -> set to stop it
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> list[str]:
        """Fail jobs a dead server left running, then start the workers. Returns the ids it failed."""
        failed = self.store.fail_interrupted(
            "the server stopped while this job was running; start it again")
        for job_id in failed:
            self._clean(job_id, keep_log=True)
        if self.ray_address:
            from lipdub.data.runner import connect_ray

            connect_ray(self.ray_address, self.workers)
        self._stopping.clear()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"lipdub-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return failed

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; jobs still running are killed and queued again for the next start."""
        self._stopping.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self.notify()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def notify(self) -> None:
        """Wake idle workers (a job was queued)."""
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job; False if it had already finished (or does not exist)."""
        with self._lock:
            event = self._cancel.get(job_id)
            if event is not None:
                event.set()
                return True
            return self.store.cancel_queued(job_id)

    def wait_stopped(self, job_id: str, timeout: float = 15.0) -> None:
        """Block until `job_id` no longer runs here (after `cancel`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if job_id not in self._cancel:
                    return
            time.sleep(0.05)

    def threads_per_job(self) -> int:
        """CPU threads for one job: lipdub's thread budget split between the workers."""
        from lipdub.settings import get_settings

        return max(1, get_settings().threads // self.workers)

    # worker side
    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                job = self.store.claim_next()
                if job is not None:
                    event = self._cancel[job.id] = threading.Event()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            try:
                self._run(job, event)
            except Exception as err:  # noqa: BLE001 - a broken job must not kill the worker
                log.exception("job %s", job.id)
                self.store.finish(job.id, "failed", error=f"internal error: {err}")
            finally:
                with self._lock:
                    self._cancel.pop(job.id, None)

    def _run(self, job: Job, cancel: threading.Event) -> None:
        job_dir = self.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            request = self.make_request(job)
        except Exception as err:  # noqa: BLE001 - e.g. an upload deleted while the job waited
            self.store.finish(job.id, "failed", error=self.describe_error(job, str(err)))
            return
        log_path, threads = str(job_dir / "error.log"), self.threads_per_job()
        handle = _RayJob(self.runner, request, log_path, threads) if self.ray_address else \
            _LocalJob(self._ctx, self.runner, request, log_path, threads)
        started, percent, last_write = time.time(), 0.0, 0.0
        stage_name, stage_started, eta = "", started, StableEta()
        outcome: tuple | None = None
        while outcome is None and not cancel.is_set():
            msg = handle.poll(0.1)
            if msg is None:
                continue
            if msg[0] != "progress":
                outcome = msg
                break
            _, stage, done, total = msg
            now = time.time()
            if stage != stage_name:
                stage_name, stage_started = stage, now
            percent = stage_percent(stage, done, total, percent)
            left = eta.update(now, stage, stage_started, done / total if total else 0.0, percent)
            if now - last_write >= PROGRESS_EVERY or done >= total:
                self.store.update_progress(job.id, stage, round(percent, 1), left)
                last_write = now
        if outcome is None:  # cancelled, or the server is stopping
            handle.kill()
            self._clean(job.id)
            if self._stopping.is_set():
                self.store.requeue(job.id)
            else:
                self.store.finish(job.id, "cancelled", error="cancelled by the user")
            return
        handle.finish()
        if outcome[0] == "done":
            self.store.finish(job.id, "done", result=outcome[1])
        else:
            self._clean(job.id, keep_log=True)
            self.store.finish(job.id, "failed", error=self.describe_error(job, outcome[1]))

    def _clean(self, job_id: str, keep_log: bool = False) -> None:
        """Remove a job's partial output (everything in its folder but, if asked, the error log)."""
        job_dir = self.job_dir(job_id)
        if not job_dir.is_dir():
            return
        for path in job_dir.iterdir():
            if keep_log and path.name == "error.log":
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
