"""The bound engine: IBP, CROWN and alpha-CROWN walks over a gridverify graph.

``compute_bounds(model, lower, upper, method=..., spec=..., ...) -> Bounds`` is
the public entry; ``BoundOptions`` configures it.  Relaxations live in
:mod:`gridverify.bounds.relaxations`.
"""

from __future__ import annotations

from gridverify.bounds.api import Bounds, compute_bounds, relu_stability, to_graph
from gridverify.bounds.crown import Engine, LinearBounds
from gridverify.bounds.ibp import BoundError
from gridverify.bounds.options import BoundOptions, BoundOptionsError

__all__ = [
    "BoundError",
    "BoundOptions",
    "BoundOptionsError",
    "Bounds",
    "Engine",
    "LinearBounds",
    "compute_bounds",
    "relu_stability",
    "to_graph",
]
