"""Thresholds: how much violation a constraint may show and still count as certified.

A constraint is *certified* when its sound upper bound is at most its threshold.
Thresholds are given per family as a rule:

* ``absolute``: ``a`` (in the family's unit);
* ``relative``: ``b * |d_i|`` where ``d_i`` is the nominal demand at the bus
  (active demand for ``p_balance``, reactive demand for ``q_balance``);
* ``max``: ``max(a, b * |d_i|)``.

Relative rules apply to the balance families only.

Default thresholds (documented in docs/physics.md):

* ``p_balance``, ``q_balance``: ``1e-3`` pu (0.1 MW / MVAr on a 100 MVA base);
* every limit family (thermal, voltage, generator, angle): ``1e-6`` in the
  family's unit, i.e. the limit itself up to floating-point noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridverify.errors import SpecError
from gridverify.spec.constraints import BALANCE_FAMILIES, FAMILIES, FAMILY_KIND, Constraint

DEFAULT_BALANCE_THRESHOLD = 1e-3
DEFAULT_LIMIT_THRESHOLD = 1e-6

_RELATIVE_FAMILIES = BALANCE_FAMILIES


@dataclass(frozen=True)
class ThresholdRule:
    """``kind`` in {"absolute", "relative", "max"}; ``a`` absolute part, ``b`` relative factor."""

    kind: str = "absolute"
    a: float = 0.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("absolute", "relative", "max"):
            raise SpecError(f"threshold: unknown rule {self.kind!r} (absolute, relative, max)")
        for name in ("a", "b"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpecError(f"threshold: {name} must be a finite number, got {v!r}")
            if v < 0:
                raise SpecError(f"threshold: {name} must be >= 0, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"kind": self.kind, "a": self.a, "b": self.b}


def default_rule(family: str) -> ThresholdRule:
    """The documented default threshold rule of a family."""
    if family in _RELATIVE_FAMILIES:
        return ThresholdRule("absolute", DEFAULT_BALANCE_THRESHOLD)
    return ThresholdRule("absolute", DEFAULT_LIMIT_THRESHOLD)


@dataclass(frozen=True)
class ThresholdSpec:
    """Per-family threshold rules; ``default``, when given, is the rule of every family
    without one (a relative or max default: of the balance families only); the others
    use :func:`default_rule`."""

    rules: tuple[tuple[str, ThresholdRule], ...] = field(default_factory=tuple)
    default: ThresholdRule | None = None

    def __post_init__(self) -> None:
        for fam, rule in self.rules:
            if fam not in FAMILY_KIND:
                raise SpecError(f"threshold: unknown family {fam!r} (known: {', '.join(FAMILIES)})")
            if rule.kind != "absolute" and fam not in _RELATIVE_FAMILIES:
                raise SpecError(
                    f"threshold.{fam}: {rule.kind} thresholds apply to p_balance/q_balance only"
                )

    def rule(self, family: str) -> ThresholdRule:
        """The rule of a family."""
        own = dict(self.rules).get(family)
        if own is not None:
            return own
        d = self.default
        if d is not None and (d.kind == "absolute" or family in _RELATIVE_FAMILIES):
            return d
        return default_rule(family)

    def overridden(self, over: ThresholdSpec) -> ThresholdSpec:
        """This spec with ``over``'s rules in place of its own for the same families
        and ``over``'s default, when it has one, in place of its default only (a
        ``--threshold 0.01`` over a file's ``default = 0.2, thermal_fr = 0`` keeps the
        file's ``thermal_fr``)."""
        rules = dict(self.rules)
        rules.update(dict(over.rules))
        return ThresholdSpec(tuple(rules.items()),
                             over.default if over.default is not None else self.default)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every family's rule."""
        return {fam: self.rule(fam).to_dict() for fam in FAMILIES}


def resolve_thresholds(
    case: Any, constraints: Sequence[Constraint], spec: ThresholdSpec | None = None
) -> np.ndarray:
    """Threshold of every constraint (float64 array in the constraints' order)."""
    spec = spec or ThresholdSpec()
    out = np.empty(len(constraints), dtype=np.float64)
    pd_bus = np.abs(np.asarray(case.pd_bus, dtype=np.float64))
    qd_bus = np.abs(np.asarray(case.qd_bus, dtype=np.float64))
    for k, c in enumerate(constraints):
        rule = spec.rule(c.family)
        if rule.kind == "absolute":
            out[k] = rule.a
            continue
        d = pd_bus[c.index] if c.family == "p_balance" else qd_bus[c.index]
        with np.errstate(over="ignore"):
            out[k] = rule.b * d if rule.kind == "relative" else max(rule.a, rule.b * d)
        if not np.isfinite(out[k]):  # a finite factor times the demand overflowed
            raise SpecError(f"threshold {c.family}: relative factor {rule.b:g} times the "
                            f"demand {d:g} pu at bus index {c.index} is not a finite "
                            "threshold; use a smaller factor")
    return out


def _rule_from_value(fam: str, value: Any) -> ThresholdRule:
    if isinstance(value, bool):
        raise SpecError(f"threshold.{fam}: expected a number or a rule table, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            raise SpecError(f"threshold.{fam}: not a finite number ({value!r})")
        if value < 0:
            raise SpecError(f"threshold.{fam}: must be >= 0, got {value!r}")
        return ThresholdRule("absolute", float(value))
    if isinstance(value, Mapping):
        try:
            return _rule_from_table(fam, value)
        except SpecError as exc:
            msg = str(exc)
            if msg.startswith("threshold:"):  # ThresholdRule's own checks: name the family
                raise SpecError(f"threshold.{fam}:{msg.removeprefix('threshold:')}") from None
            raise
    raise SpecError(f"threshold.{fam}: expected a number or a rule table, got {value!r}")


def _rule_from_table(fam: str, value: Mapping[str, Any]) -> ThresholdRule:
    """The rule of a table ``{absolute = A, relative = B}`` (or ``{kind, a, b}``)."""
    for k in value:
        if k not in ("absolute", "relative", "a", "b", "kind"):
            raise SpecError(f"threshold.{fam}: unknown key {k!r}")
    for one, other in (("absolute", "a"), ("relative", "b"), ("kind", "absolute"),
                       ("kind", "relative")):
        if one in value and other in value:
            raise SpecError(f"threshold.{fam}: conflicting keys {one!r} and {other!r} "
                            "(give one of them)")
    if "kind" in value:
        return ThresholdRule(str(value["kind"]), _num(value.get("a", 0.0), fam, "a"),
                             _num(value.get("b", 0.0), fam, "b"))
    a = value.get("absolute", value.get("a"))
    b = value.get("relative", value.get("b"))
    if a is not None and b is not None:
        return ThresholdRule("max", _num(a, fam, "absolute"), _num(b, fam, "relative"))
    if b is not None:
        return ThresholdRule("relative", 0.0, _num(b, fam, "relative"))
    if a is not None:
        return ThresholdRule("absolute", _num(a, fam, "absolute"))
    raise SpecError(f"threshold.{fam}: empty rule")


def _num(v: Any, fam: str, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"threshold.{fam}.{key}: expected a number, got {v!r}")
    if not math.isfinite(float(v)):
        raise SpecError(f"threshold.{fam}.{key}: not a finite number ({v!r})")
    if v < 0:
        raise SpecError(f"threshold.{fam}.{key}: must be >= 0, got {v!r}")
    return float(v)


def thresholds_from_mapping(data: Mapping[str, Any]) -> ThresholdSpec:
    """Threshold rules from a spec-file ``[thresholds]`` table.

    ``family = 0.01`` (absolute), ``family = {relative = 0.01}``,
    ``family = {absolute = 0.001, relative = 0.01}`` (the max rule); the key
    ``default`` (absolute) applies to every family not listed.
    """
    rules: dict[str, ThresholdRule] = {}
    default = _rule_from_value("default", data["default"]) if "default" in data else None
    for fam, value in data.items():
        if fam == "default":
            continue
        if fam not in FAMILY_KIND:
            raise SpecError(f"threshold: unknown family {fam!r} (known: {', '.join(FAMILIES)})")
        rules[fam] = _rule_from_value(fam, value)
    return ThresholdSpec(tuple(rules.items()), default)


def as_thresholds(value: Any) -> ThresholdSpec:
    """A :class:`ThresholdSpec` from what a user may pass: ``None`` (the defaults), a
    spec, a number (every family, absolute), a CLI string (:func:`parse_threshold`)
    or a mapping as a spec file's ``[thresholds]`` table (:func:`thresholds_from_mapping`)."""
    if value is None:
        return ThresholdSpec()
    if isinstance(value, ThresholdSpec):
        return value
    if isinstance(value, str):
        return parse_threshold(value)
    if isinstance(value, Mapping):
        return thresholds_from_mapping(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return thresholds_from_mapping({"default": float(value)})
    raise SpecError(f"thresholds: expected a ThresholdSpec, a number, a string such as "
                    f"'p_balance=0.01' or a mapping of family to rule, got {type(value).__name__}")


def parse_threshold(text: str) -> ThresholdSpec:
    """Parse a CLI threshold: ``0.01`` (every family) or ``p_balance=0.01,thermal_fr=0``.

    Values may be ``A`` (absolute), ``rel:B`` (relative) or ``max:A:B``.  A family
    (or the default) given twice is an error, never a silent choice.
    """
    text = text.strip()
    if not text:
        raise SpecError("threshold: empty value")
    data: dict[str, Any] = {}
    items = [s.strip() for s in text.split(",") if s.strip()]
    for item in items:
        fam, eq, val = item.partition("=")
        if not eq:
            fam, val = "default", item
        fam = fam.strip()
        val = val.strip()
        if fam in data:
            what = "a default (a bare number)" if fam == "default" else f"a rule for {fam}"
            raise SpecError(f"threshold {item!r}: {what} is given twice (one rule per family)")
        data[fam] = _cli_rule(item, val)
    return thresholds_from_mapping(data)


#: the command-line forms of the rules
_CLI_FORMS = "A, rel:B or max:A:B"


def _cli_rule(item: str, val: str) -> Any:
    """The value of one ``--threshold`` item: ``A``, ``rel:B`` or ``max:A:B`` (a
    :class:`SpecError` naming the form the rule kind needs when it does not fit)."""
    kind, colon, rest = val.partition(":")
    kind = kind.strip().lower()
    try:
        if not colon:
            return float(val)
        if kind == "rel":
            return {"relative": float(rest)}
        if kind == "max":
            parts = rest.split(":")
            if len(parts) != 2:
                raise ValueError
            return {"absolute": float(parts[0]), "relative": float(parts[1])}
    except ValueError:
        why = {"rel": "rel needs rel:B, B a number (the factor of the bus's demand)",
               "max": "max needs max:A:B, two numbers (A absolute, B the factor of the "
                      "bus's demand)"}.get(kind if colon else "",
                                           f"{val!r} is not a number (expected {_CLI_FORMS})")
        raise SpecError(f"threshold {item!r}: {why}") from None
    raise SpecError(f"threshold {item!r}: unknown rule {kind!r} (expected {_CLI_FORMS})")
