"""Options of the branch-and-bound (a frozen dataclass passed explicitly)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridverify._typed import check_field_types
from gridverify.errors import GridverifyError

BRANCHINGS = ("auto", "input", "bbps", "babsr", "widest")
POINTS = ("midpoint", "table")
BOUND_METHODS = ("crown", "alpha-crown")


class BabOptionsError(GridverifyError):
    """A branch-and-bound option is out of range."""


@dataclass(frozen=True)
class BabOptions:
    """How :func:`gridverify.bab.bab_maximize` searches.

    ``timeout``: seconds of wall time (``None``: no limit; then ``max_domains`` or
    ``memory_mb`` end an unfinished search); a round that the last one's time says
    would end past it is not started.  ``memory_mb``: cap on the host memory
    of the domain store; reaching it ends the search with status ``open``.
    ``batch``: domains popped and split per round (children are bounded in one
    engine call, ``2 * batch`` domains).  ``branching``: ``"input"`` (split the
    input box, score from the linear coefficients), ``"bbps"`` (split a nonlinear
    neuron, BBPS score), ``"babsr"`` (intercept-only score), ``"widest"`` (widest
    neuron interval) or ``"auto"`` (input splitting for graphs whose relu neurons
    are at least 95 % stable at the root, as on proxies trained with
    ``--stability-weight``, and for graphs with at most ``input_split_max_dim``
    inputs that have no relu or are searched in optimization mode on several spec
    rows, and for graphs with at most ``input_split_always_dim`` inputs whatever
    their relus, as factor regions give; else the BaBSR-like score, which
    measured better than BBPS on the shipped proxies; see
    :func:`gridverify.bab.branching.resolve_branching`).
    ``points``: ``"midpoint"`` or ``"table"`` (pre-optimized branching points;
    relu always splits at 0).  ``bound_method``: the engine method used on the domains;
    ``alpha_iterations`` its alpha steps (root: ``root_alpha_iterations``).
    ``tolerance``: optimization mode stops when the upper bound minus the attained
    value is at most this, or at most ``rel_tolerance`` times the attained value's
    magnitude when that is larger (:meth:`gap_tolerance`).  ``attack_every``: rounds
    between in-search PGD attacks (0: never) on the ``attack_domains`` best domains
    with ``attack_restarts`` x ``attack_steps``.  ``max_domains``: cap on domains
    visited (``None``: none).
    ``seed``: attack seed. ``device``: torch device of the bounding (the store stays
    on the host). ``beta_iterations``: projected-Adam steps on the multipliers of
    the split constraints, optimized jointly with the alphas (beta-CROWN style: a
    split tightens every bound of its domain; neuron branching only, 0: off) with
    step ``beta_lr``; on case57_relu p_balance 5 steps shrink the gap 1.19x in 20
    CPU s against 1.08x without.  ``domain_intermediate``: how the domains'
    intermediate bounds are computed, ``"crown"`` (a CROWN pass per split node) or
    ``"inherit"`` (the parent's, with the split applied, intersected with IBP).
    ``root_intermediate``: how the root's intermediate bounds are
    computed, ``"crown"`` or ``"alpha-crown"`` (optimized node by node; every domain
    inherits them).  ``clock``: what ``timeout`` measures, ``"wall"`` seconds or
    ``"cpu"`` seconds of this process (for benchmarks on a shared machine).
    ``focus``: after the root, bound only the spec rows whose root bound is above
    the level (attained + tolerance, or the threshold) and spend CROWN rows only on
    the entries of intermediate nodes those rows depend on
    (:mod:`gridverify.bounds.relevance`); the same bounds for far less work when a
    spec reads a few entries of wide nodes (False: every row and entry).
    ``clip``: shrink each domain's input box to the part where some spec row's
    linear upper bound reaches the level (:mod:`gridverify.bounds.clip`); the
    rest cannot change the answer.
    """

    timeout: float | None = 60.0
    memory_mb: float = 512.0
    batch: int = 64
    branching: str = "auto"
    points: str = "table"
    bound_method: str = "crown"
    alpha_iterations: int = 5
    root_alpha_iterations: int = 20
    tolerance: float = 1e-4
    rel_tolerance: float = 0.0
    input_split_max_dim: int = 32
    input_split_always_dim: int = 12
    attack_every: int = 5
    attack_domains: int = 8
    attack_restarts: int = 4
    attack_steps: int = 20
    max_domains: int | None = None
    seed: int = 0
    device: str | None = None
    clock: str = "wall"
    beta_iterations: int = 5
    beta_lr: float = 0.05
    root_intermediate: str = "alpha-crown"
    focus: bool = True
    clip: bool = True
    domain_intermediate: str = "crown"

    def gap_tolerance(self, attained: float | np.ndarray) -> float | np.ndarray:
        """The gap (bound minus ``attained``) at which optimization mode is done:
        ``tolerance``, or ``rel_tolerance * |attained|`` when larger (a non-finite
        ``attained``: ``tolerance``)."""
        a = np.abs(np.nan_to_num(np.asarray(attained, dtype=np.float64), nan=0.0,
                                 posinf=0.0, neginf=0.0))
        out = np.maximum(self.tolerance, self.rel_tolerance * a)
        return float(out) if out.ndim == 0 else out

    def __post_init__(self) -> None:
        check_field_types(self, BabOptionsError, "bab")
        if self.timeout is not None and not self.timeout > 0:
            raise BabOptionsError(f"timeout: must be > 0 seconds, got {self.timeout!r}")
        if not self.memory_mb > 0:
            raise BabOptionsError(f"memory_mb: must be > 0, got {self.memory_mb!r}")
        if self.batch < 1:
            raise BabOptionsError(f"batch: must be >= 1, got {self.batch}")
        if self.branching not in BRANCHINGS:
            raise BabOptionsError(f"branching: one of {BRANCHINGS}, got {self.branching!r}")
        if self.points not in POINTS:
            raise BabOptionsError(f"points: one of {POINTS}, got {self.points!r}")
        if self.bound_method not in BOUND_METHODS:
            raise BabOptionsError(
                f"bound_method: one of {BOUND_METHODS}, got {self.bound_method!r}"
            )
        if self.alpha_iterations < 0 or self.root_alpha_iterations < 0:
            raise BabOptionsError("alpha_iterations/root_alpha_iterations: must be >= 0")
        if not self.tolerance >= 0:
            raise BabOptionsError(f"tolerance: must be >= 0, got {self.tolerance!r}")
        if not 0 <= self.rel_tolerance < 1:
            raise BabOptionsError(f"rel_tolerance: must be in [0, 1), got {self.rel_tolerance!r}")
        if self.input_split_max_dim < 0 or self.input_split_always_dim < 0:
            raise BabOptionsError("input_split_max_dim/input_split_always_dim: must be >= 0")
        if self.attack_every < 0 or self.attack_domains < 1:
            raise BabOptionsError("attack_every must be >= 0 and attack_domains >= 1")
        if self.attack_restarts < 1 or self.attack_steps < 0:
            raise BabOptionsError("attack_restarts must be >= 1 and attack_steps >= 0")
        if self.beta_iterations < 0 or not self.beta_lr > 0:
            raise BabOptionsError("beta_iterations must be >= 0 and beta_lr > 0")
        if self.root_intermediate not in ("crown", "alpha-crown"):
            raise BabOptionsError(
                f"root_intermediate: 'crown' or 'alpha-crown', got {self.root_intermediate!r}"
            )
        if self.domain_intermediate not in ("crown", "inherit"):
            raise BabOptionsError(
                f"domain_intermediate: 'crown' or 'inherit', got {self.domain_intermediate!r}"
            )
        if self.clock not in ("wall", "cpu"):
            raise BabOptionsError(f"clock: 'wall' or 'cpu', got {self.clock!r}")
        if self.max_domains is not None and self.max_domains < 1:
            raise BabOptionsError("max_domains: must be >= 1 or None")
