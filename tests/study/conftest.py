"""Shared fixtures of the study tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import MODEL, ONE_JOB_STUDY, write_small_study


@pytest.fixture(scope="session")
def reference_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small study run once, uninterrupted, with the local executor (2 workers)."""
    if not MODEL.exists():
        pytest.skip("shipped proxy models/case14_relu not present")
    from gridverify.study.executors import ExecutorOptions
    from gridverify.study.runner import run_study
    from gridverify.study.spec import load_study

    base = tmp_path_factory.mktemp("reference")
    spec = load_study(write_small_study(base))
    out = base / "out"
    run = run_study(spec, out, ExecutorOptions("local", 2))
    assert len(run.ran) == 4 and not run.failed
    return out


@pytest.fixture(scope="session")
def one_job_spec():
    """The one-job study (``study_helpers.ONE_JOB_STUDY``), parsed, not run."""
    if not MODEL.exists():
        pytest.skip("shipped proxy models/case14_relu not present")
    from gridverify.study.spec import parse_study

    return parse_study(ONE_JOB_STUDY, "tiny.toml")
