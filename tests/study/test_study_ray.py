"""The same study on a local Ray cluster (2 CPUs) gives the results of the local executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import compare_outputs, write_small_study

from gridverify.study.executors import ExecutorOptions
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study

ray = pytest.importorskip("ray")


@pytest.mark.slow  # ~20 s: kept out of the default run to keep CI under its limit
def test_ray_equals_local(tmp_path: Path, reference_study: Path) -> None:
    spec = load_study(write_small_study(tmp_path))
    out = tmp_path / "ray"
    run = run_study(spec, out, ExecutorOptions("ray", 2))
    assert not ray.is_initialized()  # the local cluster started for the run is shut down
    assert not run.failed and len(run.ran) == 4
    compare_outputs(out, reference_study)


def _ray_job_pids() -> list[int]:
    """Processes running a study job on Ray (their title is ``ray::run_job``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::run_job"):
                pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker in /proc")
def test_ray_worker_that_dies_has_its_job_run_again_and_counted(tmp_path: Path) -> None:
    """As with the local executor: the job is submitted again and its record says
    it took two attempts (Ray's own retries left no count)."""
    import os
    import signal
    import threading
    import time

    from study_helpers import SMALL_STUDY

    from gridverify.study.executors import run_ray
    from gridverify.study.jobs import expand_jobs

    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY)
    jobs = expand_jobs(load_study(p))[:1]
    records: list[dict] = []
    killed: list[int] = []

    def kill_worker() -> None:
        end = time.monotonic() + 60
        while not killed and time.monotonic() < end:
            for pid in _ray_job_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    def on_start(job: object) -> None:
        if not killed:
            threading.Thread(target=kill_worker, daemon=True).start()

    run_ray(jobs, ExecutorOptions("ray", 1), on_start, lambda j, r: records.append(r))
    assert killed and len(records) == 1
    assert records[0]["state"] == "done" and records[0]["attempts"] == 2, records[0]
