"""Atomic file writing (gridverify.fileio)."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from gridverify.fileio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    default_file_mode,
)


def _mode(path: object) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_bytes_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.bin"]
    assert _mode(p) == default_file_mode()


def test_mode_is_applied(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "héllo\n", mode=0o600)
    assert p.read_bytes() == "héllo\n".encode()
    assert _mode(p) == 0o600
    atomic_write_text(p, "x", mode=0o644, fsync=False)
    assert _mode(p) == 0o644


def test_json_strict_and_compact(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"a": [1, 2.5]})
    assert p.read_text() == '{"a":[1,2.5]}\n'
    atomic_write_json(p, {"a": 1}, indent=2)
    assert json.loads(p.read_text()) == {"a": 1} and "\n  " in p.read_text()
    with pytest.raises(ValueError):
        atomic_write_json(p, {"a": math.nan})
    assert json.loads(p.read_text()) == {"a": 1}  # the old file is untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]


def test_atomic_path_failure_keeps_old_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp != p
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_path_body_may_remove_temp_on_failure(tmp_path):
    p = tmp_path / "a.txt"
    with pytest.raises(KeyError), atomic_path(p) as tmp:
        tmp.unlink()
        raise KeyError("x")
    assert not p.exists()


def test_no_mkdir_raises_for_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        atomic_write_bytes(tmp_path / "missing" / "a.bin", b"", mkdir=False)
    assert not (tmp_path / "missing").exists()
    # the folder that refused the new file is named, not the temporary file's name
    assert info.value.filename == str(tmp_path / "missing")


def _read_only(path) -> int:
    old = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, old & ~0o222)
    return old


def test_existing_folder_without_write_permission_is_refused(tmp_path):
    from gridverify.errors import OutputPathError
    from gridverify.fileio import check_output_path, is_writable

    target = tmp_path / "model"
    target.mkdir()
    assert check_output_path(target, "--out", folder=True) == target
    old = _read_only(target)
    try:
        # the permission bit counts for root too, as for an existing file
        assert not is_writable(target)
        with pytest.raises(OutputPathError) as info:
            check_output_path(target, "--out", folder=True)
        assert str(info.value) == f"--out {target}: exists and is not writable (not replaced)"
    finally:
        os.chmod(target, old)


def test_existing_file_without_write_permission_is_refused(tmp_path):
    from gridverify.errors import OutputPathError
    from gridverify.fileio import check_output_path

    target = tmp_path / "x.h5"
    target.write_bytes(b"x")
    old = _read_only(target)
    try:
        with pytest.raises(OutputPathError, match="exists and is not writable"):
            check_output_path(target, "--out")
    finally:
        os.chmod(target, old)


def test_require_file_names_what_is_wrong(tmp_path):
    from gridverify.cli import os_error_message
    from gridverify.fileio import require_file

    (tmp_path / "a.txt").write_text("x")
    assert require_file(tmp_path / "a.txt") == tmp_path / "a.txt"
    cases = {
        tmp_path / "gone.h5": "file not found: ",
        tmp_path: ": Is a directory",
        tmp_path / "a.txt" / "b.h5": "a.txt is not a folder",
        tmp_path / "a.txt" / "deeper" / "b.h5": "a.txt is not a folder",
    }
    if os.path.exists("/dev/null"):
        cases[type(tmp_path)("/dev/null")] = "/dev/null: not a regular file"
    for path, want in cases.items():
        with pytest.raises(OSError) as info:
            require_file(path)
        assert want in os_error_message(info.value)


def test_a_link_is_written_through_not_replaced(tmp_path):
    """``--out link.json`` writes the file the link leads to and keeps the link (it
    was replaced by a regular file; ``--out /dev/stdout`` replaced that link), also
    through a chain of links and a link to a file not there yet."""
    target = tmp_path / "data" / "target.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    chain = tmp_path / "chain.json"
    chain.symlink_to(link)
    atomic_write_text(link, "one")
    assert link.is_symlink() and target.read_text() == "one"
    atomic_write_text(chain, "two")
    assert chain.is_symlink() and link.is_symlink() and target.read_text() == "two"
    ahead = tmp_path / "ahead.json"
    ahead.symlink_to(tmp_path / "data" / "new.json")
    atomic_write_text(ahead, "three")
    assert ahead.is_symlink() and (tmp_path / "data" / "new.json").read_text() == "three"
    assert sorted(x.name for x in target.parent.iterdir()) == ["new.json", "target.json"]


def test_certify_out_through_a_link(tmp_path):
    from gridverify.cli import main

    target = tmp_path / "target.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    rc = main(["certify", "pglib_opf_case14_ieee", "--model", "case14_relu", "--region",
               "box:1,1", "--constraints", "vm_max[1]", "--method", "crown", "--quiet",
               "--out", str(link)])
    assert rc in (0, 1, 3) and link.is_symlink()
    assert json.loads(target.read_text())["case"] == "pglib_opf_case14_ieee"


@pytest.mark.parametrize("text, what", [
    ("[" * 100_000, "nested too deeply"),
    ('{"a":' * 100_000, "nested too deeply"),
    ("1" * 5001, "digits"),
    ("[1, 2", "Expecting"),
])
def test_json_loads_fails_as_a_decode_error(text, what):
    """Every failure on bad text is a JSONDecodeError (readers catch that one), also
    deep nesting (RecursionError) and huge integers (ValueError)."""
    import json as _json

    from gridverify.fileio import json_loads

    with pytest.raises(_json.JSONDecodeError, match=what):
        json_loads(text)
    assert json_loads('{"a": [1, 2.5]}') == {"a": [1, 2.5]}


@pytest.mark.parametrize("error", [
    OSError(28, "No space left on device"),
    RuntimeError("Can't close file (file write failed: time = x, filename = 'f.tmp', "
                 "file descriptor = 3, errno = 28, error message = 'No space left on "
                 "device', buf = 0x1, total write size = 4096)"),  # how h5py says it
])
def test_a_failed_write_names_the_file_not_its_temporary(tmp_path, error):
    """A full disk while the body writes: the error names the file being written
    (an OSError without a name, or h5py's RuntimeError), and no temporary is left."""
    target = tmp_path / "data.h5"
    with pytest.raises(OSError) as info:
        with atomic_path(target):
            raise error
    assert info.value.errno == 28 and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_an_error_naming_another_file_is_kept(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with atomic_path(tmp_path / "out.bin"):
            open(tmp_path / "missing.txt").close()
    assert info.value.filename == str(tmp_path / "missing.txt")


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """SIGKILL while writing leaves ``.NAME.HOST-PID.XXXXXXXX.tmp``: a write of that
    target an hour later removes it; a running writer's, another machine's and
    another target's stay."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "d.h5"
    code = ("import os, sys, time\n"
            "from gridverify.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    open(tmp, 'wb').write(b'x' * 1000)\n"
            "    print(tmp, flush=True)\n"
            "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                            text=True)
    left = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from gridverify.fileio import _HOST

    assert os.path.basename(left).startswith(f".d.h5.{_HOST}-{proc.pid}.")
    alive = tmp_path / f".d.h5.{_HOST}-1.abcdefgh.tmp"  # pid 1 runs
    elsewhere = tmp_path / f".d.h5.another_host-{proc.pid}.abcdefgh.tmp"
    other = tmp_path / f".e.h5.{_HOST}-{proc.pid}.abcdefgh.tmp"
    for p in (alive, elsewhere, other):
        p.write_bytes(b"")
    atomic_write_bytes(target, b"new")
    assert os.path.exists(left)  # changed within the hour: may be a live writer elsewhere
    old = os.stat(left).st_mtime - 3700
    for p in (left, alive, elsewhere, other):
        os.utime(p, (old, old))
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert not os.path.exists(left)
    assert alive.exists() and elsewhere.exists() and other.exists()


@pytest.mark.parametrize("length", [240, 250, 255])
def test_a_long_name_keeps_within_a_file_names_bytes(tmp_path, length):
    """Names up to 255 bytes are legal: their temporary files, locks and progress files
    are shortened (a 245-byte --out was refused after the whole computation)."""
    from gridverify._lock import lock_beside
    from gridverify.cli.train import progress_path

    target = tmp_path / ("n" * (length - 2) + "é")  # a 2-byte character at the end
    atomic_write_bytes(target, b"ok")
    assert target.read_bytes() == b"ok" and os.listdir(tmp_path) == [target.name]
    for side in (lock_beside(target), progress_path(target)):
        side.write_bytes(b"")  # a name the file system takes
        assert len(os.fsencode(side.name)) <= 255
    assert lock_beside(target) != lock_beside(tmp_path / ("n" * (length - 2) + "e"))


def test_exclusive_creation_never_replaces_a_file_created_meanwhile(tmp_path):
    from gridverify.fileio import CreatedMeanwhileError, atomic_path

    target = tmp_path / "d.h5"
    with pytest.raises(CreatedMeanwhileError, match="d.h5"):
        with atomic_path(target, exclusive=True) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"theirs")  # another process, meanwhile
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["d.h5"]
    fresh = tmp_path / "e.h5"
    with atomic_path(fresh, exclusive=True) as tmp:
        tmp.write_bytes(b"new")
    assert fresh.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["d.h5", "e.h5"]
