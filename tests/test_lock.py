"""Run locks (gridverify._lock): a holder this process cannot check is never taken
over; a lock of an earlier boot is; every name of one output gets one lock."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

from gridverify._lock import _identity, lock_beside, run_lock


class _Busy(Exception):
    pass


def _lock_of(path: Path, **fields: object) -> None:
    path.write_text(json.dumps({"pid": 999_999_999, "host": platform.node(), **fields}))


def test_a_holder_in_another_pid_namespace_is_never_taken_over(tmp_path: Path) -> None:
    me = _identity()
    if "pidns" not in me:
        pytest.skip("no /proc/self/ns/pid here")
    lock = tmp_path / "o.lock"
    _lock_of(lock, pidns=int(me["pidns"]) + 1, boot=me.get("boot"))  # pid unseen from here
    with pytest.raises(_Busy, match="cannot check"), run_lock(lock, "o", "test", _Busy):
        pass
    assert lock.exists()


def test_a_lock_of_an_earlier_boot_or_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    me = _identity()
    lock = tmp_path / "o.lock"
    seen: list[str] = []
    for fields in ({"pid": os.getpid(), "boot": "an-earlier-boot"},  # alive pid, but of then
                   {}):  # an old lock (pid and host only) of a pid that does not run
        if "boot" in fields and "boot" not in me:
            continue
        _lock_of(lock, **{**{k: me[k] for k in ("pidns",) if k in me}, **fields})
        with run_lock(lock, "o", "test", _Busy, seen.append):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not lock.exists()
    assert seen and all("took over" in m for m in seen)


def test_every_name_of_one_output_gets_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "results.csv"
    real.write_text("")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert lock_beside(link) == lock_beside(real) == tmp_path / ".results.csv.lock"
    with run_lock(lock_beside(real), real, "test", _Busy):
        with pytest.raises(_Busy, match="another test run"), \
                run_lock(lock_beside(link), link, "test", _Busy):
            pass


def test_a_folder_in_a_read_only_parent_holds_its_own_lock(tmp_path: Path) -> None:
    out = tmp_path / "ro" / "out"
    out.mkdir(parents=True)
    os.chmod(out.parent, 0o555)
    try:
        if os.access(out.parent, os.W_OK):
            pytest.skip("running as root: every folder is writable")
        assert lock_beside(out) == out / ".gridverify.lock"
        with run_lock(lock_beside(out), out, "test", _Busy):
            pass
    finally:
        os.chmod(out.parent, 0o755)
    assert lock_beside(tmp_path / "new") == tmp_path / ".new.lock"
