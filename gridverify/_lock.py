"""Run locks: one run at a time writes a given output.

:func:`run_lock` creates a lock file with ``O_CREAT | O_EXCL`` (so that of two
runs started together exactly one gets it), writes the process id and host
into it, and removes it when the run ends, however it ends (an error, Ctrl-C,
SIGTERM).  A second run is refused with the caller's error class, naming the
output and the holder's pid and host.  A lock left by a run that was killed
outright (SIGKILL, a crash of the machine) names a process that no longer
exists on this host (or a boot of the machine before this one): it is *stale*,
and the next run takes it over, with a warning.  A lock held by a process on
another host (a shared file system) or in another pid namespace of this one (a
container sharing the host name) cannot be checked and is never taken over.
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gridverify._names import sidecar_stem

__all__ = ["lock_beside", "pid_alive", "run_lock"]

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


def lock_beside(target: str | os.PathLike[str]) -> Path:
    """The lock file of an output that is replaced as a whole (a model folder, a
    benchmark folder): ``.NAME.lock`` next to it, so that it outlives the swap.
    Links are followed (every name of one output gets its one lock).  An existing
    folder whose parent cannot be written (``--out .`` in a read-only parent) holds
    its lock itself: ``OUT/.gridverify.lock``."""
    t = Path(os.path.realpath(target))
    if t.is_dir() and not os.access(t.parent, os.W_OK | os.X_OK):
        return t / ".gridverify.lock"
    return t.parent / f".{sidecar_stem(t.name, len('..lock'))}.lock"


def _identity() -> dict[str, object]:
    """What tells this process apart in a lock: pid and host, and where the system
    says them, its pid namespace and the machine's boot (a pid is checked only in
    its own namespace and boot)."""
    me: dict[str, object] = {"pid": os.getpid(), "host": platform.node()}
    try:
        me["pidns"] = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pass
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            me["boot"] = f.read().strip()
    except OSError:
        pass
    return me


def _holder_runs(owner: dict[str, object], me: dict[str, object]) -> bool | None:
    """Whether the process holding a lock runs: ``None`` when this process cannot
    tell (another host, another pid namespace of this boot)."""
    if owner["host"] != me["host"]:
        return None
    if "boot" in owner and "boot" in me and owner["boot"] != me["boot"]:
        return False  # the machine restarted since: every process of then is gone
    if owner.get("pidns", me.get("pidns")) != me.get("pidns"):
        return None
    return pid_alive(int(owner["pid"]))  # type: ignore[call-overload]


def _owner(path: Path, damaged: Callable[[], Exception]) -> dict[str, object] | None:
    """The pid and host a lock file records (None when it is gone); ``damaged()``
    raised when it cannot be read as a lock."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if (not isinstance(data, dict) or not isinstance(data.get("pid"), int)
            or isinstance(data.get("pid"), bool) or not isinstance(data.get("host"), str)):
        raise damaged()
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


def _take_over_stale(path: Path, stale: dict[str, object],
                     damaged: Callable[[], Exception]) -> bool:
    """Remove the stale lock ``stale`` (False when another run moved it first)."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)  # atomic: of two runs taking it over, one moves it
    except FileNotFoundError:
        return False
    try:
        moved = _owner(aside, damaged)
    except Exception:  # noqa: BLE001 - damaged: not the stale lock we read
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
def run_lock(path: str | os.PathLike[str], target: str | os.PathLike[str], name: str,
             error: type[Exception], warn: Callable[[str], None] | None = None
             ) -> Iterator[Path]:
    """Hold the lock file ``path`` (its folder created if missing) in the block, for a
    ``name`` run (``"study"``, ``"train"``...) writing ``target``.

    Raises ``error`` (one line, naming ``target`` and the holder's pid and host)
    when another live process holds it, or when the file is not a lock.  ``warn``
    receives the one-line warning of a stale lock taken over (default:
    :func:`warnings.warn`).  Yields the lock file's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def damaged() -> Exception:
        return error(f"{target}: its lock {path} is not a {name} lock (damaged, or being "
                     f"written); if no {name} run is writing {target}, remove the file")

    me = _identity()
    for _ in range(_TRIES):
        if _create(path, me):
            break
        owner = _owner(path, damaged)
        if owner is None:  # released meanwhile
            continue
        pid, where = int(owner["pid"]), str(owner["host"])  # type: ignore[call-overload]
        runs = _holder_runs(owner, me)
        if runs is None:
            raise error(f"{target}: another {name} run (pid {pid} on host {where}, which this "
                        f"process cannot check) holds its lock {path}; if no such run is "
                        "writing it, remove the file, or give another --out")
        if runs:
            raise error(f"{target}: another {name} run (pid {pid} on host {where}) is "
                        f"writing it (lock {path}); wait for it to end, or give another --out")
        if _take_over_stale(path, owner, damaged):
            message = (f"{target}: took over the lock of a {name} run that is gone (pid {pid} "
                       f"on host {where} no longer exists)")
            if warn is None:
                warnings.warn(message, stacklevel=3)
            else:
                warn(message)
    else:
        raise error(f"{target}: could not take the lock {path} (other {name} runs keep "
                    "taking it); try again")
    try:
        yield path
    finally:
        try:
            if _owner(path, damaged) == me:  # still ours (not removed and retaken meanwhile)
                path.unlink(missing_ok=True)
        except Exception:  # noqa: BLE001, S110 - damaged meanwhile: not ours to remove
            pass
