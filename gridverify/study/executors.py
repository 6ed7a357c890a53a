"""Executors: run study jobs in a local process pool or on a Ray cluster.

Both call ``on_start(job)`` when a job is handed to a worker and
``on_finish(job, record)`` with the record of :func:`~gridverify.study.jobs.run_job`
(in the driver process, one at a time), so storage and progress live in the
driver.  A worker that dies has its job rescheduled (up to ``max_attempts``
tries); after that the job is recorded as failed and the study goes on.

Ray is optional (``pip install gridverify[ray]``): it is imported only by
:func:`run_ray`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from gridverify._typed import check_field_types
from gridverify._worker import die_with_parent, spawn_context, terminate_pool
from gridverify.errors import GridverifyError
from gridverify.study.jobs import FAILED, RECORD_FORMAT, Job, run_job, warm_up

__all__ = ["ExecutorOptions", "RayUnavailableError", "run_jobs", "run_local", "run_ray"]

OnStart = Callable[[Job], None]
OnFinish = Callable[[Job, dict[str, Any]], None]


class RayUnavailableError(GridverifyError):
    """``--executor ray`` without Ray installed, or the cluster cannot be reached."""


@dataclass(frozen=True)
class ExecutorOptions:
    """How to run jobs: ``kind`` local or ray, ``workers`` in parallel, Ray ``address``.

    ``checkpoint_dir``: where ``bab`` jobs save their progress, so that a study run
    again after an interruption resumes them (:func:`~gridverify.study.jobs.run_job`;
    :func:`~gridverify.study.runner.run_study` sets the study folder's
    ``checkpoints``; not used on a Ray cluster at an ``address``, whose workers
    may not see this machine's files).
    ``memory_cap_mb``: the memory cap of each job (``--memory-cap``, see
    :mod:`gridverify.certify.memory`).  ``None``: on this machine (local workers
    or a local Ray cluster), the default share of the memory available when the
    study starts, split evenly between the ``workers``; on a Ray cluster at an
    ``address``, each job's own default.
    """

    kind: str = "local"
    workers: int = 1
    address: str | None = None
    max_attempts: int = 3
    memory_cap_mb: float | None = None
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self, GridverifyError, "executor options")
        if self.kind not in ("local", "ray"):
            raise GridverifyError(f"--executor: expected local or ray, got {self.kind!r}")
        if self.workers < 1:
            raise GridverifyError(f"--workers: must be >= 1, got {self.workers}")
        if self.address is not None and self.kind != "ray":
            raise GridverifyError("--address: only with --executor ray")
        if self.max_attempts < 1:
            raise GridverifyError("max_attempts must be >= 1")
        if self.memory_cap_mb is not None and not self.memory_cap_mb > 0:
            raise GridverifyError(f"--memory-cap: must be > 0 MB, got {self.memory_cap_mb}")

    def job_memory_cap(self) -> float | None:
        """The cap each job gets (MB), ``None`` for the job's own default."""
        if self.memory_cap_mb is not None or self.address is not None or self.workers == 1:
            return self.memory_cap_mb
        from gridverify.certify.memory import DEFAULT_SHARE, available_mb

        avail = available_mb(self.workers)  # each worker's part
        return None if avail is None else DEFAULT_SHARE * avail


def _died(job: Job, attempts: int, detail: str) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT, "version": 1, "job_id": job.id,
        "job_hash": job.digest, "job": job.to_dict(), "state": FAILED, "certificate": None,
        "exit_status": None, "seconds": 0.0,
        "error": {"type": "WorkerDied", "message": f"the worker died {attempts} time(s): {detail}",
                  "traceback": ""},
    }


def _worker_init(parent_pid: int) -> None:
    """Pool initializer: die with the driver (even a SIGKILLed one), then warm up."""
    die_with_parent(parent_pid)
    warm_up()


def run_local(jobs: Sequence[Job], opts: ExecutorOptions, on_start: OnStart,
              on_finish: OnFinish) -> None:
    """Run jobs in a pool of ``opts.workers`` fresh (spawned) processes."""
    ctx = spawn_context()
    cap = opts.job_memory_cap()
    pending = list(jobs)[::-1]  # pop() from the end keeps the given order
    attempts: dict[str, int] = {}
    while pending:
        pool = ProcessPoolExecutor(max_workers=opts.workers, mp_context=ctx,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        running: dict[Future[dict[str, Any]], Job] = {}
        broken = False
        try:
            while pending or running:
                while pending and len(running) < opts.workers and not broken:
                    job = pending.pop()
                    attempts[job.id] = attempts.get(job.id, 0) + 1
                    try:
                        fut = pool.submit(run_job, job.to_dict(), cap, opts.checkpoint_dir)
                    except BrokenProcessPool:
                        pending.append(job)
                        attempts[job.id] -= 1
                        broken = True
                        break
                    running[fut] = job
                    on_start(job)
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        if attempts[job.id] < opts.max_attempts:
                            pending.append(job)
                        else:
                            on_finish(job, _died(job, attempts[job.id], str(exc)))
                        continue
                    rec["attempts"] = attempts[job.id]
                    on_finish(job, rec)
                if broken and not running:
                    break
        except BaseException:
            terminate_pool(pool)  # Ctrl-C or a driver error: do not wait for running jobs
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_ray(jobs: Sequence[Job], opts: ExecutorOptions, on_start: OnStart,
            on_finish: OnFinish) -> None:
    """Run jobs as Ray tasks on the cluster at ``opts.address`` or on a local one.

    A local cluster gets ``opts.workers`` CPUs and is shut down at the end; on an
    existing cluster at most ``opts.workers`` jobs run at once.  A job whose
    worker dies is submitted again, up to ``opts.max_attempts`` times in all (as
    :func:`run_local` does; the record counts them).
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--executor ray needs Ray: pip install 'gridverify[ray]'"
        ) from None
    started_here = False
    if not ray.is_initialized():
        try:
            if opts.address:
                ray.init(address=opts.address, log_to_driver=False)
            else:
                ray.init(num_cpus=opts.workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = opts.address or "a local cluster"
            raise RayUnavailableError(f"cannot start or reach Ray at {where}: {exc}") from None
        started_here = True
    remote = ray.remote(num_cpus=1, max_retries=0)(run_job)  # retried here, counted
    cap = opts.job_memory_cap()
    ckdir = opts.checkpoint_dir if opts.address is None else None
    pending = list(jobs)[::-1]
    running: dict[Any, Job] = {}
    attempts: dict[str, int] = {}
    try:
        while pending or running:
            while pending and len(running) < opts.workers:
                job = pending.pop()
                attempts[job.id] = attempts.get(job.id, 0) + 1
                running[remote.remote(job.to_dict(), cap, ckdir)] = job
                on_start(job)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                job = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died (run_job records its errors)
                    if attempts[job.id] < opts.max_attempts:
                        pending.append(job)
                        continue
                    rec = _died(job, attempts[job.id], f"{type(exc).__name__}: {exc}")
                rec["attempts"] = attempts[job.id]
                on_finish(job, rec)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def run_jobs(jobs: Sequence[Job], opts: ExecutorOptions, on_start: OnStart,
             on_finish: OnFinish) -> None:
    """Dispatch to :func:`run_local` or :func:`run_ray`."""
    if not jobs:
        return
    if opts.kind == "ray":
        run_ray(jobs, opts, on_start, on_finish)
    else:
        run_local(jobs, opts, on_start, on_finish)
