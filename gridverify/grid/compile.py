"""Compile a :class:`RawCase` into the immutable :class:`CompiledCase`.

Per-unit on ``base_mva``, radians, active elements only (generator and branch
status, buses not of type 4), one load per bus with non-zero demand, tap 0 -> 1,
``rate_a`` 0 or ``Inf`` -> inf (unlimited), generator limits of ``+-Inf`` kept as
+-inf (no limit), generator cost rescaled to pg in pu.  Branch flow templates
follow PowerModels' ACP branch model with ``tr = tap cos(shift)``,
``ti = tap sin(shift)``, ``g + jb = 1 / (r + jx)``, ``b_fr = b_to = b/2`` and
``g_fr = g_to = 0``; the bus admittance matrix follows MATPOWER's ``makeYbus``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from gridverify.errors import CaseFormatError
from gridverify.grid import case as C
from gridverify.grid.case import RawCase, load_case
from gridverify.grid.compiled import CompiledCase, FlowTemplate
from gridverify.grid.validate import GridverifyWarning, validate_case

__all__ = ["compile_case", "load_compiled", "content_hash", "flow_templates"]


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def content_hash(raw: RawCase) -> str:
    """sha256 of the case's numeric content (standard columns, base MVA, costs).

    Independent of formatting, comments, names and extra result columns; ``-0.0``
    and ``0.0`` hash alike.
    """
    h = hashlib.sha256()
    h.update(b"gridverify-case-v1")
    h.update(np.float64(raw.base_mva).tobytes())
    gc = raw.gencost if raw.gencost is not None else np.zeros((0, 0))
    for tag, arr in (
        (b"bus", raw.bus[:, : C.BUS_COLS]),
        (b"gen", raw.gen[:, : C.GEN_COLS]),
        (b"branch", raw.branch[:, : C.BRANCH_COLS] if raw.branch.size else np.zeros((0, 13))),
        (b"gencost", gc),
    ):
        a = np.ascontiguousarray(np.asarray(arr, dtype="<f8") + 0.0)
        h.update(tag + np.asarray(a.shape, dtype="<i8").tobytes())
        h.update(a.tobytes())
    return h.hexdigest()


def flow_templates(
    r: np.ndarray, x: np.ndarray, b: np.ndarray, tap: np.ndarray, shift: np.ndarray
) -> tuple[FlowTemplate, FlowTemplate, FlowTemplate, FlowTemplate]:
    """PowerModels ACP flow templates (pf, qf, pt, qt) of branches in per unit."""
    z2 = r * r + x * x
    g = r / z2
    bs = -x / z2
    tr = tap * np.cos(shift)
    ti = tap * np.sin(shift)
    tm = tr * tr + ti * ti
    b_fr = b / 2.0
    b_to = b / 2.0
    pf = FlowTemplate(vv=g / tm, c=(-g * tr + bs * ti) / tm, s=(-bs * tr - g * ti) / tm, side="f")
    qf = FlowTemplate(
        vv=-(bs + b_fr) / tm, c=-(-bs * tr - g * ti) / tm, s=(-g * tr + bs * ti) / tm, side="f"
    )
    # to side: written with sin(va_t - va_f) = -sin_ft
    pt = FlowTemplate(vv=g.copy(), c=(-g * tr - bs * ti) / tm, s=-(-bs * tr + g * ti) / tm,
                      side="t")
    qt = FlowTemplate(
        vv=-(bs + b_to), c=-(-bs * tr + g * ti) / tm, s=-(-g * tr - bs * ti) / tm, side="t"
    )
    out = []
    for t in (pf, qf, pt, qt):
        out.append(FlowTemplate(vv=_ro(t.vv), c=_ro(t.c), s=_ro(t.s), side=t.side))
    return out[0], out[1], out[2], out[3]


def _ybus(n_bus: int, f: np.ndarray, t: np.ndarray, r: np.ndarray, x: np.ndarray,
          b: np.ndarray, tap: np.ndarray, shift: np.ndarray, gs: np.ndarray,
          bs: np.ndarray) -> sp.csr_matrix:
    ys = 1.0 / (r + 1j * x)
    tc = tap * np.exp(1j * shift)
    ytt = ys + 1j * b / 2.0
    yff = ytt / (tc * np.conj(tc))
    yft = -ys / np.conj(tc)
    ytf = -ys / tc
    rows = np.concatenate([f, f, t, t, np.arange(n_bus)])
    cols = np.concatenate([f, t, f, t, np.arange(n_bus)])
    vals = np.concatenate([yff, yft, ytf, ytt, gs + 1j * bs])
    y = sp.coo_matrix((vals, (rows, cols)), shape=(n_bus, n_bus)).tocsr()
    y.sum_duplicates()
    return _freeze(y)


def _freeze(m: sp.csr_matrix) -> sp.csr_matrix:
    for a in (m.data, m.indices, m.indptr):
        a.setflags(write=False)
    return m


def _incidence(idx: np.ndarray, n: int) -> sp.csr_matrix:
    m = idx.shape[0]
    return _freeze(sp.csr_matrix((np.ones(m), (np.arange(m), idx)), shape=(m, n)))


def _is_pandapower_net(obj: Any) -> bool:
    """Whether ``obj`` is a pandapower network (checked without importing pandapower)."""
    return any(c.__name__ == "pandapowerNet" and c.__module__.startswith("pandapower")
               for c in type(obj).__mro__)


def compile_case(raw: Any, *, emit_warnings: bool = True) -> CompiledCase:
    """Validate ``raw`` and build its :class:`CompiledCase` (see the module doc).

    ``raw``: a :class:`RawCase` (:func:`load_case`, :func:`from_pandapower`), a
    pandapower network, a bundled case name or a path (read as
    :func:`load_compiled`), or a compiled case (returned as it is).  Warnings
    found by validation are issued as :class:`GridverifyWarning` (unless
    ``emit_warnings`` is false) and recorded in ``CompiledCase.warnings``.
    Anything else raises :class:`CaseFormatError` naming its type.
    """
    if isinstance(raw, CompiledCase):
        return raw
    if isinstance(raw, (str, os.PathLike)):
        return load_compiled(raw, emit_warnings=emit_warnings)
    if _is_pandapower_net(raw):
        from gridverify.grid.pandapower_io import from_pandapower

        raw = from_pandapower(raw)
    if not isinstance(raw, RawCase):
        raise CaseFormatError(
            f"expected a case: a bundled case name or a case file path, a pandapower "
            f"network, a RawCase or a CompiledCase, got {type(raw).__name__}")
    chk = validate_case(raw)
    if emit_warnings:
        for w in chk.warnings:
            warnings.warn(w, GridverifyWarning, stacklevel=2)
    base = float(raw.base_mva)
    bus = raw.bus[chk.bus_keep]
    bus_ids = bus[:, C.BUS_I].astype(np.int64)
    bus_index = {int(b): i for i, b in enumerate(bus_ids)}
    nb = bus.shape[0]
    btype = bus[:, C.BUS_TYPE].astype(np.int64)
    pd_bus = bus[:, C.PD] / base
    qd_bus = bus[:, C.QD] / base
    gs = bus[:, C.GS] / base
    bsh = bus[:, C.BS] / base
    load_bus = np.flatnonzero((pd_bus != 0) | (qd_bus != 0)).astype(np.int64)

    gi = np.flatnonzero(chk.gen_active)
    gen = raw.gen[gi]
    gen_bus = np.array([bus_index[int(b)] for b in gen[:, C.GEN_BUS]], dtype=np.int64)
    gc = raw.gencost[chk.gen_cost_rows[gi]] if raw.gencost is not None else None
    c2 = np.zeros(gi.size)
    c1 = np.zeros(gi.size)
    c0 = np.zeros(gi.size)
    pwl: dict[int, np.ndarray] = {}
    if gc is not None:
        for k in range(gi.size):
            n = int(gc[k, C.NCOST])
            if gc[k, C.MODEL] == 1:  # points (p_mw, cost) -> (pg in pu, cost)
                pts = gc[k, C.COST : C.COST + 2 * n].reshape(n, 2) / np.array([base, 1.0])
                pts.setflags(write=False)
                pwl[k] = pts
                continue
            coefs = gc[k, C.COST : C.COST + n][::-1]  # c0, c1, c2, ...
            if n >= 1:
                c0[k] = coefs[0]
            if n >= 2:
                c1[k] = coefs[1]
            if n >= 3:
                c2[k] = coefs[2]
    c2 = c2 * base * base
    c1 = c1 * base

    ki = np.flatnonzero(chk.branch_active)
    br = raw.branch[ki] if ki.size else np.zeros((0, C.BRANCH_COLS))
    f = np.array([bus_index[int(b)] for b in br[:, C.F_BUS]], dtype=np.int64)
    t = np.array([bus_index[int(b)] for b in br[:, C.T_BUS]], dtype=np.int64)
    r = br[:, C.BR_R].copy()
    x = br[:, C.BR_X].copy()
    b = br[:, C.BR_B].copy()
    tap = np.where(br[:, C.TAP] == 0, 1.0, br[:, C.TAP])
    shift = np.deg2rad(br[:, C.SHIFT])
    rate_a = np.where((br[:, C.RATE_A] == 0) | np.isinf(br[:, C.RATE_A]), np.inf,
                      br[:, C.RATE_A] / base)
    angmin = np.deg2rad(br[:, C.ANGMIN])
    angmax = np.deg2rad(br[:, C.ANGMAX])
    pf_t, qf_t, pt_t, qt_t = flow_templates(r, x, b, tap, shift)

    ybus = _ybus(nb, f, t, r, x, b, tap, shift, gs, bsh)
    graph = nx.MultiGraph()
    for i in range(nb):
        graph.add_node(i, bus_id=int(bus_ids[i]))
    branch_row = (ki + 1).astype(np.int64)
    for k in range(ki.size):
        graph.add_edge(int(f[k]), int(t[k]), key=k, branch=k, branch_row=int(branch_row[k]))
    cc = CompiledCase(
        name=raw.name,
        source=raw.source,
        base_mva=base,
        content_hash=content_hash(raw),
        bus_ids=_ro(bus_ids),
        bus_type=_ro(btype),
        ref_bus=_ro(np.flatnonzero(btype == 3).astype(np.int64)),
        vmin=_ro(bus[:, C.VMIN].copy()),
        vmax=_ro(bus[:, C.VMAX].copy()),
        gs=_ro(gs),
        bs=_ro(bsh),
        pd_bus=_ro(pd_bus),
        qd_bus=_ro(qd_bus),
        vm0=_ro(bus[:, C.VM].copy()),
        va0=_ro(np.deg2rad(bus[:, C.VA])),
        load_bus=_ro(load_bus),
        pd=_ro(pd_bus[load_bus]),
        qd=_ro(qd_bus[load_bus]),
        gen_bus=_ro(gen_bus),
        gen_row=_ro((gi + 1).astype(np.int64)),
        pmin=_ro(gen[:, C.PMIN] / base),
        pmax=_ro(gen[:, C.PMAX] / base),
        qmin=_ro(gen[:, C.QMIN] / base),
        qmax=_ro(gen[:, C.QMAX] / base),
        pg0=_ro(gen[:, C.PG] / base),
        qg0=_ro(gen[:, C.QG] / base),
        vg=_ro(gen[:, C.VG].copy()),
        cost_c2=_ro(c2),
        cost_c1=_ro(c1),
        cost_c0=_ro(c0),
        cost_pwl=pwl,
        has_costs=raw.gencost is not None,
        f_bus=_ro(f),
        t_bus=_ro(t),
        branch_row=_ro(branch_row),
        r=_ro(r),
        x=_ro(x),
        b=_ro(b),
        tap=_ro(tap),
        shift=_ro(shift),
        rate_a=_ro(rate_a),
        angmin=_ro(angmin),
        angmax=_ro(angmax),
        pf_t=pf_t,
        qf_t=qf_t,
        pt_t=pt_t,
        qt_t=qt_t,
        ybus=ybus,
        cf=_incidence(f, nb),
        ct=_incidence(t, nb),
        cg=_incidence(gen_bus, nb),
        cl=_incidence(load_bus, nb),
        bus_index=bus_index,
        graph=graph,
        warnings=chk.warnings,
        transformer=_ro((br[:, C.TAP] != 0) | (br[:, C.SHIFT] != 0)
                        if raw.branch_is_transformer is None
                        else np.asarray(raw.branch_is_transformer, dtype=bool)[ki]),
    )
    return cc


def load_compiled(name_or_path: Any, *, emit_warnings: bool = True) -> CompiledCase:
    """``compile_case(load_case(name_or_path))``; any other case form as :func:`compile_case`
    takes it (a pandapower network, a RawCase, a CompiledCase)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return compile_case(name_or_path, emit_warnings=emit_warnings)
    return compile_case(load_case(name_or_path, validate=False), emit_warnings=emit_warnings)
