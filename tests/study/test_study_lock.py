"""One ``study run`` at a time writes into a study folder (``OUT/study.lock``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from study_helpers import MODEL, ONE_JOB_STUDY

from gridverify.cli import main
from gridverify.errors import StudyError
from gridverify.study.executors import ExecutorOptions
from gridverify.study.lock import LOCK_NAME, pid_alive, study_lock
from gridverify.study.runner import run_study
from gridverify.study.spec import load_study

TINY = ONE_JOB_STUDY


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    if not MODEL.exists():
        pytest.skip("shipped proxy models/case14_relu not present")
    p = tmp_path / "tiny.toml"
    p.write_text(TINY, encoding="utf-8")
    return p


@pytest.fixture()
def live_pid() -> Iterator[int]:
    """The pid of a process that lives through the test (another study run's stand-in)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def _write_lock(out: Path, pid: int, host: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    p = out / LOCK_NAME
    p.write_text(json.dumps({"pid": pid, "host": host or platform.node()}))
    return p


def test_a_second_run_is_refused_naming_folder_and_pid(
        study: Path, tmp_path: Path, live_pid: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    lock = _write_lock(out, live_pid)
    with pytest.raises(StudyError) as info:
        run_study(load_study(study), out, ExecutorOptions(workers=1))
    msg = str(info.value)
    assert str(out) in msg and f"pid {live_pid}" in msg and "\n" not in msg
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    code = main(["study", "run", str(study), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(out) in err and f"pid {live_pid}" in err
    assert json.loads(lock.read_text())["pid"] == live_pid  # the holder's lock stays


def test_the_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    with study_lock(tmp_path / "out") as lock:
        held = json.loads(lock.read_text())
        assert {k: held[k] for k in ("pid", "host")} == {"pid": os.getpid(),
                                                         "host": platform.node()}
        with pytest.raises(StudyError, match="another study run"), study_lock(tmp_path / "out"):
            pass
        assert lock.exists()  # the refused one leaves the holder's lock
    assert not lock.exists()


def test_a_stale_lock_is_taken_over_with_a_warning(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = _dead_pid()
    _write_lock(out, dead)
    warnings: list[str] = []
    run = run_study(load_study(study), out, ExecutorOptions(workers=1), warn=warnings.append)
    assert len(run.ran) == 1
    assert len(warnings) == 1 and f"pid {dead}" in warnings[0] and str(out) in warnings[0]
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_lock_of_another_host_is_never_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_lock(out, _dead_pid(), host=platform.node() + "-elsewhere")
    with pytest.raises(StudyError, match="-elsewhere"), study_lock(out):
        pass
    assert (out / LOCK_NAME).exists()


def test_a_damaged_lock_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("garbage")
    with pytest.raises(StudyError, match="not a study lock"), study_lock(out):
        pass


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_the_lock_is_released_on_ctrl_c_and_errors(study: Path, tmp_path: Path,
                                                   exc: type[BaseException]) -> None:
    out = tmp_path / "out"

    def progress(ev: object) -> None:
        assert (out / LOCK_NAME).exists()  # held while the run goes on
        raise exc

    with pytest.raises(exc):
        run_study(load_study(study), out, ExecutorOptions(workers=1), progress=progress)
    assert not (out / LOCK_NAME).exists()
    run = run_study(load_study(study), out, ExecutorOptions(workers=1))  # not locked out
    assert len(run.ran) == 1


def test_study_run_renders_its_report_under_the_lock(study: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import gridverify.report as report

    out = tmp_path / "out"
    held: list[bool] = []
    render = report.render_report

    def watched(folder: Path, **kw: object) -> object:
        held.append((Path(folder) / LOCK_NAME).exists())
        return render(folder, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "render_report", watched)
    assert main(["study", "run", str(study), "--out", str(out), "--quiet"]) in (0, 1)
    assert held == [True]  # no other run can write while the report is rendered
    assert (out / "index.md").exists() and not (out / LOCK_NAME).exists()
