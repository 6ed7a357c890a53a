"""One error hierarchy for gridverify.

Every error a user can cause derives from :class:`GridverifyError`; the CLI turns
these into a one-line message and exit status 2.  Messages name the file and
line, the field, or the op and node that is wrong.
"""

from __future__ import annotations


class GridverifyError(Exception):
    """Base class of all user-facing gridverify errors (bad input, bad options)."""


class CaseFormatError(GridverifyError):
    """A grid case file or network cannot be a valid OPF case.

    ``source`` is the file (or ``"<pandapower>"``), ``line`` the 1-based line in
    the file when known, ``field`` the table/column when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = []
        if source:
            where.append(str(source) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field {field}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.message = message


class SolverError(GridverifyError):
    """No usable NLP solver, or the solver failed in a way that is not a status."""


class DatasetError(GridverifyError):
    """An OPF dataset file is malformed, of another case, or inconsistent."""


class UnsupportedOpError(GridverifyError):
    """An importer met an op it cannot lower into the gridverify graph."""

    def __init__(self, op_type: str, node: str, detail: str = "") -> None:
        self.op_type = op_type
        self.node = node
        msg = f"unsupported op {op_type!r} at node {node!r}"
        super().__init__(msg + (f": {detail}" if detail else ""))


class GraphError(GridverifyError):
    """A graph is malformed (shapes, missing inputs, cycles) or cannot be bounded."""


class RuntimeUnavailableError(GraphError):
    """onnxruntime cannot run a model (no kernel for one of its ops in its dtype: a
    float64 ``Elu``, ``Softplus``, ``Erf``...); the message says which."""


class ProxyError(GridverifyError):
    """A proxy model cannot be loaded or does not match its case."""


class SpecError(GridverifyError):
    """A certification specification (region, constraints, thresholds) is invalid."""


class VnnlibError(GridverifyError):
    """A VNN-LIB property file is malformed; the message names the line."""


class StudyError(GridverifyError):
    """A study file is malformed; the message names the line and key."""


class OutputPathError(GridverifyError):
    """An output path cannot be written (a folder where a file is meant, no permission,
    a file in the way of a folder); checked before any computation starts."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    """The last non-empty line of an exception's message (at most ``limit`` characters;
    the type's name when the message is empty): what a one-line report shows of an
    error raised by a library (onnx, torch) whose messages run over several lines."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:limit]


def one_printable_line(message: str) -> str:
    """``message`` on one line with its control characters escaped (``\\x1b``): a
    file name or field read from a file cannot break the line or drive the terminal."""
    line = " ".join(message.split())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)
