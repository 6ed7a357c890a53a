"""One predicate for "is this job finished, and is its record readable", for run and report.

Damaged job files (not UTF-8 JSON, truncated, empty, not a record, a certificate
that does not read back, a done job without its bounds) are run again by
``study run`` with a warning naming the file, and refused by the report (exit
status 2, one line naming the file); a damaged ``study.json`` is refused too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from study_helpers import MODEL, ONE_JOB_STUDY

from gridverify.cli import main
from gridverify.errors import StudyError
from gridverify.study.executors import ExecutorOptions
from gridverify.study.jobs import expand_jobs
from gridverify.study.results import load_results
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study
from gridverify.study.storage import DAMAGED, PENDING, StudyStore

TINY = ONE_JOB_STUDY


@pytest.fixture(scope="module")
def tiny_done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny study's study file and its one job run (done)."""
    if not MODEL.exists():
        pytest.skip("shipped proxy models/case14_relu not present")
    base = tmp_path_factory.mktemp("tiny")
    (base / "tiny.toml").write_text(TINY, encoding="utf-8")
    run = run_study(load_study(base / "tiny.toml"), base / "out", ExecutorOptions(workers=1))
    assert len(run.ran) == 1 and not run.failed
    return base


@pytest.fixture()
def out(tiny_done: Path, tmp_path: Path) -> Path:
    """A copy of the tiny study's output folder (to damage)."""
    shutil.copy(tiny_done / "tiny.toml", tmp_path / "tiny.toml")
    shutil.copytree(tiny_done / "out", tmp_path / "out")
    return tmp_path / "out"


def _job_id(out: Path) -> str:
    (entry,) = json.loads((out / "study.json").read_text())["jobs"]
    return entry["id"]


def _edit_record(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        rec = json.loads(path.read_text())
        edit(rec)
        path.write_text(json.dumps(rec))
    return damage


def _del_family(rec: dict) -> None:
    del rec["certificate"]["constraints"][0]["family"]


# how a job's JSON record is damaged (the argument: the record's path)
DAMAGE: dict[str, Callable[[Path], None]] = {
    "a JSON list": lambda p: p.write_text("[]"),
    "not UTF-8": lambda p: p.write_bytes(b"\xff\xfe{}"),
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "no constraints": _edit_record(lambda r: r["certificate"].pop("constraints")),
    "constraint without family": _edit_record(_del_family),
    "upper_bound abc": _edit_record(
        lambda r: r["certificate"]["constraints"][0].update(upper_bound="abc")),
    "done without certificate": _edit_record(lambda r: r.update(certificate=None)),
    "wrong schema": lambda p: p.write_text(json.dumps(
        {"job_id": p.stem, "state": "done",
         "job_hash": json.loads(p.read_text())["job_hash"]})),
    "unknown state": _edit_record(lambda r: r.update(state="finished")),
    "seconds not a number": _edit_record(lambda r: r.update(seconds="abc")),
    "another job's record": _edit_record(lambda r: r.update(job_id="other")),
    "done with a string error": _edit_record(lambda r: r.update(error="x")),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_record_is_not_finished_and_report_names_it(
        out: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = StudyStore(out)
    jid = _job_id(out)
    entry_hash = json.loads((out / "study.json").read_text())["jobs"][0]["hash"]
    assert store.job_record(jid, entry_hash).finished
    DAMAGE[how](store.json_path(jid))
    jr = store.job_record(jid, entry_hash)
    assert jr.state == DAMAGED and not jr.finished and jr.record is None
    assert jr.problem.startswith(f"{store.json_path(jid)}: ") and "\n" not in jr.problem
    with pytest.raises(StudyError, match="damaged job file"):
        load_results(out)
    assert main(["report", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(store.json_path(jid)) in err
    assert not (out / "index.md").exists()  # nothing rendered


def test_missing_bounds_run_and_report_agree(out: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A done record whose .h5 is gone: not finished for run, damaged for the report."""
    store = StudyStore(out)
    spec = load_study(out.parent / "tiny.toml")
    (job,) = expand_jobs(spec)
    store.h5_path(job.id).unlink()
    assert not store.is_finished(job)
    assert store.job_record(job.id, job.digest).problem.startswith(str(store.h5_path(job.id)))
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(store.h5_path(job.id)) in err
    warnings: list[str] = []
    run = run_study(spec, out, ExecutorOptions(workers=1), warn=warnings.append)
    assert run.ran == (job.id,) and run.damaged == (job.id,)
    assert len(warnings) == 1 and str(store.h5_path(job.id)) in warnings[0]
    assert store.is_finished(job)
    assert main(["report", str(out), "--quiet"]) in (0, 1, 3)


@pytest.mark.parametrize("how", ["a JSON list", "not UTF-8", "wrong schema", "upper_bound abc"])
def test_study_run_reruns_a_damaged_job_with_a_warning(
        out: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = StudyStore(out)
    jid = _job_id(out)
    DAMAGE[how](store.json_path(jid))
    code = main(["study", "run", str(out.parent / "tiny.toml"), "--out", str(out), "--quiet",
                 "--no-report"])
    assert code in (0, 1, 3)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridverify: warning: "), err
    assert str(store.json_path(jid)) in lines[0] and "runs again" in lines[0]
    (job,) = expand_jobs(load_study(out.parent / "tiny.toml"))
    assert store.is_finished(job)
    ends = [e for e in store.events() if e["event"] == "job_end"]
    assert len(ends) == 2  # the first run's and the rerun's


def test_stale_and_failed_records_are_not_damaged(out: Path) -> None:
    store = StudyStore(out)
    jid = _job_id(out)
    assert store.job_record(jid, "another hash").state == PENDING  # the job changed
    assert store.job_record("no_such_job", "h").state == PENDING
    rec = json.loads(store.json_path(jid).read_text())
    rec.update(state="failed", certificate=None, exit_status=None,
               error={"type": "X", "message": "y"})
    store.json_path(jid).write_text(json.dumps(rec))
    jr = store.job_record(jid, rec["job_hash"])
    assert jr.state == "failed" and jr.record["error"]["type"] == "X"


def test_the_certificate_reads_back_for_done_records(out: Path) -> None:
    """A done record's exit status is its certificate's, not the stored field."""
    store = StudyStore(out)
    jid = _job_id(out)
    rec = json.loads(store.json_path(jid).read_text())
    want = rec["exit_status"]
    rec["exit_status"] = "abc"
    store.json_path(jid).write_text(json.dumps(rec))
    jr = store.job_record(jid, rec["job_hash"])
    assert jr.finished and jr.record["exit_status"] == want
    res = load_results(out)
    assert res.certificate(jid).exit_status == want


STUDY_JSON_DAMAGE: dict[str, Callable[[dict], object]] = {
    "jobs not a list": lambda d: d.update(jobs="abc"),
    "no jobs": lambda d: d.update(jobs=[]),
    "entry not an object": lambda d: d.update(jobs=[1]),
    "entry id escapes": lambda d: d["jobs"][0].update(id="../../x"),
    "entry without job": lambda d: d["jobs"][0].pop("job"),
    "job without method": lambda d: d["jobs"][0]["job"].pop("method"),
    "job of another id": lambda d: d["jobs"][0]["job"].update(id="other"),
    "not a study": lambda d: d.pop("format"),
}


@pytest.mark.parametrize("how", list(STUDY_JSON_DAMAGE))
def test_damaged_study_json_is_refused_by_the_report(
        out: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = out / "study.json"
    data = json.loads(p.read_text())
    STUDY_JSON_DAMAGE[how](data)
    p.write_text(json.dumps(data))
    assert main(["report", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{p}: damaged" in err, err


@pytest.mark.parametrize("raw", [b"", b'{"format": "gridverify-study", "jobs": [',
                                 b"\xff\xfe"])
def test_unreadable_study_json_is_refused_by_the_report(
        out: Path, raw: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    (out / "study.json").write_bytes(raw)
    assert main(["report", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "study.json") in err
    assert "remove study.json" in err  # the way back, which the next lines take
    (out / "study.json").unlink()
    study = str(out.parent / "tiny.toml")
    assert main(["study", "run", study, "--out", str(out)]) == 0
    assert "0 jobs ran, 1 skipped" in capsys.readouterr().out  # the finished job kept
    assert main(["report", str(out), "--quiet"]) == 0


def test_jobs_frame_of_no_jobs_has_its_columns(tmp_path: Path) -> None:
    from gridverify.study.results import StudyResults

    df = StudyResults(tmp_path, "none", ()).jobs_frame()
    assert df.empty and {"case", "model", "state", "seconds"} <= set(df.columns)


def test_threads_changed_skips_finished_jobs(out: Path) -> None:
    """Threads are how a job runs, not what it computes: not part of the job hash."""
    study = out.parent / "tiny.toml"
    study.write_text(TINY.replace('radius = false', 'radius = false\nthreads = 2'))
    run = run_study(load_study(study), out, ExecutorOptions(workers=1))
    assert run.ran == () and run.skipped == (_job_id(out),)
    study.write_text(TINY.replace('radius = false', 'radius = false\ntimeout = 600'))
    run = run_study(load_study(study), out, ExecutorOptions(workers=1))
    assert run.ran == (_job_id(out),)  # the timeout is what it computes: run again


@pytest.mark.parametrize("how", ["truncated", "another job's", "record emptied",
                                 "another run's", "bounds a group", "no worst loads",
                                 "worst loads of another region", "text bounds"])
def test_damaged_bounds_file_is_not_finished(out: Path, how: str) -> None:
    """A done record whose .h5 does not open as its bounds (cut short, another job's
    file copied over it, or rows for constraints its record no longer has) is damaged:
    run reruns it."""
    import h5py

    store = StudyStore(out)
    spec = load_study(out.parent / "tiny.toml")
    (job,) = expand_jobs(spec)
    h5 = store.h5_path(job.id)
    if how == "truncated":
        h5.write_bytes(h5.read_bytes()[:100])
    elif how == "record emptied":
        _edit_record(lambda r: r["certificate"].update(constraints=[]))(store.json_path(job.id))
    elif how == "another run's":  # of the job as the study file said before (a run
        # killed between writing the .h5 and the record, the study file changed back)
        with h5py.File(h5, "r+") as f:
            assert f.attrs["job_hash"] == job.digest
            f.attrs["job_hash"] = "0" * len(job.digest)
    elif how == "bounds a group":  # the arrays' names, but not arrays
        with h5py.File(h5, "r") as f:
            attrs = dict(f.attrs)
        with h5py.File(h5, "w") as f:
            f.attrs.update(attrs)
            f.create_group("upper_bound")
    elif how == "text bounds":
        with h5py.File(h5, "r+") as f:
            n = f["upper_bound"].shape[0]
            del f["upper_bound"]
            f.create_dataset("upper_bound", data=["x"] * n, dtype=h5py.string_dtype())
    else:
        with h5py.File(h5, "r+") as f:
            if how == "another job's":
                f.attrs["job_id"] = "some__other__job"
            else:
                wl = f["worst_load"][()]
                del f["worst_load"]
                if how == "worst loads of another region":
                    f.create_dataset("worst_load", data=wl[:, 1:])
    jr = store.job_record(job.id, job.digest)
    assert jr.state == DAMAGED and not store.is_finished(job), jr
    assert jr.problem.startswith(str(h5)) and "\n" not in jr.problem
    assert main(["report", str(out), "--quiet"]) == 2
    if how in ("no worst loads", "worst loads of another region", "text bounds"):
        return  # rerun as the others
    run = run_study(spec, out, ExecutorOptions(workers=1), warn=lambda w: None)
    assert run.damaged == (job.id,) and store.is_finished(job)


def test_report_reproduce_command_works_from_where_report_runs(
        tiny_done: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study file is recorded by its absolute path; ``report`` run from another
    folder names it and the output folder as seen from there; a study file that is
    gone gives no command rather than a wrong one."""
    data = json.loads((tiny_done / "out" / "study.json").read_text())
    assert data["source"] == str((tiny_done / "tiny.toml").resolve())
    work = tmp_path / "elsewhere"
    shutil.copytree(tiny_done / "out", work / "copy")
    monkeypatch.chdir(work)
    assert main(["report", "copy", "--quiet"]) == 0
    text = (work / "copy" / "index.md").read_text()
    want = f"gridverify study run {(tiny_done / 'tiny.toml').resolve()} --out copy"
    assert want in text, text
    recorded = dict(data, source=str(tmp_path / "gone.toml"))
    (work / "copy" / "study.json").write_text(json.dumps(recorded))
    assert main(["report", "copy", "--quiet"]) == 0
    assert "Reproduce with" not in (work / "copy" / "index.md").read_text()


def test_the_description_comes_from_the_kept_study_file(out: Path) -> None:
    """``[study] description`` reaches the results (and so the report) from the study
    file the folder keeps; none, or an unreadable file, is an empty one."""
    from gridverify.study.results import load_results

    store = StudyStore(out)
    assert store.study_description() == "" and load_results(out).description == ""
    kept = out / "study.toml"
    kept.write_text(TINY.replace('name = "tiny"', 'name = "tiny"\ndescription = " Ünï *x* "'),
                    encoding="utf-8")
    assert load_results(out).description == "Ünï *x*"
    kept.write_text("[study\n", encoding="utf-8")
    assert store.study_description() == ""


def test_compare_reads_a_study_jobs_record(reference_study: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``gridverify compare`` takes a job record (``OUT/jobs/ID.json``) as the certificate
    it holds, the same as that job's certificate; a failed job's record is one line."""
    from gridverify.study.results import load_results

    jobs = sorted((reference_study / "jobs").glob("*.json"))
    a, b = jobs[0], jobs[1]
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--json"]) in (0, 1)
    got = json.loads(capsys.readouterr().out)
    res = load_results(reference_study)
    cert_a = tmp_path / "a.json"
    res.certificate(a.stem).write(cert_a)
    assert main(["compare", str(cert_a), str(b), "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["counts"] == got["counts"]
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({**json.loads(a.read_text()), "state": "failed",
                                  "certificate": None}))
    assert main(["compare", str(failed), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a study job record without a certificate" in err[0]
