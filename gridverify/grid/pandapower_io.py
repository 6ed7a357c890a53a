"""pandapower networks in and out.

:func:`from_pandapower` converts a pandapower network with pandapower's own
converter (its internal MATPOWER-like case, ``pandapower.pd2ppc._pd2ppc``,
which ``pandapower.converter.pypower.to_ppc`` also uses but trims) into a
:class:`RawCase`:

* bus ids are the pandapower bus index plus 1 (MATPOWER ids are positive);
  auxiliary buses that pandapower adds (open line ends, 3-winding transformer
  star points, xward internal buses) get ids after the largest one; buses that
  pandapower merges (closed bus-bus switches) take the id of the first one;
* generator rows are pandapower's (ext_grid first, then gen, then controllable
  sgen, load and storage); costs come from ``poly_cost`` (active power part,
  with the sign pandapower gives loads and storage; reactive costs ignored with
  a note; ``pwl_cost`` as MATPOWER's piecewise-linear model 1, with the
  points ``runopp`` builds); a network without costs gets a cost of 1 per
  MW on every generator row, as ``runopp`` (it minimizes the total generation),
  and a note;
* branch conductance (a line's ``g_us_per_km``, a transformer's iron losses,
  ``BR_G``) has no MATPOWER column and becomes bus shunt conductance at both
  ends (``g/2/tap^2`` at the from bus, ``g/2`` at the to bus): bus balances are
  exact, the flows of those branches, and so their thermal limits, exclude it
  (noted, naming how many lines and transformers);
* asymmetric branch impedances and in-service DC lines are rejected
  (:class:`CaseFormatError`);
* the converter models the element tables in :data:`MODELLED_ELEMENTS` (bus,
  line, trafo, trafo3w, impedance, switch, ext_grid, gen, sgen, load, storage,
  motor, shunt, ward, xward); any other element table with in-service rows
  (svc, ssc, tcsc, vsc, asymmetric_load, asymmetric_sgen, DC grid elements, ...)
  is rejected (:class:`CaseFormatError` naming the table and the first such
  row) rather than silently dropped.  An element table is a table of the
  network with an ``in_service`` column and a column naming a bus (``bus``,
  ``from_bus``, ``hv_bus``, ``bus_dc``, ...), or another bus table
  (``bus_dc``); results, standard types, costs, geodata, controllers, groups
  and measurements are not element tables.  Out-of-service rows are fine
  (pandapower ignores them too);
* a network without a reference bus (no in-service ext_grid, no gen with
  ``slack=True``) is rejected (:class:`CaseFormatError`);
* a network without bus voltage limits gets [0.9, 1.1] pu (noted);
* voltage angles are relative to the reference bus, whose angle is 0
  (PowerModels' convention): an ext_grid's ``va_degree`` is not kept, and a
  non-zero one is noted (pandapower's angles are then ours plus it);
* bus references of every element table (``bus``, ``from_bus``, ``to_bus``,
  ``hv_bus``, ``mv_bus``, ``lv_bus``, a bus-bus switch's ``element``) must name
  a bus of ``net.bus`` (:class:`CaseFormatError` naming the element);
* the case is pandapower's OPF problem (its ``runopp`` mode): generator,
  ext_grid and voltage limits from the ``max_``/``min_`` columns, an ext_grid
  without a ``controllable`` column fixes its bus voltage, controllable sgen,
  load and storage become generators, and a branch without
  ``max_loading_percent`` (no column, or NaN in it) is unlimited (a given one,
  and a limited line's ``max_i_ka``, must be > 0: read as 0 they would make it
  unlimited silently);
* a line's limit becomes an MVA rating at nominal voltage (``max_i_ka`` times
  ``vn_kv`` times sqrt 3, the MATPOWER and PowerModels convention, as in
  pandapower's ``runpm``); ``runopp`` limits the current instead, the same
  limit at 1 pu and a tighter one below it;
* transformers use pandapower's ``trafo_model="pi"`` (the MATPOWER branch
  model); pandapower's ``runpp`` default is ``"t"``, which differs slightly for
  transformers with magnetizing current or iron losses, so compare against
  ``runpp(net, trafo_model="pi")``.

:func:`to_pandapower` goes the other way through ``from_ppc`` (used by the
``runpp`` cross-check); piecewise-linear cost rows with fewer points than the
longest get collinear midpoints (the same cost function), since ``from_ppc``
needs the same number of points on every row.  Both directions are checked against ``runpp``, and
the OPF against ``runopp``, in ``tests/grid/test_grid_pandapower.py``.
:func:`read_pandapower_json` reads a network file written by
``pandapower.to_json``; :func:`gridverify.grid.load_case`, and so every
command that takes a ``CASE``, reads ``.json`` files through it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import CaseFormatError
from gridverify.grid import case as C
from gridverify.grid.case import RawCase
from gridverify.grid.compiled import CompiledCase

__all__ = ["MODELLED_ELEMENTS", "PandapowerCase", "from_pandapower", "read_pandapower_json",
           "to_pandapower", "ppc_of"]

_SOURCE = "<pandapower>"
# pandapower's extra branch columns (pandapower.pypower.idx_brch)
_BR_R_ASYM, _BR_X_ASYM, _BR_G, _BR_G_ASYM, _BR_B_ASYM = 21, 22, 23, 24, 25


@dataclass(frozen=True)
class PandapowerCase:
    """A :class:`RawCase` converted from pandapower, with its element maps."""

    raw: RawCase
    gen_elements: tuple[tuple[str, int], ...]  # (element type, index) per gen row
    branch_elements: tuple[tuple[str, int], ...]  # (element type, index) per branch row
    bus_ids: dict[int, int]  # pandapower bus index -> case bus id


@contextmanager
def _pandapower_log(notes: list[str], source: str) -> Iterator[None]:
    """pandapower's log warnings while converting, as notes of the case (not on stderr)."""
    logger = logging.getLogger("pandapower")
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Keep(level=logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        seen = set()
        for r in records:
            msg = " ".join(r.getMessage().split())
            # runopp's "no costs" message: the converter's own note says what it does
            if msg and msg not in seen and not msg.startswith("no costs are given"):
                seen.add(msg)
                notes.append(f"{source}: pandapower: {msg}")


def _ppc_full(net: Any) -> dict[str, Any]:
    """pandapower's full internal case (all elements, status columns, lookups)."""
    from pandapower.auxiliary import _add_opf_options, _add_ppc_options
    from pandapower.pd2ppc import _pd2ppc

    net["_options"] = {}
    # pandapower's OPF mode (as runopp): limits from max_/min_ columns, controllable
    # sgen/load/storage as generators, unlimited branches where no max_loading_percent
    _add_ppc_options(net, calculate_voltage_angles=True, trafo_model="pi",
                     check_connectivity=True, mode="opf", switch_rx_ratio=2,
                     init_vm_pu="flat", init_va_degree="flat", enforce_q_lims=False,
                     enforce_p_lims=False, recycle=None, voltage_depend_loads=False)
    _add_opf_options(net, trafo_loading="power", ac=True, init="flat", numba=False)
    ppc, _ = _pd2ppc(net)
    return ppc


# pandapower's generator-like elements, in its order of generator rows
_GEN_ELEMENTS = ("ext_grid", "gen", "sgen", "storage", "load")
# elements whose generator variable is minus their power: pandapower flips their costs
_COST_SIGN = {"load": -1.0, "storage": -1.0}


def _element_rows(net: Any, look: dict[str, Any], et: str, n_rows: int) -> list[tuple[int, int]]:
    """(element index, ppc gen row) pairs of one element type.

    pandapower's lookups are indexed by element index (-1 where an element has no
    generator row); sgen, storage and load have rows only when controllable, under
    ``<et>_controllable``.
    """
    key = f"{et}_controllable" if et in ("sgen", "storage", "load") else et
    if et not in net or len(net[et]) == 0 or look.get(key) is None:
        return []  # pandapower leaves None where no element of the type is in service
    rows = np.asarray(look[key]).ravel()
    out = []
    for k in net[et].index:
        k = int(k)
        if 0 <= k < rows.shape[0] and 0 <= int(rows[k]) < n_rows:
            out.append((k, int(rows[k])))
    return out


def _pwl_costs(net: Any, where: dict[tuple[str, int], int], gc: np.ndarray, source: str,
               notes: list[str]) -> np.ndarray:
    """``gc`` with pandapower's ``pwl_cost`` rows as MATPOWER model-1 rows.

    A row's ``points`` are consecutive areas ``[p_from, p_to, slope]`` (MW, per
    MW); the cost is ``p_from * slope`` at the first point and grows by each
    area's slope, signed as pandapower signs loads and storage (the points
    ``runopp`` builds).
    """
    rows: dict[int, list[tuple[float, float]]] = {}
    q_cost = False
    for _, pc in net.pwl_cost.iterrows():
        if str(pc.get("power_type", "p")) != "p":
            q_cost = True
            continue
        et = str(pc["et"])
        row = where.get((et, int(pc["element"])))
        if row is None:
            continue
        sign = _COST_SIGN.get(et, 1.0)
        pts: list[tuple[float, float]] = []
        for lower, upper, slope in pc["points"]:  # consecutive (_check_pwl_costs)
            lower, upper, slope = float(lower), float(upper), float(slope)
            if not pts:
                pts.append((lower, lower * slope * sign))
            pts.append((upper, pts[-1][1] + (upper - lower) * slope * sign))
        rows[row] = pts
    if q_cost:
        notes.append(f"{source}: reactive power costs are ignored")
    width = max([gc.shape[1]] + [C.COST + 2 * len(p) for p in rows.values()])
    out = np.zeros((gc.shape[0], width))
    out[:, : gc.shape[1]] = gc
    for row, pts in rows.items():
        out[row, :] = 0.0
        out[row, C.MODEL], out[row, C.NCOST] = 1, len(pts)
        out[row, C.COST : C.COST + 2 * len(pts)] = np.ravel(pts)
    return out


def _check_pwl_costs(net: Any, source: str) -> None:
    """Every ``pwl_cost`` row's ``points`` are areas ``[p_from, p_to, slope]`` of
    finite numbers, each starting where the one before ends (pandapower's converter
    refuses others without naming the row)."""
    table = net["pwl_cost"] if "pwl_cost" in net else None
    if table is None or len(table) == 0 or "points" not in table.columns:
        return
    for idx, points in table["points"].items():
        try:
            areas = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            areas = np.empty((0, 0))
        if areas.ndim != 2 or areas.shape[0] == 0 or areas.shape[1] != 3 or not np.all(
                np.isfinite(areas)):
            raise CaseFormatError(f"pwl_cost {idx}: points must be areas [p_from, p_to, "
                                  "slope] of finite numbers", source=source, field="pwl_cost")
        gap = np.flatnonzero(areas[1:, 0] != areas[:-1, 1])
        if gap.size:
            k = int(gap[0])
            raise CaseFormatError(f"pwl_cost {idx}: areas are not consecutive "
                                  f"({areas[k, 1]:g} MW, then {areas[k + 1, 0]:g} MW)",
                                  source=source, field="pwl_cost")


def _convert(net: Any, name: str | None, source: str = _SOURCE) -> PandapowerCase:
    """:func:`_convert_tables`, with anything a malformed network makes it hit as a
    :class:`CaseFormatError` naming the source."""
    try:
        return _convert_tables(net, name, source)
    except CaseFormatError:
        raise
    except Exception as exc:  # pandapower, or odd values in a network's tables
        raise _pandapower_failure(exc, source) from exc


def _pandapower_failure(exc: BaseException, source: str) -> CaseFormatError:
    """The :class:`CaseFormatError` of an exception pandapower's converter raised."""
    if isinstance(exc, UserWarning) and str(exc).startswith("No reference bus is available"):
        # pandapower raises its UserWarning; say it as the MATPOWER reader does
        return CaseFormatError("no reference bus (pandapower needs an in-service ext_grid, or "
                               "a gen with slack=True, at an in-service bus)", source=source,
                               field="ext_grid")
    return CaseFormatError(f"cannot convert the pandapower network ({_reason(exc)})",
                           source=source)


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message`` (pandapower raises many types, some verbose)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# columns of pandapower's element tables that hold a bus index
_BUS_COLUMNS = ("bus", "from_bus", "to_bus", "hv_bus", "mv_bus", "lv_bus")


def _check_bus_references(net: Any, source: str) -> None:
    """Every bus reference of every element table names a bus of ``net.bus``
    (pandapower itself fails on one that does not with an index error)."""
    import pandas as pd

    buses = set(int(i) for i in net.bus.index)
    for et in sorted(str(k) for k in net.keys()):
        table = net[et]
        if et == "bus" or et.startswith(("res_", "_")) or not isinstance(table, pd.DataFrame) \
                or len(table) == 0:
            continue
        cols = [c for c in _BUS_COLUMNS if c in table.columns]
        if et == "switch" and "element" in table.columns and "et" in table.columns:
            cols.append("element")  # a bus-bus switch's element is a bus
        for col in cols:
            values = table[col]
            if et == "switch" and col == "element":
                values = values[table["et"].astype(str) == "b"]
            for idx, val in values.items():
                try:
                    ok = float(val) == int(float(val)) and int(float(val)) in buses
                except (TypeError, ValueError, OverflowError):
                    ok = False
                if not ok:
                    shown = f"{float(val):g}" if isinstance(val, (int, float, np.number)) \
                        else repr(val)
                    raise CaseFormatError(f"{et} {idx}: {col} {shown} is not a bus of the "
                                          "network", source=source, field=f"{et}.{col}")


# the element tables the converter models (through pandapower's own case); an
# in-service row of any other element table is rejected, not dropped
MODELLED_ELEMENTS = ("bus", "line", "trafo", "trafo3w", "impedance", "switch", "ext_grid", "gen",
                     "sgen", "load", "storage", "motor", "shunt", "ward", "xward")


def _is_bus_column(col: Any) -> bool:
    """A column naming a bus: ``bus``, ``from_bus``, ``hv_bus``, ``bus_dc``, ``bus_dc_plus``..."""
    return "bus" in str(col).split("_")


def _check_unsupported_elements(net: Any, source: str) -> None:
    """No element table outside :data:`MODELLED_ELEMENTS` has an in-service row.

    An element table is a table of the network with an ``in_service`` column and
    a column naming a bus, or a bus table of its own (``bus_dc``: pandapower needs
    a DC reference bus for any in-service one): this covers pandapower's elements
    it does not list itself (svc, tcsc, vsc, ...) and ones of later versions, and
    leaves out result tables, costs, geodata, controllers, groups, measurements
    and characteristics.
    """
    import pandas as pd

    for et in sorted(str(k) for k in net.keys()):
        if et in MODELLED_ELEMENTS or et.startswith(("res_", "_")):
            continue
        table = net[et]
        if not isinstance(table, pd.DataFrame) or len(table) == 0 \
                or "in_service" not in table.columns:
            continue
        # an element at a bus, a branch, or a bus table of its own (bus_dc)
        if not (_is_bus_column(et) or any(_is_bus_column(c) for c in table.columns)):
            continue
        # pandapower's own reading of the column (its _is_elements)
        on = table.index[np.asarray(table["in_service"].values.astype(bool))]
        if len(on) == 0:
            continue
        count = f" ({len(on)} of them)" if len(on) > 1 else ""
        raise CaseFormatError(f"in-service {et} elements{count} are not supported (the "
                              f"converter models only {', '.join(MODELLED_ELEMENTS)}); set their "
                              "in_service to False or remove them", source=source,
                              field=f"{et} {on[0]}")


# the columns of each modelled element table that the model reads and that have no
# "not set" meaning: a row's value must be a finite number (pandapower's
# converter carried a NaN or inf into the bus and branch tables, and the error named
# those: "bus row 4: NaN in column Pd" for a load's p_mw)
_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "bus": ("vn_kv",),
    "load": ("p_mw", "q_mvar", "scaling"),
    "sgen": ("p_mw", "q_mvar", "scaling"),
    "storage": ("p_mw", "q_mvar", "scaling"),
    "motor": ("pn_mech_mw", "cos_phi", "efficiency_percent", "loading_percent", "scaling"),
    "gen": ("p_mw", "vm_pu", "scaling"),
    "ext_grid": ("vm_pu", "va_degree"),
    "shunt": ("p_mw", "q_mvar", "step", "vn_kv"),
    "ward": ("ps_mw", "qs_mvar", "pz_mw", "qz_mvar"),
    "xward": ("ps_mw", "qs_mvar", "pz_mw", "qz_mvar", "r_ohm", "x_ohm", "vm_pu"),
    "line": ("length_km", "r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "parallel"),
    "trafo": ("sn_mva", "vn_hv_kv", "vn_lv_kv", "vk_percent", "vkr_percent", "pfe_kw",
              "i0_percent", "shift_degree", "parallel"),
    "trafo3w": ("sn_hv_mva", "sn_mv_mva", "sn_lv_mva", "vn_hv_kv", "vn_mv_kv", "vn_lv_kv",
                "vk_hv_percent", "vk_mv_percent", "vk_lv_percent", "vkr_hv_percent",
                "vkr_mv_percent", "vkr_lv_percent", "pfe_kw", "i0_percent"),
    "impedance": ("rft_pu", "xft_pu", "rtf_pu", "xtf_pu", "sn_mva"),
}
#: of those, the ones that must be > 0 (a voltage level, a rating, a length)
_POSITIVE_COLUMNS = frozenset({"vn_kv", "vn_hv_kv", "vn_mv_kv", "vn_lv_kv", "sn_mva",
                               "sn_hv_mva", "sn_mv_mva", "sn_lv_mva", "length_km", "parallel"})


def _reference_angle_notes(net: Any, look: Any, bus: np.ndarray, source: str) -> list[str]:
    """The note on an ext_grid's ``va_degree`` where its bus is the reference bus (an
    ext_grid at another bus pandapower makes a generator: its angle is free)."""
    if "ext_grid" not in net or not len(net.ext_grid) or "va_degree" not in net.ext_grid:
        return []
    on = net.ext_grid[net.ext_grid.in_service.astype(bool)] \
        if "in_service" in net.ext_grid else net.ext_grid
    lk = np.asarray(look["bus"])
    notes = []
    for k, va in on.va_degree.items():
        b = int(on.bus[k])
        j = int(lk[b]) if 0 <= b < lk.shape[0] else -1
        at_ref = 0 <= j < bus.shape[0] and int(bus[j, C.BUS_TYPE]) == 3
        if at_ref and np.isfinite(float(va)) and float(va) != 0:
            notes.append(f"{source}: ext_grid {k} has va_degree {float(va):g}; angles are "
                         "relative to the reference bus (0 there, PowerModels' convention), "
                         f"so they differ from pandapower's by {float(va):g} degrees")
    return notes


def _check_element_values(net: Any, source: str) -> None:
    """Every value the model reads from an element is a finite number (and
    > 0 where it is a voltage level, a rating, a length or a count), named by element,
    row and column."""
    import pandas as pd

    for et, cols in _VALUE_COLUMNS.items():
        table = net[et] if et in net else None
        if not isinstance(table, pd.DataFrame) or len(table) == 0:
            continue
        # out-of-service rows too: pandapower's converter reads them (p_mw * in_service
        # is NaN for a NaN p_mw)
        on = np.ones(len(table), bool)
        for col in (c for c in cols if c in table.columns):
            values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
            bad = on & ~np.isfinite(values)
            if col in _POSITIVE_COLUMNS:
                with np.errstate(invalid="ignore"):
                    bad |= on & ~(values > 0)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                shown = _value_text(table[col].iloc[k], values[k])
                need = "> 0" if col in _POSITIVE_COLUMNS else "a finite number"
                raise CaseFormatError(f"{et} {table.index[k]}: {col} is {shown} (must be "
                                      f"{need})", source=source, field=f"{et}.{col}")


def _value_text(raw: Any, value: float) -> str:
    """A table entry for an error: its number, or the entry itself where it is not one."""
    return f"{value:g}" if np.isfinite(value) or isinstance(raw, (float, np.floating)) \
        else repr(raw)


def _check_branch_limits(net: Any, source: str) -> None:
    """A branch's ``max_loading_percent`` is NaN (unlimited) or > 0, and a limited
    line's ``max_i_ka`` a number > 0: either read as 0 would silently make the branch
    unlimited (MATPOWER's rating 0)."""
    import pandas as pd

    for et in ("line", "trafo", "trafo3w"):
        table = net[et] if et in net else None
        if not isinstance(table, pd.DataFrame) or "max_loading_percent" not in table.columns:
            continue
        pct = pd.to_numeric(table["max_loading_percent"], errors="coerce").to_numpy(float)
        limited = ~np.isnan(pct)
        checks = [("max_loading_percent", pct)]
        if et == "line" and "max_i_ka" in table.columns:
            checks.append(("max_i_ka", pd.to_numeric(table["max_i_ka"], errors="coerce")
                           .to_numpy(float)))
        for col, values in checks:
            with np.errstate(invalid="ignore"):
                bad = limited & ~(values > 0)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                shown = _value_text(table[col].iloc[k], values[k])
                need = ("> 0, or NaN for an unlimited branch" if col == "max_loading_percent"
                        else f"> 0 where max_loading_percent is given, {pct[k]:g} here")
                raise CaseFormatError(f"{et} {table.index[k]}: {col} is {shown} (must be "
                                      f"{need})", source=source, field=f"{et}.{col}")


def _voltage_dependent_loads(net: Any, source: str) -> list[str]:
    """The note saying that in-service loads with constant-impedance or constant-current
    parts (``const_z_*_percent``, ``const_i_*_percent``) are taken as constant power,
    as in pandapower's OPF; none when there are none."""
    load = net["load"] if "load" in net else None
    if load is None or len(load) == 0:
        return []
    cols = [c for c in load.columns if str(c).startswith(("const_z_", "const_i_"))
            and str(c).endswith("percent")]
    if not cols:
        return []
    on = load["in_service"].astype(bool) if "in_service" in load else True
    parts = load[cols].fillna(0).astype(float).abs().sum(axis=1)
    rows = load.index[(parts > 0) & on]
    if len(rows) == 0:
        return []
    return [f"{source}: {len(rows)} load(s) with constant-impedance or constant-current "
            f"parts (first: load {rows[0]}) are taken as constant power at their p_mw and "
            "q_mvar, as in pandapower's OPF"]


def _branch_kinds(look: Any, rows: np.ndarray) -> str:
    """``"2 lines and 1 trafo"``: the pandapower element tables of branch ``rows``
    (pandapower's branch lookup: a row range per table)."""
    ranges = look.get("branch", {}) if isinstance(look, dict) else {}
    counts: dict[str, int] = {}
    for k in rows:
        kind = next((str(name) for name, (a, b) in ranges.items() if a <= k < b), "branch")
        counts[kind] = counts.get(kind, 0) + 1
    return " and ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items())


def _convert_tables(net: Any, name: str | None, source: str) -> PandapowerCase:
    import copy

    if len(net.bus) == 0:
        raise CaseFormatError("the pandapower network has no buses", source=source, field="bus")
    _check_bus_references(net, source)
    if "dcline" in net and len(net.dcline) and net.dcline.in_service.astype(bool).any():
        k = int(net.dcline.index[net.dcline.in_service.astype(bool)][0])
        raise CaseFormatError("in-service DC lines are not supported (as mpc.dcline in MATPOWER "
                              "cases); set their in_service to False or remove them",
                              source=source, field=f"dcline {k}")
    _check_unsupported_elements(net, source)
    _check_element_values(net, source)
    _check_branch_limits(net, source)
    _check_pwl_costs(net, source)
    net = copy.deepcopy(net)
    notes: list[str] = []
    notes.extend(_voltage_dependent_loads(net, source))
    if "max_vm_pu" not in net.bus or "min_vm_pu" not in net.bus:
        if "max_vm_pu" not in net.bus:
            net.bus["max_vm_pu"] = 1.1
        if "min_vm_pu" not in net.bus:
            net.bus["min_vm_pu"] = 0.9
        notes.append(f"{source}: bus voltage limits missing; [0.9, 1.1] pu used")
    with warnings.catch_warnings(), _pandapower_log(notes, source):
        warnings.simplefilter("ignore")
        ppc = _ppc_full(net)  # anything it raises is _convert's CaseFormatError
    look = net._pd2ppc_lookups
    base = float(ppc["baseMVA"])
    bus = np.real(np.array(ppc["bus"])).astype(np.float64)
    nb = bus.shape[0]
    notes.extend(_reference_angle_notes(net, look, bus, source))
    # ppc bus index -> case bus id
    ppc_to_id = np.full(nb, -1, dtype=np.int64)
    pp_to_id: dict[int, int] = {}
    lk = np.asarray(look["bus"])
    for pp_idx in sorted(int(i) for i in net.bus.index):
        if pp_idx >= lk.shape[0] or lk[pp_idx] < 0 or lk[pp_idx] >= nb:
            continue
        j = int(lk[pp_idx])
        if ppc_to_id[j] < 0:
            ppc_to_id[j] = pp_idx + 1
        pp_to_id[pp_idx] = int(ppc_to_id[j])
    nxt = int(max(ppc_to_id.max(), 0)) + 1
    for j in range(nb):
        if ppc_to_id[j] < 0:
            ppc_to_id[j] = nxt
            nxt += 1

    def remap(col: np.ndarray) -> np.ndarray:
        return ppc_to_id[col.astype(np.int64)].astype(np.float64)

    bus = bus[:, : C.BUS_COLS].copy()
    bus[:, C.BUS_I] = remap(bus[:, C.BUS_I])
    gen = np.real(np.array(ppc["gen"])).astype(np.float64)[:, : C.GEN_COLS].copy()
    gen[:, C.GEN_BUS] = remap(gen[:, C.GEN_BUS])
    gen[:, C.MBASE] = np.where(np.isfinite(gen[:, C.MBASE]), gen[:, C.MBASE], base)
    branch_full = np.real(np.array(ppc["branch"])).astype(np.float64)
    branch = branch_full[:, : C.BRANCH_COLS].copy()
    # a branch without max_loading_percent (NaN among others that have one) is
    # unlimited: rating 0, as MATPOWER writes it
    rates = branch[:, C.RATE_A : C.RATE_C + 1]
    branch[:, C.RATE_A : C.RATE_C + 1] = np.where(np.isnan(rates), 0.0, rates)
    if branch_full.shape[1] > _BR_B_ASYM:
        asym = branch_full[:, [_BR_R_ASYM, _BR_X_ASYM, _BR_G_ASYM, _BR_B_ASYM]]
        bad = np.flatnonzero(np.any(asym != 0, axis=1) & (branch[:, C.BR_STATUS] > 0))
        if bad.size:
            raise CaseFormatError("asymmetric branch impedance is not part of the MATPOWER model",
                                  source=source, field=f"branch row {bad[0] + 1}")
        g = branch_full[:, _BR_G]
        gk = np.flatnonzero((g != 0) & (branch[:, C.BR_STATUS] > 0))
        for k in gk:
            # pandapower's branch conductance G (Yff += G/2/|tap|^2, Ytt += G/2) has no
            # MATPOWER column: it becomes bus shunt conductance at both ends (exact for
            # bus balances; branch flows then exclude it).
            tap = branch[k, C.TAP] if branch[k, C.TAP] != 0 else 1.0
            fb, tb = int(branch_full[k, C.F_BUS]), int(branch_full[k, C.T_BUS])
            bus[fb, C.GS] += g[k] / 2.0 / tap**2 * base
            bus[tb, C.GS] += g[k] / 2.0 * base
        if gk.size:
            kinds = _branch_kinds(look, gk)
            notes.append(f"{source}: branch conductance of {kinds} (line conductance, "
                         "transformer iron losses) moved to bus shunts: bus balances are "
                         "exact, but those branches' flows, and so their thermal limits, "
                         "exclude it (largest g "
                         f"{float(np.max(np.abs(g[gk]))):.3g} p.u.)")
    if branch.size:
        branch[:, C.F_BUS] = remap(branch[:, C.F_BUS])
        branch[:, C.T_BUS] = remap(branch[:, C.T_BUS])

    # generator rows -> pandapower elements, and costs from poly_cost
    ng = gen.shape[0]
    gen_el: list[tuple[str, int]] = [("", -1)] * ng
    where: dict[tuple[str, int], int] = {}
    for et in _GEN_ELEMENTS:
        for k, row in _element_rows(net, look, et, ng):
            gen_el[row] = (et, k)
            where[(et, k)] = row
    gc = np.zeros((ng, 7))
    gc[:, C.MODEL] = 2
    gc[:, C.NCOST] = 3
    if "poly_cost" in net and len(net.poly_cost):
        q_cost = False
        for _, pc in net.poly_cost.iterrows():
            et = str(pc["et"])
            row = where.get((et, int(pc["element"])))
            if row is None:
                continue
            sign = _COST_SIGN.get(et, 1.0)
            gc[row, 4:7] = (sign * pc["cp2_eur_per_mw2"], sign * pc["cp1_eur_per_mw"],
                            sign * pc["cp0_eur"])
            q_cost |= any(float(pc.get(c, 0.0) or 0.0) != 0 for c in
                          ("cq0_eur", "cq1_eur_per_mvar", "cq2_eur_per_mvar2"))
        if q_cost:
            notes.append(f"{source}: reactive power costs are ignored")
    has_pwl = "pwl_cost" in net and len(net.pwl_cost) > 0
    if has_pwl:
        gc = _pwl_costs(net, where, gc, source, notes)
    elif not ("poly_cost" in net and len(net.poly_cost)):
        gc[:, 5] = 1.0  # pandapower's runopp then minimizes the total generation
        notes.append(f"{source}: the network has no costs; the total generation is "
                     "minimized (cost 1 per MW of every generator, as pandapower's runopp)")

    br_el: list[tuple[str, int]] = [("", -1)] * branch.shape[0]
    for et, (start, stop) in look.get("branch", {}).items():
        if et not in net or len(net[et]) == 0:
            continue
        n_el = len(net[et])
        # a 3-winding transformer is three branches (pandapower: all hv, all mv, all lv)
        per = 3 if et == "trafo3w" else 1
        if per * n_el == stop - start:
            for off, k in enumerate(net[et].index):
                for j in range(per):
                    br_el[start + j * n_el + off] = (et, int(k))
    nm = name or (str(net.name) if getattr(net, "name", "") else "pandapower_net")

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    raw = RawCase(
        name=nm,
        source=source,
        base_mva=base,
        bus=bus,
        gen=gen,
        branch=branch,
        gencost=gc,
        bus_lines=zeros(bus.shape[0]),
        gen_lines=zeros(gen.shape[0]),
        branch_lines=zeros(branch.shape[0]),
        gencost_lines=zeros(gc.shape[0]),
        notes=tuple(notes),
        # pandapower writes ratio 1 on lines too: its transformers are its trafo elements
        branch_is_transformer=np.array([et in ("trafo", "trafo3w") for et, _ in br_el],
                                       dtype=bool),
        element_names={"gen": _names(gen_el), "branch": _names(br_el)},
    )
    return PandapowerCase(raw=raw, gen_elements=tuple(gen_el), branch_elements=tuple(br_el),
                          bus_ids=pp_to_id)


def _names(elements: list[tuple[str, int]]) -> tuple[str, ...]:
    """``"line 2"`` per row (``""`` where the row has no known element)."""
    return tuple(f"{et} {k}" if et else "" for et, k in elements)


def from_pandapower(net: Any, name: str | None = None) -> RawCase:
    """A :class:`RawCase` from a pandapower network (see the module doc for ids)."""
    return _convert(net, name).raw


def read_pandapower_json(path: str | Path) -> RawCase:
    """A :class:`RawCase` from a pandapower network file written by ``pandapower.to_json``.

    The case is named after the file's stem and its ``source`` is the path, so
    errors and notes name the file.  ``OSError`` (missing or unreadable file)
    propagates; a file that is not a pandapower network raises
    :class:`CaseFormatError`.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseFormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); a pandapower "
                              "network file is JSON", source=str(path)) from None
    import pandapower as pp

    try:
        with warnings.catch_warnings(), _pandapower_log([], str(path)):
            warnings.simplefilter("ignore")
            net = pp.from_json_string(text)
    except Exception as exc:  # pandapower raises whatever its JSON decoding hits
        raise CaseFormatError(f"not a pandapower network file (pandapower.from_json: "
                              f"{_reason(exc)})", source=str(path)) from None
    if not isinstance(net, pp.pandapowerNet):
        raise CaseFormatError(f"not a pandapower network file (the JSON holds a "
                              f"{type(net).__name__})", source=str(path))
    return _convert(net, path.stem, source=str(path)).raw


def from_pandapower_mapped(net: Any, name: str | None = None) -> PandapowerCase:
    """Like :func:`from_pandapower`, with the pandapower element of every row."""
    return _convert(net, name)


def ppc_of(case: RawCase) -> dict[str, Any]:
    """A PYPOWER/MATPOWER case dict (``baseMVA``, ``bus``, ``gen``, ``branch``,
    ``gencost``) of a raw case, in original units and ids."""
    out: dict[str, Any] = {
        "version": "2",
        "baseMVA": float(case.base_mva),
        "bus": np.array(case.bus[:, : C.BUS_COLS], dtype=np.float64),
        "gen": np.array(case.gen[:, : C.GEN_COLS], dtype=np.float64),
        "branch": np.array(case.branch[:, : C.BRANCH_COLS], dtype=np.float64),
    }
    if case.gencost is not None:
        out["gencost"] = np.array(case.gencost, dtype=np.float64)
    return out


def _from_ppc_transformers(branch: np.ndarray) -> np.ndarray:
    """The rows ``from_ppc`` makes transformers: a tap other than 0 or 1, or a shift."""
    tap = branch[:, C.TAP]
    return ((tap != 0) & (tap != 1)) | (branch[:, C.SHIFT] != 0)


def _high_voltage_first(ppc: dict[str, Any]) -> dict[str, Any]:
    """``ppc`` with every transformer whose to bus has the higher base voltage reversed.

    ``from_ppc`` treats a branch with a tap other than 0 or 1, or a phase shift,
    as a transformer whose ratio sits at its high-voltage bus.  MATPOWER puts it
    at the from bus, so a branch whose from bus is the low-voltage one is passed
    as its exact reverse: tap ``1/t``, shift ``-shift``, series impedance
    ``t**2 (r + jx)`` and charging ``b / t**2`` give the same admittance matrix
    seen from the other end (rating and limits unchanged; angle limits negated
    and swapped).
    """
    br = np.array(ppc["branch"], dtype=np.float64, copy=True)
    ids = ppc["bus"][:, C.BUS_I].astype(np.int64)
    kv = dict(zip(ids.tolist(), ppc["bus"][:, C.BASE_KV].tolist()))
    tap = br[:, C.TAP]
    trafo = _from_ppc_transformers(br)
    f_kv = np.array([kv.get(int(b), 0.0) for b in br[:, C.F_BUS]])
    t_kv = np.array([kv.get(int(b), 0.0) for b in br[:, C.T_BUS]])
    rev = trafo & (t_kv > f_kv)
    if rev.any():
        t = np.where(tap[rev] == 0, 1.0, tap[rev])
        r = br[rev]
        r[:, [C.F_BUS, C.T_BUS]] = r[:, [C.T_BUS, C.F_BUS]]
        r[:, C.TAP] = 1.0 / t
        r[:, C.SHIFT] = -r[:, C.SHIFT]
        r[:, C.BR_R] *= t**2
        r[:, C.BR_X] *= t**2
        r[:, C.BR_B] /= t**2
        r[:, [C.ANGMIN, C.ANGMAX]] = -r[:, [C.ANGMAX, C.ANGMIN]]
        br[rev] = r
    return {**ppc, "branch": br}


def to_pandapower(case: RawCase | CompiledCase, f_hz: float = 50.0) -> Any:
    """A pandapower network of a raw case (``pandapower.converter.from_ppc``).

    A compiled case is re-read from its source file (inactive elements included).

    Branch ``k`` of the raw table becomes the element
    ``net._from_ppc_lookups["branch"].loc[k]`` (a line or a transformer).  A
    transformer whose from bus has the lower base voltage is handed to
    ``from_ppc`` reversed (see :func:`_high_voltage_first`): ``from_ppc`` puts every
    ratio on the high-voltage side, which for such a branch is not MATPOWER's
    model (tap at the from bus).  Its from-end flows are then pandapower's
    low-voltage ones (``p_lv_mw``, ``q_lv_mvar``).  A transformer's line
    charging becomes bus shunts (:func:`_charging_to_shunts`: its end flows in
    pandapower leave it out); branches out of service or touching an isolated
    bus are out of service whatever element they become; polynomial costs with
    zero coefficients above the quadratic one are cut to quadratics.
    """
    if isinstance(case, CompiledCase):
        from gridverify.grid.case import load_case

        if not Path(case.source).is_file():
            raise CaseFormatError("to_pandapower of a compiled case needs its source file; "
                                  "pass the RawCase instead", source=case.source)
        case = load_case(case.source)
    from pandapower.converter.pypower import from_ppc

    ppc = _high_voltage_first(_charging_to_shunts(_isolated_branches_off(ppc_of(case))))
    if "gencost" in ppc:
        ppc["gencost"] = _even_pwl_gencost(_quadratic_gencost(ppc["gencost"], case.source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_ppc(ppc, f_hz=f_hz)
    # from_ppc gives its impedance elements no status: a branch out of service in
    # the case is taken out here, whatever element it became
    lookup = net._from_ppc_lookups["branch"]
    for k in np.flatnonzero(ppc["branch"][:, C.BR_STATUS] <= 0):
        row = lookup.loc[int(k)]
        net[str(row.element_type)].loc[int(row.element), "in_service"] = False
    return net


def _isolated_branches_off(ppc: dict[str, Any]) -> dict[str, Any]:
    """``ppc`` with the branches that touch an isolated bus (type 4) out of service,
    as MATPOWER and :func:`~gridverify.grid.compile_case` take them (``from_ppc``
    keeps them, with an open end that still injects its line charging)."""
    ids = ppc["bus"][:, C.BUS_I].astype(np.int64)
    isolated = set(ids[ppc["bus"][:, C.BUS_TYPE] == 4].tolist())
    if not isolated:
        return ppc
    br = np.array(ppc["branch"], dtype=np.float64, copy=True)
    touch = np.array([int(f) in isolated or int(t) in isolated
                      for f, t in br[:, [C.F_BUS, C.T_BUS]]], dtype=bool)
    br[touch, C.BR_STATUS] = 0
    return {**ppc, "branch": br}


def _charging_to_shunts(ppc: dict[str, Any]) -> dict[str, Any]:
    """``ppc`` with the line charging of its transformers moved to bus shunts.

    pandapower's transformer has no line charging (``from_ppc`` turns ``b`` into a
    magnetizing current and drops its sign).  MATPOWER's model puts ``j b / 2`` at
    the to bus and ``j b / 2 / |t|**2`` at the from bus (behind the tap): the same
    admittance matrix as bus shunts of ``b / 2 / |t|**2`` and ``b / 2`` (in MVAr at
    1 pu).  The transformer's end flows then leave its charging out; the buses'
    balance is MATPOWER's.  Branches out of service keep theirs (they carry none).
    """
    br = np.array(ppc["branch"], dtype=np.float64, copy=True)
    tap = br[:, C.TAP]
    trafo = _from_ppc_transformers(br)
    move = np.flatnonzero(trafo & (br[:, C.BR_B] != 0) & (br[:, C.BR_STATUS] > 0))
    if move.size == 0:
        return ppc
    bus = np.array(ppc["bus"], dtype=np.float64, copy=True)
    row_of = {int(b): i for i, b in enumerate(bus[:, C.BUS_I].astype(np.int64))}
    base = float(ppc["baseMVA"])
    for k in move:
        t = 1.0 if tap[k] == 0 else float(tap[k])
        half = br[k, C.BR_B] / 2.0 * base
        bus[row_of[int(br[k, C.F_BUS])], C.BS] += half / t**2
        bus[row_of[int(br[k, C.T_BUS])], C.BS] += half
        br[k, C.BR_B] = 0.0
    return {**ppc, "bus": bus, "branch": br}


def _quadratic_gencost(gc: np.ndarray, source: str | None) -> np.ndarray:
    """``gc`` with every polynomial row of more than three coefficients cut to its
    last three (``from_ppc`` takes quadratics at most); a row whose higher
    coefficients are not all 0 is a :class:`CaseFormatError` naming it."""
    gc = np.array(gc, dtype=np.float64, copy=True)
    if gc.ndim != 2 or gc.shape[1] <= C.COST:
        return gc
    for i in np.flatnonzero((gc[:, C.MODEL] == 2) & (gc[:, C.NCOST] > 3)):
        n = int(gc[i, C.NCOST])
        coefs = gc[i, C.COST : C.COST + n].copy()
        if np.any(coefs[: n - 3] != 0):
            raise CaseFormatError(
                f"gencost row {i + 1}: a polynomial of degree {n - 1}; pandapower takes "
                "quadratic costs at most", source=source, field="gencost")
        gc[i, C.COST : C.COST + n] = 0.0
        gc[i, C.COST : C.COST + 3] = coefs[n - 3 :]
        gc[i, C.NCOST] = 3
    return gc


def _split_widest(pts: list[tuple[float, float]], count: int) -> list[tuple[float, float]]:
    """``pts`` with points added, up to ``count``, at the midpoints of the widest
    segments: the same piecewise-linear function (each new point lies on its segment)."""
    pts = list(pts)
    while len(pts) < count:
        if len(pts) < 2:  # no segment to split (a cost only an inactive generator can have)
            pts.append(pts[-1] if pts else (0.0, 0.0))
            continue
        k = max(range(len(pts) - 1), key=lambda j: pts[j + 1][0] - pts[j][0])
        (p0, c0), (p1, c1) = pts[k], pts[k + 1]
        pts.insert(k + 1, (p0 + (p1 - p0) / 2.0, c0 + (c1 - c0) / 2.0))
    return pts


def _even_pwl_gencost(gc: np.ndarray) -> np.ndarray:
    """``gc`` with every piecewise-linear (model 1) row given the same number of
    points, as ``from_ppc`` needs (it requires ``2 n`` cost columns on every such
    row; MATPOWER allows rows of different ``n`` with trailing zeros).  Rows with
    fewer points get collinear midpoints, which leave the cost function unchanged;
    polynomial rows keep their coefficients."""
    gc = np.array(gc, dtype=np.float64, copy=True)
    if gc.ndim != 2 or gc.shape[1] <= C.COST:
        return gc
    pwl = np.flatnonzero(gc[:, C.MODEL] == 1)
    if pwl.size == 0:
        return gc
    ncost = gc[:, C.NCOST].astype(np.int64)
    n = int(ncost[pwl].max())
    poly = np.flatnonzero(gc[:, C.MODEL] != 1)
    if poly.size:  # polynomial coefficients must fit in the 2 n columns
        n = max(n, -(-int(ncost[poly].max()) // 2))
    width = C.COST + 2 * n
    if width == gc.shape[1] and np.all(ncost[pwl] == n):
        return gc
    out = np.zeros((gc.shape[0], width))
    keep = min(width, gc.shape[1])
    out[:, :keep] = gc[:, :keep]
    for i in pwl:
        m = int(ncost[i])
        flat = gc[i, C.COST : C.COST + 2 * m]
        pts = _split_widest([(float(a), float(b)) for a, b in zip(flat[0::2], flat[1::2])], n)
        out[i, C.COST :] = np.ravel(pts)
        out[i, C.NCOST] = n
    return out
