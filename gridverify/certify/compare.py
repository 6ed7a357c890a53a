"""Two certificates of one case side by side: what a new proxy (or region, or method)
changed, constraint by constraint.

:func:`compare_certificates` matches constraints by ``(family, component)`` and
classifies each pair by status, ranked ``certified`` (best) over ``open`` over
``violated`` (worst): a *regression* ranks lower in the new certificate (a
constraint certified before and open or violated now, or open before and
violated now), an *improvement* higher, *unchanged* the same; constraints in one
certificate only are *added* or *removed*, and a removed constraint that the old
certificate certified is a *lost* certificate (:attr:`ConstraintChange.lost`).
The :class:`CertificateDiff` also carries the per-family counts and worst values
of both, and says where the two are not like for like (other constraint
selections, regions, thresholds or methods), since a change of status may then
come from them rather than from the proxy.

``gridverify compare OLD.json NEW.json`` prints it (exit status 1 when a
regression or a lost certificate is found: a check for a retrained proxy in CI).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from gridverify._html import HtmlView
from gridverify.certify.certificate import (
    CERTIFIED,
    OPEN,
    VIOLATED,
    Certificate,
    ConstraintResult,
    _num,
)
from gridverify.errors import SpecError

__all__ = ["KINDS", "CertificateDiff", "ConstraintChange", "compare_certificates"]

#: status ranks: a higher rank is a better status
_RANK = {VIOLATED: 0, OPEN: 1, CERTIFIED: 2}
#: change kinds, in the order they are listed
KINDS = ("regression", "improvement", "added", "removed", "unchanged")


@dataclass(frozen=True)
class ConstraintChange:
    """One constraint in the two certificates (``old`` or ``new`` ``None`` where it is
    absent)."""

    family: str
    component: int
    old: ConstraintResult | None
    new: ConstraintResult | None

    @property
    def kind(self) -> str:
        """``regression``, ``improvement``, ``unchanged``, ``added`` or ``removed``."""
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        d = _RANK[self.new.status] - _RANK[self.old.status]
        return "regression" if d < 0 else ("improvement" if d > 0 else "unchanged")

    @property
    def lost(self) -> bool:
        """Whether the old certificate certified this constraint and the new one lacks it
        (a ``removed`` constraint that counts against the new certificate, as a
        regression does)."""
        return self.new is None and self.old is not None and self.old.status == CERTIFIED

    @property
    def name(self) -> str:
        """``family[component]``."""
        return f"{self.family}[{self.component}]"

    def delta(self, what: str) -> float:
        """``new - old`` of ``upper_bound`` or ``attained`` (NaN where one is missing or
        not finite)."""
        if self.old is None or self.new is None:
            return math.nan
        a, b = getattr(self.old, what), getattr(self.new, what)
        return float(b - a) if math.isfinite(a) and math.isfinite(b) else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (statuses and values of both sides, ``None`` where absent)."""
        def side(c: ConstraintResult | None, key: str) -> Any:
            if c is None:
                return None
            return c.status if key == "status" else _num(getattr(c, key))

        return {"family": self.family, "component": int(self.component), "kind": self.kind,
                **{f"{w}_{k}": side(c, k) for w, c in (("old", self.old), ("new", self.new))
                   for k in ("status", "upper_bound", "attained", "threshold")}}


@dataclass(frozen=True)
class CertificateDiff(HtmlView):
    """The outcome of :func:`compare_certificates`.

    ``changes``: one :class:`ConstraintChange` per constraint of either certificate,
    regressions first (the new status worst first, then the old status best first,
    then the largest rise of the worst found), then improvements, added, removed
    (lost certificates first) and unchanged constraints.
    ``notes``: where the two certificates are not like for like.
    """

    html_kind: ClassVar[str] = "certificate-diff"

    old: Certificate
    new: Certificate
    changes: tuple[ConstraintChange, ...]
    notes: tuple[str, ...]

    # the dataclass repr would print both certificates and every change (hundreds of KB)
    def __repr__(self) -> str:
        c = self.counts
        one_side = "".join(f", {k}={c[k]}" for k in ("added", "removed") if c[k])
        lost = f", lost={len(self.lost)}" if self.lost else ""
        o, n = self.old, self.new
        method = o.method if o.method == n.method else f"{o.method} -> {n.method}"
        return (f"CertificateDiff(case={o.case!r}, old_model={o.model!r}, "
                f"new_model={n.model!r}, method={method!r}, "
                f"regression={c['regression']}, improvement={c['improvement']}, "
                f"unchanged={c['unchanged']}{one_side}{lost}, notes={len(self.notes)})")

    def of_kind(self, kind: str) -> list[ConstraintChange]:
        """The changes of one kind (see :data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return [c for c in self.changes if c.kind == kind]

    @property
    def counts(self) -> dict[str, int]:
        """How many constraints of each kind."""
        return {k: sum(c.kind == k for c in self.changes) for k in KINDS}

    @property
    def lost(self) -> list[ConstraintChange]:
        """The removed constraints that the old certificate certified
        (:attr:`ConstraintChange.lost`)."""
        return [c for c in self.changes if c.lost]

    @property
    def regressed(self) -> bool:
        """Whether any constraint ranks lower in the new certificate, or is certified in
        the old one and absent from the new one (a lost certificate)."""
        return any(c.kind == "regression" or c.lost for c in self.changes)

    def families(self, null_nonfinite: bool = True) -> dict[str, dict[str, Any]]:
        """Per family (of either certificate): ``Certificate.families()`` of the old and
        of the new certificate (``None`` where the family is absent; ``null_nonfinite``
        as for :meth:`Certificate.families`)."""
        fo, fn = (c.families(null_nonfinite) for c in (self.old, self.new))
        return {f: {"old": fo.get(f), "new": fn.get(f)} for f in dict.fromkeys([*fo, *fn])}

    def plot(self, ax: Any = None) -> Any:
        """The old margin (bound - threshold) of each constraint against the new one
        (matplotlib Figure; :func:`~gridverify.report.figures.comparison_figure`)."""
        from gridverify._html import plotter

        return plotter("certificate-diff")(self, ax=ax)

    def to_dict(self, every: bool = False) -> dict[str, Any]:
        """JSON-ready dict; ``changes`` lists the constraints that changed status or are
        in one certificate only (``every``: all of them)."""
        def head(c: Certificate) -> dict[str, Any]:
            return {"case": c.case, "model": c.model, "method": c.method,
                    "region": c.region.describe(), "summary": c.summary}

        return {"old": head(self.old), "new": head(self.new), "counts": self.counts,
                "lost": len(self.lost), "regressed": self.regressed,
                "notes": list(self.notes),
                "families": self.families(),
                "changes": [c.to_dict() for c in self.changes
                            if every or c.kind != "unchanged"]}


def _order(c: ConstraintChange) -> tuple[Any, ...]:
    kind = KINDS.index(c.kind)
    side = c.new if c.new is not None else c.old
    assert side is not None
    rise = c.delta("attained")
    if c.kind == "regression":
        worst = (_RANK[side.status], -_RANK[c.old.status])
    else:
        worst = (-c.lost, 0)  # lost certificates first among the removed
    return (kind, *worst, -(rise if math.isfinite(rise) else -math.inf), side.family,
            side.component)


def _certificate(value: Any, which: str) -> Certificate:
    """The certificate ``value`` stands for (see :func:`compare_certificates`)."""
    if isinstance(value, Certificate):
        return value
    if isinstance(value, dict):
        return Certificate.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return Certificate.read(value)
    raise SpecError(f"compare: {which}: expected a Certificate, its dict or a JSON file's "
                    f"path, got {type(value).__name__}")


def compare_certificates(old: Certificate | dict[str, Any] | str | os.PathLike[str],
                         new: Certificate | dict[str, Any] | str | os.PathLike[str]
                         ) -> CertificateDiff:
    """Compare two certificates of the same case (:class:`SpecError` otherwise: other case
    names, or the same name with other contents, by ``provenance["case_hash"]``); each
    a :class:`Certificate`, its dict form (:meth:`Certificate.to_dict`) or the path of its
    JSON file (``certify --out``)."""
    old, new = (_certificate(c, which) for c, which in ((old, "old"), (new, "new")))
    if old.case != new.case:
        raise SpecError(f"compare: the certificates are of different cases ({old.case!r} and "
                        f"{new.case!r})")
    hashes = [c.provenance.get("case_hash") for c in (old, new)]
    if all(isinstance(h, str) for h in hashes) and hashes[0] != hashes[1]:
        raise SpecError(f"compare: the certificates are of two cases named {old.case!r} with "
                        f"different contents (case_hash {hashes[0][:12]}... and "
                        f"{hashes[1][:12]}...): an edited case file, or two pandapower "
                        "networks")
    by_key_old = {(c.family, c.component): c for c in old.constraints}
    by_key_new = {(c.family, c.component): c for c in new.constraints}
    keys = list(dict.fromkeys([*by_key_old, *by_key_new]))
    changes = sorted((ConstraintChange(f, k, by_key_old.get((f, k)), by_key_new.get((f, k)))
                      for f, k in keys), key=_order)
    notes = _selection_notes(by_key_old, by_key_new)
    # one set of loads under two names (box:0.9,1.1 and the training region) is one region
    if not (old.region.contains(new.region) and new.region.contains(old.region)):
        notes.append(f"the regions differ (old: {old.region.describe()}; new: "
                     f"{new.region.describe()})")
    n_thr = sum(c.old is not None and c.new is not None and c.old.threshold != c.new.threshold
                for c in changes)
    if n_thr:
        notes.append(f"{n_thr} constraint(s) have other thresholds")
    if old.method != new.method:
        notes.append(f"the methods differ (old: {old.method}; new: {new.method})")
    notes += _option_notes(old, new)
    return CertificateDiff(old, new, tuple(changes), tuple(notes))


def _selection_notes(old: dict[tuple[str, int], ConstraintResult],
                     new: dict[tuple[str, int], ConstraintResult]) -> list[str]:
    """A note when the two certificates cover other constraints (``--constraints``),
    with how many of the old one's certificates the new one lacks."""
    if old.keys() == new.keys():
        return []
    gone = [k for k in old if k not in new]
    lost = sum(old[k].status == CERTIFIED for k in gone)
    extra = sum(k not in old for k in new)
    note = (f"the constraint selections differ (old: {len(old)} constraints, new: "
            f"{len(new)}; {len(gone)} only in the old, {extra} only in the new)")
    if lost:
        note += (f"; {lost} constraint(s) certified in the old certificate are absent from "
                 "the new one: lost certificates, counted against it")
    return [note]


def _option_notes(old: Certificate, new: Certificate) -> list[str]:
    """Notes on run options that differ (time budget, samples, seed, branch-and-bound...)
    and on a certificate resumed from a checkpoint."""
    notes = []
    a, b = (c.provenance.get("options") or {} for c in (old, new))
    if a and b:
        both = sorted(set(a) & set(b))  # an option one version lacks is no difference
        diff = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in both
                if a[k] != b[k] and not isinstance(a[k], dict)]
        diff += [f"{k} options" for k in both if a[k] != b[k] and isinstance(a[k], dict)]
        if diff:
            notes.append("the run options differ (" + "; ".join(diff) + ")")
    for label, c in (("old", old), ("new", new)):
        if any(w.startswith("resumed from checkpoint") for w in c.warnings):
            notes.append(f"the {label} certificate was resumed from a checkpoint")
    return notes
