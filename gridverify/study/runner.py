"""Run a study: expand jobs, skip finished ones, run the rest, store each as it ends."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gridverify.study.executors import ExecutorOptions, run_jobs
from gridverify.study.jobs import DONE, Job, expand_jobs
from gridverify.study.lock import study_lock
from gridverify.study.spec import StudySpec
from gridverify.study.storage import DAMAGED, StudyStore

__all__ = ["ProgressEvent", "StudyRun", "run_study"]


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of a study run: counts of jobs ``done``, ``running``, ``failed`` of ``total``."""

    total: int
    done: int
    running: int
    failed: int
    skipped: int
    last: str = ""


@dataclass(frozen=True)
class StudyRun:
    """Outcome of :func:`run_study`."""

    out: Path
    run_id: str
    jobs: tuple[str, ...]
    skipped: tuple[str, ...]
    ran: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float
    exit_statuses: dict[str, int] = field(default_factory=dict)
    damaged: tuple[str, ...] = ()  # jobs whose stored files were damaged (run again)

    @property
    def exit_status(self) -> int:
        """1 if any job found a violation, else 3 if any constraint open or job failed, else 0."""
        codes = list(self.exit_statuses.values())
        if 1 in codes:
            return 1
        if self.failed or 3 in codes:
            return 3
        return 0


def run_study(
    spec: StudySpec,
    out: str | os.PathLike[str],
    executor: ExecutorOptions | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    warn: Callable[[str], None] | None = None,
    after: Callable[[StudyRun], object] | None = None,
) -> StudyRun:
    """Run every job of ``spec`` not already finished in ``out``; returns what happened.

    Finished jobs (:meth:`StudyStore.job_record`: stored ``done`` with the same job
    hash, readable, with their bounds) are skipped; failed, changed and damaged
    ones run again (a damaged one with a warning naming its file).  Each job's
    files are written as soon as it ends.  The run holds the folder's lock
    (:func:`~gridverify.study.lock.study_lock`) until it ends, however it ends.
    Raises StudyError, before writing anything, when ``out`` holds the results of
    another study (:meth:`StudyStore.check_owner`), when two jobs would get the
    same id (:func:`expand_jobs`), or when another run holds the lock.
    ``warn``: receives one-line warnings (default: :func:`warnings.warn`).
    ``after``: called with the run's result while the lock is still held (``study
    run`` renders the report there, so that no other run writes meanwhile).
    """
    t0 = time.perf_counter()
    opts = executor or ExecutorOptions()
    store = StudyStore(out)
    store.check_owner(spec.name)  # before anything is written, the lock included
    jobs = expand_jobs(spec)
    say = warn or (lambda message: warnings.warn(message, stacklevel=3))
    with study_lock(store.root, say):
        store.check_owner(spec.name)  # again: another study may have begun here meanwhile
        run = _run_locked(spec, store, jobs, opts, progress, say, t0)
        if after is not None:
            after(run)
        return run


def _run_locked(spec: StudySpec, store: StudyStore, jobs: list[Job], opts: ExecutorOptions,
                progress: Callable[[ProgressEvent], None] | None, say: Callable[[str], None],
                t0: float) -> StudyRun:
    if opts.checkpoint_dir is None:  # bab jobs cut short resume from their progress
        opts = replace(opts, checkpoint_dir=str(store.root / "checkpoints"))
    # the study file's absolute path: `report` run from elsewhere still finds it
    source = (spec.source if spec.source.startswith("<")
              else str(Path(spec.source).resolve()))
    store.write_study(spec.text, spec.name, jobs, source)
    todo: list[Job] = []
    skipped: list[str] = []
    damaged: list[str] = []
    statuses: dict[str, int] = {}
    for j in jobs:
        jr = store.job_record(j.id, j.digest)
        if jr.finished:
            skipped.append(j.id)
            statuses[j.id] = int(jr.record["exit_status"])  # type: ignore[index]
            continue
        if jr.state == DAMAGED:
            say(f"{jr.problem}; the job runs again")
            damaged.append(j.id)
        todo.append(j)
    run_id = uuid.uuid4().hex[:12]
    store.append_event({"event": "run_start", "run_id": run_id, "executor": opts.kind,
                        "workers": opts.workers, "todo": len(todo), "skipped": len(skipped),
                        "damaged": len(damaged)})
    state = {"done": len(skipped), "failed": 0}
    running: set[str] = set()
    ran: list[str] = []
    failed: list[str] = []
    notify = progress or (lambda ev: None)

    def emit(last: str = "") -> None:
        notify(ProgressEvent(len(jobs), state["done"], len(running), state["failed"],
                             len(skipped), last))

    def on_start(job: Job) -> None:
        running.add(job.id)
        emit(job.id)

    def on_finish(job: Job, rec: dict[str, Any]) -> None:
        rec = dict(rec)
        rec["run_id"] = run_id
        rec["executor"] = opts.kind
        store.write_record(rec)
        store.append_event({"event": "job_end", "run_id": run_id, "job_id": job.id,
                            "state": rec["state"], "seconds": rec.get("seconds")})
        running.discard(job.id)
        if rec["state"] == DONE:
            state["done"] += 1
            ran.append(job.id)
            statuses[job.id] = int(rec["exit_status"])
        else:
            state["failed"] += 1
            failed.append(job.id)
        emit(job.id)

    emit()
    run_jobs(todo, opts, on_start, on_finish)
    store.append_event({"event": "run_end", "run_id": run_id, "ran": len(ran),
                        "failed": len(failed)})
    return StudyRun(store.root, run_id, tuple(j.id for j in jobs), tuple(skipped), tuple(ran),
                    tuple(failed), time.perf_counter() - t0, statuses, tuple(damaged))
