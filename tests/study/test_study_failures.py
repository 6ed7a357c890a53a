"""Failing jobs are recorded and the study goes on; a worker that dies has its job rescheduled."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import threading
from pathlib import Path

from study_helpers import MODEL, SMALL_STUDY, compare_outputs

from gridverify.study.executors import ExecutorOptions, run_local
from gridverify.study.jobs import expand_jobs
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study
from gridverify.study.storage import StudyStore


def test_failed_job_is_recorded_and_others_go_on(tmp_path: Path, capsys) -> None:
    gone = tmp_path / "case14_gone"
    shutil.copytree(MODEL, gone)
    text = SMALL_STUDY.replace(f'models = ["{MODEL}"]', f'models = ["{MODEL}", "{gone}"]')
    text = text.replace('methods = ["ibp", "crown"]', 'methods = ["crown"]')
    p = tmp_path / "s.toml"
    p.write_text(text)
    spec = load_study(p)  # checked while the model exists
    shutil.rmtree(gone)  # ... and gone when its jobs run
    out = tmp_path / "out"
    run = run_study(spec, out, ExecutorOptions("local", 2))
    assert sorted(run.failed) == sorted(j.id for j in expand_jobs(spec) if "gone" in j.id)
    assert len(run.ran) == 2 and run.exit_status == 1  # the others ran (and find violations)
    for jid in run.failed:
        rec = json.loads((out / "jobs" / f"{jid}.json").read_text())
        assert rec["state"] == "failed" and rec["certificate"] is None
        assert rec["error"]["type"] == "FileNotFoundError"
        assert "case14_gone" in rec["error"]["message"]
        assert not (out / "jobs" / f"{jid}.h5").exists()
    from gridverify.cli.study import _print_failures, _print_jobs

    for show in (_print_jobs, _print_failures):  # with the table, or alone (--quiet, --json)
        capsys.readouterr()
        show(out)
        err = capsys.readouterr().err.splitlines()
        assert len(err) == len(run.failed)
        for jid, line in zip(sorted(run.failed), sorted(err)):
            assert line.startswith(f"gridverify: job {jid} (") and "FileNotFoundError" in line
            assert "case14_gone" in line
    store = StudyStore(out)  # a resumed run skips the done jobs and runs the failed ones again
    for j in expand_jobs(spec):
        assert store.is_finished(j) == (j.id in run.ran)


def test_dead_worker_job_is_rescheduled(tmp_path: Path, reference_study: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY)
    jobs = expand_jobs(load_study(p))[:1]
    records: list[dict] = []
    killed: list[int] = []

    def kill_worker() -> None:
        for child in multiprocessing.active_children():  # the pool's worker, started here
            if child.pid is not None:
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    def on_start(job: object) -> None:
        if not killed:
            t = threading.Timer(0.3, kill_worker)
            t.start()
            t.join()

    run_local(jobs, ExecutorOptions("local", 1), on_start, lambda j, r: records.append(r))
    assert killed
    assert len(records) == 1
    rec = records[0]
    assert rec["state"] == "done" and rec["attempts"] == 2
    # the rescheduled job's result equals the reference run's
    store = StudyStore(tmp_path / "out")
    store.write_study(SMALL_STUDY, "small", jobs, str(p))
    store.write_record(rec)
    ref = tmp_path / "ref"
    (ref / "jobs").mkdir(parents=True)
    for suffix in (".json", ".h5"):
        name = jobs[0].id + suffix
        shutil.copy(reference_study / "jobs" / name, ref / "jobs" / name)
    assert compare_outputs(tmp_path / "out", ref) == [jobs[0].id]
