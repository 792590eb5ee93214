"""Decode ahead and encode behind in background threads with bounded queues.

PyAV releases the GIL while it decodes, converts and encodes, so a producer thread (decoding the next frames)
and a consumer thread (encoding the last ones) run beside the caller's work (the network) on other cores.
The queues are bounded, so memory is too; an error in a thread is raised to the caller; closing early, an
exception or garbage collection stops and joins the thread.
"""

from __future__ import annotations

import ctypes
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from functools import cache
from typing import Generic, TypeVar

T = TypeVar("T")
END = object()  # the last item a queue carries
_POLL = 0.05  # seconds a blocked thread waits before it looks whether it should stop


class _Failure:
    """An exception raised in a background thread, carried to the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def put_unless(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put `item` into `q`, waiting while it is full; False if `stop` was set first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def prefetch(make: Callable[[], Iterator[T]], depth: int, name: str = "lipdub-decode") -> Iterator[T]:
    """The items of `make()`, produced up to `depth` ahead of the caller in a background thread.

    An exception raised by the producer is raised here, after the items produced before it. Closing this
    generator (break, an exception in the caller, garbage collection) stops the thread, closes the producer's
    iterator (its `finally` blocks run, e.g. the decoder is closed) and joins the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def run() -> None:
        try:
            items = make()
            try:
                for item in items:
                    if not put_unless(q, item, stop):
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            put_unless(q, END, stop)
        except BaseException as err:  # noqa: BLE001 - carried to the caller, who re-raises it
            put_unless(q, _Failure(err), stop)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class Consumer(Generic[T]):
    """Hand items to `handle` in a background thread, at most `depth` waiting; the caller goes on meanwhile.

    `submit` raises the first error `handle` raised (later items are dropped), `finish` waits until every
    item is handled and raises it too; `cancel` drops what waits and stops. The thread starts on first use.
    """

    def __init__(self, handle: Callable[[T], None], depth: int, name: str = "lipdub-encode") -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._name = name

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is END:
                return
            if self._error is None:
                try:
                    self._handle(item)
                except BaseException as err:  # noqa: BLE001 - carried to the caller, who re-raises it
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item: T) -> None:
        """Queue `item` (waits while `depth` items wait); raises an earlier error of `handle`."""
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        if not put_unless(self._queue, item, self._stop):  # a failed thread keeps emptying the queue: no deadlock
            raise RuntimeError("submit after cancel")

    def finish(self) -> None:
        """Wait until every submitted item is handled; raise the first error `handle` raised."""
        if self._thread is not None:
            put_unless(self._queue, END, self._stop)
            self._thread.join()
            self._thread = None
        self._raise()

    def cancel(self) -> None:
        """Drop the waiting items and stop the thread (after the item in hand); errors are not raised."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def one_blas_thread() -> None:
    """Run numpy's BLAS/LAPACK on the calling thread only (for the whole process). Our numpy matrices are small
    (a face's thin-plate-spline solve, landmark fits): BLAS worker threads only add hand-offs and spin against the
    decode/encode threads; measured on the viseme warp set-up: 98 -> 22 CPU-ms per 720p frame. torch keeps its own
    thread pool."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def return_freed_memory() -> None:
    """Give the pages of freed heap memory back to the system (glibc's malloc_trim; elsewhere nothing).

    Frames, codec buffers and the network's activations are megabytes each, allocated and freed by several threads
    (decode, faces, render, encode): glibc keeps freed memory in each thread's arena and raises its own thresholds
    after such blocks, so a 720p wav2lip run held ~0.3 GiB freed but resident. Called once per rendered batch it
    costs well under a millisecond there and lowered that run's peak RSS by ~0.1 GiB."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
