"""Edges of run locks and atomic writes: pids that cannot be signalled, lock files that
are not locks or change hands meanwhile, the study folder's lock name, atomic writes
onto a folder and failed writes that name the temporary file."""

from __future__ import annotations

import errno
import json
import os
import platform
from pathlib import Path

import pytest

from gridverify import _lock
from gridverify._lock import _take_over_stale, pid_alive, run_lock
from gridverify.errors import StudyError
from gridverify.fileio import atomic_path
from gridverify.study.lock import study_lock


class _Busy(Exception):
    pass


def _damaged() -> Exception:
    return _Busy("damaged")


def _lock_of(path: Path, **fields: object) -> None:
    path.write_text(json.dumps({"pid": 999_999_999, "host": platform.node(), **fields}))


def test_pid_zero_and_negative_pids_are_not_alive() -> None:
    # os.kill(0, 0) signals this process group (it succeeds): 0 names no process
    assert pid_alive(0) is False
    assert pid_alive(-1) is False
    assert pid_alive(os.getpid()) is True


def test_a_pid_of_another_user_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def kill(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_lock.os, "kill", kill)
    assert pid_alive(12345) is True


def test_a_lock_file_with_a_boolean_pid_is_not_a_lock(tmp_path: Path) -> None:
    lock = tmp_path / "o.lock"
    lock.write_text(json.dumps({"pid": True, "host": platform.node()}))
    with pytest.raises(_Busy, match="is not a test lock"), run_lock(lock, "o", "test", _Busy):
        pass
    assert json.loads(lock.read_text())["pid"] is True  # left for its owner to remove


def test_a_stale_lock_changed_meanwhile_is_not_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "o.lock"
    _lock_of(lock, pid=999_999_998)  # a fresh lock of another run, not the stale one read
    fresh = lock.read_text()
    stale = {"pid": 999_999_999, "host": platform.node()}
    assert _take_over_stale(lock, stale, _damaged) is False
    assert lock.read_text() == fresh  # put back as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.lock"]  # no aside copy left
    # the stale lock itself is taken over (removed)
    _lock_of(lock)
    assert _take_over_stale(lock, stale, _damaged) is True
    assert not lock.exists()


def test_a_lock_rewritten_by_another_owner_is_not_removed_on_exit(tmp_path: Path) -> None:
    lock = tmp_path / "o.lock"
    with run_lock(lock, "o", "test", _Busy) as p:
        assert p == lock and json.loads(lock.read_text())["pid"] == os.getpid()
        _lock_of(lock, pid=os.getpid() + 1)  # taken over by another run meanwhile
    assert json.loads(lock.read_text())["pid"] == os.getpid() + 1
    with run_lock(lock.with_name("p.lock"), "p", "test", _Busy) as q:
        assert q.exists()
    assert not q.exists()  # its own lock is removed


def test_the_study_lock_is_study_lock_in_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with study_lock(out, lambda m: None) as p:
        assert p == out / "study.lock" and p.is_file()
        assert json.loads(p.read_text())["pid"] == os.getpid()
        with pytest.raises(StudyError, match="study.lock"), study_lock(out):
            pass
    assert not (out / "study.lock").exists()


def test_an_atomic_write_onto_a_folder_is_refused_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    ran = []
    with pytest.raises(IsADirectoryError, match="give a file path") as ei:
        with atomic_path(target) as tmp:
            ran.append(tmp)
    assert ei.value.filename == str(target)
    assert ran == []  # the body never ran
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and not any(target.iterdir())


def test_a_failed_write_naming_the_temp_file_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    with pytest.raises(OSError) as ei:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(target)
    assert "No space left" in str(ei.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file removed, no target
    # without a file name too; one naming another file propagates as it is
    with pytest.raises(OSError) as ei:
        with atomic_path(target):
            raise OSError(errno.EIO, "I/O error")
    assert ei.value.filename == str(target)
    other = str(tmp_path / "other")
    with pytest.raises(OSError) as ei:
        with atomic_path(target):
            raise OSError(errno.EACCES, "Permission denied", other)
    assert ei.value.filename == other and list(tmp_path.iterdir()) == []
