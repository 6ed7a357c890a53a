"""A study killed after its first job resumes, runs every job exactly once, equals a full run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from study_helpers import compare_outputs, write_small_study

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
