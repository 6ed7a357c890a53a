"""Load regions: the sets of load vectors a proxy is certified over.

A region is an axis-aligned box over the proxy's input vector
``[pd_1 .. pd_L, qd_1 .. qd_L]`` (per-unit on the case's ``base_mva``, loads in
the compiled case's load order), or a factor region inside one (below).  These
kinds are reduced to the box:

* ``box``: ``[a, b] x nominal`` per load (a negative nominal load flips the
  interval, so the box is always ``[min(a*d, b*d), max(a*d, b*d)]``);
* ``pglearn``: PGLearn-style sampling ``d = alpha * eta * nominal`` with a global
  factor ``alpha in [a, b]`` and a per-load noise ``eta in [1 - r, 1 + r]``; the
  region is the smallest box enclosing every such load vector;
* ``explicit``: given per-input lower and upper bounds;
* ``dataset``: the per-input range (min, max) of the load samples of an OPF
  dataset file.

A *factor region* is a set of load vectors that move together, ``d = c + G e``
with ``e`` in ``[-1, 1]^p`` (``G``: the ``factors``, one column per factor); its
``lower``/``upper`` are the smallest box enclosing it, and ``certify`` searches
and bounds over ``e`` (:meth:`Region.search_box`, :meth:`Region.to_loads`), so
the correlation between loads is kept, not boxed away.  Power factors are kept
(a load's pd and qd move by the same factor):

* ``scale``: every load at ``s x nominal``, ``s in [a, b]`` (the system load
  level: one factor);
* ``load-factors``: each load at its own ``u x nominal``, ``u in [a, b]`` (how the
  dataset's ``box`` sampler draws loads: one factor per load);
* ``correlated``: each load at ``(alpha + u) x nominal`` with a global ``alpha in
  [a, b]`` and a per-load ``|u| <= r`` (a PGLearn ``pglearn:A,B,R`` sample
  ``alpha * eta * nominal`` lies in ``correlated:A,B,B*R`` for ``0 <= A <= B``);
* ``zones``: the loads of each of ``k`` zones at the zone's own ``s x nominal``,
  ``s in [a, b]`` (zones: connected groups of buses with about equal load
  counts, :mod:`gridverify.spec.zones`; one factor per zone).

Regions are validated: bounds must be finite, ``lower <= upper`` and, when the
case has no negative active load, no active load may go below zero.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridverify._values import ArrayValueEq
from gridverify.errors import SpecError
from gridverify.spec.zones import load_zones


@dataclass(frozen=True, eq=False)
class Region(ArrayValueEq):
    """A box of load vectors in the proxy's input order (per-unit), or a factor
    region inside it.

    ``lower``/``upper`` have ``2 * n_load`` entries: active loads then reactive
    loads.  ``kind`` and ``params`` record how the region was specified (for
    provenance); ``params`` values are JSON-serializable.  ``factors``: ``None``
    for a box, else the ``(2 * n_load, p)`` matrix ``G`` of a factor region, the
    loads ``center + G e`` for ``e`` in ``[-1, 1]^p``; then ``lower``/``upper``
    are derived from it (build one with :meth:`from_factors`).
    """

    lower: np.ndarray
    upper: np.ndarray
    kind: str = "explicit"
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str):
            raise SpecError(f"region: kind must be a string, got {self.kind!r}")
        object.__setattr__(self, "params", _checked_params(self.params))
        lo = np.array(self.lower, dtype=np.float64).reshape(-1)
        hi = np.array(self.upper, dtype=np.float64).reshape(-1)
        if self.factors is not None:
            g = np.array(self.factors, dtype=np.float64)
            if g.ndim != 2 or g.shape[0] != lo.size or g.shape[1] == 0:
                raise SpecError(f"region: factors must be a ({lo.size}, p) matrix with p >= 1, "
                                f"got shape {g.shape}")
            if not np.all(np.isfinite(g)):
                raise SpecError("region: factors must be finite")
            spread = np.abs(g).sum(axis=1)
            c = 0.5 * (lo + hi)  # exact from from_factors (lower == upper == centre)
            lo, hi = c - spread, c + spread
            g.setflags(write=False)
            c.setflags(write=False)
            object.__setattr__(self, "factors", g)
            # the centre as given: 0.5 * (lower + upper) may be an ulp off it, which would
            # put the loads of e = -1 an ulp outside lower
            object.__setattr__(self, "_center", c)
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def from_factors(cls, center: np.ndarray, factors: np.ndarray, kind: str = "factors",
                     params: tuple[tuple[str, Any], ...] = ()) -> Region:
        """The factor region ``center + factors @ e``, ``e`` in ``[-1, 1]^p``."""
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        return cls(c, c, kind, params, np.asarray(factors, dtype=np.float64))

    @property
    def n_search(self) -> int:
        """Dimension of the space ``certify`` searches: ``p`` factors, else ``n_input``."""
        return self.n_input if self.factors is None else int(self.factors.shape[1])

    def search_box(self) -> Region:
        """The box ``certify`` bounds and searches over: this box itself, or ``[-1, 1]^p``
        for a factor region (map its points with :meth:`to_loads`)."""
        if self.factors is None:
            return self
        one = np.ones(self.n_search)
        return Region(-one, one, "factor-space", (("of", self.kind),))

    def to_loads(self, points: np.ndarray) -> np.ndarray:
        """Load vectors of points of :meth:`search_box` (unchanged for a box), ``(B, n_input)``."""
        x = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if self.factors is None:
            return x
        # inside the box mathematically: the clip only removes rounding
        return np.clip(self.center + x @ self.factors.T, self.lower, self.upper)

    @property
    def n_input(self) -> int:
        """Number of inputs (``2 * n_load``)."""
        return int(self.lower.shape[0])

    @property
    def center(self) -> np.ndarray:
        """Midpoint of the box (a factor region: its centre ``c`` as given)."""
        if self.factors is not None:
            return self._center
        return 0.5 * (self.lower + self.upper)

    def shrunk(self, radius: float) -> Region:
        """The box about :attr:`center` with ``radius`` times the half-widths (``0 < radius
        <= 1``; kept inside this box), e.g. where a constraint's ``radius`` certifies it.

        Its ``params`` record the radius against the region first shrunk."""
        if not 0 < radius <= 1:
            raise SpecError(f"region: radius must be in (0, 1], got {radius!r}")
        p = dict(self.params)
        p["radius"] = float(radius) * float(p.get("radius", 1.0))
        params = tuple(sorted(p.items()))
        c = self.center
        if self.factors is not None:  # radius times every factor's range
            return Region.from_factors(c, radius * self.factors, self.kind, params)
        half = 0.5 * (self.upper - self.lower)
        lo = np.clip(c - radius * half, self.lower, self.upper)
        hi = np.clip(c + radius * half, self.lower, self.upper)
        return Region(lo, hi, self.kind, params)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` load vectors drawn uniformly from the box (a factor region: its factors
        drawn uniformly), shape ``(n, n_input)``."""
        box = self.search_box()
        u = rng.random((n, box.n_input))
        return self.to_loads(box.lower + u * (box.upper - box.lower))

    def contains(self, other: Region, tol: float = 1e-12) -> bool:
        """Whether ``other`` lies inside this region (up to ``tol``).

        Exact for a box; a factor region is only known to contain itself shrunk
        (same centre, factors scaled by at most 1) and answers ``False`` otherwise.
        """
        if other.n_input != self.n_input:
            return False
        if self.factors is not None:
            if other.factors is None or other.factors.shape != self.factors.shape \
                    or not np.allclose(other.center, self.center, rtol=0, atol=tol):
                return False
            scale = np.linalg.norm(other.factors) / max(np.linalg.norm(self.factors), 1e-300)
            return bool(scale <= 1 + tol
                        and np.allclose(other.factors, scale * self.factors, rtol=0, atol=tol))
        return bool(
            np.all(other.lower >= self.lower - tol) and np.all(other.upper <= self.upper + tol)
        )

    def describe(self) -> str:
        """Short human-readable description (``box:0.9,1.1`` style when known)."""
        p = dict(self.params)
        names = _NUMBER_NAMES.get(self.kind, "")
        if names and all(isinstance(p.get(k), (int, float)) for k in names):
            return f"{self.kind}:" + ",".join(f"{p[k]:g}" for k in names)  # as on the CLI
        if names:  # a number kind built without its numbers
            return f"{self.kind} ({self.n_input} inputs)"
        if self.kind == "dataset":
            return f"dataset:{p.get('path', '?')}"
        if self.kind == "training":
            return "training region"
        return f"explicit ({self.n_input} inputs)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``kind``, ``params``, ``lower``, ``upper`` and, for a factor
        region, ``center`` and ``factors``: its nonzero entries ``{"shape", "rows",
        "cols", "values"}``."""
        d: dict[str, Any] = {
            "kind": self.kind,
            "params": dict(self.params),
            "lower": [float(v) for v in self.lower],
            "upper": [float(v) for v in self.upper],
        }
        if self.factors is not None:
            r, c = np.nonzero(self.factors)
            d["center"] = [float(v) for v in self.center]
            d["factors"] = {"shape": list(self.factors.shape), "rows": r.tolist(),
                            "cols": c.tolist(), "values": self.factors[r, c].tolist()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Region:
        """Inverse of :meth:`to_dict` (validates finiteness and ordering)."""
        try:
            lower = _as_vector(data["lower"], "region.lower")
            upper = _as_vector(data["upper"], "region.upper")
        except KeyError as exc:
            raise SpecError(f"region: missing key {exc.args[0]!r}") from None
        _check_bounds(lower, upper, "region")
        params = data.get("params", {})
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise SpecError(f"region.params: expected an object, got {params!r}")
        kind = data.get("kind", "explicit")
        if not isinstance(kind, str):
            raise SpecError(f"region.kind: expected a string, got {kind!r}")
        items = tuple(sorted(params.items()))
        if data.get("factors") is None:
            return cls(lower, upper, kind, items)
        factors = _factors_from_dict(data["factors"], lower.size)
        if data.get("center") is None:  # written before the centre was: the box's midpoint
            return cls(lower, upper, kind, items, factors)
        center = _as_vector(data["center"], "region.center")
        if center.size != lower.size:
            raise SpecError(f"region.center: {center.size} entries, lower has {lower.size}")
        region = cls.from_factors(center, factors, kind, items)
        scale = 1.0 + np.abs(region.upper) + np.abs(region.lower)
        if (np.abs(region.lower - lower) > 1e-9 * scale).any() or \
                (np.abs(region.upper - upper) > 1e-9 * scale).any():
            raise SpecError("region: lower and upper are not center -/+ the factors' spread")
        return region


def _checked_params(params: Any) -> tuple[tuple[str, Any], ...]:
    """A region's ``params`` as sorted ``(name, value)`` pairs (a mapping is taken too):
    names strings, values JSON numbers (finite), strings, booleans or None, so that a
    certificate writes and reads them back unchanged."""
    items = params.items() if isinstance(params, dict) else params
    try:
        pairs = [(k, v) for k, v in items]
    except (TypeError, ValueError):
        raise SpecError(f"region: params must be (name, value) pairs, got {params!r}") from None
    out = []
    for k, v in pairs:
        if not isinstance(k, str):
            raise SpecError(f"region: params name {k!r} is not a string")
        v = v.item() if isinstance(v, (np.integer, np.floating)) else v
        if not (v is None or isinstance(v, (str, bool, int, float))):
            raise SpecError(f"region: params {k} = {v!r} is not a number or a string")
        if isinstance(v, float) and not np.isfinite(v):
            raise SpecError(f"region: params {k} = {v!r} is not finite")
        out.append((k, v))
    return tuple(sorted(out))


def _factors_from_dict(d: Any, n_input: int) -> np.ndarray:
    """The dense factor matrix of :meth:`Region.to_dict`'s ``factors`` entry."""
    try:
        shape = tuple(int(v) for v in d["shape"])
        rows, cols = np.asarray(d["rows"], dtype=np.int64), np.asarray(d["cols"], dtype=np.int64)
        vals = np.asarray(d["values"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"region.factors: expected shape, rows, cols and values ({exc})") from None
    if len(shape) != 2 or shape[0] != n_input or shape[1] < 1:
        raise SpecError(f"region.factors: shape {list(shape)} does not fit {n_input} inputs")
    if not rows.shape == cols.shape == vals.shape or rows.ndim != 1:
        raise SpecError("region.factors: rows, cols and values differ in length")
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0
                      or cols.max() >= shape[1]):
        raise SpecError("region.factors: an index lies outside the shape")
    g = np.zeros(shape)
    g[rows, cols] = vals
    return g


def _text_or_bool(value: Any) -> bool:
    """A string or a boolean, which float() and numpy would take for a number ("0.9",
    true as 1) but a spec file's number never is."""
    return isinstance(value, (str, bytes, bool, np.bool_))


def _as_vector(values: Any, name: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) or values.dtype == object:
        bad = [v for v in np.asarray(values, dtype=object).reshape(-1) if _text_or_bool(v)]
        if bad or _text_or_bool(values):
            raise SpecError(f"{name}: not a list of numbers ({(bad or [values])[0]!r})")
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{name}: not a list of numbers ({exc})") from None
    if arr.size == 0:
        raise SpecError(f"{name}: empty bounds")
    return arr


def _check_bounds(lower: np.ndarray, upper: np.ndarray, name: str) -> None:
    if lower.shape != upper.shape:
        raise SpecError(
            f"{name}: lower has {lower.size} entries but upper has {upper.size}"
        )
    if lower.size == 0:
        raise SpecError(f"{name}: empty bounds")
    for arr, side in ((lower, "lower"), (upper, "upper")):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise SpecError(f"{name}.{side}[{int(bad[0])}]: not a finite number ({arr[bad[0]]})")
    inv = np.flatnonzero(lower > upper)
    if inv.size:
        i = int(inv[0])
        raise SpecError(
            f"{name}: inverted bounds at input {i} (lower {lower[i]:g} > upper {upper[i]:g})"
        )


def _input_name(case: Any, i: int) -> str:
    n_load = int(case.n_load)
    kind = "pd" if i < n_load else "qd"
    k = i % n_load
    bus = int(case.bus_ids[int(case.load_bus[k])])
    return f"{kind}[load {k + 1} at bus {bus}]"


def validate_region(case: Any, region: Region, name: str = "region") -> Region:
    """Check a region against a compiled case; return it unchanged or raise SpecError.

    Checks: ``2 * n_load`` inputs, finite values, ``lower <= upper``, and no
    negative active load when the case itself has none.
    """
    n_in = 2 * int(case.n_load)
    if region.n_input != n_in:
        raise SpecError(
            f"{name}: {region.n_input} inputs, but case {case.name} has {case.n_load} loads "
            f"(expected {n_in} inputs: pd then qd)"
        )
    _check_bounds(region.lower, region.upper, name)
    with np.errstate(over="ignore", invalid="ignore"):
        spans = (region.upper - region.lower, region.lower + region.upper)
    if not all(np.isfinite(v).all() for v in spans):  # box:1e308,1e308: the centre is inf
        raise SpecError(f"{name}: loads too large for float64 arithmetic (the box's width "
                        "or centre overflows)")
    pd_nom = np.asarray(case.pd, dtype=np.float64)
    if pd_nom.size and np.all(pd_nom >= 0):
        neg = np.flatnonzero(region.lower[: case.n_load] < 0)
        if neg.size:
            i = int(neg[0])
            raise SpecError(
                f"{name}: negative active load {region.lower[i]:g} pu for "
                f"{_input_name(case, i)}, but case {case.name} has no negative loads"
            )
    return region


def _nominal(case: Any) -> np.ndarray:
    return np.concatenate([np.asarray(case.pd, np.float64), np.asarray(case.qd, np.float64)])


def _check_number(value: Any, name: str) -> float:
    if _text_or_bool(value):
        raise SpecError(f"{name}: not a number ({value!r})")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: not a number ({value!r})") from None
    if not np.isfinite(v):
        raise SpecError(f"{name}: not a finite number ({value!r})")
    return v


def _factor_range(a: Any, b: Any, kind: str, r: Any = None) -> tuple[float, ...]:
    """The checked numbers of a ``kind:A,B[,R]`` region: ``(a, b)`` or ``(a, b, r)``."""
    a = _check_number(a, f"region {kind} factor a")
    b = _check_number(b, f"region {kind} factor b")
    if a > b:
        raise SpecError(f"region {kind}: inverted factors (a={a:g} > b={b:g})")
    if r is None:
        return a, b
    r = _check_number(r, f"region {kind} noise r")
    if r < 0:
        raise SpecError(f"region {kind}: negative noise level r={r:g}")
    return a, b, r


def box_region(case: Any, a: float, b: float) -> Region:
    """``[a, b] x nominal`` per load (negative nominal loads flip the interval)."""
    a, b = _factor_range(a, b, "box")
    nom = _nominal(case)
    lo = np.minimum(a * nom, b * nom)
    hi = np.maximum(a * nom, b * nom)
    return validate_region(case, Region(lo, hi, "box", (("a", a), ("b", b))))


def pglearn_region(case: Any, a: float, b: float, r: float) -> Region:
    """Box enclosing ``alpha * eta * nominal``, ``alpha in [a, b]``, ``eta in [1-r, 1+r]``."""
    a, b, r = _factor_range(a, b, "pglearn", r)
    corners = np.array([a * (1 - r), a * (1 + r), b * (1 - r), b * (1 + r)])
    f_lo, f_hi = float(corners.min()), float(corners.max())
    nom = _nominal(case)
    lo = np.minimum(f_lo * nom, f_hi * nom)
    hi = np.maximum(f_lo * nom, f_hi * nom)
    return validate_region(case, Region(lo, hi, "pglearn", (("a", a), ("b", b), ("r", r))))


def _per_load(case: Any, scale: float) -> np.ndarray:
    """``(2 L, L)``: column ``l`` moves load ``l``'s pd and qd by ``scale`` x nominal."""
    nom = _nominal(case)
    n_load = int(case.n_load)
    g = np.zeros((2 * n_load, n_load))
    idx = np.arange(n_load)
    g[idx, idx] = scale * nom[:n_load]
    g[n_load + idx, idx] = scale * nom[n_load:]
    return g


def _factor_region(case: Any, mid: float, g: np.ndarray, kind: str,
                   params: tuple[tuple[str, Any], ...]) -> Region:
    g = g[:, np.any(g != 0, axis=0)]  # a load with no nominal power adds no factor
    if g.shape[1] == 0:  # zero-width region: one idle factor keeps the search space non-empty
        g = np.zeros((g.shape[0], 1))
    return validate_region(case, Region.from_factors(mid * _nominal(case), g, kind, params))


def scale_region(case: Any, a: float, b: float) -> Region:
    """Every load at ``s x nominal``, one ``s in [a, b]`` for all (the system load level)."""
    a, b = _factor_range(a, b, "scale")
    g = (0.5 * (b - a) * _nominal(case))[:, None]
    return _factor_region(case, 0.5 * (a + b), g, "scale", (("a", a), ("b", b)))


def load_factor_region(case: Any, a: float, b: float) -> Region:
    """Each load at its own ``u x nominal``, ``u in [a, b]``: power factors kept (the loads
    the dataset's ``box`` sampler draws; the plain ``box`` region lets pd and qd vary apart)."""
    a, b = _factor_range(a, b, "load-factors")
    return _factor_region(case, 0.5 * (a + b), _per_load(case, 0.5 * (b - a)),
                          "load-factors", (("a", a), ("b", b)))


def correlated_region(case: Any, a: float, b: float, r: float) -> Region:
    """Each load at ``(alpha + u) x nominal``: one global ``alpha in [a, b]`` and a per-load
    ``|u| <= r`` (power factors kept).  ``r = 0`` is :func:`scale_region`'s set."""
    a, b, r = _factor_range(a, b, "correlated", r)
    g = np.concatenate([(0.5 * (b - a) * _nominal(case))[:, None], _per_load(case, r)], axis=1)
    return _factor_region(case, 0.5 * (a + b), g, "correlated", (("a", a), ("b", b), ("r", r)))


def zone_region(case: Any, a: float, b: float, k: float) -> Region:
    """The loads of each of ``k`` zones at a zone factor ``s_z x nominal``, ``s_z in [a, b]``
    (one factor per zone, power factors kept).  Zones: connected groups of buses
    with about equal load counts (:func:`gridverify.spec.zones.load_zones`);
    ``k = 1`` is :func:`scale_region`'s set, one zone per load
    :func:`load_factor_region`'s."""
    a, b = _factor_range(a, b, "zones")
    kf = _check_number(k, "region zones count k")
    n_load = int(case.n_load)
    if kf != int(kf) or not 1 <= kf <= n_load:
        raise SpecError(f"region zones: k={kf:g} must be a whole number of zones from 1 to "
                        f"the case's {n_load} loads")
    k = int(kf)
    onehot = np.eye(k)[load_zones(case, k)]  # (L, k)
    per = _per_load(case, 0.5 * (b - a))  # (2L, L)
    return _factor_region(case, 0.5 * (a + b), per @ onehot, "zones",
                          (("a", a), ("b", b), ("k", k)))


def explicit_region(case: Any, lower: Sequence[float], upper: Sequence[float]) -> Region:
    """Explicit per-input bounds in the proxy's input order (pd then qd, per-unit)."""
    lo = _as_vector(lower, "region.lower")
    hi = _as_vector(upper, "region.upper")
    return validate_region(case, Region(lo, hi, "explicit", ()))


def dataset_region(case: Any, path: str | Path) -> Region:
    """The per-input range of the load samples stored in an OPF dataset (HDF5) file.

    The loads are read from ``input/pd`` and ``input/qd`` (or ``pd``/``qd`` at the
    root), each ``(n_samples, n_load)`` per-unit (:func:`dataset_loads`).
    """
    x = dataset_loads(case, path)
    return validate_region(
        case,
        Region(x.min(axis=0), x.max(axis=0), "dataset", (("path", str(path)),)),
        name=f"region dataset {path}",
    )


def dataset_loads(case: Any, path: str | Path) -> np.ndarray:
    """The load samples ``(n_samples, 2 n_load)`` (pd then qd) of an OPF dataset file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise SpecError(f"region dataset: file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            h = f.attrs.get("case_hash")
            if h is not None and str(h) != str(case.content_hash):
                raise SpecError(
                    f"region dataset {path}: made for case {f.attrs.get('case_name', '?')!s} "
                    f"(hash {str(h)[:12]}...), not for {case.name}"
                )
            pd = qd = None
            for prefix in ("input/", "inputs/", ""):
                if f"{prefix}pd" in f and f"{prefix}qd" in f:
                    pd = np.asarray(f[f"{prefix}pd"], dtype=np.float64)
                    qd = np.asarray(f[f"{prefix}qd"], dtype=np.float64)
                    break
    except OSError as exc:
        raise SpecError(f"region dataset {path}: cannot read HDF5 file ({exc})") from None
    if pd is None or qd is None:
        raise SpecError(f"region dataset {path}: no pd/qd load arrays (input/pd, input/qd)")
    if pd.ndim != 2 or qd.shape != pd.shape or pd.shape[0] == 0:
        raise SpecError(
            f"region dataset {path}: pd/qd must be non-empty (n_samples, n_load) arrays, "
            f"got {pd.shape} and {qd.shape}"
        )
    x = np.concatenate([pd, qd], axis=1)
    if not np.all(np.isfinite(x)):
        raise SpecError(f"region dataset {path}: non-finite load values")
    return x


#: region kinds given by numbers and their constructors (CLI ``kind:A,B[,R|,K]``, spec
#: ``kind = [a, b(, r|, k)]``, :meth:`Region.describe`); the numbers' names are the params'
NUMBER_KINDS = {"box": box_region, "pglearn": pglearn_region, "scale": scale_region,
                "load-factors": load_factor_region, "correlated": correlated_region,
                "zones": zone_region}
#: every key of a region table (spec files' ``[region]``, studies' ``[regions.NAME]``)
REGION_KEYS: tuple[str, ...] = (*NUMBER_KINDS, "dataset", "lower", "upper")
_NUMBER_NAMES = {"box": "ab", "pglearn": "abr", "scale": "ab", "load-factors": "ab",
                 "correlated": "abr", "zones": "abk"}


def _usage(kind: str, spec: bool = False) -> str:
    """``box:A,B`` (CLI) or ``[a, b]`` (spec file)."""
    names = _NUMBER_NAMES[kind]
    return f"[{', '.join(names)}]" if spec else f"{kind}:{','.join(names.upper())}"


def _number_region(case: Any, kind: str, vals: Any, what: str, spec: bool) -> Region:
    if not isinstance(vals, (list, tuple)) or len(vals) != len(_NUMBER_NAMES[kind]):
        raise SpecError(f"{what}: expected {_usage(kind, spec)}")
    return NUMBER_KINDS[kind](case, *vals)


def region_from_mapping(case: Any, data: dict[str, Any], base: Path | None = None) -> Region:
    """A region from a spec-file table, e.g. ``{"box": [0.9, 1.1]}``.

    Accepted keys: ``box = [a, b]``, ``pglearn = [a, b, r]``, ``scale = [a, b]``,
    ``load-factors = [a, b]``, ``correlated = [a, b, r]``, ``dataset = "file"``, or
    ``lower = [...]`` with ``upper = [...]``.
    """
    keys = set(data)
    known = set(REGION_KEYS)
    unknown = keys - known
    if unknown:
        raise SpecError(
            f"region: unknown key {sorted(unknown)[0]!r} (expected one of {sorted(known)})"
        )
    kinds = [k for k in (*NUMBER_KINDS, "dataset") if k in data]
    if "lower" in data or "upper" in data:
        kinds.append("lower/upper")
    if len(kinds) > 1:
        raise SpecError(f"region: conflicting keys {' and '.join(kinds)} (give only one of "
                        f"{', '.join(NUMBER_KINDS)}, dataset or lower/upper)")
    for kind in NUMBER_KINDS:
        if kind in data:
            return _number_region(case, kind, data[kind], f"region.{kind}", spec=True)
    if "dataset" in data:
        if not isinstance(data["dataset"], (str, os.PathLike)):
            raise SpecError(f"region.dataset: expected a string (a dataset file), got "
                            f"{data['dataset']!r}")
        p = Path(data["dataset"])
        if base is not None and not p.is_absolute():
            p = base / p
        return dataset_region(case, p)
    if "lower" in data or "upper" in data:
        if "lower" not in data or "upper" not in data:
            raise SpecError("region: 'lower' and 'upper' must both be given")
        return explicit_region(case, data["lower"], data["upper"])
    raise SpecError(f"region: empty region table (give {', '.join(NUMBER_KINDS)}, dataset "
                    "or lower/upper)")


def parse_region(text: str, case: Any) -> Region:
    """Parse a CLI region: ``box:A,B``, ``pglearn:A,B,R``, ``scale:A,B``,
    ``load-factors:A,B``, ``correlated:A,B,R``, ``zones:A,B,K``, ``dataset:FILE.h5``
    or a spec file.

    A spec file (``.toml``/``.json``) contributes its ``[region]`` table.
    """
    text = text.strip()
    if not text:
        raise SpecError("region: empty region")
    kind, _, rest = text.partition(":")
    if kind in NUMBER_KINDS and rest:
        try:
            vals = [float(p) for p in rest.split(",")]
        except ValueError:
            raise SpecError(f"region {text!r}: factors must be numbers") from None
        return _number_region(case, kind, vals, f"region {text!r}", spec=False)
    if kind == "dataset" and rest:
        return dataset_region(case, rest)
    if text.endswith((".toml", ".json")):
        from gridverify.spec.specfile import load_spec_mapping

        data = load_spec_mapping(text)
        if "region" not in data or not isinstance(data["region"], dict):
            raise SpecError(f"{text}: no [region] table")
        try:  # checked here, where the file is known: every error names it
            return validate_region(case, region_from_mapping(case, data["region"],
                                                             base=Path(text).parent))
        except SpecError as exc:
            if str(exc).startswith(text):
                raise
            raise SpecError(f"{text}: {exc}") from None
    raise SpecError(
        f"region {text!r}: expected {', '.join(_usage(k) for k in NUMBER_KINDS)}, "
        "dataset:FILE.h5 or a .toml/.json file"
    )

