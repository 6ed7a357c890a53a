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


def _comment_end(text: str, i: int) -> int:
    """The end of the ``;`` comment at ``text[i]``: the end of its line (the newline
    itself not included) or of the text."""
    nl = text.find("\n", i)
    return len(text) if nl < 0 else nl


def _top_level_asserts(text: str) -> list[tuple[int, int, int]]:
    """``(start, body_start, end)`` of each top-level ``(assert ...)`` form.

    ``text[body_start:end - 1]`` is the asserted formula; ``;`` comments are
    skipped.  Unbalanced text gives what was found (the parser reports it).
    """
    found: list[tuple[int, int, int]] = []
    depth, i, n = 0, 0, len(text)
    start = body = -1
    while i < n:
        ch = text[i]
        if ch == ";":
            i = _comment_end(text, i)
            continue
        if ch == "(":
            if depth == 0 and re.match(r"\(\s*assert\b", text[i:i + 64]):
                start = i
                body = text.index("assert", i) + len("assert")
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and start >= 0:
                found.append((start, body, i + 1))
                start = -1
        i += 1
    return found


def _one_assert(text: str) -> str | None:
    """The query with its asserts joined into one ``(assert (and ...))``, or None
    when it has fewer than two.

    Asserts are a conjunction, but the ``vnnlib`` package's ``compat`` transform
    reads separate compound asserts as alternatives (``(assert (and box))
    (assert (>= Y 100))`` gave "any output, or Y >= 100"); one assert holding
    their conjunction transforms correctly.
    """
    spans = _top_level_asserts(text)
    if len(spans) < 2:
        return None
    bodies = [text[b:e - 1].strip() for _, b, e in spans]
    rest, last = [], 0
    for s0, _, e in spans:
        rest.append(text[last:s0])
        last = e
    rest.append(text[last:])
    # one body per line: a body may end in a ``;`` comment, which ends at its line
    return "".join(rest) + "\n(assert (and\n" + "\n".join(bodies) + "\n))\n"


def _operand_end(text: str, i: int) -> int:
    """The end of the s-expression operand starting at ``text[i]`` (a blank-free atom
    such as ``Y[0]`` or ``-1.5e3``, or a balanced parenthesised form)."""
    if text[i] != "(":
        j = i
        while j < len(text) and not text[j].isspace() and text[j] not in "();":
            j += 1
        return j
    depth, j = 0, i
    while j < len(text):
        if text[j] == ";":
            j = _comment_end(text, j)
            continue
        depth += text[j] == "("
        depth -= text[j] == ")"
        j += 1
        if depth == 0:
            return j
    return j


def _skip_blank(text: str, i: int) -> int:
    """The first position from ``i`` on that is neither a blank nor in a ``;`` comment."""
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == ";":
            i = _comment_end(text, i)
        else:
            break
    return i


_EQUALITY = re.compile(r"\(\s*==(?=[\s(;])")


def _split_equalities(text: str, source: str) -> str:
    """``text`` with every ``(== A B)`` written ``(and (<= A B) (>= A B))``.

    The ``vnnlib`` package's ``compat`` transform keeps only the ``<=`` half of an
    equality (``(== Y[0] 5)`` became ``Y[0] <= 5``, ``(== X[0] 0.5)`` the box
    ``X[0] <= 0.5``): spelled as two inequalities it transforms correctly.  Operands
    are linear terms, so an equality holds no other comparison.
    """
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == ";":
            end = _comment_end(text, i)
            out.append(text[i:end])
            i = end
            continue
        m = _EQUALITY.match(text, i) if ch == "(" else None
        if m is None:
            out.append(ch)
            i += 1
            continue
        a0 = _skip_blank(text, m.end())
        a1 = _operand_end(text, a0) if a0 < n else a0
        b0 = _skip_blank(text, a1)
        b1 = _operand_end(text, b0) if b0 < n else b0
        close = _skip_blank(text, b1)
        if a1 == a0 or b1 == b0 or close >= n or text[close] != ")":
            line = text.count("\n", 0, i) + 1
            raise VnnlibError(f"{source}:{line}: an equality (==) needs two operands")
        lhs, rhs = text[a0:a1], text[b0:b1]
        out.append(f"(and (<= {lhs} {rhs}) (>= {lhs} {rhs}))")
        i = close + 1
    return "".join(out)


def parse_vnnlib2_text(text: str, source: str = "<string>") -> Property:
    """Parse VNN-LIB 2.0 text into a :class:`Property` (needs the ``vnnlib`` package)."""
    if not vnnlib2_available():
        raise VnnlibError(
            f"{source}: VNN-LIB 2.0 needs the optional package 'vnnlib' (pip install vnnlib)"
        )
    import vnnlib
    import vnnlib.compat

    try:
        query = vnnlib.parse_query_string(text)  # errors name the lines of the file
        merged = _split_equalities(_one_assert(text) or text, source)
        cases = vnnlib.compat.transform(
            query if merged == text else vnnlib.parse_query_string(merged))
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
            if not (np.isfinite(A).all() and np.isfinite(b).all()):
                raise VnnlibError(f"{source}: the arithmetic of an output constraint "
                                  "overflows (a coefficient or constant is not finite)")
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
