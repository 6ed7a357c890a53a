"""Load regions: the sets of load vectors a proxy is certified over.

A region is an axis-aligned box over the proxy's input vector
``[pd_1 .. pd_L, qd_1 .. qd_L]`` (per-unit on the case's ``base_mva``, loads in
the compiled case's load order).  Every region kind is reduced to that box:

* ``box``: ``[a, b] x nominal`` per load (a negative nominal load flips the
  interval, so the box is always ``[min(a*d, b*d), max(a*d, b*d)]``);
* ``pglearn``: PGLearn-style sampling ``d = alpha * eta * nominal`` with a global
  factor ``alpha in [a, b]`` and a per-load noise ``eta in [1 - r, 1 + r]``; the
  region is the smallest box enclosing every such load vector;
* ``explicit``: given per-input lower and upper bounds;
* ``dataset``: the per-input range (min, max) of the load samples of an OPF
  dataset file.

Regions are validated: bounds must be finite, ``lower <= upper`` and, when the
case has no negative active load, no active load may go below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import SpecError


@dataclass(frozen=True)
class Region:
    """A box of load vectors in the proxy's input order (per-unit).

    ``lower``/``upper`` have ``2 * n_load`` entries: active loads then reactive
    loads.  ``kind`` and ``params`` record how the region was specified (for
    provenance); ``params`` values are JSON-serializable.
    """

    lower: np.ndarray
    upper: np.ndarray
    kind: str = "explicit"
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        lo = np.array(self.lower, dtype=np.float64).reshape(-1)
        hi = np.array(self.upper, dtype=np.float64).reshape(-1)
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def n_input(self) -> int:
        """Number of inputs (``2 * n_load``)."""
        return int(self.lower.shape[0])

    @property
    def center(self) -> np.ndarray:
        """Midpoint of the box."""
        return 0.5 * (self.lower + self.upper)

    def shrunk(self, radius: float) -> Region:
        """The box about :attr:`center` with ``radius`` times the half-widths (``0 < radius
        <= 1``; kept inside this box), e.g. where a constraint's ``radius`` certifies it.

        Its ``params`` record the radius against the region first shrunk."""
        if not 0 < radius <= 1:
            raise SpecError(f"region: radius must be in (0, 1], got {radius!r}")
        half = 0.5 * (self.upper - self.lower)
        c = self.center
        lo = np.clip(c - radius * half, self.lower, self.upper)
        hi = np.clip(c + radius * half, self.lower, self.upper)
        p = dict(self.params)
        p["radius"] = float(radius) * float(p.get("radius", 1.0))
        return Region(lo, hi, self.kind, tuple(sorted(p.items())))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` load vectors drawn uniformly from the box, shape ``(n, n_input)``."""
        u = rng.random((n, self.n_input))
        return self.lower + u * (self.upper - self.lower)

    def contains(self, other: Region, tol: float = 1e-12) -> bool:
        """Whether ``other`` lies inside this region (up to ``tol``)."""
        if other.n_input != self.n_input:
            return False
        return bool(
            np.all(other.lower >= self.lower - tol) and np.all(other.upper <= self.upper + tol)
        )

    def describe(self) -> str:
        """Short human-readable description (``box:0.9,1.1`` style when known)."""
        p = dict(self.params)
        if self.kind == "box":
            return f"box:{p['a']:g},{p['b']:g}"
        if self.kind == "pglearn":
            return f"pglearn:{p['a']:g},{p['b']:g},{p['r']:g}"
        if self.kind == "dataset":
            return f"dataset:{p.get('path', '?')}"
        if self.kind == "training":
            return "training region"
        return f"explicit ({self.n_input} inputs)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``kind``, ``params``, ``lower``, ``upper``."""
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "lower": [float(v) for v in self.lower],
            "upper": [float(v) for v in self.upper],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Region:
        """Inverse of :meth:`to_dict` (validates finiteness and ordering)."""
        try:
            lower = _as_vector(data["lower"], "region.lower")
            upper = _as_vector(data["upper"], "region.upper")
        except KeyError as exc:
            raise SpecError(f"region: missing key {exc.args[0]!r}") from None
        _check_bounds(lower, upper, "region")
        params = data.get("params", {}) or {}
        return cls(lower, upper, str(data.get("kind", "explicit")), tuple(sorted(params.items())))


def _as_vector(values: Any, name: str) -> np.ndarray:
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
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: not a number ({value!r})") from None
    if not np.isfinite(v):
        raise SpecError(f"{name}: not a finite number ({value!r})")
    return v


def box_region(case: Any, a: float, b: float) -> Region:
    """``[a, b] x nominal`` per load (negative nominal loads flip the interval)."""
    a = _check_number(a, "region box factor a")
    b = _check_number(b, "region box factor b")
    if a > b:
        raise SpecError(f"region box: inverted factors (a={a:g} > b={b:g})")
    nom = _nominal(case)
    lo = np.minimum(a * nom, b * nom)
    hi = np.maximum(a * nom, b * nom)
    return validate_region(case, Region(lo, hi, "box", (("a", a), ("b", b))))


def pglearn_region(case: Any, a: float, b: float, r: float) -> Region:
    """Box enclosing ``alpha * eta * nominal``, ``alpha in [a, b]``, ``eta in [1-r, 1+r]``."""
    a = _check_number(a, "region pglearn factor a")
    b = _check_number(b, "region pglearn factor b")
    r = _check_number(r, "region pglearn noise r")
    if a > b:
        raise SpecError(f"region pglearn: inverted factors (a={a:g} > b={b:g})")
    if r < 0:
        raise SpecError(f"region pglearn: negative noise level r={r:g}")
    corners = np.array([a * (1 - r), a * (1 + r), b * (1 - r), b * (1 + r)])
    f_lo, f_hi = float(corners.min()), float(corners.max())
    nom = _nominal(case)
    lo = np.minimum(f_lo * nom, f_hi * nom)
    hi = np.maximum(f_lo * nom, f_hi * nom)
    return validate_region(case, Region(lo, hi, "pglearn", (("a", a), ("b", b), ("r", r))))


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


def region_from_mapping(case: Any, data: dict[str, Any], base: Path | None = None) -> Region:
    """A region from a spec-file table, e.g. ``{"box": [0.9, 1.1]}``.

    Accepted keys: ``box = [a, b]``, ``pglearn = [a, b, r]``, ``dataset = "file"``,
    or ``lower = [...]`` with ``upper = [...]``.
    """
    keys = set(data)
    known = {"box", "pglearn", "dataset", "lower", "upper"}
    unknown = keys - known
    if unknown:
        raise SpecError(
            f"region: unknown key {sorted(unknown)[0]!r} (expected one of {sorted(known)})"
        )
    kinds = [k for k in ("box", "pglearn", "dataset") if k in data]
    if "lower" in data or "upper" in data:
        kinds.append("lower/upper")
    if len(kinds) > 1:
        raise SpecError(f"region: conflicting keys {' and '.join(kinds)} (give only one of "
                        "box, pglearn, dataset or lower/upper)")
    if "box" in data:
        v = data["box"]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise SpecError("region.box: expected [a, b]")
        return box_region(case, v[0], v[1])
    if "pglearn" in data:
        v = data["pglearn"]
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            raise SpecError("region.pglearn: expected [a, b, r]")
        return pglearn_region(case, v[0], v[1], v[2])
    if "dataset" in data:
        p = Path(str(data["dataset"]))
        if base is not None and not p.is_absolute():
            p = base / p
        return dataset_region(case, p)
    if "lower" in data or "upper" in data:
        if "lower" not in data or "upper" not in data:
            raise SpecError("region: 'lower' and 'upper' must both be given")
        return explicit_region(case, data["lower"], data["upper"])
    raise SpecError("region: empty region table (give box, pglearn, dataset or lower/upper)")


def parse_region(text: str, case: Any) -> Region:
    """Parse a CLI region: ``box:A,B``, ``pglearn:A,B,R``, ``dataset:FILE.h5`` or a spec file.

    A spec file (``.toml``/``.json``) contributes its ``[region]`` table.
    """
    text = text.strip()
    if not text:
        raise SpecError("region: empty region")
    kind, _, rest = text.partition(":")
    if kind in ("box", "pglearn") and rest:
        parts = [p for p in rest.split(",")]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise SpecError(f"region {text!r}: factors must be numbers") from None
        if kind == "box":
            if len(vals) != 2:
                raise SpecError(f"region {text!r}: expected box:A,B")
            return box_region(case, *vals)
        if len(vals) != 3:
            raise SpecError(f"region {text!r}: expected pglearn:A,B,R")
        return pglearn_region(case, *vals)
    if kind == "dataset" and rest:
        return dataset_region(case, rest)
    if text.endswith((".toml", ".json")):
        from gridverify.spec.specfile import load_spec_mapping

        data = load_spec_mapping(text)
        if "region" not in data or not isinstance(data["region"], dict):
            raise SpecError(f"{text}: no [region] table")
        return region_from_mapping(case, data["region"], base=Path(text).parent)
    raise SpecError(
        f"region {text!r}: expected box:A,B, pglearn:A,B,R, dataset:FILE.h5 or a .toml/.json file"
    )
