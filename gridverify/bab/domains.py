"""The domain store: open domains on the host, best (highest upper bound) first.

Each domain is a row of a few tensors: the input box ``lo``/``hi`` ``(n_in,)``,
the split-node intervals ``ilo``/``ihi`` ``(F,)``, its upper bound ``ub`` and
its pending branching decision (``kind``, ``index``, ``point``).  Rows are kept
in a list of chunks (pushes append a chunk, pops concatenate lazily), so a
round costs time linear in the store size, not quadratic.

The store has a memory cap (``memory_mb``): pushes beyond it are refused and
the largest upper bound among refused domains is remembered in
:attr:`DomainStore.lost_upper`, so the search can still report a sound bound.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DomainStore"]

_BASE_FIELDS = ("lo", "hi", "ilo", "ihi", "ub", "kind", "index", "point")


class DomainStore:
    """Open domains (host tensors) with a cap on their memory."""

    def __init__(self, n_in: int, n_flat: int, memory_mb: float, warm_width: int = 0) -> None:
        self.n_in = n_in
        self.n_flat = n_flat
        #: fields of a row; ``warm`` ``(warm_width,)`` float32 holds the domain's split
        #: multipliers, the warm start of its children's bounding
        self.fields = _BASE_FIELDS + (("warm",) if warm_width else ())
        #: bytes per stored domain (float64 boxes and intervals, decision, bound, warm state)
        self.row_bytes = 8 * (2 * n_in + 2 * n_flat + 1) + 8 + 8 + 8 + 4 * warm_width
        self.capacity = max(1, int(memory_mb * 2**20 // self.row_bytes))
        self._chunks: list[dict[str, torch.Tensor]] = []
        self._n = 0
        #: largest upper bound of a domain refused for lack of memory (-inf: none)
        self.lost_upper = -math.inf
        self.refused = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Memory of the stored domains."""
        return self._n * self.row_bytes

    @property
    def full(self) -> bool:
        """True once a push was refused for lack of memory."""
        return self.refused > 0

    def _merged(self) -> dict[str, torch.Tensor]:
        if len(self._chunks) > 1:
            self._chunks = [{k: torch.cat([c[k] for c in self._chunks]) for k in self.fields}]
        return self._chunks[0]

    def push(self, **rows: torch.Tensor) -> int:
        """Store domains (fields ``lo hi ilo ihi ub kind index point`` [``warm``]);
        returns how many fit."""
        rows = {k: rows[k].detach().to("cpu") for k in self.fields}
        n = rows["ub"].shape[0]
        room = max(0, self.capacity - self._n)
        if n > room:
            # any choice is sound (refused bounds are remembered); keep the highest
            order = torch.argsort(rows["ub"], descending=True)
            keep, drop = order[:room], order[room:]
            self.lost_upper = max(self.lost_upper, float(rows["ub"][drop].max()))
            self.refused += int(drop.numel())
            rows = {k: v[keep] for k, v in rows.items()}
            n = room
        if n:
            self._chunks.append(rows)
            self._n += n
        return n

    def max_upper(self) -> float:
        """Largest upper bound of a stored domain (``-inf`` when empty)."""
        if not self._n:
            return -math.inf
        return max(float(c["ub"].max()) for c in self._chunks if c["ub"].numel())

    def pop(self, k: int) -> dict[str, torch.Tensor]:
        """Remove and return the ``k`` domains with the highest upper bounds."""
        if not self._n:
            raise IndexError("pop from an empty domain store")
        d = self._merged()
        k = min(k, self._n)
        top = torch.topk(d["ub"], k).indices
        mask = torch.ones(self._n, dtype=torch.bool)
        mask[top] = False
        out = {f: d[f][top] for f in self.fields}
        self._chunks = [{f: d[f][mask] for f in self.fields}]
        self._n -= k
        return out

    def prune(self, level: float) -> tuple[int, float]:
        """Drop domains with ``ub <= level``; returns (count, their largest bound)."""
        if not self._n:
            return 0, -math.inf
        d = self._merged()
        drop = d["ub"] <= level
        n = int(drop.sum())
        if not n:
            return 0, -math.inf
        worst = float(d["ub"][drop].max())
        self._chunks = [{f: d[f][~drop] for f in self.fields}]
        self._n -= n
        return n, worst

    def peek_boxes(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input boxes of the ``k`` best domains (not removed)."""
        d = self._merged()
        top = torch.topk(d["ub"], min(k, self._n)).indices
        return d["lo"][top], d["hi"][top]
