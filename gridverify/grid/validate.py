"""Validation of a :class:`RawCase`: reject what cannot be an OPF case, warn on the odd.

:func:`validate_case` raises :class:`CaseFormatError` naming the file and line
(or field) for: malformed tables and wrong column counts, NaN or non-finite
entries (``Inf`` is accepted, as in MATPOWER, where it means no limit: generator
``Pmax``/``Pmin``/``Qmax``/``Qmin``, ratings ``rateA``/``rateB``/``rateC`` (``+Inf``,
as 0) and ``angmin``/``angmax`` (as any limit beyond 90 degrees)), non-integer
or duplicate bus ids, unknown bus types, generators or branches on missing
buses, self-loop branches, no reference bus, an island with load and no
in-service generator, vmin > vmax, pmin > pmax, qmin > qmax,
negative ratings, zero-impedance branches (r == 0 and x == 0), negative taps,
numerically zero taps (``1/tap^2`` above 1e12) and taps whose branch-flow
coefficients are not finite, angmin > angmax, ``angmin = +Inf`` or
``angmax = -Inf`` (no feasible angle difference), a missing or non-positive
baseMVA, and bad or unsupported ``gencost`` rows (polynomial model 2 of
degree <= 2, or convex piecewise-linear model 1 with points strictly
increasing in power).

Legal but unusual things give warnings (:class:`GridverifyWarning`; the
compiled case records their text): negative reactance, taps outside [0.5, 1.5],
angle-difference limits wider than 60 degrees, isolated buses, PV or reference
buses without an in-service generator, islands without a reference bus,
elements dropped because they touch an isolated (type 4) bus, ignored tables.

Inactive elements (status 0) are checked only for what the parser needs (ids);
their numeric limits are not, since they are dropped when compiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from gridverify.errors import CaseFormatError
from gridverify.grid import case as C
from gridverify.grid.case import RawCase

__all__ = ["GridverifyWarning", "CaseCheck", "validate_case"]


class GridverifyWarning(UserWarning):
    """A case is legal but unusual (the compiled case records the message)."""


BUS_FIELDS = ("bus_i", "type", "Pd", "Qd", "Gs", "Bs", "area", "Vm", "Va", "baseKV", "zone",
              "Vmax", "Vmin")
GEN_FIELDS = ("bus", "Pg", "Qg", "Qmax", "Qmin", "Vg", "mBase", "status", "Pmax", "Pmin")
BRANCH_FIELDS = ("fbus", "tbus", "r", "x", "b", "rateA", "rateB", "rateC", "ratio", "angle",
                 "status", "angmin", "angmax")

MAX_ANGLE_WARN_DEG = 60.0
TAP_WARN_RANGE = (0.5, 1.5)
MAX_SHIFT_WARN_DEG = 360.0  # a phase shift beyond a full turn is a typo or a unit mix-up
GROUP_LIMIT = 5  # more warnings of one kind than this are summarised in one line
MAX_BUS_ID = 2**53  # the largest id float64 still tells apart from its neighbours


@dataclass(frozen=True)
class CaseCheck:
    """What validation found: warnings and the active elements to compile."""

    warnings: tuple[str, ...]
    bus_keep: np.ndarray  # bool per bus row: not isolated (type != 4)
    gen_active: np.ndarray  # bool per gen row
    branch_active: np.ndarray  # bool per branch row
    gen_cost_rows: np.ndarray  # int per gen row: gencost row used


def _line(lines: np.ndarray, i: int) -> int | None:
    if lines.size > i and int(lines[i]) > 0:
        return int(lines[i])
    return None


class _V:
    def __init__(self, raw: RawCase) -> None:
        self.raw = raw
        self.src = raw.source
        self.groups: dict[str, list[tuple[str, str | None, int | None]]] = {}
        self.order: list[str] = []

    def fail(self, msg: str, table: str | None = None, row: int | None = None,
             fld: str | None = None) -> CaseFormatError:
        line = None
        if table is not None:
            lines = getattr(self.raw, f"{table}_lines")
            if row is not None:
                line = _line(lines, row)
            if line is None:
                line = self.raw.table_lines.get(table)
            if row is not None:
                msg = f"{self.row_name(table, row)}: {msg}"
        return CaseFormatError(msg, source=self.src, line=line, field=fld)

    def row_name(self, table: str, row: int) -> str:
        """``branch row 3``, with the converter's element name when it gives one
        (``branch row 3 (line 2)`` for a pandapower network)."""
        names = self.raw.element_names.get(table, ())
        name = names[row] if 0 <= row < len(names) and names[row] else ""
        return f"{table} row {row + 1}" + (f" ({name})" if name else "")

    def warn(self, msg: str, table: str | None = None, row: int | None = None,
             kind: str | None = None) -> None:
        """Record a warning; ``kind`` groups repeated ones (summarised in :meth:`done`)."""
        where = self.src
        if table is not None and row is not None:
            ln = _line(getattr(self.raw, f"{table}_lines"), row)
            where += f":{ln}" if ln else ""
            msg = f"{self.row_name(table, row)}: {msg}"
        text = f"{where}: {msg}"
        key = kind or text
        if key not in self.groups:
            self.groups[key] = []
            self.order.append(key)
        self.groups[key].append((text, table, row))

    def done(self) -> tuple[str, ...]:
        """All warnings; a kind seen more than ``GROUP_LIMIT`` times becomes one line."""
        out = list(self.raw.notes)
        for key in self.order:
            items = self.groups[key]
            if len(items) <= GROUP_LIMIT:
                out.extend(text for text, _, _ in items)
                continue
            table = items[0][1]
            rows = [r + 1 for _, _, r in items if r is not None]
            first = items[0][0].split(": ", 1)[1]
            if table is None or not rows:  # not about table rows (islands)
                out.append(f"{self.src}: {key}: {len(items)}; first: {first}")
                continue
            shown = ", ".join(str(r) for r in rows[:GROUP_LIMIT])
            out.append(f"{self.src}: {key} on {len(items)} {table} rows ({shown}, ...); "
                       f"first: {first}")
        return tuple(out)


def _check_table(v: _V, name: str, arr: np.ndarray, ncols: int, fields: tuple[str, ...],
                 inf_ok: tuple[int, ...] = ()) -> None:
    if arr.ndim != 2 or (arr.size and arr.shape[1] < ncols):
        got = arr.shape[1] if arr.ndim == 2 else 0
        raise v.fail(f"has {got} columns, the MATPOWER v2 format needs at least {ncols}",
                     name, 0 if arr.shape[0] else None, name)
    std = arr[:, :ncols]
    bad = ~np.isfinite(std)
    for c in inf_ok:
        bad[:, c] &= np.isnan(std[:, c])
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if math.isnan(std[r, c]) else "non-finite value"
        raise v.fail(f"{what} in column {c + 1} ({fields[c]})", name, r, f"{name}.{fields[c]}")


def validate_case(raw: RawCase) -> CaseCheck:
    """Check ``raw`` and return warnings and active-element masks.

    Raises :class:`CaseFormatError` on the first problem found.  Emits no Python
    warnings itself (:func:`gridverify.grid.compile.compile_case` does).
    """
    v = _V(raw)
    if not (math.isfinite(raw.base_mva) and raw.base_mva > 0):
        raise CaseFormatError(f"baseMVA must be a positive number, got {raw.base_mva}",
                              source=v.src, line=raw.table_lines.get("baseMVA"), field="baseMVA")
    bus, gen, br = raw.bus, raw.gen, raw.branch
    if bus.shape[0] == 0:
        raise v.fail("bus table is empty", "bus", None, "bus")
    if gen.shape[0] == 0:
        raise v.fail("gen table is empty", "gen", None, "gen")
    _check_table(v, "bus", bus, C.BUS_COLS, BUS_FIELDS)
    _check_table(v, "gen", gen, C.GEN_COLS, GEN_FIELDS,
                 inf_ok=(C.QMAX, C.QMIN, C.PMAX, C.PMIN))
    if br.size or br.ndim != 2:
        _check_table(v, "branch", br, C.BRANCH_COLS, BRANCH_FIELDS,
                     inf_ok=(C.RATE_A, C.RATE_B, C.RATE_C, C.ANGMIN, C.ANGMAX))

    # ---- buses
    ids = bus[:, C.BUS_I]
    for i, bid in enumerate(ids):
        if bid != np.round(bid) or bid <= 0:
            raise v.fail(f"bus id {bid:g} is not a positive integer", "bus", i, "bus.bus_i")
        if bid > MAX_BUS_ID:  # beyond, float64 ids are no longer distinct integers
            raise v.fail(f"bus id {bid:g} is too large (at most 2^53 = {MAX_BUS_ID})", "bus",
                         i, "bus.bus_i")
    index: dict[int, int] = {}
    for i, bid in enumerate(ids.astype(np.int64)):
        if int(bid) in index:
            j = index[int(bid)]
            raise v.fail(f"duplicate bus id {int(bid)} (also bus row {j + 1})", "bus", i,
                         "bus.bus_i")
        index[int(bid)] = i
    btype = bus[:, C.BUS_TYPE]
    for i, t in enumerate(btype):
        if t not in (1.0, 2.0, 3.0, 4.0):
            raise v.fail(f"bus type {t:g} is not 1 (PQ), 2 (PV), 3 (ref) or 4 (isolated)",
                         "bus", i, "bus.type")
    for i in range(bus.shape[0]):
        if bus[i, C.VMIN] > bus[i, C.VMAX]:
            raise v.fail(f"Vmin {bus[i, C.VMIN]:g} > Vmax {bus[i, C.VMAX]:g}", "bus", i,
                         "bus.Vmin")
        if bus[i, C.VMIN] < 0:
            raise v.fail(f"negative Vmin {bus[i, C.VMIN]:g}", "bus", i, "bus.Vmin")
    keep = btype != 4
    if raw.bus_name is not None and len(raw.bus_name) != bus.shape[0]:
        raise CaseFormatError(
            f"bus_name has {len(raw.bus_name)} entries, bus table has {bus.shape[0]} rows",
            source=v.src, line=raw.table_lines.get("bus_name"), field="bus_name")
    for i in np.flatnonzero(~keep):
        if bus[i, C.PD] != 0 or bus[i, C.QD] != 0:
            v.warn("load on an isolated (type 4) bus is dropped", "bus", int(i),
                   kind="load on isolated (type 4) buses dropped")

    # ---- generators
    gen_active = gen[:, C.GEN_STATUS] > 0
    for i in range(gen.shape[0]):
        b = gen[i, C.GEN_BUS]
        if b != np.round(b) or int(b) not in index:
            raise v.fail(f"generator on missing bus {b:g}", "gen", i, "gen.bus")
        if not gen_active[i]:
            continue
        if not keep[index[int(b)]]:
            v.warn(f"in-service generator on isolated bus {int(b)} is dropped", "gen", i)
            gen_active[i] = False
            continue
        if gen[i, C.PMIN] > gen[i, C.PMAX]:
            raise v.fail(f"Pmin {gen[i, C.PMIN]:g} > Pmax {gen[i, C.PMAX]:g}", "gen", i,
                         "gen.Pmin")
        if gen[i, C.QMIN] > gen[i, C.QMAX]:
            raise v.fail(f"Qmin {gen[i, C.QMIN]:g} > Qmax {gen[i, C.QMAX]:g}", "gen", i,
                         "gen.Qmin")
        for lo, hi, nm in ((C.PMIN, C.PMAX, "P"), (C.QMIN, C.QMAX, "Q")):
            if gen[i, lo] == math.inf or gen[i, hi] == -math.inf:
                raise v.fail(f"{nm}min = +Inf or {nm}max = -Inf leaves no feasible output",
                             "gen", i, f"gen.{nm}max")

    # ---- branches
    nbr = br.shape[0]
    br_active = (br[:, C.BR_STATUS] > 0) if nbr else np.zeros(0, dtype=bool)
    for k in range(nbr):
        ends = []
        for col, name in ((C.F_BUS, "fbus"), (C.T_BUS, "tbus")):
            b = br[k, col]
            if b != np.round(b) or int(b) not in index:
                raise v.fail(f"branch end {name} on missing bus {b:g}", "branch", k,
                             f"branch.{name}")
            ends.append(int(b))
        if not br_active[k]:
            continue
        if ends[0] == ends[1]:
            raise v.fail(f"branch connects bus {ends[0]} to itself", "branch", k, "branch.tbus")
        if not (keep[index[ends[0]]] and keep[index[ends[1]]]):
            v.warn("in-service branch touching an isolated (type 4) bus is dropped", "branch", k,
                   kind="in-service branches touching isolated (type 4) buses dropped")
            br_active[k] = False
            continue
        r, x = br[k, C.BR_R], br[k, C.BR_X]
        if r == 0 and x == 0:
            raise v.fail("zero impedance (r = 0 and x = 0)", "branch", k, "branch.x")
        if 1.0 / math.hypot(r, x) > 1e12:  # 1/|z| overflows or is absurd
            raise v.fail(f"numerically zero impedance (|r + jx| = {math.hypot(r, x):g})",
                         "branch", k, "branch.x")
        for col, name in ((C.RATE_A, "rateA"), (C.RATE_B, "rateB"), (C.RATE_C, "rateC")):
            if br[k, col] < 0:
                raise v.fail(f"negative rating {name} = {br[k, col]:g}", "branch", k,
                             f"branch.{name}")
        tap = br[k, C.TAP]
        if tap < 0:
            raise v.fail(f"negative tap ratio {tap:g}", "branch", k, "branch.ratio")
        _check_tap(v, k, r, x, br[k, C.BR_B], tap, br[k, C.SHIFT])
        if br[k, C.ANGMIN] == math.inf or br[k, C.ANGMAX] == -math.inf:
            fld = "angmin" if br[k, C.ANGMIN] == math.inf else "angmax"
            raise v.fail("angmin = +Inf or angmax = -Inf leaves no feasible angle difference",
                         "branch", k, f"branch.{fld}")
        if br[k, C.ANGMIN] > br[k, C.ANGMAX]:
            raise v.fail(f"angmin {br[k, C.ANGMIN]:g} > angmax {br[k, C.ANGMAX]:g}", "branch",
                         k, "branch.angmin")
        if x < 0:
            v.warn(f"negative reactance x = {x:g}", "branch", k, kind="negative reactance")
        if r < 0:
            v.warn(f"negative resistance r = {r:g}", "branch", k, kind="negative resistance")
        if tap != 0 and not (TAP_WARN_RANGE[0] <= tap <= TAP_WARN_RANGE[1]):
            v.warn(f"unusual tap ratio {tap:g}", "branch", k, kind="unusual tap ratios")
        if abs(br[k, C.SHIFT]) > MAX_SHIFT_WARN_DEG:
            v.warn(f"phase shift {br[k, C.SHIFT]:.10g} deg beyond a full turn "
                   f"(+-{MAX_SHIFT_WARN_DEG:g} deg)", "branch", k,
                   kind=f"phase shifts beyond +-{MAX_SHIFT_WARN_DEG:g} deg")
        if max(abs(br[k, C.ANGMIN]), abs(br[k, C.ANGMAX])) > MAX_ANGLE_WARN_DEG:
            v.warn(f"angle-difference limits [{br[k, C.ANGMIN]:g}, {br[k, C.ANGMAX]:g}] deg "
                   f"wider than {MAX_ANGLE_WARN_DEG:g} deg", "branch", k,
                   kind=f"angle-difference limits wider than {MAX_ANGLE_WARN_DEG:g} deg")

    cost_rows = _check_gencost(v, raw, gen_active)
    _check_topology(v, raw, index, keep, gen_active, br_active)
    return CaseCheck(
        warnings=v.done(),
        bus_keep=keep,
        gen_active=gen_active,
        branch_active=br_active,
        gen_cost_rows=cost_rows,
    )


def _check_tap(v: _V, k: int, r: float, x: float, b: float, tap: float,
               shift_deg: float) -> None:
    """Reject a tap ratio whose branch-flow coefficients are absurd or overflow: a
    positive tap that is numerically zero (``1/tap^2`` above 1e12, as for the
    impedance), or any coefficient of the compiled flow model that is not finite."""
    if tap == 0:  # 0 means no transformer: ratio 1
        return
    if tap < 1e-6:  # 1/tap^2 above 1e12: overflows or is absurd
        raise v.fail(f"numerically zero tap ratio {tap:g} (1/tap^2 above 1e12)", "branch", k,
                     "branch.ratio")
    with np.errstate(all="ignore"):
        z2 = r * r + x * x
        g, bs = r / z2, -x / z2
        shift = np.deg2rad(shift_deg)
        tr, ti = tap * np.cos(shift), tap * np.sin(shift)
        tm = tr * tr + ti * ti
        coefs = np.array([g / tm, bs / tm, (g * tr + bs * ti) / tm, (g * tr - bs * ti) / tm,
                          (bs * tr + g * ti) / tm, (bs * tr - g * ti) / tm,
                          (bs + b / 2.0) / tm])
    if not (math.isfinite(tm) and tm > 0 and np.all(np.isfinite(coefs))):
        raise v.fail(f"tap ratio {tap:g} gives non-finite branch-flow coefficients", "branch",
                     k, "branch.ratio")


def _check_pwl_cost(v: _V, coefs: np.ndarray, i: int) -> None:
    """A piecewise-linear cost (model 1): at least two points, strictly increasing
    in power, convex (MATPOWER's constrained cost variable needs it)."""
    p, c = coefs[0::2], coefs[1::2]
    if p.size < 2:
        raise v.fail(f"piecewise-linear cost with {p.size} point(s); it needs at least 2",
                     "gencost", i, "gencost.n")
    if np.any(np.diff(p) <= 0):
        raise v.fail("piecewise-linear cost points are not strictly increasing in power",
                     "gencost", i, "gencost.cost")
    # convex: every inner point on or below the chord of its neighbours, up to the
    # rounding of a file written with a few decimals (1e-6 of the largest cost)
    w = (p[1:-1] - p[:-2]) / (p[2:] - p[:-2])
    above = c[1:-1] - ((1.0 - w) * c[:-2] + w * c[2:])
    if np.any(above > 1e-6 * max(1.0, float(np.max(np.abs(c))))):
        raise v.fail("piecewise-linear cost is not convex (its slopes decrease)", "gencost", i,
                     "gencost.cost")


def _check_gencost(v: _V, raw: RawCase, gen_active: np.ndarray) -> np.ndarray:
    gc = raw.gencost
    ng = raw.gen.shape[0]
    if gc is None:  # a power-flow case: certify needs no costs, an OPF does (has_costs)
        v.warn("no generator costs (mpc.gencost): the case can be certified, not solved as "
               "an OPF", kind="no generator costs")
        return np.zeros(ng, dtype=np.int64)
    if gc.ndim != 2 or gc.shape[0] not in (ng, 2 * ng):
        raise v.fail(f"gencost has {gc.shape[0]} rows, expected {ng} (one per generator) "
                     f"or {2 * ng}", "gencost", None, "gencost")
    if gc.shape[1] < 5:
        raise v.fail(f"gencost has {gc.shape[1]} columns, needs at least 5", "gencost", 0,
                     "gencost")
    if gc.shape[0] == 2 * ng:
        v.warn("reactive power costs (gencost rows ng+1..2ng) are ignored")
    for i in range(ng):
        row = gc[i]
        model = row[C.MODEL]
        if math.isnan(model) or model not in (1.0, 2.0):
            raise v.fail(f"cost model {model:g} is not 1 (piecewise linear) or 2 (polynomial)",
                         "gencost", i, "gencost.model")
        n = row[C.NCOST]
        if not math.isfinite(n) or n != np.round(n) or n < 0:
            raise v.fail(f"number of cost coefficients n = {n:g} is not a non-negative integer",
                         "gencost", i, "gencost.n")
        n = int(n)
        need = C.COST + (2 * n if model == 1 else n)
        if need > gc.shape[1]:
            raise v.fail(f"n = {n} needs {need} columns, the table has {gc.shape[1]}",
                         "gencost", i, "gencost.n")
        coefs = row[C.COST:need]
        if not np.all(np.isfinite(coefs)):
            raise v.fail("NaN or non-finite cost coefficient", "gencost", i, "gencost.cost")
        if not gen_active[i]:
            continue
        if model == 1:
            _check_pwl_cost(v, coefs, i)
            continue
        if n > 3 and np.any(coefs[: n - 3] != 0):
            raise v.fail(f"polynomial cost of degree {n - 1} is not supported (at most 2)",
                         "gencost", i, "gencost.n")
        if n == 3 and coefs[0] < 0:
            v.warn(f"negative quadratic cost coefficient {coefs[0]:g} (non-convex cost: "
                   "the OPF finds a local optimum)", "gencost", i,
                   kind="negative quadratic cost coefficients (non-convex costs)")
    return np.arange(ng, dtype=np.int64)


def _check_topology(v: _V, raw: RawCase, index: dict[int, int], keep: np.ndarray,
                    gen_active: np.ndarray, br_active: np.ndarray) -> None:
    bus, gen, br = raw.bus, raw.gen, raw.branch
    btype = bus[:, C.BUS_TYPE]
    if not np.any((btype == 3) & keep):
        raise v.fail("no reference bus (type 3)", "bus", None, "bus.type")
    g = nx.Graph()
    g.add_nodes_from(int(i) for i in np.flatnonzero(keep))
    for k in np.flatnonzero(br_active):
        g.add_edge(index[int(br[k, C.F_BUS])], index[int(br[k, C.T_BUS])])
    has_gen = np.zeros(bus.shape[0], dtype=bool)
    for i in np.flatnonzero(gen_active):
        has_gen[index[int(gen[i, C.GEN_BUS])]] = True
    for i in np.flatnonzero(keep):
        if btype[i] in (2, 3) and not has_gen[i]:
            kind = "reference" if btype[i] == 3 else "PV"
            v.warn(f"{kind} bus {int(bus[i, C.BUS_I])} has no in-service generator", "bus", int(i),
                   kind=f"{kind} buses without an in-service generator")
        if g.degree(int(i)) == 0 and g.number_of_nodes() > 1:
            v.warn(f"bus {int(bus[i, C.BUS_I])} has no in-service branch", "bus", int(i),
                   kind="buses without an in-service branch")
    for comp in nx.connected_components(g):
        members = np.array(sorted(comp), dtype=np.int64)
        load = bus[members, C.PD]
        qload = bus[members, C.QD]
        ids = [int(bus[i, C.BUS_I]) for i in members[:8]]
        more = "" if members.size <= 8 else f" and {members.size - 8} more"
        if not has_gen[members].any() and (np.any(load != 0) or np.any(qload != 0)):
            first = int(members[np.flatnonzero((load != 0) | (qload != 0))[0]])
            raise v.fail(
                f"island of buses {ids}{more} has load {load.sum():g} MW and no in-service "
                "generator", "bus", first, "bus.Pd")
        if not np.any(btype[members] == 3) and has_gen[members].any():
            v.warn(f"island of buses {ids}{more} has no reference bus",
                   kind="islands without a reference bus")
        elif members.size > 1 and not has_gen[members].any():
            v.warn(f"island of buses {ids}{more} has no generator (and no load)",
                   kind="islands without generation")
