"""QA findings on `train`: huge hidden sizes, a read-only model directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gridverify.cli import main
from gridverify.errors import ProxyError
from gridverify.proxy.train import TrainOptions, _out_of_memory, check_training_memory


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_huge_hidden_sizes_refused_before_allocating(tmp_path: Path, case14_data: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    code = main(["train", str(case14_data), "--out", str(out), "--hidden",
                 "100000000,100000000", "--no-progress"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "--hidden 100000000,100000000" in line and "memory" in line
    assert not out.exists()


def test_training_memory_check(case14) -> None:
    check_training_memory(case14, TrainOptions(hidden=(64, 64)), 1000)
    with pytest.raises(ProxyError, match=r"--hidden 100000000,100000000 \(--batch-size 64\)"):
        check_training_memory(case14, TrainOptions(hidden=(100000000, 100000000)), 10)


def test_allocation_failure_becomes_proxy_error() -> None:
    opts = TrainOptions(hidden=(8,))
    for exc in (MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: "
                                            "you tried to allocate 10 bytes")):
        with pytest.raises(ProxyError, match=r"--hidden 8 .*out of memory"), _out_of_memory(opts):
            raise exc
    with pytest.raises(RuntimeError, match="something else"), _out_of_memory(opts):
        raise RuntimeError("something else")


def _chmod_tree(path: Path, writable: bool) -> None:
    for p in [path, *path.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        os.chmod(p, mode | 0o200 if writable else mode & ~0o222)


def test_read_only_model_directory_is_not_replaced(tmp_path: Path, trained14, case14_data: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from gridverify.proxy.artifacts import write_model_dir

    result, src = trained14
    out = tmp_path / "m"
    shutil.copytree(src, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _chmod_tree(out, writable=False)  # chmod -R a-w
    try:
        code = main(["train", str(case14_data), "--out", str(out), "--epochs", "1",
                     "--no-progress"])
        line = _one_line(capsys.readouterr().err)
        assert code == 2
        assert line == f"gridverify: error: --out {out}: exists and is not writable (not replaced)"
        with pytest.raises(ProxyError, match="exists and is not writable"):
            write_model_dir(out, result.module, result.card)
        # the folder writable, one of its files not: still not replaced (refused up front)
        os.chmod(out, stat.S_IMODE(out.stat().st_mode) | 0o200)
        code = main(["train", str(case14_data), "--out", str(out), "--epochs", "1",
                     "--no-progress"])
        line = _one_line(capsys.readouterr().err)
        assert code == 2 and line.startswith(f"gridverify: error: --out {out}{os.sep}")
        assert line.endswith(".json: exists and is not writable (not replaced)")
    finally:
        _chmod_tree(out, writable=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(("value", "why"), [("{not json", "is not valid JSON"),
                                            (3, "is not a string: 3")])
def test_a_damaged_sampler_attribute_is_refused_not_dropped(
        tmp_path: Path, case14_data: Path, value: object, why: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    import h5py

    bad = tmp_path / "bad.h5"
    shutil.copy(case14_data, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["sampler"] = value  # the training region comes from it
    code = main(["train", str(bad), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--no-progress"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and f"{bad}: attribute 'sampler' {why}" in line
    assert not (tmp_path / "m").exists()
