"""Pool workers that die with their parent.

A pool worker started by ``study run`` or ``dataset make`` must not outlive the
command: when the parent is killed (even with SIGKILL, which runs no cleanup),
its workers must go too.  :func:`die_with_parent`, called first in a worker's
initializer, asks Linux for a parent-death signal (``PR_SET_PDEATHSIG``) and
otherwise (other systems, or no ``prctl``) starts a watchdog thread that exits
the worker once its parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any

__all__ = ["die_with_parent", "spawn_context", "terminate_pool"]

_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (the process that started it) ends.

    Call it first in a pool initializer, with the parent's ``os.getpid()`` passed
    through ``initargs``: a parent that died before this call is caught by the
    same check (the worker's parent is then no longer ``parent_pid``).
    """
    if not _set_pdeathsig():
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True,
                         name="gridverify-parent-watch").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def terminate_pool(pool: Any) -> None:
    """Terminate the worker processes a ``ProcessPoolExecutor`` started (Ctrl-C or an
    error in the parent: do not wait for the jobs they run)."""
    procs = getattr(pool, "_processes", None) or {}  # no public API before Python 3.14
    for proc in list(procs.values()):
        if proc.is_alive():
            proc.terminate()


#: the warning multiprocessing's resource tracker prints at exit for a lock a
#: terminated worker created and could not release (pyomo creates one at import):
#: the tracker releases it itself, so after a Ctrl-C it is noise, not a leak
_TRACKER_LEAK_WARNING = "ignore:resource_tracker:UserWarning"


def spawn_context() -> Any:
    """The ``spawn`` multiprocessing context for worker pools.

    Starts multiprocessing's resource tracker (once per process) with a warning
    filter that hides its "leaked semaphore" warning for the locks of workers
    :func:`terminate_pool` ended, so that an interrupted command ends with its one
    line.  The tracker takes its filters from this process's ``-W`` options: the
    filter is added for its start only (workers and later children keep this
    process's own).  A tracker already running is left as it is.
    """
    import multiprocessing
    from multiprocessing import resource_tracker

    added = _TRACKER_LEAK_WARNING not in sys.warnoptions
    if added:
        sys.warnoptions.append(_TRACKER_LEAK_WARNING)
    try:
        resource_tracker.ensure_running()
    finally:
        if added:
            sys.warnoptions.remove(_TRACKER_LEAK_WARNING)
    return multiprocessing.get_context("spawn")
