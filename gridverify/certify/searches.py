"""Branch-and-bound searches of one constraint's violation rows, here or in worker processes.

:func:`~gridverify.certify.certify` (method ``bab``) hands each search of a
constraint to a :class:`SearchPool`: a :class:`RowSearch` (the rows to search,
in order, with the threshold, the time share and the run's deadline) goes in,
a :class:`SearchOutcome` (one :class:`~gridverify.bab.BabResult` per row
searched) comes out.  With ``jobs == 1`` the search runs in this process, at
once; with more, in a pool of ``jobs`` spawned worker processes, each search
on one core, so that the searches of different constraints run side by side
(the graphs are small: one torch thread per search uses a core better than two
threads on one search; see docs/tightness.md).  The caller keeps the state and
applies each outcome when it arrives; a search knows nothing of it.  A worker's
search reports its progress (its bound so far) through a queue, at most every
:data:`PROGRESS_SECONDS`; the pool hands it to the ``progress`` of the search's
:meth:`SearchPool.submit` while it waits, and once more when it is left on an
error or Ctrl-C, so that an interrupted run keeps what the searches under way
had reached.
"""

from __future__ import annotations

import math
import os
import queue
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from gridverify._worker import die_with_parent, spawn_context, terminate_pool

__all__ = ["BrokenProcessPool", "RowSearch", "SearchOutcome", "SearchPool", "run_search"]

#: a worker's search puts its progress on the pool's queue at most this often (seconds)
PROGRESS_SECONDS = 0.5
#: the worker's end of the pool's progress queue (set by :func:`_worker_init`)
_PROGRESS_QUEUE: Any = None


@dataclass(frozen=True)
class RowSearch:
    """One search of a constraint (picklable).

    ``rows``: the violation rows (indices of the graph's spec rows, ``n_rows`` in
    all) in the order searched, each alone with an equal share of what is left of
    ``seconds`` (``None``: no share of its own); ``threshold``: decision mode's
    threshold (``None``: optimization mode); ``stop_above``: in decision mode the
    search ends once a row attains more than this (the constraint is violated,
    the other rows cannot change that); ``deadline``: wall-clock time
    (``time.time()``) at which the run's budget ends (``inf``: none);
    ``options``: the branch-and-bound options (their ``timeout`` is replaced per
    row); ``floor``: in optimization mode, the constraint's worst value found so
    far (its maximum over the rows is what counts: a row's search ends once its
    bound is within the tolerance of the larger of it and what the rows searched
    before attained).
    """

    rows: tuple[int, ...]
    n_rows: int
    threshold: float | None
    seconds: float | None
    deadline: float
    options: Any
    stop_above: float | None = None
    floor: float | None = None


@dataclass(frozen=True)
class SearchOutcome:
    """What a :class:`RowSearch` found: ``(row, started, result)`` per row searched
    (``started``: wall-clock time of the row's start) and the search's seconds."""

    rows: list[tuple[int, float, Any]]
    seconds: float


def bab_call(fn: Any, graph: Any, lower: Any, upper: Any, spec: np.ndarray,
             threshold: float | None, options: Any, mode: str,
             progress: Callable[[dict], None] | None = None,
             floor: float | None = None) -> Any:
    """One ``fn`` (:func:`~gridverify.bab.bab_maximize`) call; without the pre-built
    branching-point table, midpoints."""
    from gridverify.bab.points import PointsUnavailableError

    kw = {"threshold": threshold, "mode": mode, "progress": progress}
    if floor is not None and math.isfinite(floor):
        kw["floor"] = floor
    try:
        return fn(graph, lower, upper, spec, options=options, **kw)
    except PointsUnavailableError:
        pass
    return fn(graph, lower, upper, spec, options=replace(options, points="midpoint"), **kw)


def run_search(fn: Any, graph: Any, lower: Any, upper: Any, task: RowSearch,
               progress: Callable[[dict], None] | None = None) -> SearchOutcome:
    """Search ``task``'s rows one after the other (see :class:`RowSearch`)."""
    ts = time.time()
    done: list[tuple[int, float, Any]] = []
    mode = "optimization" if task.threshold is None else "decision"
    floor = -math.inf if task.floor is None else float(task.floor)
    for i, r in enumerate(task.rows):
        now = time.time()
        limit = None if task.seconds is None else max(task.seconds - (now - ts), 0.05) / (
            len(task.rows) - i)
        left = task.deadline - now
        if math.isfinite(left):
            limit = max(left, 0.05) if limit is None else min(limit, max(left, 0.05))
        spec = np.zeros((1, task.n_rows))
        spec[0, r] = 1.0
        report = None if progress is None else partial(_with_row, progress, int(r))
        out = bab_call(fn, graph, lower, upper, spec, task.threshold,
                       replace(task.options, timeout=limit), mode, report,
                       floor=floor if mode == "optimization" else None)
        done.append((int(r), now, out))
        if math.isfinite(out.attained):
            floor = max(floor, float(out.attained))
        if task.stop_above is not None and out.attained > task.stop_above:
            break
        if time.time() >= task.deadline:
            break
    return SearchOutcome(done, time.time() - ts)


def _with_row(progress: Callable[[dict], None], row: int, info: dict) -> None:
    """``progress`` with the searched row's index added (``info["row"]``)."""
    progress({**info, "row": row})


def _worker_init(parent_pid: int, threads: int, progress_queue: Any = None) -> None:
    """Pool initializer: die with the parent (even a SIGKILLed one), one torch thread
    count for every search of this worker, the queue its searches report on."""
    global _PROGRESS_QUEUE
    die_with_parent(parent_pid)
    _PROGRESS_QUEUE = progress_queue
    import torch

    torch.set_num_threads(threads)


class _Relay:
    """A worker search's ``progress``: puts ``(search id, info)`` on the pool's queue,
    at most every :data:`PROGRESS_SECONDS`."""

    def __init__(self, search_id: int) -> None:
        self.search_id, self.last = search_id, -math.inf

    def __call__(self, info: dict) -> None:
        now = time.monotonic()
        if _PROGRESS_QUEUE is None or now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        try:
            _PROGRESS_QUEUE.put_nowait((self.search_id, info))
        except (queue.Full, OSError, ValueError):  # a closed queue: the parent is leaving
            pass


def _worker_search(fn: Any, graph: Any, lower: Any, upper: Any, task: RowSearch,
                   search_id: int = -1) -> SearchOutcome:
    return run_search(fn, graph, lower, upper, task, _Relay(search_id))


class SearchPool:
    """Runs :class:`RowSearch` tasks for one graph and box: in this process when
    ``jobs == 1`` (the future is done when :meth:`submit` returns, and the search
    reports ``progress``), else in ``jobs`` spawned worker processes with
    ``threads`` torch threads each (started at the first submit).  A context
    manager: leaving it ends the workers.  A worker that dies breaks the pool:
    the futures then raise :class:`BrokenProcessPool`, and :meth:`run_here`
    switches the rest of the run to this process."""

    def __init__(self, fn: Any, graph: Any, lower: Any, upper: Any, jobs: int,
                 threads: int) -> None:
        self.fn, self.graph = fn, graph
        self.lower, self.upper = np.asarray(lower), np.asarray(upper)
        self.jobs, self.threads = int(jobs), int(threads)
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None
        self._progress: dict[int, Callable[[dict], None]] = {}  # search id -> progress
        self._next_id = 0

    def __enter__(self) -> SearchPool:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        # Ctrl-C or an error: do not wait for the searches under way
        self._close(terminate=exc_type is not None)

    def _close(self, terminate: bool) -> None:
        if self._pool is not None:
            self.relay()  # what the searches under way reached, before they end
            if terminate:
                terminate_pool(self._pool)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._queue.close()
            self._queue, self._progress = None, {}

    def relay(self) -> None:
        """Hand the progress the worker searches reported to their ``progress``."""
        while self._queue is not None:
            try:
                sid, info = self._queue.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            report = self._progress.get(sid)
            if report is not None:
                report(info)

    def run_here(self) -> None:
        """Run the remaining searches in this process (after a worker died)."""
        self._close(terminate=True)
        self.jobs = 1

    def submit(self, task: RowSearch,
               progress: Callable[[dict], None] | None = None) -> Future:
        """Start ``task``; its future gives the :class:`SearchOutcome`."""
        if self.jobs == 1:
            fut: Future = Future()
            try:
                fut.set_result(run_search(self.fn, self.graph, self.lower, self.upper, task,
                                          progress))
            except Exception as exc:  # noqa: BLE001 - re-raised by fut.result()
                fut.set_exception(exc)
            return fut
        if self._pool is None:
            ctx = spawn_context()
            self._queue = ctx.Queue()
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=ctx, initializer=_worker_init,
                initargs=(os.getpid(), self.threads, self._queue))
        sid, self._next_id = self._next_id, self._next_id + 1
        if progress is not None:
            self._progress[sid] = progress
        # a report that arrives after the search ended is still a bound that holds
        return self._pool.submit(_worker_search, self.fn, self.graph, self.lower, self.upper,
                                 task, sid)

    def first_done(self, futures: Iterable[Future]) -> set[Future]:
        """Wait until at least one of ``futures`` is done, relaying the searches'
        progress meanwhile; those that are done."""
        futures = list(futures)
        while True:
            done, _ = wait(futures, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
            self.relay()
            if done:
                return done
