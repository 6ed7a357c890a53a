"""Options of the falsifier (a frozen dataclass passed explicitly)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gridverify._typed import check_field_types
from gridverify.errors import GridverifyError

__all__ = ["PHASES", "AttackOptions", "AttackOptionsError"]

#: the phases of :func:`gridverify.attack.falsify.falsify`, in the order they run
PHASES = ("ascent", "polish", "vertex")


class AttackOptionsError(GridverifyError):
    """An attack option is out of range."""


@dataclass(frozen=True)
class AttackOptions:
    """How :func:`gridverify.attack.falsify.falsify` searches.

    ``restarts``: starts per objective for the ascent (the best-scoring
    structured starts first: gradient-sign vertices, the box centre, the
    caller's points, the best points of the other objectives; a third of them
    uniformly random).  ``steps``: signed-gradient ascent steps per start.
    ``step``: the first (largest) ascent step, a fraction of the box width; it
    decays along a cosine to ``step / 150`` (long early steps explore the many
    linear pieces of a relu proxy, short late ones settle).
    ``phases``: which of ``"ascent"``, ``"polish"`` (adaptive projected
    gradient from each objective's best point, ``polish_steps`` steps) and
    ``"vertex"`` (sign-vector search between box vertices with coordinate
    flips, ``vertex_rounds`` rounds of ``vertex_flips`` candidate flips; where
    piecewise-linear proxies have their worst cases) run.  ``pool``: random
    points and random vertices screened once for starts.  ``time_share``: the
    share of the caller's remaining time budget the attack may take (read by
    ``certify`` when branch-and-bound follows; ``vnncomp run`` splits its
    deadline by its own rule).  ``seed``:
    random starts.  ``dtype``: ``"float64"`` or ``"float32"`` for the search;
    results are always re-evaluated in float64.
    """

    restarts: int = 6
    steps: int = 30
    step: float = 0.3
    rounds: int = 2
    phases: tuple[str, ...] = PHASES
    polish_steps: int = 20
    vertex_rounds: int = 6
    vertex_flips: int = 8
    pool: int = 64
    time_share: float = 0.5
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_field_types(self, AttackOptionsError, "attack")
        if self.rounds < 1:
            raise AttackOptionsError(f"attack.rounds: must be >= 1, got {self.rounds}")
        if self.restarts < 1 or self.steps < 0:
            raise AttackOptionsError(
                f"attack: restarts must be >= 1 and steps >= 0, got {self.restarts}/{self.steps}"
            )
        if not 0 < self.step <= 1:
            raise AttackOptionsError(f"attack.step: in (0, 1], got {self.step!r}")
        bad = [p for p in self.phases if p not in PHASES]
        if bad:
            raise AttackOptionsError(f"attack.phases: unknown {bad[0]!r} (one of {PHASES})")
        if self.polish_steps < 0 or self.vertex_rounds < 0 or self.vertex_flips < 1:
            raise AttackOptionsError(
                "attack: polish_steps and vertex_rounds must be >= 0, vertex_flips >= 1"
            )
        if self.pool < 0:
            raise AttackOptionsError(f"attack.pool: must be >= 0, got {self.pool}")
        if not 0 < self.time_share <= 1:
            raise AttackOptionsError(f"attack.time_share: in (0, 1], got {self.time_share!r}")
        if self.dtype not in ("float64", "float32"):
            raise AttackOptionsError(f"attack.dtype: float64 or float32, got {self.dtype!r}")

    def heavy(self, factor: int = 10) -> AttackOptions:
        """``factor`` times the restarts, steps, polish and vertex effort, every phase."""
        return replace(
            self,
            restarts=self.restarts * factor,
            steps=self.steps * factor,
            phases=PHASES,
            polish_steps=self.polish_steps * factor,
            vertex_rounds=self.vertex_rounds * factor,
            vertex_flips=self.vertex_flips * factor,
            pool=self.pool * factor,
        )
