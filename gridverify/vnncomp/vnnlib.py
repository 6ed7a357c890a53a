"""VNN-LIB property files: a parser of our own for VNN-LIB 1.0, 2.0 via ``vnnlib``.

A VNN-LIB property asserts the *unsafe* set: the network is safe (``unsat``)
when no input of the input region reaches an output that satisfies the
assertions.  The parser turns the assertions into disjunctive normal form and
then into :class:`Property`:

* a list of :class:`PropertyCase`, each an input box ``lower <= x <= upper``
  together with a disjunction of output polytopes ``A @ y <= b``;
* the unsafe set is the union over cases of ``box x {y : some A y <= b}``.

VNN-LIB 1.0 syntax understood (SMT-LIB subset used by VNN-COMP)::

    ; comment
    (declare-const X_0 Real)          ; inputs X_0..X_{n-1}, outputs Y_0..Y_{m-1}
    (assert (<= X_0 0.5))             ; also >=, <, >, = (strict read as non-strict)
    (assert (or (and (>= Y_0 Y_1) (<= Y_0 3.0)) (and ...)))
    (assert (<= (+ (* 2.0 Y_0) (* -1 Y_1)) (- Y_2 0.5)))

Terms are linear: numbers, variables, ``+``, ``-`` (unary and n-ary), ``*``
with at most one non-constant factor and ``/`` by a constant.  Constraints on
inputs must be variable bounds (a box); a constraint may not mix inputs and
outputs.  Strict comparisons are read as non-strict: the unsafe set grows to
its closure, so ``unsat`` stays sound; a ``sat`` counterexample is checked
against the non-strict inequality.

The tokenizer is one pass over the whole text (one compiled pattern, no
per-line work), so files with tens of thousands of assertions parse in well
under a second.  Every error is a :class:`~gridverify.errors.VnnlibError`
naming the file and line.
"""

from __future__ import annotations

import gzip
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import GraphError, VnnlibError

__all__ = [
    "Property",
    "PropertyCase",
    "parse_vnnlib",
    "parse_vnnlib_text",
    "read_bytes",
    "read_onnx_file",
    "read_text",
]

# Largest number of disjuncts the DNF expansion may produce before giving up.
MAX_DISJUNCTS = 100_000

_TOKEN = re.compile(r"\(|\)|;[^\n]*|[^\s();]+")
_VAR = re.compile(r"([XY])_(\d+)\Z")
_IGNORED_COMMANDS = frozenset({"check-sat", "get-model", "set-logic", "set-info", "exit"})
_COMPARISONS = frozenset({"<=", ">=", "<", ">", "="})


@dataclass(frozen=True)
class PropertyCase:
    """One input box with the disjunction of output polytopes unsafe on it.

    ``output`` is a tuple of ``(A, b)`` with ``A`` of shape ``(k, n_outputs)``
    and ``b`` of shape ``(k,)``; the case is violated at ``x`` in the box when
    ``A @ y(x) <= b`` holds for at least one pair.  ``k == 0`` means every
    output is unsafe (the whole box is a counterexample).
    """

    lower: np.ndarray
    upper: np.ndarray
    output: tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class Property:
    """A parsed VNN-LIB property: the unsafe set as a union of cases."""

    n_inputs: int
    n_outputs: int
    cases: tuple[PropertyCase, ...]
    source: str = "<string>"

    @property
    def input_boxes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The input boxes, one per case (a disjunction of boxes)."""
        return [(c.lower, c.upper) for c in self.cases]

    @property
    def output(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The output disjunction shared by every input box.

        Raises ``ValueError`` when the cases have different output conditions
        (then iterate over :attr:`cases`).
        """
        if not self.cases:
            return []
        first = self.cases[0].output
        for case in self.cases[1:]:
            if not _same_output(first, case.output):
                raise ValueError("input boxes have different output conditions; use .cases")
        return list(first)


def _same_output(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    return all(
        x[0].shape == y[0].shape and np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        for x, y in zip(a, b)
    )


# ----------------------------------------------------------------------------- reading


def gz_fallback(path: str | Path) -> Path:
    """``path``, or its ``.gz`` sibling when only that exists (benchmark repositories
    ship their models and properties compressed)."""
    p = Path(path)
    if not p.exists():
        gz = p.with_name(p.name + ".gz")
        if gz.exists():
            return gz
    return p


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file (or of its ``.gz`` sibling when only that exists); gzip
    files are decompressed in memory."""
    p = gz_fallback(path)
    data = p.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise VnnlibError(f"{p}: broken gzip file ({exc})") from None
    return data


def read_onnx_file(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of an ONNX file (``.gz`` allowed), weights kept in side
    files (torch's exporter writes ``NAME.onnx.data``) read in from the model's folder.

    A missing, unreadable or malformed file raises :class:`GraphError` naming it.
    """
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    p = gz_fallback(path)
    if not p.exists():
        raise GraphError(f"{p}: no such ONNX file")
    if p.is_dir():
        raise GraphError(f"{p}: is a directory, not an ONNX file")
    try:
        model = onnx.load_from_string(read_bytes(p))
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            load_external_data_for_model(model, str(p.resolve().parent))
    except OSError as exc:
        raise GraphError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise several types
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise GraphError(f"{p}: not a readable ONNX model ({why})") from None
    return model


def read_text(path: str | Path) -> str:
    """The text of a property file (or an instances CSV); ``.gz`` files are decompressed
    in memory; a UTF-8 byte-order mark (editors' "UTF-8 with BOM", Excel's CSV) is
    dropped."""
    p = gz_fallback(path)
    data = read_bytes(p)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VnnlibError(f"{p}: not a UTF-8 text file ({exc.reason})") from None


def parse_vnnlib(path: str | Path) -> Property:
    """Parse a VNN-LIB file (1.0 by our parser, 2.0 through the ``vnnlib`` package)."""
    text = read_text(path)
    if _is_version2(text):
        from gridverify.vnncomp.vnnlib2 import parse_vnnlib2_text

        return parse_vnnlib2_text(text, source=str(path))
    return parse_vnnlib_text(text, source=str(path))


def _is_version2(text: str) -> bool:
    head = _TOKEN.findall(text[:20000])
    toks = [t for t in head if not t.startswith(";")]
    for i in range(len(toks) - 1):
        if toks[i] == "(" and toks[i + 1] in ("vnnlib-version", "declare-network"):
            return True
    return False


# ----------------------------------------------------------------------------- s-expressions


class _Lines:
    """Maps character offsets to 1-based line numbers (lazily, by bisection)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    def line(self, pos: int) -> int:
        if self._starts is None:
            self._starts = [m.end() for m in re.finditer("\n", self._text)]
        return bisect_right(self._starts, pos) + 1


class _List(list):
    """An s-expression list remembering the offset of its ``(``."""

    __slots__ = ("pos",)


class _Atom(str):
    """An atom remembering its offset."""

    __slots__ = ("pos",)


def _sexprs(text: str, err) -> list[_List]:
    """Top-level s-expressions of ``text`` (single pass over a token stream)."""
    top: list[_List] = []
    stack: list[_List] = []
    cur: list | None = None
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == "(":
            node = _List()
            node.pos = m.start()
            if cur is not None:
                cur.append(node)
                stack.append(cur)
            cur = node
            if not stack:
                top.append(node)
        elif c == ")":
            if cur is None:
                raise err(m.start(), "unbalanced parentheses: ')' without a matching '('")
            cur = stack.pop() if stack else None
        elif c == ";":
            continue
        else:
            if cur is None:
                raise err(m.start(), f"unexpected {tok!r} outside of a command")
            a = _Atom(tok)
            a.pos = m.start()
            cur.append(a)
    if cur is not None:
        first_open = stack[0] if stack else cur
        raise err(first_open.pos, "unbalanced parentheses: '(' is never closed")
    return top


# ----------------------------------------------------------------------------- the parser


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.lines = _Lines(text)
        self.vars: dict[str, tuple[int, int]] = {}  # name -> (0 input / 1 output, index)
        self.decl_pos: dict[str, int] = {}

    # errors -------------------------------------------------------------
    def err(self, pos: int, message: str) -> VnnlibError:
        return VnnlibError(f"{self.source}:{self.lines.line(pos)}: {message}")

    # terms --------------------------------------------------------------
    def number(self, atom: _Atom) -> float | None:
        """The value of a numeric atom, ``None`` when the atom is a name."""
        c = atom[0]
        if not (c.isdigit() or c in "+-."):
            return None
        try:
            v = float(atom)
        except ValueError:
            raise self.err(atom.pos, f"bad number {str(atom)!r}") from None
        if not math.isfinite(v):
            raise self.err(atom.pos, f"bad number {str(atom)!r} (not finite)")
        return v

    def term(self, t) -> tuple[dict[str, float], float]:
        """A linear term as (coefficients by variable, constant); arithmetic that
        overflows (``(* 1e300 1e300 Y_0)``) is an error, not an infinite coefficient."""
        coefs, const = self._term(t)
        if not (math.isfinite(const) and all(math.isfinite(v) for v in coefs.values())):
            raise self.err(t.pos, "the arithmetic overflows (a coefficient or constant is "
                           "not finite)")
        return coefs, const

    def _term(self, t) -> tuple[dict[str, float], float]:
        if isinstance(t, _Atom):
            v = self.number(t)
            if v is not None:
                return {}, v
            if t not in self.vars:
                raise self.err(t.pos, f"undeclared variable {str(t)!r}")
            return {str(t): 1.0}, 0.0
        if not t or not isinstance(t[0], _Atom):
            raise self.err(t.pos, "expected an arithmetic term")
        op = t[0]
        args = [self.term(a) for a in t[1:]]
        if not args:
            raise self.err(t.pos, f"{str(op)!r} needs arguments")
        if op == "+":
            return _lin_sum(args, [1.0] * len(args))
        if op == "-":
            if len(args) == 1:
                return _lin_sum(args, [-1.0])
            return _lin_sum(args, [1.0] + [-1.0] * (len(args) - 1))
        if op == "*":
            coef = 1.0
            var_part: tuple[dict[str, float], float] | None = None
            for a in args:
                if a[0]:
                    if var_part is not None:
                        raise self.err(t.pos, "non-linear term: product of variables")
                    var_part = a
                else:
                    coef *= a[1]
            if var_part is None:
                return {}, coef
            return _lin_sum([var_part], [coef])
        if op == "/":
            if len(args) != 2:
                raise self.err(t.pos, "'/' takes two arguments")
            num, den = args
            if den[0]:
                raise self.err(t.pos, "non-linear term: division by a variable")
            if den[1] == 0.0:
                raise self.err(t.pos, "division by zero")
            return _lin_sum([num], [1.0 / den[1]])
        raise self.err(t.pos, f"unsupported arithmetic operator {str(op)!r}")

    # formulas -> DNF: list of conjunctions, each a list of atoms --------
    def formula(self, f) -> list[list[tuple]]:
        if isinstance(f, _Atom) or not f or not isinstance(f[0], _Atom):
            if isinstance(f, _Atom) and f in ("true", "false"):
                return [[]] if f == "true" else []
            raise self.err(f.pos, "expected a comparison, 'and' or 'or'")
        op = f[0]
        if op == "and":
            result: list[list[tuple]] = [[]]
            for sub in f[1:]:
                d = self.formula(sub)
                if len(d) == 1:
                    for conj in result:
                        conj.extend(d[0])
                else:
                    result = self._product(result, d, f.pos)
            return result
        if op == "or":
            out: list[list[tuple]] = []
            for sub in f[1:]:
                out.extend(self.formula(sub))
            if len(out) > MAX_DISJUNCTS:
                raise self.err(f.pos, f"more than {MAX_DISJUNCTS} disjuncts")
            return out
        if op in _COMPARISONS:
            if len(f) < 3:
                raise self.err(f.pos, f"{str(op)!r} needs two terms")
            terms = [self.term(a) for a in f[1:]]
            atoms = []
            for left, right in zip(terms[:-1], terms[1:]):
                if op in ("<=", "<", "="):
                    atoms.append(self._atom(left, right, f.pos))
                if op in (">=", ">", "="):
                    atoms.append(self._atom(right, left, f.pos))
            return [atoms]
        raise self.err(f.pos, f"unsupported operator {str(op)!r} in an assertion")

    def _product(self, a: list[list[tuple]], b: list[list[tuple]], pos: int) -> list[list[tuple]]:
        if len(a) * len(b) > MAX_DISJUNCTS:
            raise self.err(pos, f"the disjunctive normal form has more than {MAX_DISJUNCTS} terms")
        return [x + y for x, y in product(a, b)]

    def _atom(self, left, right, pos: int) -> tuple:
        """``left <= right`` as (coefficients, bound): sum coef*var <= bound."""
        coefs = dict(left[0])
        for k, v in right[0].items():
            coefs[k] = coefs.get(k, 0.0) - v
        coefs = {k: v for k, v in coefs.items() if v != 0.0}
        return coefs, right[1] - left[1], pos

    # top level ----------------------------------------------------------
    def parse(self) -> Property:
        commands = _sexprs(self.text, self.err)
        common: list[tuple] = []
        multi: list[tuple[list[list[tuple]], int]] = []
        for cmd in commands:
            if not cmd or not isinstance(cmd[0], _Atom):
                raise self.err(cmd.pos, "expected a command such as 'declare-const' or 'assert'")
            head = cmd[0]
            if head == "declare-const":
                self._declare(cmd)
            elif head == "assert":
                if len(cmd) != 2:
                    raise self.err(cmd.pos, "'assert' takes exactly one formula")
                d = self.formula(cmd[1])
                if len(d) == 1:
                    common.extend(d[0])
                else:
                    multi.append((d, cmd.pos))
            elif head in _IGNORED_COMMANDS:
                continue
            else:
                raise self.err(cmd.pos, f"unknown command {str(head)!r}")
        n_in = self._count(0)
        n_out = self._count(1)
        dnf: list[list[tuple]] = [[]]
        for d, pos in multi:
            dnf = self._product(dnf, d, pos)
        cases = self._cases(common, dnf, n_in, n_out)
        return Property(n_in, n_out, tuple(cases), self.source)

    def _declare(self, cmd: _List) -> None:
        if len(cmd) != 3 or not all(isinstance(a, _Atom) for a in cmd[1:]):
            raise self.err(cmd.pos, "expected (declare-const NAME Real)")
        name, typ = cmd[1], cmd[2]
        if typ != "Real":
            raise self.err(typ.pos, f"unsupported type {str(typ)!r} (only Real)")
        m = _VAR.match(name)
        if m is None:
            raise self.err(name.pos, f"variable {str(name)!r} is not named X_i or Y_j")
        if name in self.vars:
            raise self.err(name.pos, f"variable {str(name)!r} declared twice")
        self.vars[str(name)] = (0 if m.group(1) == "X" else 1, int(m.group(2)))
        self.decl_pos[str(name)] = name.pos

    def _count(self, kind: int) -> int:
        idx = sorted(i for k, i in self.vars.values() if k == kind)
        for expect, got in enumerate(idx):
            if got != expect:
                letter = "XY"[kind]
                pos = self.decl_pos.get(f"{letter}_{got}", 0)
                raise self.err(pos, f"{letter}_{expect} is missing (variables must be 0..n-1)")
        return len(idx)

    def _cases(self, common, dnf, n_in: int, n_out: int) -> list[PropertyCase]:
        base_lo = np.full(n_in, -np.inf)
        base_hi = np.full(n_in, np.inf)
        base_rows: list[tuple] = []
        base_bounds: list[tuple[int, bool, float]] = []
        if not self._split(common, base_rows, base_bounds):
            return []  # the common assertions are contradictory: nothing is unsafe
        _fold(base_lo, base_hi, base_bounds)
        base_checked = False
        index = {name: i for name, (_, i) in self.vars.items()}
        outputs: dict[bytes, tuple[np.ndarray, np.ndarray, list]] = {}
        for conj in dnf:
            rows = list(base_rows)
            bounds: list[tuple[int, bool, float]] = []
            if not self._split(conj, rows, bounds):
                continue
            if bounds:
                lo, hi = base_lo.copy(), base_hi.copy()
                _fold(lo, hi, bounds)
                self._check_box(lo, hi)
            else:
                lo, hi = base_lo, base_hi
                if not base_checked:
                    self._check_box(lo, hi)
                    base_checked = True
            if np.any(lo > hi):
                continue  # an empty box: this disjunct is unreachable
            A = np.zeros((len(rows), n_out))
            b = np.empty(len(rows))
            for r, (coefs, bound) in enumerate(rows):
                for name, c in coefs.items():
                    A[r, index[name]] += c
                b[r] = bound
            A.setflags(write=False)
            b.setflags(write=False)
            key = lo.tobytes() + hi.tobytes()
            entry = outputs.get(key)
            if entry is None:
                lo, hi = lo.copy(), hi.copy()
                lo.setflags(write=False)
                hi.setflags(write=False)
                entry = outputs[key] = (lo, hi, [])
            entry[2].append((A, b))
        return [PropertyCase(lo, hi, tuple(out)) for lo, hi, out in outputs.values()]

    def _check_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            return
        for i in range(lo.size):
            if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
                side = "lower" if not np.isfinite(lo[i]) else "upper"
                pos = self.decl_pos.get(f"X_{i}", 0)
                raise self.err(pos, f"input X_{i} has no {side} bound")

    def _split(self, atoms, rows: list, bounds: list) -> bool:
        """Sort atoms into output rows and input bounds ``(index, is_upper, value)``.

        Returns False when a constant atom is false (the conjunction is empty).
        """
        ok = True
        for coefs, bound, pos in atoms:
            if not coefs:
                if bound < 0.0:  # 0 <= negative
                    ok = False
                continue
            kinds = {self.vars[name][0] for name in coefs}
            if kinds == {1}:
                rows.append((coefs, bound))
                continue
            if kinds != {0}:
                raise self.err(pos, "a constraint mixing inputs and outputs is not supported")
            if len(coefs) != 1:
                raise self.err(pos, "input constraints must be bounds of single inputs (a box)")
            ((name, c),) = coefs.items()
            bounds.append((self.vars[name][1], c > 0, bound / c + 0.0))  # no negative zero
        return ok


def _fold(lo: np.ndarray, hi: np.ndarray, bounds: list[tuple[int, bool, float]]) -> None:
    """Intersect the box with the bounds."""
    for i, upper, v in bounds:
        if upper:
            if v < hi[i]:
                hi[i] = v
        elif v > lo[i]:
            lo[i] = v


def _lin_sum(parts, weights) -> tuple[dict[str, float], float]:
    coefs: dict[str, float] = {}
    const = 0.0
    for (c, k), w in zip(parts, weights):
        const += w * k
        for name, v in c.items():
            coefs[name] = coefs.get(name, 0.0) + w * v
    return coefs, const


def parse_vnnlib_text(text: str, source: str = "<string>") -> Property:
    """Parse VNN-LIB 1.0 text into a :class:`Property` (errors name ``source``:line)."""
    return _Parser(text, source).parse()
