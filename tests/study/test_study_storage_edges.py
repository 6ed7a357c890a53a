"""Edges of the study folder: whose folder it is, a failed job's bounds file, a changed
job's record, the checkpoint file's name, and the exit status of skipped jobs."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from gridverify.certify import Certificate, ConstraintResult
from gridverify.errors import StudyError
from gridverify.spec.region import Region
from gridverify.study import runner
from gridverify.study.jobs import RECORD_FORMAT, Job, checkpoint_path, expand_jobs
from gridverify.study.runner import StudyRun, run_study
from gridverify.study.storage import StudyStore


def _cert(ubs: list[float], n_in: int = 4, att: float = -0.5) -> Certificate:
    region = Region(np.full(n_in, 0.9), np.full(n_in, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    cons = tuple(ConstraintResult(
        family="vm_max", component=i + 1, index=i, upper_bound=ub, attained=att,
        threshold=1e-6, status=("certified" if ub <= 1e-6 else "violated" if att > 1e-6
                                else "open"),
        method="ibp", seconds=0.01, radius=None) for i, ub in enumerate(ubs))
    return Certificate(case="pglib_opf_case14_ieee", model="m", region=region, method="ibp",
                       seconds=1.0, constraints=cons)


def _job(jid: str = "c14__m__near__some__ibp", method: str = "ibp", fam: str = "vm_max") -> Job:
    return Job(id=jid, case_key="c14", case="pglib_opf_case14_ieee",
               case_name="pglib_opf_case14_ieee", model_label="m", model="/m",
               region_name="near", region={"kind": "box"}, constraint_set="some",
               selection={"families": [fam]}, method=method, options={}, thresholds={})


def _record(job: Job, cert: Certificate | None, job_id: str | None = None) -> dict:
    done = cert is not None
    return {"format": RECORD_FORMAT, "version": 1, "job_id": job_id or job.id,
            "job_hash": job.digest, "job": job.to_dict(), "state": "done" if done else "failed",
            "certificate": cert.to_dict() if done else None,
            "exit_status": cert.exit_status if done else None,
            "error": None if done else {"type": "RuntimeError", "message": "boom"},
            "seconds": 0.1}


def test_a_folder_of_another_study_or_not_of_a_study_is_refused(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.check_owner("a")  # a new folder
    store.write_study("", "a", [_job()], "<a>")
    store.check_owner("a")
    with pytest.raises(StudyError, match="holds the results of study 'a', not of study 'b'"):
        store.check_owner("b")
    (tmp_path / "study.json").write_text(json.dumps({"name": "b", "jobs": []}))
    with pytest.raises(StudyError, match="not a gridverify study's"):
        store.check_owner("b")


def test_a_failed_run_removes_the_done_runs_bounds(tmp_path: Path) -> None:
    store, job = StudyStore(tmp_path), _job()
    store.write_record(_record(job, _cert([-0.1, 0.2])))
    assert store.h5_path(job.id).is_file()
    assert store.job_record(job.id, job.digest).state == "done"
    store.write_record(_record(job, None))
    assert not store.h5_path(job.id).exists()
    jr = store.job_record(job.id, job.digest)
    assert jr.state == "failed" and jr.record["error"]["message"] == "boom"


def test_a_record_of_the_job_before_it_changed_is_pending(tmp_path: Path) -> None:
    store, job = StudyStore(tmp_path), _job()
    store.write_record(_record(job, _cert([-0.1])))
    changed = _job(fam="vm_min")
    assert changed.id == job.id and changed.digest != job.digest
    jr = store.job_record(job.id, changed.digest)
    assert jr.state == "pending" and not jr.finished and jr.problem == ""


def test_a_record_of_another_job_is_damaged(tmp_path: Path) -> None:
    store, job = StudyStore(tmp_path), _job()
    store.write_record(_record(job, _cert([-0.1])))
    other = _record(job, _cert([-0.1]), job_id="c14__m__near__some__crown")
    store.json_path(job.id).write_text(json.dumps(other))
    jr = store.job_record(job.id, job.digest)
    assert jr.state == "damaged" and "another job" in jr.problem


def test_the_checkpoint_is_named_by_job_and_hash(tmp_path: Path) -> None:
    job, changed = _job(method="bab"), _job(method="bab", fam="vm_min")
    p = checkpoint_path(job, tmp_path)
    assert p == tmp_path / f"{job.id}-{job.digest[:16]}.npz"
    assert checkpoint_path(changed, tmp_path) != p  # a changed job does not resume


def test_a_violation_wins_over_a_failed_job() -> None:
    run = StudyRun(Path("."), "r", ("a", "b"), ("a",), (), ("b",), 1.0, {"a": 1})
    assert run.exit_status == 1


def test_a_skipped_job_keeps_its_exit_status(one_job_spec, tmp_path: Path) -> None:
    (job,) = expand_jobs(one_job_spec)
    n_in = len(job.region["lower"])
    for ubs, att, status in (([0.2], -0.5, 3), ([0.2], 0.1, 1)):
        out = tmp_path / str(status)
        cert = _cert(ubs, n_in=n_in, att=att)
        StudyStore(out).write_record(_record(job, cert))
        run = run_study(one_job_spec, out)
        assert run.skipped == (job.id,) and run.ran == ()
        assert run.exit_statuses == {job.id: status} and run.exit_status == status


def test_a_study_begun_in_the_folder_while_waiting_for_the_lock_is_refused(
        one_job_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner is checked again once the lock is held: another study may have
    written its study.json meanwhile."""
    out = tmp_path / "out"
    real_lock = runner.study_lock

    @contextlib.contextmanager
    def lock_after_another_study(root, say):
        StudyStore(root).write_study("", "other", [], "<other>")
        with real_lock(root, say):
            yield

    monkeypatch.setattr(runner, "study_lock", lock_after_another_study)
    with pytest.raises(StudyError, match="study 'other', not of study 'tiny'"):
        run_study(one_job_spec, out)
    assert not (out / "jobs").exists()
