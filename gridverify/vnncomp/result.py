"""VNN-COMP result files: one word (``sat``/``unsat``/``unknown``/``timeout``/``error``).

A ``sat`` result is followed by the counterexample in the competition's format::

    sat
    ((X_0 0.125)
     (X_1 -0.5)
     (Y_0 3.25))

Numbers are written with ``repr`` so that they read back to the same float64.
Files are written atomically (a temporary file in the same folder, then
``os.replace``), so a reader never sees a half-written result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridverify.errors import VnnlibError
from gridverify.fileio import atomic_write_text

__all__ = ["RESULTS", "format_result", "read_result", "write_atomic", "write_result"]

RESULTS = ("sat", "unsat", "unknown", "timeout", "error")


def format_result(result: str, x: np.ndarray | None = None, y: np.ndarray | None = None) -> str:
    """The text of a result file; ``x``/``y`` (flat) are required for ``sat``."""
    if result not in RESULTS:
        raise ValueError(f"unknown result {result!r}; expected one of {RESULTS}")
    if result != "sat":
        return result + "\n"
    if x is None or y is None:
        raise ValueError("a sat result needs the counterexample inputs and outputs")
    entries = [f"(X_{i} {float(v)!r})" for i, v in enumerate(np.asarray(x).reshape(-1))]
    entries += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(np.asarray(y).reshape(-1))]
    return "sat\n(" + "\n ".join(entries) + ")\n"


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then replace)."""
    atomic_write_text(path, text)


def write_result(
    path: str | Path, result: str, x: np.ndarray | None = None, y: np.ndarray | None = None
) -> None:
    """Write a result file atomically (see :func:`format_result`)."""
    write_atomic(path, format_result(result, x, y))


def read_result(path: str | Path) -> tuple[str, dict[str, float]]:
    """Read a result file: the result word and, for ``sat``, the assignment by name.

    Accepts the historical synonyms ``holds`` (unsat) and ``violated`` (sat).
    """
    from gridverify.vnncomp.vnnlib import read_text

    text = read_text(path)
    lines = text.strip().splitlines()
    if not lines:
        raise VnnlibError(f"{path}:1: empty result file")
    word = lines[0].strip().lower()
    word = {"holds": "unsat", "violated": "sat"}.get(word, word)
    if word not in RESULTS:
        raise VnnlibError(f"{path}:1: unknown result {lines[0].strip()!r}")
    values: dict[str, float] = {}
    if word == "sat":
        body = " ".join(lines[1:]).replace("(", " ( ").replace(")", " ) ").split()
        i = 0
        while i < len(body):
            if body[i] == "(" and i + 3 < len(body) and body[i + 3] == ")":
                try:
                    values[body[i + 1]] = float(body[i + 2])
                except ValueError:
                    raise VnnlibError(f"{path}: bad number {body[i + 2]!r}") from None
                i += 4
            else:
                i += 1
    return word, values
