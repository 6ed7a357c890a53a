"""The built distribution works outside the checkout.

Builds the sdist and the wheel (``python -m build``), checks both with
``twine check``, installs the wheel into a fresh virtual environment (with the
CPU build of torch, from pip's cache when there) and runs ``case list``,
``case info`` and the README's main job from a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCH_PIN = "torch==2.13.0"  # the `cpu` extra's pin: an unpinned torch is the CUDA build


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _ok(proc: subprocess.CompletedProcess[str], codes: tuple[int, ...] = (0,)) -> str:
    assert proc.returncode in codes, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_the_main_job_anywhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _ok(_run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], tmp_path))
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    _ok(_run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
             tmp_path))
    import tarfile
    import zipfile

    with tarfile.open(sdists[0]) as tar:
        in_sdist = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    with zipfile.ZipFile(wheels[0]) as whl:
        in_wheel = whl.namelist()
    assert not [n for n in in_sdist if n.startswith("tests/")]  # all of them or none
    assert "LICENSE" in in_sdist and "cases/LICENSE" in in_sdist
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel), in_wheel

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _ok(_run([str(py), "-m", "pip", "install", "-q", str(wheels[0]), TORCH_PIN], tmp_path))
    gv = str(env_dir / "bin" / "gridverify")
    work = tmp_path / "elsewhere"
    work.mkdir()

    names = _ok(_run([gv, "case", "list"], work)).split()
    assert "pglib_opf_case14_ieee" in names and "pglib_opf_case57_ieee" in names
    info = json.loads(_ok(_run([gv, "case", "info", "pglib_opf_case14_ieee", "--json"], work)))
    assert info["n_bus"] == 14
    assert "site-packages" in info["source"]  # the installed copy, not the checkout's
    # the README's main job, word for word, then the bundled model by name
    for model in ("models/case14_relu", "case14_relu"):
        out = _ok(_run([gv, "certify", "pglib_opf_case14_ieee", "--model", model, "--json"],
                       work), codes=(0, 1, 3))
        cert = json.loads(out)
        assert cert["summary"]["total"] > 0
    out = _ok(_run([gv, "model", "info", "case57_relu", "--json"], work))
    assert json.loads(out)["case_name"] == "pglib_opf_case57_ieee"
    lic = _ok(_run([str(py), "-c", "from gridverify.grid.case import bundled_cases_dir as d; "
                    "print((d() / 'LICENSE').read_text())"], work))
    assert "Creative Commons" in lic or "CC BY" in lic
    assert list(work.iterdir()) == []  # nothing written where it ran
