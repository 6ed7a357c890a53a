"""Options of :func:`gridverify.certify` (a frozen dataclass passed explicitly).

``CertifyOptions`` holds the engine's own option types instead of copying
their fields: :class:`~gridverify.bounds.options.BoundOptions` for the bound
stages, :class:`~gridverify.attack.options.AttackOptions` for the falsifier and
:class:`~gridverify.bab.options.BabOptions` for branch-and-bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from gridverify._typed import check_field_types
from gridverify.attack.options import AttackOptions
from gridverify.bab.options import BabOptions
from gridverify.bounds.options import METHODS as BOUND_METHODS
from gridverify.bounds.options import BoundOptions
from gridverify.errors import SpecError
from gridverify.seeds import seed_problem
from gridverify.sysmem import MAX_WORKERS

__all__ = ["ATTACKS", "BAB_MODES", "METHODS", "RADII", "REFINES", "CertifyOptions",
           "radius_midpoint", "radius_text"]

#: the bounding methods of ``certify``, cheap to strong: the bound engine's, then
#: branch-and-bound
METHODS = (*BOUND_METHODS, "bab")
#: which constraints the attack stage targets (see :class:`CertifyOptions`)
ATTACKS = ("uncertified", "undecided", "all", "none")
#: what method ``bab`` does with branch-and-bound (see :class:`CertifyOptions`)
BAB_MODES = ("tighten", "decide")
#: which constraints the alpha-CROWN stage tightens (see :class:`CertifyOptions`)
REFINES = ("auto", "undecided", "all")
#: the radii (fractions of the region's half-widths about its centre) tried, largest
#: first, for the constraints the bound does not certify (``CertifyOptions.radius``)
RADII: tuple[float, ...] = tuple(round(2.0 ** (-k / 2), 4) for k in range(1, 15))


def radius_midpoint(lo: float, hi: float) -> float:
    """The radius tried between a certified ``lo`` and a failed ``hi`` (``radius_steps``):
    their geometric mean, rounded to 4 significant digits (the value bounded is the one
    recorded, so rounding costs nothing in soundness)."""
    return float(f"{(lo * hi) ** 0.5:.4g}")


def radius_text(radius: float) -> str:
    """A radius for people: 3 significant digits, rounded *down* (a shown radius is
    never larger than the one certified)."""
    if not radius > 0:
        return f"{radius:g}"
    scale = 10.0 ** (math.floor(math.log10(radius)) - 2)
    return f"{math.floor(radius / scale * (1 + 1e-12)) * scale:.3g}"


def _check_int(opts: Any, name: str, minimum: int, maximum: int | None = None) -> None:
    """SpecError unless ``opts.name`` is an integer ``>= minimum`` (and ``<= maximum``);
    a numpy integer is stored as a Python ``int`` (the options go into the certificate's
    JSON)."""
    value = getattr(opts, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum):
        within = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise SpecError(f"options.{name}: {within}, got {value!r}")
    object.__setattr__(opts, name, int(value))


def _check_number(opts: Any, name: str, what: str, *, positive: bool,
                  optional: bool = False, maximum: float | None = None) -> None:
    """SpecError unless ``opts.name`` is a real number ``> 0`` (``positive``) or
    ``>= 0`` (and ``<= maximum``; ``None`` too when ``optional``); stored as a Python
    ``float``."""
    value = getattr(opts, name)
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or math.isnan(value) or not (value > 0 if positive else value >= 0)
            or (maximum is not None and value > maximum)):
        raise SpecError(f"options.{name}: {what}, got {value!r}")
    object.__setattr__(opts, name, float(value))


@dataclass(frozen=True)
class CertifyOptions:
    """Options of :func:`gridverify.certify` (frozen; pass explicitly).

    ``timeout``: seconds for the whole certificate, spent across the stages and
    the constraints (None: no limit); what it leaves undone is reported (a
    warning and a reason per constraint).  ``samples``: uniform random loads for
    the sampling stage.  ``attack``: which constraints the falsifier targets:
    ``"uncertified"`` (bound above the threshold, violated ones included: the
    worst violation found is pushed up, not just past the threshold),
    ``"undecided"`` (bound above, no violation found yet), ``"all"`` or
    ``"none"``; constraints nearest their threshold go first.
    ``attack_options``: the falsifier's effort and phases (its ``seed`` is
    replaced by ``seed``; its ``time_share`` is the share of the remaining time
    the attack may take when branch-and-bound follows); the certificate's search
    runs in float32 by default (what it finds is re-evaluated in float64: on the
    shipped proxies the worst cases differ from a float64 search's by less than
    a change of seed moves them, in about half the time; docs/physics.md).
    ``bounds_time_share``: with a ``timeout`` and an attack to follow, the share
    of the time left that the bound stages may take together (one deadline for
    CROWN and alpha-CROWN, counted from the end of sampling; alpha-CROWN's optimization
    stops there and keeps its best bounds; the rest is the attack's: on
    case300_relu at a 20 s timeout, 0.75 instead of all of it left the attack
    the time to find thermal violations of 540 pu^2 where the samples found
    0.56, and certified 2 constraints fewer; ``benchmarks/time_split.py``).
    ``attack_focus``: per family, that many undecided constraints nearest their
    threshold and that many with the largest worst found get a second attack
    with 2x the restarts and 8x the steps (0: none).  ``bounds``: the bound
    engine's options (``alpha_iterations``; ``intermediate`` of the
    alpha-CROWN stage, ``"alpha-crown"`` by default: optimized node by node, on
    case57 and case118 it certified more thermal and angle constraints for
    10-25 % more time).  ``refine``: rows for alpha-CROWN after CROWN,
    ``"undecided"`` or ``"all"`` (the decided ones too, in a pass after the
    undecided ones': tighter bounds on how large a violation can get);
    ``"auto"`` (the default) is ``"all"`` for method ``bab`` in ``"tighten"``
    mode, whose purpose is every constraint's magnitude, else ``"undecided"``
    (:meth:`refines_all`).
    ``pad_rel``/``pad_abs``: rounding pad added to every upper bound
    (``ub + pad_abs + pad_rel * |ub|``).  ``seed``: sampling and attack seed.
    ``bab``: branch-and-bound's options for method ``bab`` (``timeout``:
    seconds per constraint, also capped by ``timeout``;
    ``memory_mb``: cap on the domain store, reaching it leaves the constraint
    with a sound bound and the reason ``memory cap``; ``tolerance``: the gap
    tolerance).  Both ``bab_mode`` values first decide the undecided
    constraints at their threshold, nearly certified ones first, in searches
    of 1/16, 1/4 and all of ``bab.timeout`` (``"tighten"``: within half of the
    time left); ``"tighten"`` then tightens every constraint whose gap, bound
    minus worst found, still exceeds ``bab.tolerance`` (undecided ones first,
    then violated and certified ones by decreasing gap) with the time left;
    ``"decide"`` stops there.  ``memory_cap_mb``: memory cap of the whole run
    (MB on top of what the process held at the start; ``None``: a share of the
    machine's available memory): stages are sized to it, fall back to cheaper
    methods or leave constraints ``open`` (see :mod:`gridverify.certify.memory`).
    ``jobs``: branch-and-bound searches run side by side, each in a worker
    process with ``threads`` torch threads (1: in this process); each
    search's domain store gets ``bab.memory_mb / jobs``.  ``threads``: torch's
    CPU threads during the call, set for it and restored after (the graphs are
    small and extra threads mostly contend: 1, as ``certify --threads``
    defaults; ``None``: torch's current setting).
    ``radius``: for every constraint the bound does not certify over the region,
    the largest radius found at which CROWN (IBP for ``method="ibp"``, never a
    stronger bound than the certificate's) certifies it on the smaller box
    about the region's centre (:meth:`Region.shrunk
    <gridverify.spec.region.Region.shrunk>`): a sound statement for loads nearer
    the centre (``ConstraintResult.radius``).  First the ladder :data:`RADII`
    (0.71 down to 0.0078), one CROWN pass per radius over the rows left; then
    ``radius_steps`` bisection steps, each halving (in log scale) the bracket
    between a constraint's radius and the smallest radius tried that failed (0:
    the ladder's radii only, within a factor 1.41 of the largest that certifies;
    2: within 1.09; 3: 1.044), one CROWN pass per bracket and step.
    """

    timeout: float | None = None
    samples: int = 1024
    attack: str = "uncertified"
    attack_options: AttackOptions = field(
        default_factory=lambda: AttackOptions(dtype="float32"))
    attack_focus: int = 4
    bounds_time_share: float = 0.75
    bounds: BoundOptions = field(
        default_factory=lambda: BoundOptions(intermediate="alpha-crown"))
    refine: str = "auto"
    pad_rel: float = 1e-9
    pad_abs: float = 1e-9
    seed: int = 0
    bab: BabOptions = field(default_factory=lambda: BabOptions(timeout=30.0))
    bab_mode: str = "tighten"
    memory_cap_mb: float | None = None
    jobs: int = 1
    threads: int | None = 1
    radius: bool = True
    radius_steps: int = 2

    def __post_init__(self) -> None:
        _check_number(self, "timeout", "a number of seconds > 0 (or None: no limit)",
                      positive=True, optional=True)
        _check_int(self, "samples", 0)
        _check_int(self, "seed", 0)
        if (why := seed_problem(self.seed)) is not None:
            raise SpecError(f"options.seed: {why}")
        if self.attack not in ATTACKS:
            raise SpecError(f"options.attack: one of {', '.join(ATTACKS)}, got {self.attack!r}")
        _check_int(self, "attack_focus", 0)
        _check_number(self, "bounds_time_share", "in (0, 1]", positive=True, maximum=1.0)
        if self.refine not in REFINES:
            raise SpecError(f"options.refine: one of {', '.join(REFINES)}, got {self.refine!r}")
        for name, kind in (("bounds", BoundOptions), ("attack_options", AttackOptions),
                           ("bab", BabOptions)):
            value = getattr(self, name)
            if not isinstance(value, kind):  # a dict failed deep inside certify
                raise SpecError(f"options.{name}: expected {kind.__name__}(...), got "
                                f"{type(value).__name__}")
        if self.bounds.intermediate not in ("crown", "alpha-crown"):
            raise SpecError(
                f"options.bounds.intermediate: 'crown' or 'alpha-crown', "
                f"got {self.bounds.intermediate!r}"
            )
        if self.bab_mode not in BAB_MODES:
            raise SpecError(f"options.bab_mode: one of {', '.join(BAB_MODES)}, "
                            f"got {self.bab_mode!r}")
        _check_number(self, "memory_cap_mb", "a number of MB > 0 (or None: a share of the "
                      "available memory)", positive=True, optional=True)
        _check_int(self, "jobs", 1, MAX_WORKERS)
        if self.threads is not None:
            _check_int(self, "threads", 1, MAX_WORKERS)
        _check_int(self, "radius_steps", 0)
        for name in ("pad_rel", "pad_abs"):
            _check_number(self, name, "a number >= 0", positive=False)
        if not isinstance(self.radius, (bool, np.bool_)):
            raise SpecError(f"options.radius: True or False, got {self.radius!r}")
        object.__setattr__(self, "radius", bool(self.radius))
        # after the checks above, whose messages say the range too: the fields left
        check_field_types(self, SpecError, "options")

    def refines_all(self, method: str) -> bool:
        """Whether the alpha-CROWN stage of ``method`` also tightens the decided constraints."""
        if self.refine == "auto":
            return method == "bab" and self.bab_mode == "tighten"
        return self.refine == "all"

    def with_memory_cap(self, cap_mb: float | None) -> CertifyOptions:
        """These options under a memory cap of ``cap_mb`` MB (``None``: unchanged): the
        run's ``memory_cap_mb``, and branch-and-bound's domain store at most half of it."""
        if cap_mb is None:
            return self
        return replace(self, memory_cap_mb=float(cap_mb),
                       bab=replace(self.bab, memory_mb=min(self.bab.memory_mb, cap_mb / 2)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested option types as dicts; see :meth:`from_dict`)."""
        d = asdict(self)
        d["attack_options"]["phases"] = list(self.attack_options.phases)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CertifyOptions:
        """Inverse of :meth:`to_dict` (missing keys take their defaults)."""
        kinds = {"attack_options": AttackOptions, "bounds": BoundOptions, "bab": BabOptions}
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in kinds:
                v = dict(v)
                if "phases" in v:
                    v["phases"] = tuple(v["phases"])
                v = kinds[f.name](**v)
            kw[f.name] = v
        return cls(**kw)
