"""The same study on a local Ray cluster (2 CPUs) gives the results of the local executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import compare_outputs, write_small_study

from gridverify.study.executors import ExecutorOptions
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study

ray = pytest.importorskip("ray")


def test_ray_equals_local(tmp_path: Path, reference_study: Path) -> None:
    spec = load_study(write_small_study(tmp_path))
    out = tmp_path / "ray"
    run = run_study(spec, out, ExecutorOptions("ray", 2))
    assert not ray.is_initialized()  # the local cluster started for the run is shut down
    assert not run.failed and len(run.ran) == 4
    compare_outputs(out, reference_study)
