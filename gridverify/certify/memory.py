"""The memory guard of certification: stages sized to a cap instead of the OS killer.

The cap (``CertifyOptions.memory_cap_mb``, ``--memory-cap``) is what a run may
allocate on top of what the process holds when it starts (the imports, the
loaded case and model); it defaults to a share (:data:`DEFAULT_SHARE`) of the
memory available then (:func:`~gridverify.sysmem.available_mb`: ``MemAvailable``,
within the process's cgroup limits and ``ulimit -v``).
Before each stage the memory the process has allocated is read
(:func:`~gridverify.sysmem.allocated_mb`: anonymous and shared resident memory
once freed heap pages are handed back, so that neither library code nor the
allocator's reserve is counted) and the stage is given what is left:

* **bounds**: the engine's estimate (:mod:`gridverify.bounds.memory`) picks
  the largest row chunk that fits; when none does the stage falls back to a
  cheaper method (alpha-CROWN to CROWN to IBP) and, when even IBP does not
  fit, the rows are left ``open`` with a warning saying why;
* **sampling** and **attack**: their batch shrinks to fit (the attack is
  skipped, with a warning, when not even one objective's starts fit);
* when the run has already used up its cap before building the graph or
  sampling, certification stops with :class:`MemoryCapError` (one line; exit
  status 2 at the command line); a later stage finds what is left (nothing, at
  worst) and falls back or is skipped as above, with its warning;
* branch-and-bound (method ``bab``) caps its domain store (half the cap, split
  among ``--jobs``); the working memory of its searches is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridverify.errors import GridverifyError
from gridverify.sysmem import allocated_mb, available_mb, resident_mb

__all__ = ["DEFAULT_SHARE", "MemoryBudget", "MemoryCapError", "allocated_mb", "available_mb",
           "mb_text", "resident_mb"]

#: share of the available memory a run may use when no cap is given
DEFAULT_SHARE = 0.8
_MB = 2.0**20


def mb_text(mb: float) -> str:
    """``mb`` MB for a message: whole MB, two digits below 1 MB (a cap of 0.0001 MB is
    not "0 MB"), and nothing left is 0, never negative."""
    mb = max(float(mb), 0.0)
    return f"{mb:.2g}" if 0 < mb < 1 else f"{mb:.0f}"


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
        the machine does not say), counted from what this process has allocated now
        (:func:`~gridverify.sysmem.allocated_mb`)."""
        base = allocated_mb()
        if cap_mb is not None:
            return cls(float(cap_mb), "--memory-cap", base)
        avail = available_mb()
        if avail is None:
            return cls(float("inf"), "default", base)
        return cls(DEFAULT_SHARE * avail, "default", base)

    def used(self) -> float:
        """MB the run has allocated so far (:func:`~gridverify.sysmem.allocated_mb` now
        minus at the start)."""
        return max(allocated_mb() - self.base_mb, 0.0)

    def left(self) -> float:
        """MB a stage may still allocate."""
        return self.cap_mb - self.used()

    def check_start(self, what: str) -> None:
        """Raise :class:`MemoryCapError` when the run has used up its cap."""
        used = self.used()
        if used >= self.cap_mb:
            raise MemoryCapError(
                f"memory cap {mb_text(self.cap_mb)} MB ({self.source}) used up before "
                f"{what}: the run already allocated {mb_text(used)} MB; raise --memory-cap"
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
