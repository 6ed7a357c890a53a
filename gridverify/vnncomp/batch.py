"""Run a VNN-COMP benchmark folder: every row of ``instances.csv``, then a summary.

``instances.csv`` rows are ``onnx,vnnlib,timeout`` with paths relative to the
benchmark folder (no header, as in the competition's repositories).  A listed
file that is missing but has a ``.gz`` sibling is read from that, decompressed
in memory; a listed file found neither way makes that row an ``error`` (the
others still run).  The results CSV has the columns
``onnx,vnnlib,result,seconds,detail`` (detail: the stage that decided, or why a
row is an error).

An expected-results CSV (rows ``onnx,vnnlib,result``, header optional; result
``sat``/``unsat``, also ``violated``/``holds``) turns the summary into counts of
correct, wrong (the opposite definite answer) and missed (no definite answer).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gridverify._progress import progress_wanted
from gridverify.errors import GridverifyError, VnnlibError
from gridverify.vnncomp.result import write_atomic
from gridverify.vnncomp.runner import RunOptions, RunOutcome, run_instance
from gridverify.vnncomp.vnnlib import gz_fallback, read_text

__all__ = ["BatchRow", "BatchSummary", "Instance", "read_expected", "read_instances",
           "read_results", "run_batch"]

_SYNONYMS = {"holds": "unsat", "violated": "sat"}


@dataclass(frozen=True)
class Instance:
    """One row of instances.csv (paths as written, relative to the benchmark folder)."""

    onnx: str
    vnnlib: str
    timeout: float
    line: int


@dataclass(frozen=True)
class BatchRow:
    """The result of one instance."""

    onnx: str
    vnnlib: str
    result: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class BatchSummary:
    """Counts by result, times, and (with expected results) correct/wrong/missed."""

    rows: tuple[BatchRow, ...]
    counts: dict[str, int]
    total_seconds: float
    median_seconds: float
    correct: int | None = None
    wrong: int | None = None
    missed: int | None = None
    wrong_rows: tuple[BatchRow, ...] = ()

    def lines(self) -> list[str]:
        """The summary as printable lines."""
        out = [f"instances: {len(self.rows)}"]
        for key in ("sat", "unsat", "unknown", "timeout", "error"):
            if self.counts.get(key):
                out.append(f"  {key:8s} {self.counts[key]}")
        out.append(f"time: total {self.total_seconds:.2f} s, median {self.median_seconds:.2f} s")
        if self.correct is not None:
            out.append(
                f"vs expected: correct {self.correct}, wrong {self.wrong}, missed {self.missed}"
            )
            for r in self.wrong_rows:
                out.append(f"  WRONG: {r.onnx} {r.vnnlib} -> {r.result}")
        for r in self.rows:
            if r.result == "error":
                out.append(f"  ERROR: {r.onnx} {r.vnnlib}: {' '.join(r.detail.split())}")
        return out


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    text = read_text(path)
    out = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        row = [c.strip() for c in row]
        if not row or all(not c for c in row) or row[0].startswith("#"):
            continue
        out.append((n, row))
    return out


def read_instances(path: str | Path) -> list[Instance]:
    """Rows of an instances.csv (``onnx,vnnlib,timeout``); errors name the line."""
    p = Path(path)
    out = []
    for n, row in _rows(p):
        while len(row) > 3 and not row[-1]:
            row = row[:-1]  # trailing commas
        if len(row) != 3:
            raise VnnlibError(f"{p}:{n}: expected onnx,vnnlib,timeout, got {len(row)} field(s)")
        try:
            timeout = float(row[2])
        except ValueError:
            if _is_header(n, row):
                continue
            raise VnnlibError(f"{p}:{n}: bad timeout {row[2]!r}") from None
        if not (timeout > 0 and math.isfinite(timeout)):
            raise VnnlibError(f"{p}:{n}: timeout must be a number > 0, got {row[2]!r}")
        out.append(Instance(row[0], row[1], timeout, n))
    if not out:
        raise VnnlibError(f"{p}: no instances (expected rows onnx,vnnlib,timeout)")
    return out


def _key(onnx: str, vnnlib: str) -> tuple[str, str]:
    def norm(s: str) -> str:
        s = s.strip().replace("\\", "/")
        while s.startswith("./"):
            s = s[2:]
        return s[:-3] if s.endswith(".gz") else s

    return norm(onnx), norm(vnnlib)


def _is_header(n: int, row: list[str]) -> bool:
    """Line ``n`` of a CSV is a header (``onnx,vnnlib,...``): the first line, naming no
    ONNX model (a first row that names one is data, and its errors are reported)."""
    return n == 1 and not _key(row[0], row[1])[0].lower().endswith(".onnx")


def read_expected(path: str | Path) -> dict[tuple[str, str], str]:
    """Expected results by (onnx, vnnlib): ``sat``/``unsat`` (``unknown`` rows are not
    scored).  Another word, or one instance given two different answers, is an error
    naming the line."""
    p = Path(path)
    out: dict[tuple[str, str], str] = {}
    lines: dict[tuple[str, str], int] = {}
    for n, row in _rows(p):
        if len(row) < 3:
            raise VnnlibError(f"{p}:{n}: expected onnx,vnnlib,result, got {len(row)} field(s)")
        word = _SYNONYMS.get(row[2].lower(), row[2].lower())
        if word not in ("sat", "unsat", "unknown"):
            if _is_header(n, row):
                continue
            raise VnnlibError(f"{p}:{n}: unknown expected result {row[2]!r} (expected sat, "
                              "unsat, unknown, violated or holds)")
        key = _key(row[0], row[1])
        if word == "unknown":
            continue
        if out.get(key, word) != word:
            raise VnnlibError(f"{p}:{n}: expected result {word} for {row[1]}, but line "
                              f"{lines[key]} says {out[key]}")
        out[key], lines[key] = word, n
    return out


#: the header of a results CSV
_RESULTS_HEADER = ["onnx", "vnnlib", "result", "seconds", "detail"]


def read_results(path: str | Path) -> list[BatchRow]:
    """The rows of a results CSV that :func:`run_batch` wrote (to resume it); a file
    that is not one is an error naming it (it is not replaced)."""
    p = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VnnlibError(f"{p}: exists and is not a results CSV of vnncomp batch ({exc}); "
                          "not replaced (give another --out, or remove it)") from None
    if not rows or rows[0] != _RESULTS_HEADER:
        raise VnnlibError(f"{p}: exists and is not a results CSV of vnncomp batch (its first "
                          f"line is not {','.join(_RESULTS_HEADER)}); not replaced (give "
                          "another --out, or remove it)")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        try:
            onnx, vnnlib, result, seconds, detail = row
            out.append(BatchRow(onnx, vnnlib, result, float(seconds), detail))
        except ValueError:
            raise VnnlibError(f"{p}:{n}: not a row onnx,vnnlib,result,seconds,detail; "
                              "remove the file to run every instance again") from None
    return out


def _missing(root: Path, inst: Instance, csv_path: Path) -> str:
    """Why a row cannot run (its files not found), or ``""``."""
    gone = [str(root / rel) for rel in (inst.onnx, inst.vnnlib)
            if not gz_fallback(root / rel).exists()]
    return f"{csv_path}:{inst.line}: file not found: {', '.join(gone)}" if gone else ""


def run_batch(
    benchmark_dir: str | Path,
    out: str | Path,
    *,
    instances: str | Path | None = None,
    timeout_scale: float = 1.0,
    expected: str | Path | None = None,
    options: RunOptions | None = None,
    progress: bool | None = None,
    on_row: Callable[[BatchRow], None] | None = None,
    resume: bool = True,
) -> BatchSummary:
    """Run every instance, write the results CSV atomically after each row, summarize.

    ``resume``: when ``out`` already holds results of this list (a run that was
    stopped), the rows it holds for the same instances, in order, are kept (but
    errors, which run again) and only the others run; ``False`` runs every row.
    """
    root = Path(benchmark_dir)
    if not root.is_dir():
        raise VnnlibError(f"{root}: not a folder")
    csv_path = Path(instances) if instances is not None else root / "instances.csv"
    if not csv_path.is_absolute() and not csv_path.exists() and (root / csv_path).exists():
        csv_path = root / csv_path
    if not timeout_scale > 0:
        raise VnnlibError(f"--timeout-scale must be > 0, got {timeout_scale}")
    for what, given in (("instances CSV", csv_path), ("expected results", expected)):
        if given is not None and Path(out).exists() and Path(given).exists() \
                and Path(out).samefile(given):
            raise VnnlibError(f"--out {out}: is the {what}; give another file for the results")
    rows_in = read_instances(csv_path)
    exp = read_expected(expected) if expected is not None else None
    done = read_results(out) if resume and Path(out).is_file() else []
    base = options or RunOptions()
    # Check every path first: when none can run, fail before any work.
    missing = [_missing(root, i, csv_path) for i in rows_in]
    if all(missing):
        raise VnnlibError(missing[0] + ("" if len(missing) == 1 else
                                        " (and the files of every other row)"))
    results: list[BatchRow] = []

    def run_all(advance: Callable[[str], None]) -> None:
        for k, (inst, gone) in enumerate(zip(rows_in, missing)):
            if k < len(done) and _key(done[k].onnx, done[k].vnnlib) == \
                    _key(inst.onnx, inst.vnnlib) and done[k].result != "error":
                results.append(done[k])  # finished by the run this one resumes
                advance(f"{Path(inst.vnnlib).name}: {done[k].result} (kept)")
                continue
            opts = replace(base, timeout=inst.timeout * timeout_scale)
            t0 = time.monotonic()
            try:
                if gone:
                    raise VnnlibError(gone)
                outcome: RunOutcome = run_instance(root / inst.onnx, root / inst.vnnlib, opts)
                result, detail = outcome.result, f"{outcome.stage}: {outcome.detail}"
            except GridverifyError as exc:
                result, detail = "error", str(exc)
            except OSError as exc:  # a file of the row unreadable: the others still run
                where = exc.filename or root / inst.vnnlib
                result, detail = "error", f"{where}: {exc.strerror or exc}"
            row = BatchRow(inst.onnx, inst.vnnlib, result, time.monotonic() - t0, detail)
            results.append(row)
            _write_csv(out, results)
            if on_row is not None:
                on_row(row)
            advance(f"{Path(inst.vnnlib).name}: {result}")

    if progress_wanted(progress) and rows_in:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from gridverify._progress import progress_console

        with Progress(
            TextColumn("[bold]vnncomp"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=progress_console(),
            transient=False,
        ) as bar:
            task = bar.add_task("", total=len(rows_in))
            run_all(lambda d: bar.update(task, advance=1, description=d))
    else:
        run_all(lambda d: None)
    return summarize(results, exp)


def _write_csv(path: str | Path, rows: list[BatchRow]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_RESULTS_HEADER)
    for r in rows:
        w.writerow([r.onnx, r.vnnlib, r.result, f"{r.seconds:.3f}", " ".join(r.detail.split())])
    write_atomic(path, buf.getvalue())


def summarize(
    rows: list[BatchRow], expected: dict[tuple[str, str], str] | None = None
) -> BatchSummary:
    """Counts by result, total/median seconds, and the comparison with ``expected``."""
    counts = dict(Counter(r.result for r in rows))
    secs = [r.seconds for r in rows]
    total = float(sum(secs))
    median = float(statistics.median(secs)) if secs else 0.0
    if expected is None:
        return BatchSummary(tuple(rows), counts, total, median)
    correct = wrong = missed = 0
    wrong_rows = []
    for r in rows:
        want = expected.get(_key(r.onnx, r.vnnlib))
        if want is None:
            continue
        if r.result == want:
            correct += 1
        elif r.result in ("sat", "unsat"):
            wrong += 1
            wrong_rows.append(r)
        else:
            missed += 1
    return BatchSummary(
        tuple(rows), counts, total, median, correct, wrong, missed, tuple(wrong_rows)
    )
