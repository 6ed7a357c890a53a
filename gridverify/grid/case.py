"""The raw case: MATPOWER tables in original units and ids, and how to load one.

:class:`RawCase` keeps the tables as read (MW, MVAr, degrees, original bus ids,
status columns, every row's source line).  :func:`load_case` reads a file path or
a bundled PGLib-OPF case by name and validates it; :func:`compile_case` (in
:mod:`gridverify.grid.compile`) turns it into the immutable per-unit form.

Optional MATPOWER tables: ``bus_name`` is kept; ``areas``, ``bus_geo``-like
tables and generator fuel/type cells are ignored; a ``dcline`` table with any
in-service line is rejected (:class:`CaseFormatError`), because ignoring an
in-service DC line would change the OPF problem silently; a ``dcline`` table
whose lines are all out of service is ignored with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridverify._values import ArrayValueEq
from gridverify.errors import CaseFormatError
from gridverify.fileio import file_on_path
from gridverify.grid.matpower import MatpowerFile, read_matpower

__all__ = [
    "RawCase",
    "load_case",
    "list_bundled_cases",
    "bundled_cases_dir",
    "resolve_case_path",
    "raw_from_matpower",
    "BUS_COLS",
    "GEN_COLS",
    "BRANCH_COLS",
]

# Minimum column counts of the MATPOWER v2 tables (extra result columns allowed).
BUS_COLS = 13
GEN_COLS = 10
BRANCH_COLS = 13

# Column indices (0-based) of the MATPOWER v2 format.
BUS_I, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, VA, BASE_KV, ZONE, VMAX, VMIN = range(13)
GEN_BUS, PG, QG, QMAX, QMIN, VG, MBASE, GEN_STATUS, PMAX, PMIN = range(10)
(F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, RATE_B, RATE_C, TAP, SHIFT, BR_STATUS, ANGMIN,
 ANGMAX) = range(13)
MODEL, STARTUP, SHUTDOWN, NCOST, COST = range(5)


@dataclass(frozen=True, eq=False)
class RawCase(ArrayValueEq):
    """A grid case as read: MATPOWER tables in original units and ids.

    Tables are float64 arrays with at least the MATPOWER v2 columns; ``*_lines``
    give the 1-based source line of each row (0 when unknown, e.g. pandapower).
    ``table_lines`` maps a table/field name to the line of its assignment.
    """

    name: str
    source: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray | None
    bus_lines: np.ndarray
    gen_lines: np.ndarray
    branch_lines: np.ndarray
    gencost_lines: np.ndarray
    bus_name: tuple[str, ...] | None = None
    table_lines: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # reader warnings (ignored optional tables, ...)
    #: per branch row: a transformer (None: as MATPOWER counts them, a non-zero
    #: ``ratio`` or ``angle``; a converter that knows its elements sets it)
    branch_is_transformer: np.ndarray | None = None
    #: per table (``gen``, ``branch``): a name per row for messages, e.g. the
    #: pandapower element (``line 2``); empty where the file's rows are the names
    element_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"RawCase(name={self.name!r}, source={self.source!r}, "
                f"buses={self.bus.shape[0]}, generators={self.gen.shape[0]}, "
                f"branches={self.branch.shape[0]})")

    @property
    def bus_ids(self) -> np.ndarray:
        """Original bus ids (int64)."""
        return self.bus[:, BUS_I].astype(np.int64)

    @property
    def gen_status(self) -> np.ndarray:
        """Generator status column (1 in service)."""
        return self.gen[:, GEN_STATUS]

    @property
    def branch_status(self) -> np.ndarray:
        """Branch status column (1 in service)."""
        return self.branch[:, BR_STATUS]


def bundled_cases_dir() -> Path:
    """The folder holding the bundled PGLib-OPF cases (package data, found through
    :mod:`importlib.resources`; in a checkout a link to the repository's ``cases/``)."""
    from gridverify.resources import data_dir

    return data_dir() / "cases"


def list_bundled_cases() -> list[str]:
    """Names of the bundled cases (e.g. ``pglib_opf_case14_ieee``), sorted by size."""
    d = bundled_cases_dir()
    if not d.is_dir():
        return []
    names = [p.stem for p in d.glob("*.m")]

    def key(n: str) -> tuple[int, str]:
        digits = "".join(ch for ch in n.split("case", 1)[-1].split("_")[0] if ch.isdigit())
        return (int(digits) if digits else 0, n)

    return sorted(names, key=key)


def resolve_case_path(name_or_path: str | Path) -> Path:
    """A case file path from a path or a bundled name (``pglib_opf_case14_ieee``,
    ``case14_ieee``, with or without ``.m``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = p.name if len(p.parts) == 1 else None
    if name is not None:
        stem = name[:-2] if name.endswith(".m") else name
        d = bundled_cases_dir()
        for cand in (stem, "pglib_opf_" + stem):
            f = d / (cand + ".m")
            if f.is_file():
                return f
    if p.exists():
        raise CaseFormatError("not a regular file", source=str(p))
    blocker = file_on_path(p)
    if blocker is not None:
        raise CaseFormatError(f"{blocker} is not a folder", source=str(p))
    bundled = ", ".join(list_bundled_cases()) or "none"
    raise CaseFormatError(
        f"no such case file or bundled case (bundled: {bundled})", source=str(name_or_path)
    )


def _table(mf: MatpowerFile, name: str, required: bool) -> tuple[np.ndarray, np.ndarray] | None:
    t = mf.tables.get(name)
    if t is None:
        if name in mf.lines:
            raise CaseFormatError(
                f"mpc.{name} must be a numeric matrix [ ... ]",
                source=mf.source,
                line=mf.lines[name],
                field=name,
            )
        if required:
            raise CaseFormatError(f"missing table mpc.{name}", source=mf.source, field=name)
        return None
    return t.values, t.row_lines


def raw_from_matpower(mf: MatpowerFile, name: str | None = None) -> RawCase:
    """Build a :class:`RawCase` from a parsed file (checks presence and shapes only)."""
    src = mf.source
    notes: list[str] = []
    version = mf.strings.get("version", mf.scalars.get("version"))
    if version is not None and str(version).strip() not in ("2", "2.0"):
        raise CaseFormatError(
            f"unsupported MATPOWER case format version {version!r} (only version 2)",
            source=src,
            line=mf.lines.get("version"),
            field="version",
        )
    base_table = mf.tables.get("baseMVA")
    if "baseMVA" not in mf.scalars and base_table is not None and base_table.values.size == 1:
        base = float(base_table.values.reshape(-1)[0])  # ``[100]``: a 1x1 matrix is a number
    elif "baseMVA" not in mf.scalars:
        raise CaseFormatError(
            "missing or non-numeric mpc.baseMVA",
            source=src,
            line=mf.lines.get("baseMVA"),
            field="baseMVA",
        )
    else:
        base = float(mf.scalars["baseMVA"])
    tabs = {}
    for tname in ("bus", "gen", "branch"):
        tabs[tname] = _table(mf, tname, required=True)
    gc = _table(mf, "gencost", required=False)  # a power-flow case may have none
    dc = mf.tables.get("dcline")
    if dc is not None and dc.values.shape[0] > 0:
        status = dc.values[:, 2] if dc.values.shape[1] > 2 else np.ones(dc.values.shape[0])
        active = np.flatnonzero(status > 0)
        if active.size:
            raise CaseFormatError(
                "in-service DC lines (mpc.dcline) are not supported; set their status to 0 "
                "or remove the table",
                source=src,
                line=int(dc.row_lines[active[0]]),
                field="dcline",
            )
        notes.append(f"{src}: mpc.dcline ignored (all {dc.values.shape[0]} lines out of service)")
    bus_name: tuple[str, ...] | None = None
    if "bus_name" in mf.cells:
        vals, _ = mf.cells["bus_name"]
        bus_name = tuple(str(v) for v in vals)
    known = {"bus", "gen", "branch", "gencost", "dcline", "areas", "bus_name"}
    for extra in sorted(set(mf.tables) | set(mf.cells)):
        if extra not in known:
            notes.append(f"{src}: mpc.{extra} ignored")
    return RawCase(
        name=name or mf.function_name or Path(src).stem,
        source=src,
        base_mva=base,
        bus=tabs["bus"][0],
        gen=tabs["gen"][0],
        branch=tabs["branch"][0],
        gencost=gc[0] if gc is not None else None,
        bus_lines=tabs["bus"][1],
        gen_lines=tabs["gen"][1],
        branch_lines=tabs["branch"][1],
        gencost_lines=gc[1] if gc is not None else np.zeros(0, dtype=np.int64),
        bus_name=bus_name,
        table_lines=dict(mf.lines),
        notes=tuple(notes),
    )


def load_case(name_or_path: str | Path, *, validate: bool = True) -> RawCase:
    """Read a grid case by path or bundled name and validate it.

    A ``.json`` file is a pandapower network saved with ``pandapower.to_json``
    (see :func:`gridverify.grid.pandapower_io.read_pandapower_json`); any other
    file is read as a MATPOWER case.

    Raises :class:`CaseFormatError` (naming file and line or field) when the file
    cannot be a valid OPF case.
    """
    path = resolve_case_path(name_or_path)
    if path.suffix.lower() == ".json":
        from gridverify.grid.pandapower_io import read_pandapower_json

        raw = read_pandapower_json(path)
    else:
        raw = raw_from_matpower(read_matpower(path), name=path.stem)
    if validate:
        from gridverify.grid.validate import validate_case

        validate_case(raw)
    return raw
