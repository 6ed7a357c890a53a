"""Atomic file writing: a temporary file in the target's folder, then ``os.replace``.

A reader of the target path sees either the old file or the complete new one,
never a half-written file; on failure the temporary file is removed and the
target is left as it was.

The temporary file is made by :func:`tempfile.mkstemp` (named
``.NAME.HOST-PID.XXXXXXXX.tmp`` next to the target) and given ``mode`` before
the contents are written; ``mode=None`` gives what a plain ``open(path, "w")``
would create (``0o666`` less the process umask).  ``fsync=True`` flushes the
contents to disk before the replace.  A process killed outright (SIGKILL, power
loss) leaves its temporary file behind: the next write of the same target from
this machine removes those of processes that no longer run here, once unchanged
for an hour.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridverify._lock import pid_alive

__all__ = [
    "CreatedMeanwhileError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_path",
    "default_file_mode",
    "is_writable",
    "process_umask",
    "require_file",
]


def process_umask() -> int:
    """The process umask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~process_umask()


def _fsync_path(path: str | os.PathLike[str]) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    *,
    mode: int | None = None,
    fsync: bool = True,
    mkdir: bool = True,
    exclusive: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; ``os.replace`` it onto ``path`` on success
    (onto the file a symbolic link ``path`` leads to, the link kept).  ``exclusive``:
    create ``path``, never replace it: :class:`CreatedMeanwhileError` (the
    temporary removed) when it exists by then, as when another process created it.

    The body writes the file at the yielded path (any writer that opens it by
    name: ``h5py.File(tmp, "w")``, ``onnx.save``...).  When the body raises,
    the temporary file is removed and the exception propagates.  ``mkdir``
    creates the missing parent folders first; ``mode`` and ``fsync`` as in the
    module docstring.
    """
    target = Path(path)
    if target.is_symlink():  # written through, as ``>`` does: replacing it cut the link
        target = Path(os.path.realpath(target))  # (``--out /dev/stdout`` replaced that)
    if target.is_dir():  # refused before anything is written (not a temp file's name)
        raise IsADirectoryError(errno.EISDIR, "Is a directory (give a file path)", str(target))
    folder = target.parent
    if mkdir:
        folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(folder, target.name)
    prefix = f".{_temp_stem(target.name)}.{_HOST}-{os.getpid()}."
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as exc:  # the folder refuses a new file: name it, not a temp file's name
        raise OSError(exc.errno, exc.strerror, str(folder)) from None
    os.close(fd)
    try:
        os.chmod(tmp, default_file_mode() if mode is None else mode)
        yield Path(tmp)
        if fsync:
            _fsync_path(tmp)
        if exclusive:
            _link_new(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        written = _write_error(exc, tmp)
        if written is not None:  # name the file being written, not its temporary name
            raise OSError(written, os.strerror(written), str(target)) from None
        raise


#: this machine's name as temporary files carry it (letters, digits, ``_``)
_HOST = re.sub(r"[^A-Za-z0-9]", "_", platform.node())[:64] or "host"


def _temp_stem(name: str) -> str:
    """``NAME`` as it stands in ``.NAME.HOST-PID.XXXXXXXX.tmp`` (a pid of up to 10
    digits; mkstemp's 8 characters): shortened where that would pass 255 bytes."""
    from gridverify._names import sidecar_stem

    return sidecar_stem(name, len(os.fsencode(f"..{_HOST}-.")) + 10 + 8 + len(".tmp"))


#: seconds without a change after which a dead process's temporary file is stale: a
#: process of another pid namespace with this host name (a container) may look dead
#: while it writes, and a writer changes its file far more often than that
_STALE_AFTER_S = 3600.0


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Remove the temporary files of ``name`` that processes of this machine which
    no longer run left in ``folder`` (killed while writing), unchanged for
    ``_STALE_AFTER_S``.  Those of other machines (a shared folder), of running
    processes and recent ones stay."""
    import time

    prefix = f".{_temp_stem(name)}.{_HOST}-"
    try:
        entries = [e for e in os.listdir(folder) if e.startswith(prefix) and e.endswith(".tmp")]
    except OSError:
        return
    for entry in entries:
        pid = entry[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        try:
            if time.time() - os.stat(folder / entry).st_mtime > _STALE_AFTER_S:
                os.unlink(folder / entry)
        except OSError:
            pass


class CreatedMeanwhileError(FileExistsError):
    """An exclusive :func:`atomic_path` found its target created by then (by another
    process: of two creating it, one wins)."""


def _link_new(tmp: str, target: Path) -> None:
    """Give ``tmp`` the new name ``target`` (:class:`CreatedMeanwhileError` when it
    exists) and drop the temporary name."""
    def exists() -> CreatedMeanwhileError:
        return CreatedMeanwhileError(errno.EEXIST, "File exists (created meanwhile)",
                                     str(target))

    try:
        os.link(tmp, target)
    except FileExistsError:
        raise exists() from None
    except OSError:  # a file system without hard links: the narrow check-then-replace
        if target.exists():
            raise exists() from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _write_error(exc: BaseException, tmp: str) -> int | None:
    """The errno of a failed write into ``tmp`` (a full disk...) that does not name
    the file: an ``OSError`` without a file name or naming ``tmp``, or the
    ``RuntimeError`` with which h5py reports HDF5's failed writes; else ``None``."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
        return int(exc.errno)
    if isinstance(exc, RuntimeError):  # h5py: "... file write failed: ... errno = 28, ..."
        m = re.search(r"write failed.*?errno = (\d+)", str(exc))
        if m is not None:
            return int(m.group(1))
    return None


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int | None = None,
    fsync: bool = True,
    mkdir: bool = True,
) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, mode=mode, fsync=fsync, mkdir=mkdir) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    mode: int | None = None,
    fsync: bool = True,
    mkdir: bool = True,
) -> None:
    """Write ``text`` (encoded as ``encoding``) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode, fsync=fsync, mkdir=mkdir)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = None,
    mode: int | None = None,
    fsync: bool = True,
    mkdir: bool = True,
) -> None:
    """Strict JSON (``NaN``/``inf`` raise ``ValueError``) and a newline, written atomically.

    ``indent=None`` gives the compact form (no spaces after ``,`` and ``:``).
    """
    text = json.dumps(obj, indent=indent, allow_nan=False,
                      separators=(",", ":") if indent is None else None)
    atomic_write_text(path, text + "\n", mode=mode, fsync=fsync, mkdir=mkdir)


def require_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path when it is an existing file; else the OS error the CLI
    reports in one line (``file not found: X``, ``X: Is a directory``, ``X: not a
    regular file`` for a device or pipe, ``X: Y is not a folder`` for a path through
    the regular file ``Y``)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(p))
    if p.exists() and not p.is_file():
        raise OSError(errno.EINVAL, "not a regular file", str(p))
    if not p.is_file():
        blocker = file_on_path(p)
        if blocker is not None:
            raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is not a folder", str(p))
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(p))
    return p


def file_on_path(path: str | os.PathLike[str]) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder (``a.txt`` of
    ``a.txt/b.m``: the path cannot exist), else None."""
    probe = Path(path).parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe if probe.exists() and not probe.is_dir() else None


def is_writable(path: str | os.PathLike[str]) -> bool:
    """Whether an existing file or folder may be written (replaced): the process has
    write access and its owner's write permission bit is set.  The bit counts for
    root too (to whom ``os.access`` says yes to everything): ``chmod a-w`` marks a
    file or folder as not to be replaced."""
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o200)


def check_output_path(path: str | os.PathLike[str], what: str, *, folder: bool = False) -> Path:
    """Check before any computation that ``path`` can be written; return it as a ``Path``.

    ``what`` names the path in messages (a flag such as ``--out``).  A file
    target (``folder=False``) must not be a folder or a special file, and an
    existing one must be writable (an existing file without write permission is
    not replaced).  A folder target (``folder=True``) must be a folder if it
    exists, and a writable one (:func:`is_writable`; a folder without write
    permission is not replaced or written into).  Missing parent folders are
    fine (they are created on writing) as long as the nearest existing one is a
    writable folder; when it exists, a temporary file is created and removed in
    it to be sure.  Raises
    :class:`~gridverify.errors.OutputPathError` naming ``what`` and the path.
    """
    from gridverify.errors import OutputPathError

    target = Path(path)
    if str(path) == "":
        raise OutputPathError(f"{what}: empty path")
    if target.exists():
        if folder and not target.is_dir():
            raise OutputPathError(f"{what} {target}: exists and is not a folder")
        if not folder:
            if target.is_dir():
                raise OutputPathError(f"{what} {target}: is a folder (give a file path)")
            if not target.is_file():
                raise OutputPathError(f"{what} {target}: exists and is not a regular file")
        if not is_writable(target):
            raise OutputPathError(f"{what} {target}: exists and is not writable "
                                  "(not replaced)")
    parent = target if folder and target.is_dir() else target.parent
    probe = parent
    while not probe.exists():
        if probe.is_symlink():
            raise OutputPathError(f"{what} {target}: {probe} is a dangling link")
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"{what} {target}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {target}: folder {probe} is not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".gridverify-check.", dir=probe)
    except OSError as exc:
        raise OutputPathError(f"{what} {target}: cannot write in {probe} "
                        f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)
    return target


def json_loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` whose every failure on bad text is a ``json.JSONDecodeError``:
    nesting deeper than Python's recursion (``[[[...``) and an integer of more digits
    than Python converts (a ``RecursionError`` and a ``ValueError`` from ``json``
    itself) become one too, so that readers of user files that catch
    ``JSONDecodeError`` report them in one line."""
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", _as_text(text), 0) from None
    except ValueError as exc:  # json's own (a hook's errors are the caller's types)
        raise json.JSONDecodeError(str(exc).split("; ")[0], _as_text(text), 0) from None


def toml_error_message(source: str | os.PathLike[str], text: str, exc: ValueError) -> str:
    """One line for a ``tomllib.TOMLDecodeError`` of ``text`` read from ``source``:
    ``source:LINE: invalid TOML (reason, column C): `the line```, and for a key given
    twice the key's path (``key study.samples given twice``), which tomllib does
    not name."""
    msg = str(exc)
    m = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", msg)
    if m is None:
        return f"{source}: invalid TOML ({msg})"
    reason, line_no, col = m.group(1), int(m.group(2)), m.group(3)
    lines = text.splitlines()
    line = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
    where = f"{source}:{line_no}: invalid TOML"
    key = re.match(r"^([A-Za-z0-9_\-.\"' ]+?)\s*=", line)
    if reason == "Cannot overwrite a value" and key is not None:
        table = ""
        for prev in reversed(lines[:line_no - 1]):  # the table the line is in
            head = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", prev)
            if head is not None:
                table = head.group(1) + "."
                break
        return f"{where}: key {table}{key.group(1).strip()} given twice"
    shown = f": `{line[:80]}`" if line else ""
    return f"{where} ({reason[:1].lower() + reason[1:]}, column {col}){shown}"


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", "replace")
