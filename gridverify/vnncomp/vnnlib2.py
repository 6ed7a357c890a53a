"""VNN-LIB 2.0 properties through the optional ``vnnlib`` package.

VNN-LIB 2.0 files start with ``(vnnlib-version <2.0>)`` and declare a network
with tensor inputs and outputs (``(declare-input X float32 [2])``, ``X[0]``).
The ``vnnlib`` package parses and type-checks them and its ``compat``
transform turns them into input boxes with output polytopes, which map onto
:class:`~gridverify.vnncomp.vnnlib.Property` (inputs and outputs flattened in
declaration order).  Only single-network queries are supported.
"""

from __future__ import annotations

import json
import re

import numpy as np

from gridverify.errors import VnnlibError
from gridverify.vnncomp.vnnlib import Property, PropertyCase

__all__ = ["parse_vnnlib2_text", "vnnlib2_available"]


def vnnlib2_available() -> bool:
    """Whether the ``vnnlib`` package (VNN-LIB 2.0 support) is installed."""
    try:
        import vnnlib  # noqa: F401
        import vnnlib.compat  # noqa: F401
    except ImportError:
        return False
    return True


def _message(exc: Exception, source: str) -> str:
    """One line naming the file and line from a ``VNNLibException``."""
    text = str(exc).strip()
    try:
        data = json.loads(text)
    except ValueError:
        m = re.search(r"line (\d+)", text)
        where = f"{source}:{m.group(1)}" if m else source
        return f"{where}: {text.splitlines()[0] if text else type(exc).__name__}"
    errors = data.get("errors") or [{}]
    e = errors[0]
    where = f"{source}:{e['line']}" if "line" in e else source
    sym = f" {e['offendingSymbol']!r}" if e.get("offendingSymbol") else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {e.get('message', 'invalid VNN-LIB 2.0')}{sym}{more}"


def _size(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if len(shape) else 1


def parse_vnnlib2_text(text: str, source: str = "<string>") -> Property:
    """Parse VNN-LIB 2.0 text into a :class:`Property` (needs the ``vnnlib`` package)."""
    if not vnnlib2_available():
        raise VnnlibError(
            f"{source}: VNN-LIB 2.0 needs the optional package 'vnnlib' (pip install vnnlib)"
        )
    import vnnlib
    import vnnlib.compat

    try:
        query = vnnlib.parse_query_string(text)
        cases = vnnlib.compat.transform(query)
    except vnnlib.VNNLibException as exc:
        raise VnnlibError(_message(exc, source)) from None
    networks = list(query.networks)
    if len(networks) != 1:
        raise VnnlibError(f"{source}: {len(networks)} networks declared; only one is supported")
    net = networks[0]
    n_in = sum(_size(i.shape) for i in net.inputs)
    n_out = sum(_size(o.shape) for o in net.outputs)
    out: dict[bytes, tuple[np.ndarray, np.ndarray, list]] = {}
    for case in cases:
        box = np.array(case.input_box, dtype=np.float64).reshape(-1, 2)
        if box.shape[0] != n_in:
            raise VnnlibError(f"{source}: input box has {box.shape[0]} entries, inputs {n_in}")
        lo, hi = box[:, 0] + 0.0, box[:, 1] + 0.0
        for i in range(n_in):
            if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
                raise VnnlibError(f"{source}: input {i} has no finite bounds")
        if np.any(lo > hi):
            continue
        polys = []
        for p in case.output_constraints:
            A = np.array(p.coeff_matrix, dtype=np.float64).reshape(-1, n_out)
            b = np.array(p.rhs, dtype=np.float64).reshape(-1)
            A.setflags(write=False)
            b.setflags(write=False)
            polys.append((A, b))
        if not polys:  # no output condition: every output is unsafe
            polys.append((np.zeros((0, n_out)), np.zeros(0)))
        key = lo.tobytes() + hi.tobytes()
        if key not in out:
            lo.setflags(write=False)
            hi.setflags(write=False)
            out[key] = (lo, hi, [])
        out[key][2].extend(polys)
    return Property(
        n_in, n_out, tuple(PropertyCase(lo, hi, tuple(p)) for lo, hi, p in out.values()), source
    )
