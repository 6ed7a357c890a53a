"""Memory estimates of the bound engine's stages, and the row chunk that fits a cap.

The engine's working memory is set by the graph and by the row chunk of its
backward walks (:meth:`~gridverify.bounds.crown.Engine.row_chunk`, sized from
``BoundOptions.memory_mb``):

* IBP keeps two ``(B, size)`` bounds per node (plus temporaries);
* CROWN adds the relaxations of the nonlinear nodes and the coefficient
  tensors of one chunk of rows, a few ``(chunk, width)`` tensors alive at once
  (``memory_mb`` caps one of them);
* alpha-CROWN also keeps the autograd graph of one chunk: a ``(chunk, size)``
  tensor per node on the walk, and four alpha tensors per nonlinear entry.

:func:`estimate_mb` turns that into megabytes (an upper estimate, calibrated on
the physics graphs in ``benchmarks/scaling.py``); :func:`fit_options` picks the
largest ``memory_mb`` whose estimate fits a cap, or says none does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gridverify.bounds.options import BoundOptions
from gridverify.ir.graph import Graph
from gridverify.ir.ops import OPS

__all__ = ["MemoryEstimate", "estimate_mb", "fit_options"]

_MB = 2.0**20
#: coefficient tensors of one chunk alive at once, in units of ``memory_mb``
_CROWN_FACTOR = 3.0
#: bytes kept per entry of a node for IBP (two bounds, temporaries)
_IBP_BYTES = 48.0
#: bytes per nonlinear entry for a relaxation (slopes and offsets of both lines)
_RELAX_BYTES = 96.0
#: bytes per nonlinear entry for alpha-CROWN's parameters (both streams, Adam state, grads)
_ALPHA_BYTES = 256.0


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated megabytes of one bound stage: ``fixed + per_chunk_mb * chunk``.

    ``chunk`` is ``min(memory_mb, full_mb)``: a walk never holds more rows than
    it has (``full_mb``: the ``memory_mb`` an unchunked walk would take).
    """

    fixed: float
    per_chunk_mb: float
    memory_mb: float
    full_mb: float = 0.0

    def at(self, memory_mb: float) -> float:
        """The estimate with chunks capped at ``memory_mb``."""
        return self.fixed + self.per_chunk_mb * min(memory_mb, self.full_mb)

    @property
    def total(self) -> float:
        """The estimate at ``memory_mb``."""
        return self.at(self.memory_mb)


def _sizes(graph: Graph) -> tuple[int, int, int]:
    total = sum(n.size for n in graph.nodes)
    width = max([n.size for n in graph.nodes] + [1])
    nonlinear = sum(n.size for n in graph.nodes if OPS[n.op].nonlinear)
    return total, width, nonlinear


def estimate_mb(graph: Graph, method: str, rows: int, options: BoundOptions,
                batch: int = 1, bits: int = 64) -> MemoryEstimate:
    """Estimated peak megabytes of ``compute_bounds(graph, method=...)`` for ``rows`` spec rows.

    ``rows``: spec rows (the output size when the spec is the identity);
    ``batch``: domains; ``bits``: 64 for float64.  Graph constants are not
    counted (they are already in memory).
    """
    total, width, nonlinear = _sizes(graph)
    scale = bits / 64.0
    fixed = (total * _IBP_BYTES * batch + rows * 64.0 * batch) * scale / _MB
    if method == "ibp":
        return MemoryEstimate(fixed, 0.0, options.memory_mb, 0.0)
    fixed += nonlinear * _RELAX_BYTES * batch * scale / _MB
    # a chunk never holds more rows than the largest walk asks for
    longest = max(rows, width)
    full = longest * batch * width * bits / 8 * 4 / _MB  # memory_mb of an unchunked walk
    per = _CROWN_FACTOR
    if method == "alpha-crown" or options.intermediate == "alpha-crown":
        fixed += nonlinear * _ALPHA_BYTES * batch * scale / _MB
        per += 3.0 * total / width
    return MemoryEstimate(fixed, per, options.memory_mb, full)


def min_memory_mb(graph: Graph, batch: int = 1, bits: int = 64) -> float:
    """``memory_mb`` of a one-row chunk (the smallest the engine walks)."""
    _, width, _ = _sizes(graph)
    return batch * width * bits / 8 * 4 / _MB


def fit_options(graph: Graph, method: str, rows: int, options: BoundOptions, cap_mb: float,
                batch: int = 1, bits: int = 64) -> BoundOptions | None:
    """``options`` with the largest ``memory_mb`` (at most the given one) whose estimate fits
    ``cap_mb``; ``None`` when even one-row chunks do not fit."""
    est = estimate_mb(graph, method, rows, options, batch, bits)
    if est.total <= cap_mb:
        return options
    floor = min_memory_mb(graph, batch, bits)
    if est.per_chunk_mb <= 0:
        return None
    fit = (cap_mb - est.fixed) / est.per_chunk_mb
    if fit < floor:
        return None
    return replace(options, memory_mb=min(options.memory_mb, fit))
