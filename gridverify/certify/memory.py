"""The memory guard of certification: stages sized to a cap instead of the OS killer.

The cap (``CertifyOptions.memory_cap_mb``, ``--memory-cap``) defaults to a
share (:data:`DEFAULT_SHARE`) of the memory the machine has available when the
run starts (``MemAvailable`` of ``/proc/meminfo``).  Before each stage the
process's resident memory is read and the stage is given what is left:

* **bounds**: the engine's estimate (:mod:`gridverify.bounds.memory`) picks
  the largest row chunk that fits; when none does the stage falls back to a
  cheaper method (alpha-CROWN to CROWN to IBP) and, when even IBP does not
  fit, the rows are left ``open`` with a warning saying why;
* **sampling** and **attack**: their batch shrinks to fit (the attack is
  skipped, with a warning, when not even one objective's starts fit);
* when the process already holds more than the cap, certification stops with
  :class:`MemoryCapError` (one line; exit status 2 at the command line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gridverify.errors import GridverifyError

__all__ = ["DEFAULT_SHARE", "MemoryBudget", "MemoryCapError", "available_mb", "resident_mb"]

#: share of the available memory a run may use when no cap is given
DEFAULT_SHARE = 0.8
_MB = 2.0**20


class MemoryCapError(GridverifyError):
    """A run cannot proceed within its memory cap."""


def _meminfo_mb(key: str) -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def available_mb() -> float | None:
    """Memory the machine has available now (MB), or ``None`` when unknown."""
    mb = _meminfo_mb("MemAvailable")
    if mb is not None:
        return mb
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / _MB
    except (ValueError, OSError, AttributeError):
        return None


def resident_mb() -> float:
    """Resident memory of this process (MB); 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass(frozen=True)
class MemoryBudget:
    """A run's memory cap (MB, for the whole process) and where it came from."""

    cap_mb: float
    source: str  # "--memory-cap" or "default"

    @classmethod
    def resolve(cls, cap_mb: float | None) -> MemoryBudget:
        """The given cap, or :data:`DEFAULT_SHARE` of the available memory plus what this
        process already holds (infinite when the machine does not say)."""
        if cap_mb is not None:
            return cls(float(cap_mb), "--memory-cap")
        avail = available_mb()
        if avail is None:
            return cls(float("inf"), "default")
        return cls(DEFAULT_SHARE * avail + resident_mb(), "default")

    def left(self) -> float:
        """MB a stage may still allocate (the cap minus the resident memory now)."""
        return self.cap_mb - resident_mb()

    def check_start(self, what: str) -> None:
        """Raise :class:`MemoryCapError` when the process already holds the cap."""
        rss = resident_mb()
        if rss >= self.cap_mb:
            raise MemoryCapError(
                f"memory cap {self.cap_mb:.0f} MB ({self.source}) reached before {what}: "
                f"gridverify already holds {rss:.0f} MB; raise --memory-cap"
            )

    def batch(self, bytes_per_item: float, largest: int, smallest: int = 1) -> int:
        """The largest batch (at most ``largest``) whose ``bytes_per_item`` fit what is left;
        0 when not even ``smallest`` items fit."""
        left = self.left() * _MB
        n = int(left // max(bytes_per_item, 1.0)) if left > 0 else 0
        n = min(largest, n)
        return n if n >= smallest else 0
