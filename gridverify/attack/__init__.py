"""Falsification: search for inputs that make a graph's outputs bad.

:func:`gridverify.attack.pgd.pgd_maximize` (linear objectives, one per row) and
:func:`gridverify.attack.pgd.pgd_maximize_fn` (any differentiable objectives)
run a projected-gradient attack over an input box; results are re-evaluated
in float64.
"""

from gridverify.attack.pgd import AttackResult, pgd_maximize, pgd_maximize_fn, polytope_objective

__all__ = ["AttackResult", "pgd_maximize", "pgd_maximize_fn", "polytope_objective"]
