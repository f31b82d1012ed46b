"""The one thread per device that runs every torch computation of the server, fed by a bounded queue.

Why a thread and not the event loop: a render takes milliseconds to seconds; the async handlers only await a
Future, so a burst of requests costs coroutines, not threads. Why slots: while a slider moves the page sends one
request per position; a pending request with the same slot is replaced by the newer one (the older answers 409),
so only the latest position is computed. Background jobs (projections) run one at a time and call
`run_pending()` between their steps, so image requests keep being answered while a job runs.
"""
from __future__ import annotations

import collections
import concurrent.futures
import threading
from dataclasses import dataclass
from typing import Any, Callable, Deque, Optional

DEFAULT_MAX_QUEUE = 64   # pending image requests; beyond it a request is answered 503 at once
DEFAULT_MAX_JOBS = 4     # pending background jobs


class Superseded(Exception):
    """A pending request was replaced by a newer one with the same slot."""

    def __init__(self, slot: str) -> None:
        super().__init__(f"superseded by a newer request of slot {slot!r}")
        self.slot = slot


class Busy(Exception):
    """The queue is full."""


@dataclass
class _Task:
    fn: Callable[[], Any]
    slot: Optional[str]
    future: "concurrent.futures.Future[Any]"


class Worker:
    """Runs submitted callables one at a time on its own thread; image requests before jobs."""

    def __init__(self, name: str = "cpu", max_queue: int = DEFAULT_MAX_QUEUE,
                 max_jobs: int = DEFAULT_MAX_JOBS) -> None:
        self.max_queue, self.max_jobs = max_queue, max_jobs
        self._tasks: Deque[_Task] = collections.deque()
        self._jobs: Deque[_Task] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.computed = 0  # tasks run to completion or error, for tests and the load benchmark
        self._thread = threading.Thread(target=self._loop, name=f"stylegan-serve-{name}", daemon=True)
        self._thread.start()

    # -- submitting (any thread) --------------------------------------------------------------------------------

    def submit(self, fn: Callable[[], Any], slot: Optional[str] = None) -> "concurrent.futures.Future[Any]":
        """Queues an image request; replaces the pending one of the same slot (it fails with Superseded).
        Busy when `max_queue` requests are pending already."""
        task = _Task(fn, slot, concurrent.futures.Future())
        replaced = None
        with self._cond:
            self._check_open()
            if slot is not None:
                replaced = next((t for t in self._tasks if t.slot == slot), None)
                if replaced is not None:
                    self._tasks.remove(replaced)
            if replaced is None and len(self._tasks) >= self.max_queue:
                raise Busy()
            self._tasks.append(task)
            self._cond.notify()
        if replaced is not None and replaced.future.set_running_or_notify_cancel():
            replaced.future.set_exception(Superseded(slot))
        return task.future

    def submit_job(self, fn: Callable[[], Any]) -> "concurrent.futures.Future[Any]":
        """Queues a background job (run after the pending image requests); Busy beyond `max_jobs` pending."""
        task = _Task(fn, None, concurrent.futures.Future())
        with self._cond:
            self._check_open()
            if len(self._jobs) >= self.max_jobs:
                raise Busy()
            self._jobs.append(task)
            self._cond.notify()
        return task.future

    def withdraw(self, future: "concurrent.futures.Future[Any]") -> bool:
        """Removes a still pending request (its client went away) and cancels it; False once it has started."""
        with self._cond:
            task = next((t for t in self._tasks if t.future is future), None)
            if task is None:
                return False
            self._tasks.remove(task)
        return task.future.cancel()

    def pending(self) -> int:
        """Image requests waiting (not counting the one running)."""
        with self._cond:
            return len(self._tasks)

    def close(self, timeout: float = 10.0) -> None:
        """Stops the thread after the running task; pending ones are cancelled."""
        with self._cond:
            self._closed = True
            left = list(self._tasks) + list(self._jobs)
            self._tasks.clear()
            self._jobs.clear()
            self._cond.notify_all()
        for task in left:
            task.future.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the worker is closed")

    # -- the worker thread --------------------------------------------------------------------------------------

    def run_pending(self) -> None:
        """Runs the image requests queued now (called by a job between its steps, on this thread)."""
        while True:
            with self._cond:
                if not self._tasks or self._closed:
                    return
                task = self._tasks.popleft()
            self._run(task)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                task = self._tasks.popleft() if self._tasks else self._jobs.popleft()
            self._run(task)

    def _run(self, task: _Task) -> None:
        if not task.future.set_running_or_notify_cancel():  # its client went away while it waited
            return
        try:
            result = task.fn()
        except BaseException as exc:  # handed to the awaiting request, which turns it into a JSON error
            self.computed += 1
            task.future.set_exception(exc)
        else:
            self.computed += 1  # before the answer, so whoever awaits it sees the count
            task.future.set_result(result)


__all__ = ["Worker", "Superseded", "Busy", "DEFAULT_MAX_QUEUE", "DEFAULT_MAX_JOBS"]
