"""The lock of a study output folder: one ``study run`` at a time writes into it.

:func:`study_lock` creates ``OUT/study.lock`` with ``O_CREAT | O_EXCL`` (so that
of two runs started together exactly one gets it), writes the process id and
host into it, and removes it when the run ends, however it ends (an error,
Ctrl-C, SIGTERM).  A second run into the same folder is refused with
:class:`~gridverify.errors.StudyError` naming the folder and the holder's pid.
A lock left by a run that was killed outright (SIGKILL, a crash of the
machine) names a process that no longer exists on this host: it is *stale*,
and the next run takes it over, with a warning.  A lock held by a process on
another host (a shared file system) cannot be checked and is never taken over.
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gridverify.errors import StudyError
from gridverify.fileio import json_loads

__all__ = ["LOCK_NAME", "pid_alive", "study_lock"]

LOCK_NAME = "study.lock"
_TRIES = 5  # takeovers of stale locks raced by other runs before giving up


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    except OverflowError:
        return False
    return True


def _owner(path: Path) -> dict[str, object] | None:
    """The pid and host a lock file records (None when it is gone); StudyError when it
    cannot be read as a lock."""
    try:
        data = json_loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if (not isinstance(data, dict) or not isinstance(data.get("pid"), int)
            or isinstance(data.get("pid"), bool) or not isinstance(data.get("host"), str)):
        raise StudyError(f"{path.parent}: its lock {path} is not a study lock (damaged, or "
                         "being written); if no `study run` is running into this folder, "
                         "remove the file")
    return data


def _create(path: Path, me: dict[str, object]) -> bool:
    """Create the lock file holding ``me`` (False when it exists)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True


def _take_over_stale(path: Path, stale: dict[str, object]) -> bool:
    """Remove the stale lock ``stale`` (False when another run moved it first)."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)  # atomic: of two runs taking it over, one moves it
    except FileNotFoundError:
        return False
    try:
        moved = _owner(aside)
    except StudyError:
        moved = None
    if moved != stale:  # a fresh lock of a run that took it over just before: put it back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


@contextmanager
def study_lock(folder: str | os.PathLike[str],
               warn: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the lock of the study folder ``folder`` (created if missing) in the block.

    Raises :class:`~gridverify.errors.StudyError` (one line, naming the folder and
    the holder's pid and host) when another live process holds it.  ``warn``
    receives the one-line warning of a stale lock taken over (default:
    :func:`warnings.warn`).  Yields the lock file's path.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    host = platform.node()
    me: dict[str, object] = {"pid": os.getpid(), "host": host}
    for _ in range(_TRIES):
        if _create(path, me):
            break
        owner = _owner(path)
        if owner is None:  # released meanwhile
            continue
        pid, where = int(owner["pid"]), str(owner["host"])  # type: ignore[call-overload]
        if where != host or pid_alive(pid):
            raise StudyError(f"{root}: another study run (pid {pid} on host {where}) is "
                             f"writing into this folder (lock {path}); wait for it to end, "
                             "or give another --out")
        if _take_over_stale(path, owner):
            message = (f"{root}: took over the lock of a study run that is gone (pid {pid} "
                       f"on host {where} no longer exists)")
            if warn is None:
                warnings.warn(message, stacklevel=3)
            else:
                warn(message)
    else:
        raise StudyError(f"{root}: could not take the lock {path} (other study runs keep "
                         "taking it); try again")
    try:
        yield path
    finally:
        try:
            if _owner(path) == me:  # still ours (not removed and retaken meanwhile)
                path.unlink(missing_ok=True)
        except StudyError:
            pass
