"""The Certificate: per-constraint bounds, attained violations, witnesses, provenance.

JSON form (the output contract of ``gridverify certify --json``; every field in
docs/formats.md)::

    {"format": "gridverify-certificate", "version": 1, "case": ..., "model": ...,
     "region": {"kind", "params", "lower", "upper"; factor regions also "center",
                "factors"},
     "method": ..., "seconds": ..., "summary": {"certified", "violated", "open", "total"},
     "families": {family: {...per-family summary...}},
     "constraints": [{"family", "component", "upper_bound", "attained", "threshold",
                      "status", "witness", "method", "seconds", "unit", "index",
                      "worst_load", "reason", "radius"; rated branches also "rate",
                      "loading_attained", "loading_upper_bound"}],
     "provenance": {...}, "warnings": [...]}

Non-finite numbers are written as ``null`` (an ``upper_bound`` of ``null`` means
no finite bound was obtained; such a constraint is never certified).

Reading (:meth:`Certificate.from_dict`, :meth:`Certificate.read`) checks every field's
type and refuses, with a :class:`~gridverify.errors.SpecError` naming the field, a
certificate whose statuses contradict their own numbers (:func:`status_conflict`),
that lists a constraint twice or that names an unknown family.  ``summary`` and
``families`` are derived from the constraints: they are recomputed from them, and
what the file says there is not read (a file cut down to some constraints stays
readable; a summary edited by hand changes nothing).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gridverify._consistency import INCONSISTENT, below_attained
from gridverify._html import HtmlView
from gridverify._values import ArrayValueEq
from gridverify.certify.options import CertifyOptions, radius_text
from gridverify.errors import SpecError
from gridverify.fileio import atomic_write_text, json_loads
from gridverify.spec.constraints import FAMILIES, FAMILY_UNIT
from gridverify.spec.region import Region

CERTIFIED = "certified"
VIOLATED = "violated"
OPEN = "open"
STATUSES = (CERTIFIED, VIOLATED, OPEN)
FORMAT = "gridverify-certificate"
FORMAT_VERSION = 1


def decide_status(upper_bound: float, attained: float, threshold: float) -> str:
    """``violated`` if attained > threshold, ``certified`` if upper_bound <= threshold, else open.

    NaN or missing values never give ``certified``; an infinite attained value (a load
    where the constraint's value overflows) is a violation.
    """
    if not math.isnan(attained) and attained > threshold:
        return VIOLATED
    if math.isfinite(upper_bound) and upper_bound <= threshold:
        return CERTIFIED
    return OPEN


#: how the warning of a radius ladder the time budget cut short begins: the
#: constraints it did not reach have no radius (:meth:`Certificate.radius_note`; a
#: stop during the bisection that follows leaves every radius found standing)
RADIUS_STOPPED = "timeout: the radius stage stopped before radius"

#: the reason of a constraint whose proxy is NaN (or +inf) at some load of the region:
#: never certified, whatever its bound
UNDEFINED_REASON = "the proxy is undefined (NaN or infinite) at some loads"
#: how that reason begins, in certificates of every version
UNDEFINED = "the proxy is undefined"
#: the reason of a constraint whose sound bound lies below the value found at a
#: load of the region (:func:`gridverify._consistency.below_attained`): never
#: certified, a bug, reported
INCONSISTENT_REASON = f"{INCONSISTENT}: bound below the worst found (a bug; please report it)"


def final_status(upper_bound: float, attained: float, threshold: float,
                 undefined: bool) -> tuple[str, str | None]:
    """The status certify reports, and the reason that overrides any other (``None``
    where none does): :func:`decide_status`, except that a constraint whose proxy is
    NaN at some load (``undefined``) is never certified, and a bound below the
    attained value is no bound (``open``, or ``violated`` by the attained value)."""
    status, reason = decide_status(upper_bound, attained, threshold), None
    if undefined and status == CERTIFIED:
        status, reason = OPEN, UNDEFINED_REASON
    if below_attained(upper_bound, attained):
        status = VIOLATED if not math.isnan(attained) and attained > threshold else OPEN
        reason = INCONSISTENT_REASON
    return status, reason


def status_conflict(status: str, upper_bound: float, attained: float, threshold: float,
                    reason: str | None) -> str | None:
    """Why ``status`` contradicts the numbers (``None`` when certify could have given it).

    Certify gives :func:`decide_status` of the (rounding-padded) upper bound, the
    attained violation and the threshold, except that a constraint whose proxy is
    undefined (NaN or infinite) at some loads stays open, with that reason.  So:
    ``violated`` needs ``attained > threshold``; ``certified`` needs no such
    violation, a finite ``upper_bound`` at most the threshold (certify's bounds carry
    their rounding pad already) and no reason saying the proxy is undefined; ``open``
    needs neither a violation nor, unless it has a ``reason``, a bound at most the
    threshold.  Timeouts and other reasons never change a status.
    A bound below the attained value (:func:`~gridverify._consistency.below_attained`)
    is a conflict unless the status is not ``certified`` and the reason says the
    bound is inconsistent (as certify reports it).
    """
    nums = ", ".join(f"{k} {float(v) + 0.0!r}" for k, v in (
        ("upper_bound", upper_bound), ("attained", attained), ("threshold", threshold)))
    if below_attained(upper_bound, attained) and (
            status == CERTIFIED or not (reason or "").startswith(INCONSISTENT)):
        return f"upper_bound below attained ({nums}): the bound cannot hold"
    if status == CERTIFIED and (reason or "").startswith(UNDEFINED):
        return f"status 'certified' but its reason says {reason!r}"
    decided = decide_status(upper_bound, attained, threshold)
    if status == decided:
        return None
    if decided == VIOLATED:
        return f"status {status!r} but attained > threshold ({nums}): violated"
    if status == VIOLATED:
        return f"status 'violated' but attained <= threshold ({nums})"
    if status == CERTIFIED:  # certify's bounds are padded already: no slack here
        return f"status 'certified' but upper_bound > threshold ({nums})"
    if reason:  # open with a certifying bound: certify says why (the proxy is undefined)
        return None
    return f"status 'open' but upper_bound <= threshold ({nums}) and no reason given"


def null_attained(row: dict[str, Any]) -> float:
    """What a ``null`` attained value of a constraint's JSON ``row`` stands for: on a
    violated constraint with its witness, a load where the value overflows (+inf);
    otherwise nothing found (-inf).  :meth:`ConstraintResult.to_dict` writes both as
    ``null``; every reader of the JSON reads them back here."""
    return math.inf if row.get("status") == VIOLATED and row.get("witness") is not None \
        else -math.inf


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _is_number(v: Any) -> bool:
    """A JSON number (``bool`` is not one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_name(v: Any) -> str:
    """The JSON name of ``v``'s type, for error messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             type(None): "null", int: "a number", float: "a number"}
    return names.get(type(v), type(v).__name__)


def _number(d: dict[str, Any], key: str, where: str, missing: float | None = None,
            null: float | None = None) -> float:
    """``d[key]`` as a float: a number; ``null`` gives ``null`` where that is not
    ``None``; an absent key gives ``missing`` where that is not ``None``. SpecError
    naming ``where.key`` otherwise (also for NaN)."""
    if key not in d:
        if missing is None:
            raise SpecError(f"{where}: missing {key!r}")
        return missing
    v = d[key]
    if v is None and null is not None:
        return null
    if not _is_number(v):
        also = " or null" if null is not None else ""
        raise SpecError(f"{where}.{key}: expected a number{also}, got {_type_name(v)} ({v!r})"
                        if isinstance(v, str) else
                        f"{where}.{key}: expected a number{also}, got {_type_name(v)}")
    if isinstance(v, float) and math.isnan(v):
        raise SpecError(f"{where}: {key} is NaN")
    return float(v)


def _optional(d: dict[str, Any], key: str, where: str, kind: type, what: str) -> Any:
    """``d[key]`` when of type ``kind`` (``bool`` never counts as a number), ``None``
    when absent or null; SpecError naming ``where.key`` otherwise."""
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, kind) or isinstance(v, bool):
        raise SpecError(f"{where}.{key}: expected {what} or null, got {_type_name(v)}")
    return v


def _vector(v: Any, name: str) -> np.ndarray | None:
    """A list of finite numbers as a float64 array (``None`` for null); SpecError
    naming ``name`` otherwise."""
    if v is None:
        return None
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise SpecError(f"{name}: expected a list of numbers or null")
    arr = np.asarray(v, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise SpecError(f"{name}: not every entry is a finite number")
    return arr


def _fmt(v: float) -> str:
    """A short number for reprs (4 significant digits)."""
    return f"{float(v) + 0.0:.4g}"


@dataclass(frozen=True, eq=False)
class ConstraintResult(ArrayValueEq):
    """Result for one constraint (values in the family's unit, see ``docs/physics.md``).

    ``upper_bound``: sound upper bound of the violation over the region (``inf``
    when none was obtained); ``attained``: the largest violation found, at the
    load vector ``worst_load`` (re-evaluated in float64 on the proxy and the grid
    equations); ``witness``: ``worst_load`` when ``attained > threshold``.
    ``seconds``: this constraint's share of the batched bounding and attack time.
    ``reason``: why the work on this constraint stopped short, ``None`` when it
    was fully processed (``not reached: timeout (stage)``: the certificate's
    time budget ran out before that stage; ``cut short: timeout (bab)``: it ran
    out during the constraint's branch-and-bound search, whose bound at that
    point is kept (``cut short: timeout (alpha-crown)``: during its alpha-CROWN
    optimization, whose best bound so far is kept); ``memory cap``: branch-and-bound
    filled its domain store; ``gap above tolerance``: branch-and-bound left the
    bound above the worst found by more than the tolerance; ``bound above
    threshold``: an open constraint of the other methods).  ``radius``: the constraint is
    certified on ``region.shrunk(radius)``, the box about the region's centre
    with ``radius`` times its half-widths (1.0 when certified over the region;
    ``None`` when not asked for or certified on no box tried, see
    ``CertifyOptions.radius``).
    """

    family: str
    component: int
    index: int
    upper_bound: float
    attained: float
    threshold: float
    status: str
    method: str
    seconds: float
    worst_load: np.ndarray | None = None
    rate: float | None = None  # thermal families: the branch rating (pu)
    reason: str | None = None
    radius: float | None = None

    # mutable numpy array fields: equal results need not stay equal, so no hash
    def __repr__(self) -> str:
        return (f"ConstraintResult({self.family}[{self.component}]: {self.status}, "
                f"bound {_fmt(self.upper_bound)}, worst found {_fmt(self.attained)}, "
                f"threshold {_fmt(self.threshold)} {self.unit})")

    @property
    def witness(self) -> np.ndarray | None:
        """The violating load vector (only when a violation was attained)."""
        return self.worst_load if self.status == VIOLATED else None

    @property
    def gap(self) -> float:
        """``upper_bound - attained`` (how far the certificate is from tight)."""
        return float(self.upper_bound - self.attained)

    @property
    def unit(self) -> str:
        """Unit of the values."""
        return FAMILY_UNIT[self.family]

    def loading(self) -> tuple[float, float] | None:
        """Thermal families: (attained, upper bound) of apparent power over the rating."""
        if self.rate is None or not self.rate > 0:
            return None
        r2 = self.rate**2

        def f(v: float) -> float:
            return math.sqrt(max(v + r2, 0.0)) / self.rate if math.isfinite(v) else math.inf

        return f(self.attained), f(self.upper_bound)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (contract keys first)."""
        w = self.witness
        d: dict[str, Any] = {
            "family": self.family,
            "component": int(self.component),
            "upper_bound": _num(self.upper_bound),
            "attained": _num(self.attained),
            "threshold": float(self.threshold),
            "status": self.status,
            "witness": None if w is None else [float(v) for v in w],
            "method": self.method,
            "seconds": float(self.seconds),
            "unit": self.unit,
            "index": int(self.index),
            "worst_load": None if self.worst_load is None else [float(v) for v in self.worst_load],
            "reason": self.reason,
            "radius": self.radius,
        }
        if self.rate is not None:
            ld = self.loading()
            d["rate"] = float(self.rate)
            if ld is not None:
                d["loading_attained"] = _num(ld[0])
                d["loading_upper_bound"] = _num(ld[1])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None) -> ConstraintResult:
        """Inverse of :meth:`to_dict`.

        SpecError naming the constraint (``where``, e.g. ``constraints[3]``, then its
        ``family[component]``) and the field when ``d`` is not an object, a field is
        missing or of the wrong type, the family or status is unknown, a number is
        NaN, or the status contradicts the numbers (:func:`status_conflict`).
        """
        label = where or "constraint"
        if not isinstance(d, dict):
            raise SpecError(f"{label}: expected an object, got {_type_name(d)}")
        fam = d.get("family")
        if not isinstance(fam, str):
            raise SpecError(f"{label}: missing 'family'" if fam is None else
                            f"{label}.family: expected a string, got {_type_name(fam)}")
        if fam not in FAMILIES:
            raise SpecError(f"{label}.family: unknown family {fam!r} "
                            f"(known: {', '.join(FAMILIES)})")
        comp = d.get("component")
        if not isinstance(comp, int) or isinstance(comp, bool):
            raise SpecError(f"{label}: missing 'component'" if comp is None else
                            f"{label}.component: expected an integer, got {_type_name(comp)}")
        where = f"{where} ({fam}[{comp}])" if where else f"constraint {fam}[{comp}]"
        status = d.get("status")
        if status not in STATUSES:
            raise SpecError(f"{where}: unknown status {status!r} "
                            f"(one of {', '.join(STATUSES)})")
        if "upper_bound" not in d:
            raise SpecError(f"{where}: no upper_bound (null stands for none)")
        ub = _number(d, "upper_bound", where, null=math.inf)
        att = _number(d, "attained", where, null=null_attained(d))
        thr = _number(d, "threshold", where)
        if not math.isfinite(thr):
            raise SpecError(f"{where}.threshold: not a finite number ({thr})")
        index = _optional(d, "index", where, int, "an integer")
        rate = _optional(d, "rate", where, (int, float), "a number")
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise SpecError(f"{where}.rate: a branch rating is a finite number > 0, got {rate}")
        radius = _optional(d, "radius", where, (int, float), "a number")
        if radius is not None and not 0 < radius <= 1:  # a share of the half-widths
            raise SpecError(f"{where}.radius: expected a number in (0, 1] or null, got {radius}")
        reason = _optional(d, "reason", where, str, "a string")
        method = _optional(d, "method", where, str, "a string")
        key = "worst_load" if d.get("worst_load") is not None else "witness"
        worst = _vector(d.get(key), f"{where}.{key}")
        why = status_conflict(status, ub, att, thr, reason)
        if why is not None:
            raise SpecError(f"{where}: {why}")
        return cls(
            family=fam,
            component=comp,
            index=-1 if index is None else index,
            upper_bound=ub,
            attained=att,
            threshold=thr,
            status=status,
            method=method or "",
            seconds=_number(d, "seconds", where, missing=0.0),
            worst_load=worst,
            rate=None if rate is None else float(rate),
            reason=reason,
            radius=None if radius is None else float(radius),
        )


def _worst_component(rows: list[ConstraintResult], key: str) -> int | None:
    """The component of the largest ``key`` value of ``rows`` (an infinite bound, no
    bound at all, is the largest; an attained +inf, an overflow found, too), or
    ``None`` when none of them has a value: every one is missing (bounds: none finite;
    attained: none above -inf) and no component is the worst."""
    values = [getattr(c, key) for c in rows]
    known = (math.isfinite(v) or (key == "attained" and v == math.inf) for v in values)
    if not any(known):
        return None
    worst = max(range(len(rows)), key=lambda k: -math.inf if math.isnan(values[k])
                else values[k])
    return int(rows[worst].component)


@dataclass(frozen=True, eq=False)
class Certificate(ArrayValueEq, HtmlView):
    """Outcome of :func:`gridverify.certify` for one case, proxy and region."""

    html_kind: ClassVar[str] = "certificate"

    case: str
    model: str
    region: Region
    method: str
    seconds: float
    constraints: tuple[ConstraintResult, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    # holds numpy arrays and a provenance dict: equal certificates need not stay equal
    def __repr__(self) -> str:
        s = self.summary
        return (f"Certificate(case={self.case!r}, model={self.model!r}, "
                f"method={self.method!r}, region={self.region.describe()!r}, "
                f"certified={s[CERTIFIED]}, violated={s[VIOLATED]}, open={s[OPEN]}, "
                f"seconds={float(self.seconds):.1f})")

    @property
    def summary(self) -> dict[str, int]:
        """Counts of ``certified``, ``violated``, ``open`` and ``total``."""
        out = {s: 0 for s in STATUSES}
        for c in self.constraints:
            out[c.status] = out.get(c.status, 0) + 1
        out["total"] = len(self.constraints)
        return out

    def families(self, null_nonfinite: bool = True) -> dict[str, dict[str, Any]]:
        """Per-family summary: counts, worst upper bound and attained, their gap, the
        components of those worst values (``None`` when no constraint of the family has
        a finite one: no bound computed, no load evaluated), and the family's
        ``radius``: the largest radius on which every constraint of the family is
        certified (the least of their ``ConstraintResult.radius``; 1.0 when all are
        certified over the region, 0.0 when one of them has no radius, ``None`` when no
        constraint of the family has one: no radius was computed, ``--no-radius``, or
        the radius stage never reached them).

        ``null_nonfinite``: worst values that are not finite are ``None`` (the JSON
        form's null); ``False`` keeps them as floats (``inf``: no finite bound)."""
        num = _num if null_nonfinite else float
        out: dict[str, dict[str, Any]] = {}
        for fam in FAMILIES:
            rows = [c for c in self.constraints if c.family == fam]
            if not rows:
                continue
            ub = max(c.upper_bound for c in rows)
            att = max(c.attained for c in rows)
            out[fam] = {
                "count": len(rows),
                "certified": sum(c.status == CERTIFIED for c in rows),
                "violated": sum(c.status == VIOLATED for c in rows),
                "open": sum(c.status == OPEN for c in rows),
                "max_upper_bound": num(ub),
                "max_attained": num(att),
                "gap": num(ub - att),
                "worst_upper_bound_component": _worst_component(rows, "upper_bound"),
                "worst_attained_component": _worst_component(rows, "attained"),
                "unit": FAMILY_UNIT[fam],
                "radius": self._family_radius(rows),
            }
        return out

    def _family_radius(self, rows: list[ConstraintResult]) -> float | None:
        """The least radius of ``rows`` (a constraint without one: 0.0), or ``None`` when
        radii were not computed for them: not asked, or the radius stage cut short
        before its first rung reached any of them."""
        if not self.radius_asked():
            return None
        if all(c.radius is None for c in rows) and self.radius_cut_short():
            return None
        return min(c.radius or 0.0 for c in rows)

    def radius_cut_short(self) -> bool:
        """Whether the time budget stopped the radius stage's ladder, so that some
        constraints without a radius were not tried (its warning says so)."""
        return any(w.startswith(RADIUS_STOPPED) for w in self.warnings)

    def radius_asked(self) -> bool:
        """Whether radii were computed (asked in the options, or present on a constraint);
        a constraint without one then holds on no box about the centre."""
        return bool((self.provenance.get("options") or {}).get("radius")) or any(
            c.radius is not None for c in self.constraints)

    def relu_note(self) -> str | None:
        """Why constraints may stay open: the proxy's unstable relus (``None`` if none
        is open, or no relu of the proxy is unstable over the region).

        From ``provenance["proxy_relus"]`` (recorded by :func:`gridverify.certify`
        for proxies with relus): through an unstable relu every bound is loose.
        """
        relus = self.provenance.get("proxy_relus")
        if not self.summary[OPEN] or not relus or not relus.get("unstable"):
            return None
        return (f"{relus['unstable']} of {relus['total']} relus of the proxy are unstable "
                "over the region, and every bound through them is loose")

    def region_note(self) -> str | None:
        """What the region is against the proxy's data (``None`` when nothing to say):
        the default region of a proxy whose data kept each load's power factor (a
        ``box`` sampler, one factor for a load's pd and qd: ``provenance
        ["training_sampler"]``) is the box enclosing those loads, where pd and qd
        vary apart; ``load-factors`` is the set the data came from."""
        s = self.provenance.get("training_sampler") or {}
        if self.region.kind != "training" or s.get("kind") != "box":
            return None
        try:
            lo, hi = float(s["low"]), float(s["high"])
        except (KeyError, TypeError, ValueError):
            return None
        if not lo < hi:
            return None
        return (f"region: the box enclosing the proxy's data, whose loads kept their power "
                f"factor (dataset region box:{lo:g},{hi:g}, one factor for a load's pd and "
                f"qd); here pd and qd vary apart; --region load-factors:{lo:g},{hi:g} is "
                "the set of loads the data came from")

    def radius_note(self) -> str | None:
        """How near the region's centre the constraints it does not certify hold
        (``ConstraintResult.radius``; ``None`` when no such radius was computed)."""
        asked = self.radius_asked()
        parts = []
        for status in (OPEN, VIOLATED):
            rows = [c for c in self.constraints if c.status == status]
            got = sorted(c.radius for c in rows if c.radius is not None)
            if rows and asked:
                txt = f"{len(got)} of {len(rows)} {status}"
                if got:
                    mid = float(np.median(got))
                    txt += (f" (radius {radius_text(got[0])} to {radius_text(got[-1])}, "
                            f"median {radius_text(mid)})")
                parts.append(txt)
        if not parts:
            return None
        of = "its factors' ranges" if self.region.factors is not None else "its half-widths"
        cut = self.radius_cut_short()
        return ("certified on a smaller box about the region's centre (radius: a fraction "
                f"of {of}): " + "; ".join(parts)
                + ("; the radius stage stopped early (timeout): the others were not all "
                   "tried" if cut else ""))

    @property
    def exit_status(self) -> int:
        """CLI exit status: 1 if any violation, else 3 if any open, else 0."""
        s = self.summary
        if s[VIOLATED]:
            return 1
        if s[OPEN]:
            return 3
        return 0

    def get(self, family: str, component: int) -> ConstraintResult:
        """The result of one constraint (KeyError if absent)."""
        for c in self.constraints:
            if c.family == family and c.component == component:
                return c
        raise KeyError((family, component))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the output contract."""
        return self._object([c.to_dict() for c in self.constraints])

    def _object(self, constraints: Any) -> dict[str, Any]:
        """:meth:`to_dict` with ``constraints`` as its constraints' value."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "case": self.case,
            "model": self.model,
            "region": self.region.to_dict(),
            "method": self.method,
            "seconds": float(self.seconds),
            "summary": self.summary,
            "families": self.families(),
            "constraints": constraints,
            "provenance": self.provenance,
            "warnings": list(self.warnings),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text (strict JSON: non-finite numbers are null).

        With ``indent`` the object is indented but each constraint is written on one
        line of its own (its load vectors would otherwise take a line per entry: a
        case300 certificate was 38 MB of mostly indentation, 220 MB to build).
        """
        if indent is None:
            return json.dumps(self.to_dict(), allow_nan=False)
        mark = "\x00constraints\x00"
        head = json.dumps(self._object(mark), indent=indent, allow_nan=False)
        pad = " " * (2 * indent)
        rows = ",\n".join(pad + json.dumps(c.to_dict(), allow_nan=False)
                          for c in self.constraints)
        body = f"[\n{rows}\n{' ' * indent}]" if rows else "[]"
        quoted = json.dumps(mark)
        assert head.count(quoted) == 1
        return head.replace(quoted, body)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        """Inverse of :meth:`to_dict`.

        SpecError naming the field (``certificate: constraints[3] (p_balance[1]).
        upper_bound: ...``) when ``d`` is not an object, a field is missing or of the
        wrong type, a constraint is listed twice, names an unknown family or has a
        status that contradicts its numbers (:func:`status_conflict`), or malformed
        run options or relu census in its provenance.  ``summary`` and ``families``
        are not read: they are recomputed from the constraints.
        """
        try:
            return cls._from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a check missed
            raise SpecError(f"certificate: malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_dict(cls, d: Any) -> Certificate:
        if not isinstance(d, dict):
            raise SpecError(f"certificate: expected a JSON object, got {_type_name(d)}")
        if d.get("format", FORMAT) != FORMAT:
            raise SpecError(f"certificate: format {d.get('format')!r} is not {FORMAT!r}")
        version = d.get("version", FORMAT_VERSION)
        if (not isinstance(version, int) or isinstance(version, bool)
                or not 1 <= version <= FORMAT_VERSION):
            raise SpecError(f"certificate: version {version!r} (this gridverify reads "
                            f"versions 1 to {FORMAT_VERSION})")
        text = {}
        for key in ("case", "model", "method"):
            v = d.get(key)
            if not isinstance(v, str):
                raise SpecError(f"certificate: missing {key!r}" if key not in d else
                                f"certificate: {key}: expected a string, got {_type_name(v)}")
            text[key] = v
        seconds = d.get("seconds")
        if not _is_number(seconds) or not math.isfinite(seconds):
            got = f"{seconds}" if _is_number(seconds) else _type_name(seconds)
            raise SpecError("certificate: missing 'seconds'" if "seconds" not in d else
                            f"certificate: seconds: expected a finite number, got {got}")
        region = d.get("region")
        if not isinstance(region, dict):
            raise SpecError("certificate: missing 'region'" if "region" not in d else
                            f"certificate: region: expected an object, got {_type_name(region)}")
        if not isinstance(region.get("params", {}) or {}, dict):
            raise SpecError("certificate: region.params: expected an object")
        prov = d.get("provenance", {})
        if not isinstance(prov, dict):
            raise SpecError(f"certificate: provenance: expected an object, got {_type_name(prov)}")
        warns = d.get("warnings", [])
        if not isinstance(warns, list) or not all(isinstance(w, str) for w in warns):
            raise SpecError("certificate: warnings: expected a list of strings")
        rows = d.get("constraints")
        if not isinstance(rows, list):
            raise SpecError("certificate: missing 'constraints'" if "constraints" not in d else
                            f"certificate: constraints: expected a list, got {_type_name(rows)}")
        _check_provenance(prov)
        cons: list[ConstraintResult] = []
        seen: dict[tuple[str, int], int] = {}
        reg = Region.from_dict(region)
        for i, row in enumerate(rows):
            c = ConstraintResult.from_dict(row, f"certificate: constraints[{i}]")
            if c.worst_load is not None and c.worst_load.size != reg.n_input:
                raise SpecError(f"certificate: constraints[{i}] ({c.family}[{c.component}]): "
                                f"its load has {c.worst_load.size} entries, the region "
                                f"{reg.n_input}")
            first = seen.setdefault((c.family, c.component), i)
            if first != i:
                raise SpecError(f"certificate: constraints[{i}]: {c.family}[{c.component}] "
                                f"is listed twice (also constraints[{first}])")
            cons.append(c)
        return cls(case=text["case"], model=text["model"], region=reg,
                   method=text["method"], seconds=float(seconds), constraints=tuple(cons),
                   provenance=dict(prov), warnings=tuple(warns))

    @classmethod
    def from_json(cls, text: str) -> Certificate:
        """Parse the JSON form."""
        try:
            return cls.from_dict(json_loads(text))
        except json.JSONDecodeError as exc:
            raise SpecError(f"certificate: invalid JSON at line {exc.lineno} ({exc.msg})") from None

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON form atomically (temporary file, then ``os.replace``)."""
        return write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Certificate:
        """Read a certificate JSON file (SpecError naming it when it cannot be read, is
        a folder, is not UTF-8 JSON or is not a certificate)."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # a BOM from an editor: fine
        except IsADirectoryError:
            raise SpecError(f"{path}: is a folder, not a certificate JSON file") from None
        except FileNotFoundError:
            raise SpecError(f"{path}: no such certificate file") from None
        except UnicodeDecodeError:
            raise SpecError(f"{path}: not a certificate (not UTF-8 text)") from None
        except OSError as exc:
            raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            return cls.from_json(text)
        except SpecError as exc:
            raise SpecError(f"{path}: {str(exc).removeprefix('certificate: ')}") from None


def _check_provenance(prov: dict[str, Any]) -> None:
    """SpecError naming the field when the provenance's run options are not an object
    (or record a rounding pad that is not a number >= 0), or its relu census
    (``proxy_relus``) is not two counts ``0 <= unstable <= total``: what the
    certificate's notes and views read."""
    options = prov.get("options")
    if options is not None and not isinstance(options, dict):
        raise SpecError(f"certificate: provenance.options: expected an object, got "
                        f"{_type_name(options)}")
    try:  # the rounding pads the bounds carry: numbers >= 0
        CertifyOptions(**{k: options[k] for k in ("pad_rel", "pad_abs") if k in (options or {})})
    except SpecError as exc:
        raise SpecError(f"certificate: provenance.{exc}") from None
    relus = prov.get("proxy_relus")
    if relus is None:
        return
    if not isinstance(relus, dict):
        raise SpecError(f"certificate: provenance.proxy_relus: expected an object, got "
                        f"{_type_name(relus)}")
    for key in ("unstable", "total"):
        v = relus.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise SpecError(f"certificate: provenance.proxy_relus.{key}: expected an integer "
                            f">= 0, got {v!r}")
    if relus["unstable"] > relus["total"]:
        raise SpecError("certificate: provenance.proxy_relus: more unstable relus than relus "
                        f"({relus['unstable']} of {relus['total']})")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`gridverify.fileio.atomic_write_text`).

    The file gets the usual (umask) permissions; its contents are fsynced
    before the replace.
    """
    p = Path(path)
    atomic_write_text(p, text, fsync=True)
    return p
