"""Indexed row selections: one-hot specs kept as index vectors.

A spec that reads single output entries (``spec[r] = e_{index[r]}``, the usual
"bound these violation rows" question) is a one-hot matrix of ``m x n_out``
float64 entries when dense: quadratic in the graph when ``m`` and ``n_out``
both grow with it.  :class:`RowSelection` stores the ``m`` indices instead, and
the engine only ever densifies a chunk of rows at a time:

* the interval (IBP) answer is a gather of the output bounds;
* the relevance map (:mod:`gridverify.bounds.relevance`) reads the set of
  indices;
* CROWN's start matrices are :class:`OneHotRows`, which hand out dense one-hot
  blocks of at most the engine's row chunk (:meth:`Engine.row_chunk`, sized
  from ``BoundOptions.memory_mb``) when a backward walk slices them.

The bounds are the same as with the dense matrix, which ``compute_bounds``
still accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gridverify.errors import GridverifyError

__all__ = ["OneHotRows", "RowSelection", "one_hot_start"]


@dataclass(frozen=True, eq=False)
class RowSelection:
    """The spec whose row ``r`` is the unit vector ``e_{index[r]}`` over ``n_out`` outputs.

    ``index``: ``(m,)`` int64 entries in ``[0, n_out)`` (repeats allowed);
    ``n_out``: the graph's output size (all outputs concatenated).
    """

    index: torch.Tensor
    n_out: int

    def __post_init__(self) -> None:
        idx = torch.as_tensor(self.index)
        if idx.dim() != 1 or idx.is_floating_point() or idx.dtype == torch.bool:
            raise GridverifyError("row selection: index must be a 1-D integer vector")
        idx = idx.to(device="cpu", dtype=torch.int64)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n_out):
            raise GridverifyError(f"row selection: index out of range [0, {self.n_out})")
        object.__setattr__(self, "index", idx)

    @classmethod
    def of(cls, rows: Any, n_out: int) -> RowSelection:
        """A selection from any integer sequence or array ``rows``."""
        return cls(torch.as_tensor(rows, dtype=torch.int64).reshape(-1), int(n_out))

    @property
    def m(self) -> int:
        """Number of selected rows."""
        return int(self.index.numel())

    def used(self) -> torch.Tensor:
        """Boolean mask ``(n_out,)`` of the outputs some row reads."""
        mask = torch.zeros(self.n_out, dtype=torch.bool)
        mask[self.index] = True
        return mask

    def dense(self, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> torch.Tensor:
        """The one-hot ``(m, n_out)`` matrix (for small selections and tests)."""
        out = torch.zeros(self.m, self.n_out, dtype=dtype, device=device)
        out[torch.arange(self.m, device=out.device), self.index.to(out.device)] = 1.0
        return out


class OneHotRows:
    """A ``(m, size)`` start matrix with one 1 per row, densified a row block at a time.

    Row ``r`` has its 1 at column ``cols[r]`` (no entry where ``cols[r] < 0``).
    Backward walks slice start matrices as ``a[..., r0:r1, :]``; that slice is
    returned dense, so at most one chunk of rows is ever materialized.
    """

    def __init__(self, cols: torch.Tensor, size: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.cols = cols.to(device=device, dtype=torch.int64)
        self.size = int(size)
        self.dtype = dtype
        self.device = device

    @property
    def shape(self) -> torch.Size:
        """``(m, size)``."""
        return torch.Size((int(self.cols.numel()), self.size))

    def dim(self) -> int:
        """Always 2 (batch independent)."""
        return 2

    def block(self, r0: int, r1: int) -> torch.Tensor:
        """Rows ``r0:r1`` as a dense tensor."""
        cols = self.cols[r0:r1]
        out = torch.zeros(cols.numel(), self.size, dtype=self.dtype, device=self.device)
        hit = torch.nonzero(cols >= 0).reshape(-1)
        out[hit, cols[hit]] = 1.0
        return out

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, tuple) and key and key[0] is Ellipsis:
            key = key[1:]
        if not isinstance(key, tuple):
            key = (key,)
        rows = key[0]
        if not isinstance(rows, slice) or any(k != slice(None) for k in key[1:]):
            raise TypeError("OneHotRows supports row slices only")
        r0, r1, step = rows.indices(self.shape[0])
        if step != 1:
            raise TypeError("OneHotRows supports contiguous row slices only")
        return self.block(r0, r1)


def one_hot_start(cols: torch.Tensor, size: int, chunk: int, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor | OneHotRows:
    """Start matrix with row ``r`` the unit vector at ``cols[r]`` (none where negative).

    Dense when its rows fit one chunk (``chunk`` rows: the walks then take it
    whole), else a lazy :class:`OneHotRows` the walks slice chunk by chunk.
    """
    lazy = OneHotRows(cols, size, dtype, device)
    return lazy.block(0, lazy.shape[0]) if lazy.shape[0] <= chunk else lazy


def selection_starts(engine: Any, sel: RowSelection) -> tuple[dict[int, Any], int]:
    """CROWN start matrices at the output nodes of ``engine``'s graph for ``sel``."""
    g = engine.graph
    if len(set(g.outputs)) != len(g.outputs):  # a node output twice: sum dense parts
        return engine.output_starts(sel.dense(engine.dtype, engine.device))
    chunk = engine.row_chunk()
    idx = sel.index.to(engine.device)
    starts: dict[int, Any] = {}
    off = 0
    for o in g.outputs:
        sz = g.nodes[o].size
        inside = (idx >= off) & (idx < off + sz)
        cols = torch.where(inside, idx - off, torch.full_like(idx, -1))
        starts[o] = one_hot_start(cols, sz, chunk, engine.dtype, engine.device)
        off += sz
    return starts, sel.m
