"""Edges of studies from small synthetic inputs: exit status of a run with failed jobs,
progress of a run whose jobs are all finished, a study.json repeating a job id, the
stored certificate without worst loads, best-of-methods and summary frames, job options
and the job id length limit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from study_helpers import ONE_JOB_STUDY

from gridverify.certify import Certificate, ConstraintResult
from gridverify.errors import StudyError
from gridverify.spec.region import Region
from gridverify.study.jobs import MAX_ID_BYTES, RECORD_FORMAT, Job, _check_unique_ids, expand_jobs
from gridverify.study.results import StudyResults, _loading
from gridverify.study.runner import ProgressEvent, StudyRun, run_study
from gridverify.study.spec import parse_study
from gridverify.study.storage import StudyStore, _slim_certificate


def _cert(method: str, ubs: list[float], att: float = -0.5, n_in: int = 4) -> Certificate:
    region = Region(np.full(n_in, 0.9), np.full(n_in, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    cons = tuple(ConstraintResult(
        family="vm_max", component=i + 1, index=i, upper_bound=ub, attained=att,
        threshold=1e-6, status="certified" if ub <= 1e-6 else "open", method=method,
        seconds=0.01, radius=None) for i, ub in enumerate(ubs))
    return Certificate(case="pglib_opf_case14_ieee", model="m", region=region, method=method,
                       seconds=1.0, constraints=cons)


def _job(method: str, jid: str | None = None) -> dict:
    return {"case_key": "c14", "case": "pglib_opf_case14_ieee",
            "case_name": "pglib_opf_case14_ieee", "model_label": "m", "region_name": "near",
            "constraint_set": "all", "method": method, **({"id": jid} if jid else {})}


def _done(method: str, cert: Certificate, seconds: float = 2.5) -> dict:
    return {"job_id": method, "job": _job(method), "state": "done",
            "certificate": cert.to_dict(), "seconds": seconds, "error": None}


def _failed(method: str, seconds: float) -> dict:
    return {"job_id": method, "job": _job(method), "state": "failed", "certificate": None,
            "seconds": seconds, "error": {"type": "RuntimeError", "message": "boom"}}


def _plain_job(jid: str, method: str = "ibp") -> Job:
    return Job(id=jid, case_key="c14", case="pglib_opf_case14_ieee",
               case_name="pglib_opf_case14_ieee", model_label="m", model="/m",
               region_name="near", region={"kind": "box"}, constraint_set="all",
               selection={"families": ["vm_max"]}, method=method, options={}, thresholds={})


# -- runner -----------------------------------------------------------------------------


def test_a_run_with_a_failed_job_exits_3(tmp_path: Path) -> None:
    run = StudyRun(tmp_path, "r", ("a", "b"), (), ("a",), ("b",), 1.0, {"a": 0})
    assert run.exit_status == 3
    assert StudyRun(tmp_path, "r", ("a",), (), (), ("a",), 1.0).exit_status == 3
    assert StudyRun(tmp_path, "r", ("a",), (), ("a",), (), 1.0, {"a": 0}).exit_status == 0
    # a violation wins over a failed job
    assert StudyRun(tmp_path, "r", ("a", "b"), (), ("a",), ("b",), 1.0,
                    {"a": 1}).exit_status == 1


def test_rerunning_a_finished_study_reports_every_job_done(one_job_spec, tmp_path: Path) -> None:
    (job,) = expand_jobs(one_job_spec)
    out = tmp_path / "out"
    n_in = len(job.region["lower"])
    cert = _cert("ibp", [-0.25], n_in=n_in)
    StudyStore(out).write_record({
        "format": RECORD_FORMAT, "version": 1, "job_id": job.id, "job_hash": job.digest,
        "job": job.to_dict(), "state": "done", "certificate": cert.to_dict(),
        "exit_status": cert.exit_status, "error": None, "seconds": 0.1})
    events: list[ProgressEvent] = []
    run = run_study(one_job_spec, out, progress=events.append)
    assert run.skipped == (job.id,) and run.ran == () and run.exit_status == 0
    assert events[-1] == ProgressEvent(total=1, done=1, running=0, failed=0, skipped=1)


# -- storage ----------------------------------------------------------------------------


def test_a_study_json_repeating_a_job_id_is_refused(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    a = _plain_job("c14__m__near__all__ibp")
    store.write_study("", "s", [a, _plain_job("c14__m__near__all__crown", "crown"), a], "<s>")
    with pytest.raises(StudyError, match=r"jobs\[2\]: job id 'c14__m__near__all__ibp' repeated"):
        store.job_list()
    store.write_study("", "s", [a], "<s>")
    assert [e["id"] for e in store.job_list()] == [a.id]


def test_the_stored_certificate_has_no_worst_load(tmp_path: Path) -> None:
    full = _cert("crown", [-0.25, 0.5]).to_dict()
    for i, c in enumerate(full["constraints"]):
        c["worst_load"] = [1.0 + i] * 4
        c["witness"] = [0.5] * 4
    slim = _slim_certificate(full)
    assert all("worst_load" not in c for c in slim["constraints"])
    assert all(c["witness"] == [0.5] * 4 for c in slim["constraints"])  # witnesses stay
    assert all("worst_load" in c for c in full["constraints"])  # the input is left as it is
    assert slim["summary"] == full["summary"]


# -- results ----------------------------------------------------------------------------


def test_the_method_with_the_lower_bound_is_best(tmp_path: Path) -> None:
    res = StudyResults(tmp_path, "t", (_done("ibp", _cert("ibp", [0.5, -0.2])),
                                       _done("crown", _cert("crown", [-0.1, 0.3]))))
    comb = res.combined_frame()
    assert comb.best_method.tolist() == ["crown", "ibp"]
    assert comb.upper_bound.tolist() == [-0.1, -0.2]


def test_summary_seconds_leave_failed_jobs_out(tmp_path: Path) -> None:
    res = StudyResults(tmp_path, "t", (_done("crown", _cert("crown", [-0.1]), seconds=2.5),
                                       _failed("ibp", 7.0)))
    assert res.summary_frame().seconds.tolist() == [2.5]


def test_thermal_loading_is_apparent_power_over_rate() -> None:
    assert _loading(0.0, 2.0) == 1.0  # |S|^2 - rate^2 = 0: at its rating
    assert _loading(5.0, 2.0) == 1.5  # |S|^2 = 9
    assert _loading(-4.0, 2.0) == 0.0
    assert math.isnan(_loading(1.0, None)) and _loading(math.inf, 2.0) == math.inf


def test_families_frame_reads_a_null_attained_by_its_violations(tmp_path: Path) -> None:
    rec = _done("crown", _cert("crown", [0.5]))
    fam = rec["certificate"]["families"]["vm_max"]
    rec2 = json.loads(json.dumps(rec))
    rec2["job_id"] = "ibp"
    fam.update(max_attained=None, violated=1, open=0, certified=0)  # an overflow found
    rec2["certificate"]["families"]["vm_max"].update(max_attained=None, violated=0)  # none
    df = StudyResults(tmp_path, "t", (rec, rec2)).families_frame()
    assert df.max_attained.tolist() == [math.inf, -math.inf]


# -- jobs -------------------------------------------------------------------------------


def test_only_bab_jobs_carry_the_bab_timeout(one_job_spec) -> None:
    text = ONE_JOB_STUDY.replace('methods = ["ibp"]', 'methods = ["crown", "bab"]\n'
                                 'bab_timeout = 5', 1)
    try:
        spec = parse_study(text, "tiny.toml")
    except StudyError as exc:  # bab does not import here
        pytest.skip(str(exc))
    jobs = {j.method: j for j in expand_jobs(spec)}
    assert jobs["bab"].options["bab_timeout"] == 5.0
    assert "bab_timeout" not in jobs["crown"].options


def test_the_longest_job_id_is_accepted_and_one_byte_more_refused() -> None:
    spec = parse_study(ONE_JOB_STUDY, "tiny.toml", check=False)
    _check_unique_ids(spec, [_plain_job("a" * MAX_ID_BYTES)])
    with pytest.raises(StudyError, match=f"id of {MAX_ID_BYTES + 1} bytes"):
        _check_unique_ids(spec, [_plain_job("a" * (MAX_ID_BYTES + 1))])
