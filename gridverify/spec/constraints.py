"""Constraint families and the selection of constraints to certify.

Each constraint is a family and a component.  Component ids are the bus id
(MATPOWER ``bus_i``) for bus families, the 1-based row of the branch table for
branch families and the 1-based row of the generator table for generator
families.  See ``docs/physics.md`` for the quantity each family measures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np

from gridverify.errors import SpecError

FAMILIES: tuple[str, ...] = (
    "p_balance",
    "q_balance",
    "thermal_fr",
    "thermal_to",
    "vm_max",
    "vm_min",
    "pg_max",
    "pg_min",
    "qg_max",
    "qg_min",
    "angle_max",
    "angle_min",
)

#: the power-balance families (a residual, in both signs); every other family is a limit
BALANCE_FAMILIES: tuple[str, ...] = ("p_balance", "q_balance")

#: the branch thermal-limit families (from and to ends; rated branches only)
THERMAL_FAMILIES: tuple[str, ...] = ("thermal_fr", "thermal_to")

#: component kind of every family: "bus", "branch" or "gen"
FAMILY_KIND: dict[str, str] = {
    "p_balance": "bus",
    "q_balance": "bus",
    "thermal_fr": "branch",
    "thermal_to": "branch",
    "vm_max": "bus",
    "vm_min": "bus",
    "pg_max": "gen",
    "pg_min": "gen",
    "qg_max": "gen",
    "qg_min": "gen",
    "angle_max": "branch",
    "angle_min": "branch",
}

@dataclass(frozen=True)
class Limit:
    """A simple limit family: ``sign * (quantity - limit) <= 0``.

    ``quantity`` is ``"vm"`` (per bus), ``"pg"``/``"qg"`` (per generator) or
    ``"dva"`` (``va_f - va_t`` per branch); ``sign`` is +1 for an upper limit.
    """

    quantity: str
    sign: float
    field: str  # the compiled-case array holding the raw limit


LIMITS: dict[str, Limit] = {
    "vm_max": Limit("vm", 1.0, "vmax"),
    "vm_min": Limit("vm", -1.0, "vmin"),
    "pg_max": Limit("pg", 1.0, "pmax"),
    "pg_min": Limit("pg", -1.0, "pmin"),
    "qg_max": Limit("qg", 1.0, "qmax"),
    "qg_min": Limit("qg", -1.0, "qmin"),
    "angle_max": Limit("dva", 1.0, "angmax"),
    "angle_min": Limit("dva", -1.0, "angmin"),
}


#: unit of every family's violation value
FAMILY_UNIT: dict[str, str] = {
    "p_balance": "pu",
    "q_balance": "pu",
    "thermal_fr": "pu^2",
    "thermal_to": "pu^2",
    "vm_max": "pu",
    "vm_min": "pu",
    "pg_max": "pu",
    "pg_min": "pu",
    "qg_max": "pu",
    "qg_min": "pu",
    "angle_max": "rad",
    "angle_min": "rad",
}

@dataclass(frozen=True)
class Constraint:
    """One constraint: ``family``, ``component`` id and its 0-based ``index`` in the case.

    ``index`` is the position in the compiled arrays (bus, branch or generator).
    """

    family: str
    component: int
    index: int

    @property
    def kind(self) -> str:
        """``bus``, ``branch`` or ``gen``."""
        return FAMILY_KIND[self.family]


@dataclass(frozen=True)
class ConstraintSelection:
    """Which constraints to certify.

    ``families``: the families (default all).  ``components``: optional per-family
    component ids, as ``(family, ids)`` pairs; a family without an entry keeps all
    its components.  ``named``: ids named for families that are selected whole
    (``p_balance,p_balance[4]``); they restrict nothing but must exist in the case.
    """

    families: tuple[str, ...] = FAMILIES
    components: tuple[tuple[str, tuple[int, ...]], ...] = field(default_factory=tuple)
    named: tuple[tuple[str, tuple[int, ...]], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for fam in self.families:
            if fam not in FAMILY_KIND:
                raise SpecError(_unknown_family(fam))
        for fam, _ids in (*self.components, *self.named):
            if fam not in FAMILY_KIND:
                raise SpecError(_unknown_family(fam))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "families": list(self.families),
            "components": {fam: list(ids) for fam, ids in self.components},
        }


def _unknown_family(fam: str) -> str:
    return f"constraints: unknown family {fam!r} (known: {', '.join(FAMILIES)})"


def family_candidates(case: Any, family: str) -> tuple[np.ndarray, np.ndarray]:
    """All constraints of a family in a case: ``(indices, component_ids)``.

    Voltage and generator limit families cover the components whose limit is
    finite (``Inf`` in a case file is no limit, as in MATPOWER); thermal families
    cover rated branches only (finite positive ``rate_a``);
    angle families cover every branch with a limit after PowerModels' correction
    (:func:`gridverify.physics.equations.angle_limits`, the one place it is
    written), which turns a missing one (both 0, at or beyond 90 degrees, 360)
    into 60 degrees: every branch whose raw limit is a number, as in the AC-OPF.
    """
    kind = FAMILY_KIND[family]
    if kind in ("bus", "gen"):
        n = case.n_bus if kind == "bus" else case.n_gen
        idx = np.arange(n)
        if family in LIMITS:  # an infinite limit (Inf in a case file) is no constraint
            idx = idx[np.isfinite(np.asarray(getattr(case, LIMITS[family].field),
                                             dtype=np.float64))]
        ids = case.bus_ids if kind == "bus" else case.gen_row
        return idx, np.asarray(ids, dtype=np.int64)[idx]
    if family in THERMAL_FAMILIES:
        rate = np.asarray(case.rate_a, dtype=np.float64)
        idx = np.flatnonzero(np.isfinite(rate) & (rate > 0))
    else:  # angle_max, angle_min: the corrected limit exists unless the raw one is NaN
        lim = np.asarray(case.angmax if family == "angle_max" else case.angmin,
                         dtype=np.float64)
        idx = np.flatnonzero(~np.isnan(lim))
    return idx, np.asarray(case.branch_row, dtype=np.int64)[idx]


def select_constraints(case: Any, selection: ConstraintSelection | None = None) -> list[Constraint]:
    """Resolve a selection against a case (family order of ``FAMILIES``, then component order).

    Raises SpecError for a component id the family does not have in this case.
    """
    sel = selection or ConstraintSelection()
    comp = dict(sel.components)
    named = dict(sel.named)
    out: list[Constraint] = []
    for fam in FAMILIES:
        if fam not in sel.families:
            continue
        idx, ids = family_candidates(case, fam)
        pos = {int(c): int(i) for i, c in zip(idx, ids)}
        for c in (*comp.get(fam, ()), *named.get(fam, ())):
            if int(c) not in pos:
                raise SpecError(
                    f"constraints: {fam} has no component {c} in case {case.name} "
                    f"({_component_hint(fam)})"
                )
        if fam in comp:
            wanted = sorted(set(int(c) for c in comp[fam]), key=lambda c: pos[c])
            out.extend(Constraint(fam, c, pos[c]) for c in wanted)
        else:
            out.extend(Constraint(fam, int(c), int(i)) for i, c in zip(idx, ids))
    return out


def _component_hint(family: str) -> str:
    kind = FAMILY_KIND[family]
    if kind == "bus":
        return "components are bus ids"
    if kind == "gen":
        return "components are 1-based generator-table rows"
    if family.startswith("thermal"):
        return "components are 1-based branch-table rows of rated branches"
    return "components are 1-based branch-table rows of branches with an angle limit"


_ITEM = re.compile(r"^\s*([a-z_]+)\s*(?:\[([^\]]*)\])?\s*$")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def parse_constraints(text: str) -> ConstraintSelection:
    """Parse a CLI selection such as ``p_balance,thermal_fr[1,5],vm_max``.

    ``all`` selects every family; ``family[ids]`` restricts a family to the listed
    component ids.  Items are a union: a family given bare (or through ``all``)
    keeps all its components even when ``family[ids]`` is listed too, and repeated
    ``family[ids]`` items add up.
    """
    if not text.strip():
        raise SpecError("constraints: empty selection")
    fams: list[str] = []
    whole: set[str] = set()  # families given bare: all their components
    comps: dict[str, list[int]] = {}
    for item in _split_top(text):
        m = _ITEM.match(item)
        if not m:
            raise SpecError(f"constraints: cannot parse {item!r} (expected family or family[ids])")
        fam, ids = m.group(1), m.group(2)
        if fam == "all" and ids is None:
            fams.extend(f for f in FAMILIES if f not in fams)
            whole.update(FAMILIES)
            continue
        if fam not in FAMILY_KIND:
            raise SpecError(f"constraints: unknown family {fam!r} (known: {', '.join(FAMILIES)})")
        if fam not in fams:
            fams.append(fam)
        if ids is None:
            whole.add(fam)
        else:
            comps.setdefault(fam, []).extend(_parse_ids(ids, fam))
    return ConstraintSelection(
        tuple(fams), tuple((f, tuple(v)) for f, v in comps.items() if f not in whole),
        tuple((f, tuple(v)) for f, v in comps.items() if f in whole),
    )


def _parse_ids(text: str, fam: str) -> list[int]:
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            out.append(int(tok))
        except ValueError:
            raise SpecError(f"constraints: {fam}: component id {tok!r} is not an integer") from None
    if not out:
        raise SpecError(f"constraints: {fam}: empty component list")
    return out


COMPONENT_ID_MAX = 2**63 - 1
"""The largest component id (ids are stored as 64-bit integers)."""


def _component_ids(ids: Any, where: str) -> tuple[int, ...]:
    """A spec file's list of component ids: a non-empty list of integers (no floats,
    no booleans) in ``0 .. COMPONENT_ID_MAX``; SpecError naming ``where`` otherwise."""
    if not isinstance(ids, Iterable) or isinstance(ids, (str, bytes, Mapping)):
        raise SpecError(f"{where}: expected a list of ids")
    vals = list(ids)
    if not vals:
        raise SpecError(f"{where}: empty list of component ids (give ids, or leave the "
                        "family out of components for all of its components)")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, Integral):
            raise SpecError(f"{where}: id {v!r} is not an integer")
        if not 0 <= int(v) <= COMPONENT_ID_MAX:
            raise SpecError(f"{where}: id {v} is out of range (0 to 2**63 - 1)")
    return tuple(int(v) for v in vals)


def selection_from_mapping(data: Mapping[str, Any]) -> ConstraintSelection:
    """A selection from a spec-file ``[constraints]`` table.

    Keys: ``families = [...]`` (default all) and ``components = {family = [ids]}``.
    """
    known = {"families", "components"}
    for k in data:
        if k not in known:
            raise SpecError(f"constraints: unknown key {k!r} (expected {sorted(known)})")
    fams = data.get("families", list(FAMILIES))
    if isinstance(fams, str):
        fams = [fams]
    if not isinstance(fams, Sequence) or not all(isinstance(f, str) for f in fams):
        raise SpecError("constraints.families: expected a list of family names")
    if not fams:
        raise SpecError("constraints.families: empty list (leave the key out for every "
                        "family)")
    if "all" in fams:
        fams = list(FAMILIES)
    comps_raw = data.get("components", {}) or {}
    if not isinstance(comps_raw, Mapping):
        raise SpecError("constraints.components: expected a table family = [ids]")
    comps: list[tuple[str, tuple[int, ...]]] = []
    for fam, ids in comps_raw.items():
        comps.append((fam, _component_ids(ids, f"constraints.components.{fam}")))
    fam_t = tuple(fams)
    for fam, _ in comps:
        if fam in FAMILY_KIND and fam not in fam_t:
            fam_t = fam_t + (fam,)
    return ConstraintSelection(fam_t, tuple(comps))
