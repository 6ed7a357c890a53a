"""The memory cap of study jobs: ``study run --memory-cap`` and the per-worker default."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import write_small_study

from gridverify.certify.memory import DEFAULT_SHARE, available_mb
from gridverify.cli import main
from gridverify.errors import GridverifyError
from gridverify.study.executors import ExecutorOptions
from gridverify.study.jobs import comparable_record, expand_jobs, run_job
from gridverify.study.spec import load_study


def test_job_cap_explicit_default_split_between_workers_and_remote() -> None:
    assert ExecutorOptions(memory_cap_mb=300.0).job_memory_cap() == 300.0
    assert ExecutorOptions(workers=4, memory_cap_mb=300.0).job_memory_cap() == 300.0
    assert ExecutorOptions().job_memory_cap() is None  # one worker: certify's own default
    assert ExecutorOptions("ray", 4, "10.0.0.1:6379").job_memory_cap() is None
    avail = available_mb()
    split = ExecutorOptions(workers=4).job_memory_cap()
    if avail is None:
        assert split is None
    else:
        assert split == pytest.approx(DEFAULT_SHARE * avail / 4, rel=0.2)
    with pytest.raises(GridverifyError, match="--memory-cap"):
        ExecutorOptions(memory_cap_mb=0.0)


def test_job_with_room_matches_no_cap_and_starved_job_fails_with_the_cap_message(
    tmp_path: Path,
) -> None:
    spec = load_study(write_small_study(tmp_path))
    job = next(j for j in expand_jobs(spec) if j.method == "ibp")
    free = run_job(job)
    roomy = run_job(job, 2048.0)
    assert free["state"] == roomy["state"] == "done"
    assert roomy["memory_cap_mb"] == 2048.0 and free["memory_cap_mb"] is None
    assert free["certificate"]["provenance"]["options"]["memory_cap_mb"] is None
    assert roomy["certificate"]["provenance"]["options"]["memory_cap_mb"] == 2048.0
    assert comparable_record(free) == comparable_record(roomy)  # same results under a roomy cap
    starved = run_job(job, 1e-6)
    # the cap is used up before a stage (the one-line error), or every stage finds no room
    # (rows left open, with the warning); never a certificate the cap did not allow
    if starved["state"] == "failed":
        assert starved["error"]["type"] == "MemoryCapError"
        assert "memory cap" in starved["error"]["message"]
    else:
        cert = starved["certificate"]
        assert any("memory cap" in w for w in cert["warnings"])
        assert all(c["status"] != "certified" for c in cert["constraints"])
    assert starved["job_hash"] == free["job_hash"]  # how a job runs is not what it is


def test_cli_memory_cap_must_be_positive(tmp_path: Path, capsys) -> None:
    study = write_small_study(tmp_path)
    rc = main(["study", "run", str(study), "--out", str(tmp_path / "o"), "--memory-cap", "-5",
               "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--memory-cap" in err and "\n" not in err
