"""A reader for MATPOWER v2 case files (``.m``) that never executes the file.

The file is tokenized, not evaluated.  The accepted language is the subset that
MATPOWER and PGLib-OPF case files use:

* ``function mpc = NAME`` (optional), ``end`` and ``return`` (ignored);
* ``mpc.NAME = <number>;`` and ``mpc.NAME = '<string>';``;
* ``mpc.NAME = [ ... ];`` numeric matrices, whose rows are separated by ``;``
  or newlines and whose elements are separated by blanks or commas;
* ``mpc.NAME = { ... };`` cell arrays of strings or numbers (e.g. ``bus_name``);
* ``%`` line comments, ``%{ ... %}`` block comments (nested, as in MATLAB) and
  ``...`` continuations.

The file is UTF-8 (or latin-1, or UTF-16 with a byte-order mark); names and
numbers are ASCII, as in MATLAB, and any other character is an error.

Numbers may carry a sign, a decimal point and an exponent; ``Inf``/``NaN`` are
read as floats (the validator decides whether they are acceptable).  Anything
else (arithmetic, function calls, transposes) raises :class:`CaseFormatError`
naming the file and line: a case file is data, and the reader treats it as data.
A sign right after a number (``1.1+0``, ``2-1``) is arithmetic, an error; after a
blank it starts the next element (``[1 -2]`` is two numbers, as in MATLAB).  A
``...`` continuation may follow a number directly (``30...`` is 30, continued).

Every matrix row records the 1-based line of the file on which it starts, so
later errors can point at the offending row.
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridverify.errors import CaseFormatError

__all__ = ["MatpowerTable", "MatpowerFile", "parse_matpower", "read_matpower"]


@dataclass(frozen=True)
class MatpowerTable:
    """One numeric matrix ``mpc.NAME = [...]`` of a case file.

    ``values`` is a (rows, cols) float64 array; ``row_lines`` the 1-based file
    line of each row; ``line`` the line of the assignment.
    """

    name: str
    values: np.ndarray
    row_lines: np.ndarray
    line: int


@dataclass(frozen=True)
class MatpowerFile:
    """Everything read from one ``.m`` case file."""

    source: str
    function_name: str | None
    scalars: dict[str, float] = field(default_factory=dict)
    strings: dict[str, str] = field(default_factory=dict)
    tables: dict[str, MatpowerTable] = field(default_factory=dict)
    cells: dict[str, tuple[tuple[str | float, ...], tuple[int, ...]]] = field(
        default_factory=dict
    )
    lines: dict[str, int] = field(default_factory=dict)  # field name -> assignment line


# --------------------------------------------------------------------------- tokens

_NUMBER_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eEdD][+-]?[0-9]+)?|[Ii]nf(?:inity)?\b|NaN\b"
    r"|nan\b)"
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DIGITS = frozenset("0123456789")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, id, punct, nl
    text: str
    line: int
    value: float | str | None = None


def _err(source: str, line: int, msg: str, fld: str | None = None) -> CaseFormatError:
    return CaseFormatError(msg, source=source, line=line, field=fld)


def _to_float(text: str) -> float:
    t = text.lower().replace("d", "e")
    sign = -1.0 if t.startswith("-") else 1.0
    body = t.lstrip("+-")
    if body.startswith("inf"):
        return sign * math.inf
    if body == "nan":
        return math.nan
    return float(t)


def _after_number(raw: str, start: int, end: int, source: str, lineno: int) -> int:
    """``end``, after checking what follows the number ``raw[start:end]``: a letter,
    digit, ``_`` or ``.`` (other than a ``...`` continuation) makes it malformed, and
    a sign right after it (``1.1+0``, ``2-1``) is arithmetic; both raise."""
    if end >= len(raw) or raw.startswith("...", end):
        return end
    nxt = raw[end]
    if nxt.isalnum() or nxt in "_.":  # any letter or digit, ASCII or not
        raise _err(source, lineno, f"malformed number near {raw[start:end + 1]!r}")
    if nxt in "+-":
        raise _err(
            source,
            lineno,
            f"unexpected {nxt!r} right after the number {raw[start:end]!r}: arithmetic is "
            "not supported in case data (separate numbers by a blank or a comma)",
        )
    return end


def _tokenize(text: str, source: str) -> list[_Tok]:
    """Split the file into tokens; comments and continuations are dropped."""
    toks: list[_Tok] = []
    depth = 0  # block comments nest, as in MATLAB
    # lines end at \n, \r\n or \r only, as editors number them (str.splitlines also
    # splits at form feeds, \x85 and others, which shifted every later line number)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for lineno, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if stripped == "%{":
            depth += 1
            continue
        if depth:
            if stripped == "%}":
                depth -= 1
            continue
        i, n = 0, len(raw)
        continued = False
        while i < n:
            ch = raw[i]
            if ch in " \t\r\f\v":
                i += 1
                continue
            if ch == "%" or ch == "#":
                break
            if raw.startswith("...", i):
                continued = True
                break
            if ch == "'" or ch == '"':
                prev = raw[i - 1] if i > 0 else " "
                if ch == "'" and (prev.isalnum() or prev in "_.])}'"):
                    raise _err(source, lineno, "transpose operator is not supported in case data")
                j = i + 1
                buf = []
                while True:
                    if j >= n:
                        raise _err(source, lineno, "unterminated string")
                    if raw[j] == ch:
                        if j + 1 < n and raw[j + 1] == ch:  # doubled quote escapes itself
                            buf.append(ch)
                            j += 2
                            continue
                        break
                    buf.append(raw[j])
                    j += 1
                toks.append(_Tok("str", raw[i : j + 1], lineno, "".join(buf)))
                i = j + 1
                continue
            if ch in "+-" or ch in _DIGITS or (ch == "." and i + 1 < n and raw[i + 1] in _DIGITS):
                m = _NUMBER_RE.match(raw, i)
                if m is None:
                    raise _err(
                        source,
                        lineno,
                        f"unexpected {ch!r}: arithmetic is not supported in case data",
                    )
                end = m.end()
                if raw[end - 1] == "." and raw.startswith("...", end - 1):
                    end -= 1  # ``30...``: the number 30, then a continuation (as MATLAB)
                toks.append(_Tok("num", raw[i:end], lineno, _to_float(raw[i:end])))
                i = _after_number(raw, i, end, source, lineno)
                continue
            if ch in _IDENT_START:
                m = _IDENT_RE.match(raw, i)
                assert m is not None  # the pattern matches every letter or ``_`` of ASCII
                word = m.group(0)
                if word.lower() in ("inf", "infinity", "nan"):
                    toks.append(_Tok("num", word, lineno, _to_float(word)))
                    i = _after_number(raw, i, m.end(), source, lineno)
                    continue
                toks.append(_Tok("id", word, lineno))
                i = m.end()
                continue
            if ch in "=[]{};,":
                toks.append(_Tok("punct", ch, lineno))
                i += 1
                continue
            if ch in "()*/\\^&|<>~!:@.":
                toks.append(_Tok("op", ch, lineno))
                i += 1
                continue
            raise _err(source, lineno, f"unexpected character {ch!r} in case data")
        if not continued:
            toks.append(_Tok("nl", "\n", lineno))
    return toks


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, toks: list[_Tok], source: str) -> None:
        self.toks = toks
        self.pos = 0
        self.source = source

    def peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def skip_separators(self) -> None:
        while (t := self.peek()) is not None and (
            t.kind == "nl" or (t.kind == "punct" and t.text in ";,")
        ):
            self.pos += 1

    def end_statement(self, name: str) -> None:
        t = self.peek()
        if t is None or t.kind == "nl" or (t.kind == "punct" and t.text in ";,"):
            return
        raise _err(
            self.source, t.line, f"unexpected {t.text!r} after the value of mpc.{name}", name
        )

    def bracket(self, close: str, name: str, start_line: int) -> tuple[list[list[_Tok]], list[int]]:
        """Rows of tokens up to the closing bracket, with each row's first line."""
        rows: list[list[_Tok]] = []
        lines: list[int] = []
        cur: list[_Tok] = []
        while True:
            t = self.peek()
            if t is None:
                raise _err(self.source, start_line, f"unterminated matrix {name} (missing {close})")
            self.pos += 1
            if t.kind == "punct" and t.text == close:
                if cur:
                    rows.append(cur)
                    lines.append(cur[0].line)
                return rows, lines
            if t.kind == "nl" or (t.kind == "punct" and t.text == ";"):
                if cur:
                    rows.append(cur)
                    lines.append(cur[0].line)
                cur = []
                continue
            if t.kind == "punct" and t.text == ",":
                continue
            if t.kind == "id" and t.text.startswith("mpc."):
                raise _err(
                    self.source,
                    t.line,
                    f"mpc.{name} (line {start_line}) is not closed with {close!r} before {t.text}",
                    name,
                )
            if t.kind in ("punct", "id", "op"):
                raise _err(
                    self.source, t.line, f"unexpected {t.text!r} inside {name}", name
                )
            cur.append(t)

    def parse(self) -> MatpowerFile:
        out = MatpowerFile(source=self.source, function_name=None)
        function_name: str | None = None
        while True:
            self.skip_separators()
            t = self.peek()
            if t is None:
                break
            if t.kind != "id":
                raise _err(self.source, t.line, f"unexpected {t.text!r}: expected mpc.NAME = ...")
            word = t.text
            if word == "function":
                self.pos += 1
                parts = []
                while (u := self.peek()) is not None and u.kind != "nl":
                    parts.append(u)
                    self.pos += 1
                ids = [u.text for u in parts if u.kind == "id"]
                function_name = ids[-1] if ids else None
                continue
            if word in ("end", "return", "endfunction"):
                self.pos += 1
                continue
            if not word.startswith("mpc."):
                raise _err(
                    self.source,
                    t.line,
                    f"unsupported statement starting with {word!r} "
                    "(case files are read as data, not executed)",
                )
            name = word[4:]
            self.pos += 1
            eq = self.peek()
            if eq is None or eq.kind != "punct" or eq.text != "=":
                raise _err(self.source, t.line, f"expected '=' after {word}", name)
            self.pos += 1
            v = self.peek()
            if v is None or v.kind == "nl":
                raise _err(self.source, t.line, f"missing value for {word}", name)
            if name in out.lines:
                raise _err(
                    self.source, t.line, f"{word} assigned twice (first on line "
                    f"{out.lines[name]})", name
                )
            out.lines[name] = t.line
            if v.kind == "num":
                self.pos += 1
                out.scalars[name] = float(v.value)  # type: ignore[arg-type]
            elif v.kind == "str":
                self.pos += 1
                out.strings[name] = str(v.value)
            elif v.kind == "punct" and v.text == "[":
                self.pos += 1
                rows, lines = self.bracket("]", name, t.line)
                out.tables[name] = self._matrix(name, rows, lines, t.line)
            elif v.kind == "punct" and v.text == "{":
                self.pos += 1
                rows, lines = self.bracket("}", name, t.line)
                vals: list[str | float] = []
                cell_lines: list[int] = []
                for row, ln in zip(rows, lines):
                    for tok in row:
                        vals.append(tok.value)  # type: ignore[arg-type]
                        cell_lines.append(ln)
                out.cells[name] = (tuple(vals), tuple(cell_lines))
            else:
                raise _err(
                    self.source, v.line, f"unsupported value {v.text!r} for {word}", name
                )
            self.end_statement(name)
        return MatpowerFile(
            source=out.source,
            function_name=function_name,
            scalars=out.scalars,
            strings=out.strings,
            tables=out.tables,
            cells=out.cells,
            lines=out.lines,
        )

    def _matrix(
        self, name: str, rows: list[list[_Tok]], lines: list[int], line: int
    ) -> MatpowerTable:
        width = len(rows[0]) if rows else 0
        data = np.empty((len(rows), width), dtype=np.float64)
        for r, (row, ln) in enumerate(zip(rows, lines)):
            if len(row) != width:
                raise _err(
                    self.source,
                    ln,
                    f"row {r + 1} of {name} has {len(row)} columns, expected {width} "
                    f"(as in row 1)",
                    name,
                )
            for c, tok in enumerate(row):
                if tok.kind != "num":
                    raise _err(
                        self.source,
                        ln,
                        f"non-numeric entry {tok.text!r} in row {r + 1}, column {c + 1} of {name}",
                        name,
                    )
                data[r, c] = tok.value  # type: ignore[assignment]
        return MatpowerTable(
            name=name, values=data, row_lines=np.asarray(lines, dtype=np.int64), line=line
        )


def parse_matpower(text: str, source: str = "<string>") -> MatpowerFile:
    """Parse the text of a MATPOWER case file (without executing it).

    A text without any statement (empty, blank or only comments) raises
    :class:`CaseFormatError` saying so.
    """
    toks = _tokenize(text, source)
    if not any(t.kind != "nl" for t in toks):
        what = "empty" if not text.strip() else "only comments, no case data"
        raise CaseFormatError(f"the file is {what}" if what == "empty" else
                              f"the file has {what}", source=source)
    return _Parser(toks, source).parse()


#: the first bytes of compressed files a case may come in
_ARCHIVES = ((b"\x1f\x8b", "gzip-compressed"), (b"PK\x03\x04", "zip"),
             (b"BZh", "bzip2-compressed"), (b"\xfd7zXZ\x00", "xz-compressed"))


def read_matpower(path: str | Path) -> MatpowerFile:
    """Read and parse a MATPOWER ``.m`` file; errors name the file and line."""
    p = Path(path)
    data = p.read_bytes()
    for magic, kind in _ARCHIVES:
        if data.startswith(magic):
            raise CaseFormatError(f"a {kind} file, not a MATPOWER text file: extract the .m "
                                  "file first", source=str(p))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # saved as UTF-16
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise CaseFormatError(f"not valid UTF-16 text ({e.reason})", source=str(p)) from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return parse_matpower(text, source=str(p))
