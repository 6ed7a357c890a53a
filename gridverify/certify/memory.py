"""The memory guard of certification: stages sized to a cap instead of the OS killer.

The cap (``CertifyOptions.memory_cap_mb``, ``--memory-cap``) is what a run may
allocate on top of what the process holds when it starts (the imports, the
loaded case and model); it defaults to a share (:data:`DEFAULT_SHARE`) of the
memory the machine has available then (``MemAvailable`` of ``/proc/meminfo``).
Before each stage the process's resident memory is read and the stage is given
what is left:

* **bounds**: the engine's estimate (:mod:`gridverify.bounds.memory`) picks
  the largest row chunk that fits; when none does the stage falls back to a
  cheaper method (alpha-CROWN to CROWN to IBP) and, when even IBP does not
  fit, the rows are left ``open`` with a warning saying why;
* **sampling** and **attack**: their batch shrinks to fit (the attack is
  skipped, with a warning, when not even one objective's starts fit);
* when the run has already used up its cap before a stage, certification stops
  with :class:`MemoryCapError` (one line; exit status 2 at the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridverify.errors import GridverifyError
from gridverify.sysmem import available_mb, resident_mb

__all__ = ["DEFAULT_SHARE", "MemoryBudget", "MemoryCapError", "available_mb", "resident_mb"]

#: share of the available memory a run may use when no cap is given
DEFAULT_SHARE = 0.8
_MB = 2.0**20


class MemoryCapError(GridverifyError):
    """A run cannot proceed within its memory cap."""


@dataclass(frozen=True)
class MemoryBudget:
    """A run's memory cap: ``cap_mb`` MB on top of the ``base_mb`` the process held at the
    start, and where the cap came from."""

    cap_mb: float
    source: str  # "--memory-cap" or "default"
    base_mb: float = 0.0

    @classmethod
    def resolve(cls, cap_mb: float | None) -> MemoryBudget:
        """The given cap, or :data:`DEFAULT_SHARE` of the available memory (infinite when
        the machine does not say), counted from this process's resident memory now."""
        base = resident_mb()
        if cap_mb is not None:
            return cls(float(cap_mb), "--memory-cap", base)
        avail = available_mb()
        if avail is None:
            return cls(float("inf"), "default", base)
        return cls(DEFAULT_SHARE * avail, "default", base)

    def used(self) -> float:
        """MB the run has allocated so far (resident now minus the start)."""
        return max(resident_mb() - self.base_mb, 0.0)

    def left(self) -> float:
        """MB a stage may still allocate."""
        return self.cap_mb - self.used()

    def check_start(self, what: str) -> None:
        """Raise :class:`MemoryCapError` when the run has used up its cap."""
        used = self.used()
        if used >= self.cap_mb:
            raise MemoryCapError(
                f"memory cap {self.cap_mb:.0f} MB ({self.source}) used up before {what}: "
                f"the run already allocated {used:.0f} MB; raise --memory-cap"
            )

    def batch(self, bytes_per_item: float, largest: int, smallest: int = 1) -> int:
        """The largest batch (at most ``largest``) whose ``bytes_per_item`` fit what is left;
        0 when not even ``smallest`` items fit."""
        left = self.left() * _MB
        n = int(left // max(bytes_per_item, 1.0)) if left > 0 else 0
        n = min(largest, n)
        return n if n >= smallest else 0


def sample_bytes(samples: int, n_inputs: int) -> int:
    """Bytes the sampling stage holds for ``samples`` random points of ``n_inputs``
    float64 entries: drawn, stacked with the other starts, mapped to loads (three
    copies)."""
    return 3 * 8 * int(samples) * int(n_inputs)
