"""Proxies whose inputs and outputs follow another layout than gridverify's convention.

gridverify's convention (``docs/proxy.md``) is loads ``[pd, qd]`` in per unit in,
``[pg, qg, vm, va]`` in per unit and radians out.  A proxy trained elsewhere may
read its loads in MW and MVAr, or ``qd`` first, and return its blocks in another
order, its powers in MW and MVAr or its angles in degrees.  A
:class:`ProxyLayout` says so, and :func:`adapt` wraps such a proxy into a module
that follows the convention: a gather and a scaling before it and after it.  Both
are exact linear maps (the bounds see them as such), so the adapted proxy is
certified as tightly as the proxy itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import ProxyError

__all__ = ["INPUT_BLOCKS", "OUTPUT_BLOCKS", "LayoutModule", "ProxyLayout", "adapt"]

#: the input blocks of the convention, in its order
INPUT_BLOCKS = ("pd", "qd")
#: the output blocks of the convention, in its order
OUTPUT_BLOCKS = ("pg", "qg", "vm", "va")
_POWER_UNITS = ("pu", "mw")
_ANGLE_UNITS = ("rad", "deg")


@dataclass(frozen=True)
class ProxyLayout:
    """How a proxy's inputs and outputs are laid out (the default: the convention).

    ``inputs``: the order of the load blocks the proxy reads (``("qd", "pd")``...);
    ``outputs``: the order of the blocks it returns (a permutation of
    ``pg, qg, vm, va``); ``load_units``: ``"pu"`` or ``"mw"`` (MW and MVAr) for
    ``pd, qd``; ``gen_units``: the same for ``pg, qg``; ``angle_units``:
    ``"rad"`` or ``"deg"`` for ``va``.  Within a block the entries keep the
    case's order (loads, generators, buses: ``docs/proxy.md``).
    """

    inputs: tuple[str, ...] = INPUT_BLOCKS
    outputs: tuple[str, ...] = OUTPUT_BLOCKS
    load_units: str = "pu"
    gen_units: str = "pu"
    angle_units: str = "rad"

    def __post_init__(self) -> None:
        for what, got, want in (("inputs", self.inputs, INPUT_BLOCKS),
                                ("outputs", self.outputs, OUTPUT_BLOCKS)):
            if not isinstance(got, tuple) or sorted(got) != sorted(want):
                shown = ",".join(map(str, got)) if isinstance(got, tuple) else repr(got)
                raise ProxyError(f"layout: {what} must be an order of {','.join(want)}, "
                                 f"got {shown}")
        for what, got, want in (("load_units", self.load_units, _POWER_UNITS),
                                ("gen_units", self.gen_units, _POWER_UNITS),
                                ("angle_units", self.angle_units, _ANGLE_UNITS)):
            if got not in want:
                raise ProxyError(f"layout: {what} must be one of {', '.join(want)}, got {got!r}")

    @classmethod
    def parse(cls, inputs: str | None = None, outputs: str | None = None,
              load_units: str | None = None, gen_units: str | None = None,
              angle_units: str | None = None) -> ProxyLayout:
        """From text (``"qd,pd"``, ``"va,vm,pg,qg"``, ``"MW"``, ``"deg"``; ``None``: the
        convention's), as the command line gives it."""
        def blocks(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
            return default if text is None else tuple(
                b.strip().lower() for b in text.split(",") if b.strip())

        def unit(text: str | None, default: str) -> str:
            return default if text is None else text.strip().lower()

        return cls(blocks(inputs, INPUT_BLOCKS), blocks(outputs, OUTPUT_BLOCKS),
                   unit(load_units, "pu"), unit(gen_units, "pu"), unit(angle_units, "rad"))

    @classmethod
    def from_dict(cls, d: Any) -> ProxyLayout:
        """Inverse of :meth:`to_dict` (block orders as lists or ``"qd,pd"`` text; a study
        file's ``layout`` table); :class:`ProxyError` on unknown keys."""
        if not isinstance(d, dict):
            raise ProxyError(f"layout: expected a table, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ProxyError(f"layout: unknown key(s) {', '.join(unknown)} (known: "
                             f"{', '.join(cls.__dataclass_fields__)})")

        def text(v: Any) -> str | None:
            if v is None or isinstance(v, str):
                return v
            if isinstance(v, (list, tuple)) and all(isinstance(b, str) for b in v):
                return ",".join(v)
            raise ProxyError(f"layout: expected text or a list of block names, got {v!r}")

        return cls.parse(*(text(d.get(k)) for k in cls.__dataclass_fields__))

    @property
    def is_convention(self) -> bool:
        """Whether this is gridverify's own layout (nothing to adapt)."""
        return self == ProxyLayout()

    def describe(self) -> str:
        """One line: ``inputs qd,pd (MW); outputs va,vm,pg,qg (MW, deg)``."""
        return (f"inputs {','.join(self.inputs)} ({self.load_units}); outputs "
                f"{','.join(self.outputs)} ({self.gen_units}, {self.angle_units})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (as certificates record it)."""
        return {"inputs": list(self.inputs), "outputs": list(self.outputs),
                "load_units": self.load_units, "gen_units": self.gen_units,
                "angle_units": self.angle_units}

    def maps(self, n_load: int, n_gen: int, n_bus: int, base_mva: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(in_index, in_scale, out_index, out_scale)``: the proxy reads
        ``x[in_index] * in_scale`` of the convention's loads ``x``, and the
        convention's solution is ``v[out_index] * out_scale`` of its output ``v``."""
        if not (math.isfinite(base_mva) and base_mva > 0):
            raise ProxyError(f"layout: the case's base MVA must be positive, got {base_mva!r}")
        mw = float(base_mva)
        sizes_in = {"pd": n_load, "qd": n_load}
        start = {"pd": 0, "qd": n_load}
        in_index = np.concatenate([start[b] + np.arange(sizes_in[b]) for b in self.inputs])
        in_scale = np.full(2 * n_load, mw if self.load_units == "mw" else 1.0)
        sizes = {"pg": n_gen, "qg": n_gen, "vm": n_bus, "va": n_bus}
        at, pos = 0, {}
        for b in self.outputs:  # where each block starts in the proxy's output
            pos[b] = at
            at += sizes[b]
        out_index = np.concatenate([pos[b] + np.arange(sizes[b]) for b in OUTPUT_BLOCKS])
        unit = {"pg": 1.0 / mw if self.gen_units == "mw" else 1.0,
                "qg": 1.0 / mw if self.gen_units == "mw" else 1.0, "vm": 1.0,
                "va": math.pi / 180.0 if self.angle_units == "deg" else 1.0}
        out_scale = np.concatenate([np.full(sizes[b], unit[b]) for b in OUTPUT_BLOCKS])
        return in_index, in_scale, out_index, out_scale


class LayoutModule(nn.Module):
    """The convention's ``(B, 2L) -> (B, 2G + 2N)`` around a proxy of another layout."""

    def __init__(self, inner: nn.Module, layout: ProxyLayout, n_load: int, n_gen: int,
                 n_bus: int, base_mva: float) -> None:
        super().__init__()
        self.inner = inner
        self.layout = layout
        maps = layout.maps(n_load, n_gen, n_bus, base_mva)
        for name, a in zip(("in_index", "in_scale", "out_index", "out_scale"), maps):
            self.register_buffer(name, torch.as_tensor(
                a, dtype=torch.int64 if name.endswith("index") else torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The proxy on ``x`` (per unit, ``[pd, qd]``), its output in the convention."""
        v = self.inner(x[:, self.in_index] * self.in_scale)
        return v[:, self.out_index] * self.out_scale

    @property
    def reference_name(self) -> str | None:
        """The runtime of the wrapped proxy's :meth:`reference` (``None``: none)."""
        return getattr(self.inner, "reference_name", None)

    def reference(self, x: np.ndarray) -> np.ndarray | None:
        """The wrapped proxy's own runtime (ONNX Runtime...) through the same maps."""
        ref = getattr(self.inner, "reference", None)
        if ref is None:
            return None
        idx, scale = self.in_index.cpu().numpy(), self.in_scale.cpu().numpy()
        v = ref(np.asarray(x, dtype=np.float64)[:, idx] * scale)
        if v is None:
            return None
        return v[:, self.out_index.cpu().numpy()] * self.out_scale.cpu().numpy()


def adapt(module: nn.Module, layout: ProxyLayout, case: Any) -> nn.Module:
    """``module`` as a proxy of the convention (itself when ``layout`` is the convention's)."""
    if layout.is_convention:
        return module
    return LayoutModule(module, layout, case.n_load, case.n_gen, case.n_bus,
                        float(case.base_mva))
