"""A study killed after its first job resumes, runs every job exactly once, equals a full run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_helpers import MODEL, compare_outputs, write_small_study

from gridverify.study.executors import ExecutorOptions
from gridverify.study.jobs import expand_jobs
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study
from gridverify.study.storage import StudyStore


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridverify", *args]


def test_kill_after_first_job_then_resume(tmp_path: Path, reference_study: Path) -> None:
    study = write_small_study(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli("study", "run", str(study), "--out", str(out), "--workers", "1", "--quiet",
             "--no-report"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    jobs_dir = out / "jobs"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            # a job is finished once its job_end event is logged (the record is
            # written just before it: a kill in between leaves a record, no event)
            if any(e["event"] == "job_end" for e in StudyStore(out).events()):
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.01)
        else:
            raise AssertionError("no job finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the study and its worker processes
        proc.wait()
    finished_before = sorted(p.stem for p in jobs_dir.glob("*.json"))
    spec = load_study(study)
    all_ids = [j.id for j in expand_jobs(spec)]
    assert 1 <= len(finished_before) < len(all_ids), finished_before

    # the killed run's lock names a process that is gone: taken over, with a warning
    with pytest.warns(UserWarning, match="took over the lock of a study run that is gone"):
        run = run_study(spec, out, ExecutorOptions("local", 1))
    assert sorted(run.skipped) == finished_before
    assert sorted(run.ran) == sorted(set(all_ids) - set(finished_before))
    assert not run.failed

    # every job finished exactly once over both runs (the killed job never finished)
    ends = [e for e in StudyStore(out).events() if e["event"] == "job_end"]
    assert sorted(e["job_id"] for e in ends) == sorted(all_ids)
    run_ids = {e["run_id"] for e in ends}
    assert len(run_ids) == 2
    for jid in finished_before:  # not recomputed: still the first run's record
        rec = json.loads((jobs_dir / f"{jid}.json").read_text())
        assert rec["run_id"] != run.run_id

    # a third run has nothing to do
    again = run_study(spec, out, ExecutorOptions("local", 1))
    assert again.ran == () and sorted(again.skipped) == sorted(all_ids)

    assert compare_outputs(out, reference_study) == sorted(all_ids)


BAB_STUDY = f"""
[study]
name = "babck"
methods = ["bab"]
samples = 64
timeout = 8
bab_timeout = 1
radius = false

[cases.c14]
case = "pglib_opf_case14_ieee"
models = ["{MODEL}"]

[regions.near]
box = [0.97, 1.03]

[constraints.some]
families = ["p_balance"]
components = {{ p_balance = [2, 3, 4] }}
"""


def test_bab_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """A bab job run again after an interruption starts from the progress it saved
    (here: saved by a first run of the same job), and the file goes once it is done."""
    from gridverify.study.jobs import _certify, checkpoint_path

    study = tmp_path / "babck.toml"
    study.write_text(BAB_STUDY, encoding="utf-8")
    spec = load_study(study)
    (job,) = expand_jobs(spec)
    out = tmp_path / "out"
    ck = checkpoint_path(job, out / "checkpoints")
    first = _certify(job, None, ck)  # the interrupted run's progress
    assert ck.is_file()
    run = run_study(spec, out, ExecutorOptions(workers=1))
    assert run.ran == (job.id,) and not run.failed
    rec = json.loads((out / "jobs" / f"{job.id}.json").read_text())
    assert any("resumed from checkpoint" in w for w in rec["certificate"]["warnings"])
    assert not ck.exists()
    bounds = {(c["family"], c["component"]): c["upper_bound"]
              for c in rec["certificate"]["constraints"]}
    for c in first.constraints:  # the resumed bounds are never looser
        assert bounds[(c.family, c.component)] <= c.upper_bound


TINY_STUDY = f"""
[study]
name = "{{name}}"
methods = ["ibp"]
samples = 0
attack = "none"
radius = false

[cases.c14]
case = "pglib_opf_case14_ieee"
models = ["{MODEL}"]

[regions.near]
box = [{{lo}}, 1.03]

[constraints.some]
families = ["vm_max"]
"""


def _tiny(folder: Path, file: str, name: str, lo: float = 0.97) -> Path:
    p = folder / file
    p.write_text(TINY_STUDY.format(name=name, lo=lo), encoding="utf-8")
    return p


def test_another_study_is_refused_in_a_study_folder(tmp_path: Path) -> None:
    """A folder holding study A's results is not overwritten by study B (same job ids)."""
    from gridverify.errors import StudyError

    out = tmp_path / "out"
    first = run_study(load_study(_tiny(tmp_path, "a.toml", "study_a")), out,
                      ExecutorOptions(workers=1))
    assert len(first.ran) == 1 and not first.failed
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    other = load_study(_tiny(tmp_path, "b.toml", "study_b", lo=0.95))
    with pytest.raises(StudyError) as err:
        run_study(other, out, ExecutorOptions(workers=1))
    msg = str(err.value)
    assert str(out) in msg and "'study_a'" in msg and "'study_b'" in msg and "\n" not in msg
    after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before  # nothing written

    # a study.json that is not a study's is not overwritten either
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "study.json").write_text('{"something": "else"}')
    with pytest.raises(StudyError, match="not a gridverify study"):
        run_study(other, foreign, ExecutorOptions(workers=1))


def test_the_same_study_resumes_in_its_folder_even_edited(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = load_study(_tiny(tmp_path, "a.toml", "study_a"))
    first = run_study(spec, out, ExecutorOptions(workers=1))
    again = run_study(spec, out, ExecutorOptions(workers=1))
    assert again.ran == () and again.skipped == first.ran
    # the same study edited (its job changed): it resumes, the changed job runs again
    edited = load_study(_tiny(tmp_path, "a_v2.toml", "study_a", lo=0.95))
    third = run_study(edited, out, ExecutorOptions(workers=1))
    assert third.ran == first.ran and third.skipped == ()


def test_cli_refuses_another_study_folder(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from gridverify.cli import main

    out = tmp_path / "out"
    StudyStore(out).write_study("", "study_a", [], "a.toml")
    code = main(["study", "run", str(_tiny(tmp_path, "b.toml", "study_b")), "--out", str(out),
                 "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(out) in err and "'study_a'" in err and "'study_b'" in err
    assert not (out / "jobs").exists()
