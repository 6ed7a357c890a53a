"""Load samplers for OPF datasets.

Every sampler is a frozen dataclass with ``sample(case, seed, index) -> (pd, qd)``.
Sample ``index``'s loads are a pure function of ``(seed, index)`` and the case's
nominal loads: the random generator is ``numpy.random.default_rng([seed, index])``
(a SeedSequence over both numbers), so a resumed or parallel run draws exactly
the loads an uninterrupted serial run draws.

Both samplers scale a load's active and reactive demand by the **same** factor,
so every load keeps its nominal power factor:

* :class:`BoxSampler` ``(low, high)``: per-load factor ``u_l ~ U[low, high]``;
  ``pd_l = u_l * pd0_l``, ``qd_l = u_l * qd0_l``.
* :class:`PGLearnSampler` ``(a, b, r)``: one global factor ``alpha ~ U[a, b]`` per
  sample times per-load noise ``eta_l ~ U[1 - r, 1 + r]``;
  ``pd_l = alpha * eta_l * pd0_l`` and ``qd_l = alpha * eta_l * qd0_l``.

``sampler_from_spec("box:0.9,1.1")`` / ``("pglearn:0.8,1.2,0.1")`` parses the
CLI syntax; ``to_json()`` / :func:`sampler_from_json` round-trip the HDF5
``sampler`` attribute.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gridverify.errors import DatasetError
from gridverify.grid.compiled import CompiledCase


class SamplerError(DatasetError):
    """A load-region specification is malformed."""


class LoadSampler(Protocol):
    """What :func:`gridverify.opf.dataset.make_dataset` needs from a sampler."""

    kind: str

    def sample(self, case: CompiledCase, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(pd, qd) of sample ``index`` in p.u., compiled load order."""
        ...

    def params(self) -> dict[str, float]:
        """The sampler's parameters (JSON-able)."""
        ...

    def factor_range(self) -> tuple[float, float]:
        """The least and largest factor a load's pd and qd can be scaled by."""
        ...

    def to_json(self) -> str:
        """``{"kind": ..., **params}`` as canonical JSON."""
        ...


def _rng(seed: int, index: int) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise SamplerError(f"seed and sample index must be >= 0 (got {seed}, {index})")
    return np.random.default_rng([int(seed), int(index)])


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise SamplerError(f"sampler parameter {name} must be finite, got {value}")
    return value


def _canonical(kind: str, params: dict[str, float]) -> str:
    return json.dumps({"kind": kind, **params}, sort_keys=True)


@dataclass(frozen=True)
class BoxSampler:
    """Per-load factor ``U[low, high]`` applied to both pd and qd of the load."""

    low: float = 0.9
    high: float = 1.1
    kind: str = "box"

    def __post_init__(self) -> None:
        lo, hi = _finite("low", self.low), _finite("high", self.high)
        if lo < 0 or hi < lo:
            raise SamplerError(f"box region needs 0 <= low <= high, got low={lo}, high={hi}")

    def sample(self, case: CompiledCase, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(pd, qd) of sample ``index`` (see module docstring)."""
        u = _rng(seed, index).uniform(self.low, self.high, size=case.n_load)
        return np.asarray(case.pd) * u, np.asarray(case.qd) * u

    def factor_range(self) -> tuple[float, float]:
        """The least and largest factor a load can get: ``(low, high)``."""
        return float(self.low), float(self.high)

    def params(self) -> dict[str, float]:
        """``{"low": ..., "high": ...}``."""
        return {"low": float(self.low), "high": float(self.high)}

    def to_json(self) -> str:
        """Canonical JSON with ``kind`` and parameters."""
        return _canonical(self.kind, self.params())


@dataclass(frozen=True)
class PGLearnSampler:
    """Global factor ``U[a, b]`` times per-load noise ``U[1 - r, 1 + r]`` (pd and qd alike)."""

    a: float = 0.8
    b: float = 1.2
    r: float = 0.1
    kind: str = "pglearn"

    def __post_init__(self) -> None:
        a, b, r = _finite("a", self.a), _finite("b", self.b), _finite("r", self.r)
        if a < 0 or b < a:
            raise SamplerError(f"pglearn region needs 0 <= a <= b, got a={a}, b={b}")
        if not 0 <= r <= 1:
            raise SamplerError(f"pglearn noise r must be in [0, 1], got {r}")

    def sample(self, case: CompiledCase, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(pd, qd) of sample ``index`` (see module docstring)."""
        rng = _rng(seed, index)
        alpha = rng.uniform(self.a, self.b)
        eta = rng.uniform(1.0 - self.r, 1.0 + self.r, size=case.n_load)
        factor = alpha * eta
        return np.asarray(case.pd) * factor, np.asarray(case.qd) * factor

    def factor_range(self) -> tuple[float, float]:
        """The least and largest factor a load can get: ``(a (1 - r), b (1 + r))``."""
        return float(self.a) * (1.0 - float(self.r)), float(self.b) * (1.0 + float(self.r))

    def params(self) -> dict[str, float]:
        """``{"a": ..., "b": ..., "r": ...}``."""
        return {"a": float(self.a), "b": float(self.b), "r": float(self.r)}

    def to_json(self) -> str:
        """Canonical JSON with ``kind`` and parameters."""
        return _canonical(self.kind, self.params())


_KINDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "box": (BoxSampler, ("low", "high")),
    "pglearn": (PGLearnSampler, ("a", "b", "r")),
}


def sampler_from_spec(spec: str, what: str = "region") -> BoxSampler | PGLearnSampler:
    """Parse ``box:LOW,HIGH`` or ``pglearn:A,B,R`` (the CLI's ``--region``); errors
    start with ``what`` and the spec."""
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS:
        raise SamplerError(
            f"{what} {spec!r}: unknown kind {kind!r}; use box:LOW,HIGH or pglearn:A,B,R"
        )
    cls, names = _KINDS[kind]
    if not sep or not rest.strip():
        return cls()
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) != len(names):
        raise SamplerError(
            f"{what} {spec!r}: {kind} takes {len(names)} numbers ({','.join(names)}), "
            f"got {len(parts)}"
        )
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise SamplerError(f"{what} {spec!r}: not a number ({exc})") from None
    try:
        return cls(**dict(zip(names, values)))
    except SamplerError as exc:  # the sampler's own check: name the spec it came from
        raise SamplerError(f"{what} {spec!r}: {exc}") from None


def sampler_from_json(text: str) -> BoxSampler | PGLearnSampler:
    """Inverse of ``to_json()``."""
    try:
        data: dict[str, Any] = json.loads(text)
        kind = data.pop("kind")
        cls, names = _KINDS[kind]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SamplerError(f"sampler attribute {text!r} is not a known sampler ({exc})") from None
    if set(data) != set(names):
        raise SamplerError(f"sampler attribute {text!r}: expected parameters {names}")
    bad = [k for k in names if isinstance(data[k], bool) or not isinstance(data[k], (int, float))]
    if bad:
        raise SamplerError(f"sampler attribute {text!r}: parameter {bad[0]} is not a number")
    return cls(**{k: float(data[k]) for k in names})
