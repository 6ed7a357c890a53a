"""Falsification: search for inputs that make a graph's outputs bad.

:func:`gridverify.attack.falsify.falsify` is the one falsifier (structured
starts, projected ascent, polish, vertex search; every value re-evaluated in
float64), driven by :class:`AttackOptions`.  :func:`pgd_maximize` (linear
objectives, one per row) and :func:`pgd_maximize_fn` (any differentiable
objectives) are its entry points for one box.
"""

from gridverify.attack.falsify import (
    AttackResult,
    falsify,
    function_objectives,
    linear_objectives,
    objective_bytes,
    output_extremizers,
    row_objectives,
)
from gridverify.attack.options import PHASES, AttackOptions, AttackOptionsError
from gridverify.attack.pgd import pgd_maximize, pgd_maximize_fn, polytope_objective

__all__ = [
    "PHASES",
    "AttackOptions",
    "AttackOptionsError",
    "AttackResult",
    "falsify",
    "function_objectives",
    "linear_objectives",
    "objective_bytes",
    "output_extremizers",
    "pgd_maximize",
    "pgd_maximize_fn",
    "polytope_objective",
    "row_objectives",
]
