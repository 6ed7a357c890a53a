"""Proxies whose inputs and outputs follow another layout than gridverify's convention.

gridverify's convention (``docs/proxy.md``) is loads ``[pd, qd]`` in per unit in,
``[pg, qg, vm, va]`` in per unit and radians out.  A proxy trained elsewhere may
read its loads in MW and MVAr, or ``qd`` first, and return its blocks in another
order, its powers in MW and MVAr or its angles in degrees, and expect its inputs
and outputs normalized outside the network (:class:`Normalization`).  A
:class:`ProxyLayout` says so, and :func:`adapt` wraps such a proxy into a module
that follows the convention: a gather and an affine map before it and after it.
Both are exact (the bounds see them as linear maps), so the adapted proxy is
certified as tightly as the proxy itself.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import ProxyError
from gridverify.fileio import json_loads

__all__ = ["INPUT_BLOCKS", "OUTPUT_BLOCKS", "LayoutModule", "Normalization", "ProxyLayout",
           "adapt"]

#: the input blocks of the convention, in its order
INPUT_BLOCKS = ("pd", "qd")
#: the output blocks of the convention, in its order
OUTPUT_BLOCKS = ("pg", "qg", "vm", "va")
_POWER_UNITS = ("pu", "mw")
_ANGLE_UNITS = ("rad", "deg")
#: the output blocks that come in pairs, one pair entry per generator or bus
_OUTPUT_PAIRS = (frozenset({"pg", "qg"}), frozenset({"vm", "va"}))


_NORM_KEYS = ("input_mean", "input_std", "output_mean", "output_std")


@dataclass(frozen=True)
class Normalization:
    """The affine maps a proxy trained elsewhere expects around it, in its own layout
    and units: it reads ``(u - input_mean) / input_std`` of its loads ``u`` and its
    output ``v`` stands for ``v * output_std + output_mean`` (a pipeline that
    normalizes outside the exported network).  Read from a ``.npz`` or ``.json``
    file with any of the keys ``input_mean``, ``input_std`` (``2L`` entries each),
    ``output_mean``, ``output_std`` (``2G + 2N``); a missing key is 0 (means) or 1
    (standard deviations).  ``source``/``sha256``: the file and its digest."""

    source: str
    sha256: str
    input_mean: tuple[float, ...] = ()
    input_std: tuple[float, ...] = ()
    output_mean: tuple[float, ...] = ()
    output_std: tuple[float, ...] = ()

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Normalization:
        """Read a ``.npz`` (plain arrays) or ``.json`` normalization file."""
        import hashlib
        import zipfile

        p = Path(path)
        data = p.read_bytes()
        try:
            if p.suffix.lower() == ".json":
                raw = json_loads(data)
                if not isinstance(raw, dict):
                    raise ValueError("expected an object with the keys " + ", ".join(_NORM_KEYS))
            else:
                import io

                with np.load(io.BytesIO(data), allow_pickle=False) as z:
                    raw = {k: z[k] for k in z.files}
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise ProxyError(f"{p}: not a normalization file (.npz or .json): {why}") from None
        unknown = sorted(set(raw) - set(_NORM_KEYS))
        if unknown:
            raise ProxyError(f"{p}: unknown key(s) {', '.join(unknown)} (known: "
                             f"{', '.join(_NORM_KEYS)})")
        vals = {}
        for k, v in raw.items():
            given = np.asarray(v)
            if given.dtype.kind not in "iuf" or given.ndim > 1:  # bools, complex, strings
                raise ProxyError(f"{p}: {k}: expected a list of real numbers (or one)")
            a = given.astype(np.float64).reshape(-1)
            if a.size == 0:
                raise ProxyError(f"{p}: {k}: no entries (leave the key out for none)")
            with np.errstate(divide="ignore", over="ignore"):
                bad_std = k.endswith("std") and (np.any(a <= 0)
                                                 or not np.all(np.isfinite(1.0 / a)))
            if not np.all(np.isfinite(a)) or bad_std:
                raise ProxyError(f"{p}: {k}: expected finite numbers"
                                 + (", all positive (and not so small that 1/std "
                                    "overflows)" if k.endswith("std") else ""))
            vals[k] = tuple(float(x) for x in a)
        return cls(str(p), hashlib.sha256(data).hexdigest(), **vals)

    def arrays(self, n_in: int, n_out: int) -> tuple[np.ndarray, ...]:
        """``(input_mean, input_std, output_mean, output_std)`` as arrays of the sizes the
        proxy reads and returns (``ProxyError`` naming the key when one does not fit)."""
        out = []
        for k in _NORM_KEYS:
            n = n_in if k.startswith("input") else n_out
            v = getattr(self, k)
            if not v:
                out.append(np.full(n, 1.0 if k.endswith("std") else 0.0))
            elif len(v) == 1 or len(v) == n:
                out.append(np.broadcast_to(np.asarray(v), (n,)).copy())
            else:
                raise ProxyError(f"{self.source}: {k} has {len(v)} entries, the proxy's "
                                 f"{'inputs' if n == n_in else 'outputs'} have {n}")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The file and its digest (as certificates and study jobs record them)."""
        return {"source": self.source, "sha256": self.sha256}


@dataclass(frozen=True)
class ProxyLayout:
    """How a proxy's inputs and outputs are laid out (the default: the convention).

    ``inputs``: the order of the load blocks the proxy reads (``("qd", "pd")``...);
    ``outputs``: the order of the blocks it returns (a permutation of
    ``pg, qg, vm, va``); ``load_units``: ``"pu"`` or ``"mw"`` (MW and MVAr) for
    ``pd, qd``; ``gen_units``: the same for ``pg, qg``; ``angle_units``:
    ``"rad"`` or ``"deg"`` for ``va``; ``normalization``: affine maps the proxy
    expects around it (:class:`Normalization`); ``interleaved``: the proxy reads
    its loads load by load, the input blocks alternating (``pd_1, qd_1, pd_2,
    qd_2, ...`` for inputs ``pd,qd``); ``interleaved_outputs``: it returns its
    solution generator by generator and bus by bus, the two generator blocks
    alternating and the two bus blocks alternating (``pg_1, qg_1, pg_2, qg_2,
    ..., vm_1, va_1, ...`` for outputs ``pg,qg,vm,va``: a network whose heads
    are ``(G, 2)`` and ``(N, 2)`` tensors), so ``outputs`` must keep ``pg, qg``
    together and ``vm, va`` together.  Within a block the entries keep the
    case's order (loads, generators, buses: ``docs/proxy.md``).
    """

    inputs: tuple[str, ...] = INPUT_BLOCKS
    outputs: tuple[str, ...] = OUTPUT_BLOCKS
    load_units: str = "pu"
    gen_units: str = "pu"
    angle_units: str = "rad"
    normalization: Normalization | None = None
    interleaved: bool = False
    interleaved_outputs: bool = False

    def __post_init__(self) -> None:
        for name in ("interleaved", "interleaved_outputs"):
            if not isinstance(getattr(self, name), bool):
                raise ProxyError(f"layout: {name} must be true or false, got "
                                 f"{getattr(self, name)!r}")
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
        if self.interleaved_outputs and frozenset(self.outputs[:2]) not in _OUTPUT_PAIRS:
            raise ProxyError(f"layout: interleaved outputs alternate pg with qg and vm with "
                             f"va, so the output order must keep each pair together, got "
                             f"{','.join(self.outputs)}")

    @classmethod
    def parse(cls, inputs: str | None = None, outputs: str | None = None,
              load_units: str | None = None, gen_units: str | None = None,
              angle_units: str | None = None,
              normalization: str | os.PathLike[str] | None = None,
              interleaved: bool = False, interleaved_outputs: bool = False) -> ProxyLayout:
        """From text (``"qd,pd"``, ``"va,vm,pg,qg"``, ``"MW"``, ``"deg"``, a
        normalization file's path; ``None``: the convention's), as the command line
        gives it."""
        def blocks(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
            return default if text is None else tuple(
                b.strip().lower() for b in text.split(",") if b.strip())

        def unit(text: str | None, default: str) -> str:
            return default if text is None else text.strip().lower()

        norm = None if normalization is None else Normalization.read(normalization)
        return cls(blocks(inputs, INPUT_BLOCKS), blocks(outputs, OUTPUT_BLOCKS),
                   unit(load_units, "pu"), unit(gen_units, "pu"), unit(angle_units, "rad"),
                   norm, interleaved, interleaved_outputs)

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

        norm = d.get("normalization")
        want = None
        if isinstance(norm, dict):  # as recorded: the file must still be the same
            norm, want = norm.get("source"), norm.get("sha256")
        if norm is not None and not isinstance(norm, str):
            raise ProxyError(f"layout: normalization: expected a file path, got {norm!r}")
        flags = {k: d.get(k, False) for k in ("interleaved", "interleaved_outputs")}
        for k, v in flags.items():
            if not isinstance(v, bool):
                raise ProxyError(f"layout: {k} must be true or false, got {v!r}")
        lay = cls.parse(*(text(d.get(k)) for k in cls.__dataclass_fields__
                          if k != "normalization" and k not in flags),
                        normalization=norm, **flags)
        if want is not None and lay.normalization is not None \
                and lay.normalization.sha256 != want:
            raise ProxyError(f"{norm}: the normalization file changed since it was recorded")
        return lay

    @property
    def is_convention(self) -> bool:
        """Whether this is gridverify's own layout (nothing to adapt)."""
        return self == ProxyLayout()

    def describe(self) -> str:
        """One line: ``inputs qd,pd (mw); outputs va,vm,pg,qg (mw, deg)[; normalized by F]``."""
        norm = "" if self.normalization is None else (
            f"; normalized by {Path(self.normalization.source).name}")
        return (f"inputs {','.join(self.inputs)}{' per load' if self.interleaved else ''} "
                f"({self.load_units}); outputs "
                f"{','.join(self.outputs)}"
                f"{' per generator and bus' if self.interleaved_outputs else ''} "
                f"({self.gen_units}, {self.angle_units}){norm}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (as certificates record it)."""
        d: dict[str, Any] = {"inputs": list(self.inputs), "outputs": list(self.outputs),
                             "load_units": self.load_units, "gen_units": self.gen_units,
                             "angle_units": self.angle_units}
        if self.normalization is not None:
            d["normalization"] = self.normalization.to_dict()
        # left out otherwise: records of block layouts stay as they were
        for name in ("interleaved", "interleaved_outputs"):
            if getattr(self, name):
                d[name] = True
        return d

    def maps(self, n_load: int, n_gen: int, n_bus: int, base_mva: float
             ) -> tuple[np.ndarray, ...]:
        """``(in_index, in_scale, in_shift, out_index, out_scale, out_shift)``: the proxy
        reads ``x[in_index] * in_scale + in_shift`` of the convention's loads ``x``, and
        the convention's solution is ``v[out_index] * out_scale + out_shift`` of its
        output ``v``."""
        if not (math.isfinite(base_mva) and base_mva > 0):
            raise ProxyError(f"layout: the case's base MVA must be positive, got {base_mva!r}")
        mw = float(base_mva)
        sizes_in = {"pd": n_load, "qd": n_load}
        start = {"pd": 0, "qd": n_load}
        if self.interleaved:  # load by load: the blocks' entries alternate
            in_index = (np.array([start[b] for b in self.inputs])[None, :]
                        + np.arange(n_load)[:, None]).reshape(-1)
        else:
            in_index = np.concatenate([start[b] + np.arange(sizes_in[b])
                                       for b in self.inputs])
        in_scale = np.full(2 * n_load, mw if self.load_units == "mw" else 1.0)
        sizes = {"pg": n_gen, "qg": n_gen, "vm": n_bus, "va": n_bus}
        at, pos = 0, {}
        for b in self.outputs:  # where each block starts in the proxy's output
            pos[b] = at
            at += sizes[b]
        if self.interleaved_outputs:  # a pair's blocks alternate from the first's start
            first = {b: self.outputs[self.outputs.index(b) & ~1] for b in OUTPUT_BLOCKS}
            out_index = np.concatenate([
                pos[first[b]] + 2 * np.arange(sizes[b]) + (first[b] != b)
                for b in OUTPUT_BLOCKS])
        else:
            out_index = np.concatenate([pos[b] + np.arange(sizes[b]) for b in OUTPUT_BLOCKS])
        unit = {"pg": 1.0 / mw if self.gen_units == "mw" else 1.0,
                "qg": 1.0 / mw if self.gen_units == "mw" else 1.0, "vm": 1.0,
                "va": math.pi / 180.0 if self.angle_units == "deg" else 1.0}
        out_scale = np.concatenate([np.full(sizes[b], unit[b]) for b in OUTPUT_BLOCKS])
        n_out = 2 * n_gen + 2 * n_bus
        im, isd, om, osd = (self.normalization or Normalization("", "")).arrays(
            2 * n_load, n_out)
        # (u - im) / isd of u = x[in_index] * in_scale; (v * osd + om)[out_index] * out_scale
        return (in_index, in_scale / isd, -im / isd, out_index,
                osd[out_index] * out_scale, om[out_index] * out_scale)


class LayoutModule(nn.Module):
    """The convention's ``(B, 2L) -> (B, 2G + 2N)`` around a proxy of another layout."""

    def __init__(self, inner: nn.Module, layout: ProxyLayout, n_load: int, n_gen: int,
                 n_bus: int, base_mva: float) -> None:
        super().__init__()
        self.inner = inner
        self.layout = layout
        maps = layout.maps(n_load, n_gen, n_bus, base_mva)
        for name, a in zip(("in_index", "in_scale", "in_shift", "out_index", "out_scale",
                            "out_shift"), maps):
            self.register_buffer(name, torch.as_tensor(
                a, dtype=torch.int64 if name.endswith("index") else torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The proxy on ``x`` (per unit, ``[pd, qd]``), its output in the convention."""
        v = self.inner(x[:, self.in_index] * self.in_scale + self.in_shift)
        return v[:, self.out_index] * self.out_scale + self.out_shift

    @property
    def reference_name(self) -> str | None:
        """The runtime of the wrapped proxy's :meth:`reference` (``None``: none)."""
        return getattr(self.inner, "reference_name", None)

    def reference(self, x: np.ndarray) -> np.ndarray | None:
        """The wrapped proxy's own runtime (ONNX Runtime...) through the same maps."""
        ref = getattr(self.inner, "reference", None)
        if ref is None:
            return None
        m = {k: b.cpu().numpy() for k, b in self.named_buffers() if "." not in k}
        v = ref(np.asarray(x, dtype=np.float64)[:, m["in_index"]] * m["in_scale"]
                + m["in_shift"])
        if v is None:
            return None
        return v[:, m["out_index"]] * m["out_scale"] + m["out_shift"]


def adapt(module: nn.Module, layout: ProxyLayout, case: Any) -> nn.Module:
    """``module`` as a proxy of the convention (itself when ``layout`` is the convention's)."""
    if layout.is_convention:
        return module
    return LayoutModule(module, layout, case.n_load, case.n_gen, case.n_bus,
                        float(case.base_mva))
