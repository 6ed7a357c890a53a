"""The lock of a study output folder: one ``study run`` at a time writes into it.

``OUT/study.lock`` holds the running study's process id and host
(:func:`gridverify._lock.run_lock`: created exclusively, removed however the run
ends, a stale one of a killed run taken over with a warning, one of another
host never).  A second run into the same folder is refused with
:class:`~gridverify.errors.StudyError` naming the folder and the holder's pid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from gridverify._lock import pid_alive, run_lock
from gridverify.errors import StudyError

__all__ = ["LOCK_NAME", "pid_alive", "study_lock"]

LOCK_NAME = "study.lock"


def study_lock(folder: str | os.PathLike[str],
               warn: Callable[[str], None] | None = None) -> AbstractContextManager[Path]:
    """Hold the lock of the study folder ``folder`` (created if missing) in the block.

    Raises :class:`~gridverify.errors.StudyError` (one line, naming the folder and
    the holder's pid and host) when another live process holds it.  ``warn``
    receives the one-line warning of a stale lock taken over (default:
    :func:`warnings.warn`).  Yields the lock file's path.
    """
    return run_lock(Path(folder) / LOCK_NAME, folder, "study", StudyError, warn)
