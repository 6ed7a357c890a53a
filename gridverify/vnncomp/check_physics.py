"""Cross-check the AC physics embedded in an ONNX graph against gridverify's equations.

An ACOPF graph of the competition's kind maps the loads ``X = [pd, qd]`` to one
output ``Y`` that holds the proxy's solution (``pg, qg, vm, va``) followed by
quantities computed from it: branch flows, thermal residuals and bus power
balance residuals, in the block order of :class:`~gridverify.vnncomp.instances.AcopfLayout`
(our own ``vnncomp make-instances`` export is one).  :func:`check_physics`
evaluates such a graph on sampled loads and recomputes every physics block with
:mod:`gridverify.grid.flows` from the graph's own ``pg, qg, vm, va`` and the loads,
so the proxy's accuracy does not matter: only the embedded equations are judged.

Precision: the graph is evaluated in float64 (its float32 constants and
inputs widened; onnxruntime, or the ONNX reference evaluator where onnxruntime
has no float64 kernel), so float32 rounding does not hide or fake a
disagreement.  Where neither can run it in float64 it is run as stored, and the
tolerance is raised to :data:`FLOAT32_TOL`.

Disagreement of an entry is ``|graph - gridverify|`` divided by the size of
the terms gridverify sums for it (at least 1; see :func:`_scales`), so that the
float32 rounding of a graph's constants stays near 1e-7 while a modelling
mistake stands out by orders of magnitude.  For every branch or bus that
disagrees, the check re-evaluates gridverify's equations with one known mistake
applied to that element and names the mistake whose equations reproduce the
graph: a phase-shift sign flipped or in degrees used as radians, the tap on the
wrong side, the tap ratio inverted, line charging missing or not halved; a shunt
conductance or susceptance left out or of the wrong sign, loads in MW rather
than per unit; a thermal rating that differs; a whole block with the opposite
sign convention; NaN or infinite outputs.  Balance and thermal residuals that disagree only
because the branch flows do (recognised or not) are attributed to those branches.

Lookup tables: a graph whose ``sin`` and ``cos`` are piecewise-linear
interpolations on a grid (weighted sums of ``Relu(x - t_k)``, as
``vnncomp make-instances --nonlinear lut`` writes them; see
:func:`sin_cos_tables`) computes the flows only up to the interpolation error,
at most ``h**2 / 8`` for grid step ``h`` (``|sin''|, |cos''| <= 1``) plus the
tables' rounding at their grid points.  A flow's disagreement is then at most
that error ``E`` in the unit above (its sin and cos terms are weighted by at
most its template coefficients times ``vm**2``), and so are the balance and
thermal residuals' to first order: the tolerance becomes ``tol + E`` and a note
names the tables.  Samples whose table inputs leave the tables' range (where
the table is no longer sin or cos) are counted in the note, and the
disagreements the check cannot otherwise explain are then put down to that.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridverify._typed import check_field_types
from gridverify.errors import GraphError, SpecError, one_line
from gridverify.grid.compile import flow_templates
from gridverify.grid.compiled import CompiledCase, FlowTemplate
from gridverify.grid.flows import (
    Flows,
    balance_residuals,
    branch_flows,
    bus_injections,
    thermal_residuals,
)
from gridverify.sysmem import memory_shortfall
from gridverify.vnncomp.instances import AcopfLayout, acopf_layout

__all__ = [
    "BRANCH_MISTAKES",
    "BUS_MISTAKES",
    "FLOAT32_TOL",
    "CheckOptions",
    "FamilyResult",
    "Finding",
    "LookupTables",
    "PhysicsCheck",
    "check_physics",
    "onnx_float64",
    "physics_outputs",
    "sin_cos_tables",
    "with_branch_mistake",
    "with_bus_mistake",
]

FLOAT32_TOL = 1e-5
"""Smallest tolerance used when the graph can only be evaluated as stored (float32)."""

FLOW_FAMILIES = ("pf", "pt", "qf", "qt")
THERMAL_FAMILIES = ("sf", "st")
BALANCE_FAMILIES = ("rp", "rq")
PHYSICS_FAMILIES = FLOW_FAMILIES + THERMAL_FAMILIES + BALANCE_FAMILIES

BRANCH_MISTAKES: dict[str, str] = {
    "shift_sign": "phase-shift sign flipped",
    "tap_side": "tap on the wrong side (to end instead of from end)",
    "tap_inverted": "tap ratio inverted (1/tap)",
    "no_charging": "line charging missing",
    "charging_not_halved": "line charging not halved (b at each end instead of b/2)",
    "shift_degrees": "phase shift in degrees used as radians",
}
"""Branch modelling mistakes the check recognises (key: description)."""

BUS_MISTAKES: dict[str, str] = {
    "no_gs": "shunt conductance left out",
    "no_bs": "shunt susceptance left out",
    "bs_sign": "shunt susceptance sign flipped",
    "load_mw": "loads taken in MW / MVAr, not per unit (not divided by the case's base)",
}
"""Bus modelling mistakes the check recognises (key: description)."""


@dataclass(frozen=True)
class CheckOptions:
    """How to sample and judge (see the module docstring)."""

    samples: int = 32
    seed: int = 0
    width: float = 0.1  # loads drawn per entry in nominal * [1 - width, 1 + width]
    tol: float = 1e-6

    def __post_init__(self) -> None:
        check_field_types(self, SpecError, "check options")
        if self.samples < 1:
            raise SpecError(f"--samples must be at least 1, got {self.samples}")
        if self.seed < 0:
            raise SpecError(f"--seed must be non-negative, got {self.seed}")
        if not (0.0 <= self.width < 1.0):
            raise SpecError(f"--width must be in [0, 1), got {self.width}")
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise SpecError(f"--tol must be positive, got {self.tol}")


@dataclass(frozen=True)
class FamilyResult:
    """Largest disagreement of one output block over all samples and entries."""

    family: str
    size: int  # entries compared
    max_abs: float
    max_err: float  # |diff| / max(1, |reference|, size of the terms summed)
    worst: str  # the element with the largest disagreement ("" when none)
    n_bad: int  # elements above the tolerance


@dataclass(frozen=True)
class Finding:
    """One branch or bus whose output(s) disagree, with the likely cause."""

    kind: str  # "branch" or "bus"
    index: int  # 0-based position in the compiled case
    element: str  # e.g. "branch 41 (bus 37 - 38)" or "bus 30"
    families: tuple[str, ...]
    max_abs: float
    max_err: float
    cause: str | None  # None: not recognised
    cause_key: str | None = None


@dataclass(frozen=True)
class LookupTables:
    """The sin/cos lookup tables of a graph (see :func:`sin_cos_tables`)."""

    funcs: tuple[str, ...]  # "sin", "cos" (those found)
    tables: int  # entries tabulated (one table each)
    points: int  # grid points of the finest table
    step: float  # largest grid step h
    error: float  # bound of |table - f| inside the grids: h**2 / 8 + rounding at the points
    outside: int = 0  # samples with a table input outside its grid (error not bounded there)


@dataclass(frozen=True)
class PhysicsCheck:
    """Result of :func:`check_physics`."""

    model: str
    case: str
    evaluator: str
    samples: int
    tol: float
    thermal_rows: str  # "rated" or "all" branches
    families: tuple[FamilyResult, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = field(default=())
    lookup_tables: LookupTables | None = None  # sin/cos tables found (tolerance raised)

    @property
    def ok(self) -> bool:
        """True when every physics output agrees within the tolerance."""
        return not self.findings and all(f.max_err <= self.tol for f in self.families)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``ok``, settings, ``families``, ``findings``, ``notes``)."""
        return _finite({"ok": self.ok, **dataclasses.asdict(self)})


def _finite(v: Any) -> Any:
    """``v`` with non-finite floats as None (strict JSON)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


# --------------------------------------------------------------------------
# reference equations and known mistakes
# --------------------------------------------------------------------------


def physics_outputs(
    case: CompiledCase, lay: AcopfLayout, x: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    """gridverify's value of every physics block from the loads ``x`` and outputs ``y``.

    ``x``: ``(S, 2L)``; ``y``: ``(S, lay.size)`` (only its ``pg, qg, vm, va`` are read).
    Thermal rows of unrated branches are ``-inf``.
    """
    pg, qg, vm, va = (y[..., lay.block(n)] for n in ("pg", "qg", "vm", "va"))
    L = case.n_load
    fl = branch_flows(case, vm, va)
    rp, rq = balance_residuals(case, pg, qg, vm, va, x[..., :L], x[..., L:])
    sf, st = thermal_residuals(case, fl)
    t = lay.thermal_branches
    return {"pf": fl.pf, "pt": fl.pt, "qf": fl.qf, "qt": fl.qt, "sf": sf[..., t],
            "st": st[..., t], "rp": rp, "rq": rq}


def _branch_applicable(case: CompiledCase, key: str) -> np.ndarray:
    tap, shift, b = np.asarray(case.tap), np.asarray(case.shift), np.asarray(case.b)
    if key == "shift_sign":
        return shift != 0
    if key == "tap_side":
        return (tap != 1) | (shift != 0)
    if key == "tap_inverted":
        return tap != 1
    if key in ("no_charging", "charging_not_halved"):
        return b != 0
    if key == "shift_degrees":
        return shift != 0
    raise KeyError(key)


def with_branch_mistake(case: CompiledCase, branches: Any, key: str) -> CompiledCase:
    """``case`` whose flow templates of ``branches`` carry mistake ``key`` (BRANCH_MISTAKES).

    The templates come from :func:`gridverify.grid.compile.flow_templates` with the
    branch data altered; ``tap_side`` models the branch seen from its other end
    (tap and shift at the to bus) and maps the flows back to this orientation.
    """
    e = np.asarray(branches, dtype=np.int64).reshape(-1)
    r, xx, b = (np.asarray(a, dtype=np.float64)[e] for a in (case.r, case.x, case.b))
    tap, shift = np.asarray(case.tap, np.float64)[e], np.asarray(case.shift, np.float64)[e]
    if key == "shift_sign":
        shift = -shift
    elif key == "tap_inverted":
        tap = 1.0 / tap
    elif key == "no_charging":
        b = np.zeros_like(b)
    elif key == "charging_not_halved":
        b = 2.0 * b
    elif key == "shift_degrees":
        shift = np.rad2deg(shift)
    elif key != "tap_side":
        raise KeyError(key)
    pf, qf, pt, qt = flow_templates(r, xx, b, tap, shift)
    if key == "tap_side":
        # seen from the to end: its "from" flows are this branch's to-end flows, with
        # sin(va_t - va_f) = -sin(va_f - va_t)
        pf, qf, pt, qt = (FlowTemplate(t.vv, t.c, -t.s, side) for t, side in
                          ((pt, "f"), (qt, "f"), (pf, "t"), (qf, "t")))
    new: dict[str, Any] = {}
    for name, t in (("pf_t", pf), ("qf_t", qf), ("pt_t", pt), ("qt_t", qt)):
        old = getattr(case, name)
        vv, c, s = (np.array(getattr(old, k), dtype=np.float64) for k in ("vv", "c", "s"))
        vv[e], c[e], s[e] = t.vv, t.c, t.s
        new[name] = FlowTemplate(vv, c, s, old.side)
    return dataclasses.replace(case, **new)


def with_bus_mistake(case: CompiledCase, buses: Any, key: str) -> CompiledCase:
    """``case`` whose shunts at ``buses`` carry mistake ``key`` (BUS_MISTAKES but
    ``load_mw``, a mistake of the loads, not of the case)."""
    i = np.asarray(buses, dtype=np.int64).reshape(-1)
    gs, bs = np.array(case.gs, dtype=np.float64), np.array(case.bs, dtype=np.float64)
    if key == "no_gs":
        gs[i] = 0.0
    elif key == "no_bs":
        bs[i] = 0.0
    elif key == "bs_sign":
        bs[i] = -bs[i]
    else:
        raise KeyError(key)
    return dataclasses.replace(case, gs=gs, bs=bs)


# --------------------------------------------------------------------------
# evaluating the graph
# --------------------------------------------------------------------------


def onnx_float64(model: Any) -> Any:
    """A copy of ``model`` computing in float64 (float32 tensors, types and casts widened)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    f32, f64 = TensorProto.FLOAT, TensorProto.DOUBLE

    def widen_tensor(t: Any) -> None:
        if t.data_type == f32:
            t.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float64), t.name))

    for t in m.graph.initializer:
        widen_tensor(t)
    for vi in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == f32:
            vi.type.tensor_type.elem_type = f64
    for node in m.graph.node:
        for k, a in enumerate(node.attribute):
            if a.type == onnx.AttributeProto.TENSOR:
                widen_tensor(a.t)
            elif a.name == "to" and node.op_type == "Cast" and a.i == f32:
                a.i = f64
            elif node.op_type == "Constant" and a.name in ("value_float", "value_floats"):
                v = np.asarray(a.f if a.name == "value_float" else list(a.floats), np.float64)
                node.attribute[k].CopyFrom(
                    onnx.helper.make_attribute("value", numpy_helper.from_array(v)))
            elif a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise GraphError("subgraphs (control flow) are not supported")
    return m


class _Evaluator:
    """Runs the model on flat inputs: float64 where possible (see the module docstring)."""

    def __init__(self, model: Any, source: str) -> None:
        from gridverify.ir.onnx_check import OnnxChecker

        self.notes: list[str] = []
        self._ref = None
        wide = None
        try:
            wide = onnx_float64(model)
            self._checker = OnnxChecker(wide.SerializeToString())
            self.name = "onnxruntime float64"
            return
        except Exception as exc:  # noqa: BLE001 - no float64 kernel, or a graph we cannot widen
            why = one_line(exc)
        if wide is not None:
            try:
                from onnx.reference import ReferenceEvaluator

                self._ref = ReferenceEvaluator(wide)
                self._in = [(vi.name, _static_shape(vi)) for vi in wide.graph.input
                            if vi.name not in {t.name for t in wide.graph.initializer}]
                self._ref.run(None, {n: np.zeros(s) for n, s in self._in})
                self.name = "onnx reference float64"
                self.notes.append(f"onnxruntime cannot run the graph in float64 ({why[:100]}); "
                                  "used the ONNX reference evaluator")
                return
            except Exception:  # noqa: BLE001 - fall back to the stored precision
                self._ref = None
        try:
            self._checker = OnnxChecker(model.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise GraphError(f"{source}: onnxruntime cannot run the model ({one_line(exc)})"
                             ) from None
        self.name = "onnxruntime as stored"
        self.notes.append(f"the graph runs only as stored ({why[:100]}): tolerance at least "
                          f"{FLOAT32_TOL:g}")

    @property
    def exact(self) -> bool:
        """True when the evaluation is float64."""
        return self.name.endswith("float64")

    @property
    def input_size(self) -> int:
        """Flat input size."""
        if self._ref is not None:
            return sum(int(np.prod(s)) for _, s in self._in)
        return self._checker.input_size

    def run(self, x: np.ndarray) -> np.ndarray:
        """Flat float64 outputs at flat input ``x``."""
        if self._ref is None:
            return self._checker.run(x)
        feed, at = {}, 0
        for name, shape in self._in:
            k = int(np.prod(shape))
            feed[name] = np.asarray(x[at:at + k], dtype=np.float64).reshape(shape)
            at += k
        outs = self._ref.run(None, feed)
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in outs])

    def cast(self, x: np.ndarray) -> np.ndarray:
        """``x`` as the model sees it (rounded to float32 when run as stored)."""
        return x if self._ref is not None else self._checker.cast(x)


def _static_shape(vi: Any) -> tuple[int, ...]:
    dims = vi.type.tensor_type.shape.dim
    return tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1
                 for d in dims)


def _load_model(model: Any) -> tuple[Any, str]:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, "<onnx model>"
    from gridverify.vnncomp.vnnlib import read_onnx_file

    source = os.fspath(model)
    return read_onnx_file(source), source


_TABLE_MATCH = 1e-6  # largest |table - f| at the grid points of a table taken for f


def sin_cos_tables(model: Any, xs: np.ndarray | None = None) -> LookupTables | None:
    """The lookup tables of ``sin`` and ``cos`` in ``model`` (an ONNX ModelProto), or None.

    The graph is imported with :func:`gridverify.ir.from_onnx`, which merges
    weighted sums of ``Relu(x - t_k)`` into ``pwl`` nodes; a ``pwl`` node whose
    values at its grid points are within ``1e-6`` of ``sin`` (or ``cos``) there
    is taken for a table of it.  Between grid points linear interpolation is
    within ``h**2 / 8`` of the function (``|f''| <= 1``), plus the mismatch at the
    points.  ``xs``: flat input samples ``(S, n)``; ``outside`` counts those at
    which some table input leaves its grid.  None when the graph has no ``Relu``,
    does not import, or has no such table.
    """
    import torch

    if not any(nd.op_type == "Relu" for nd in model.graph.node):
        return None
    try:
        from gridverify.ir import from_onnx
        from gridverify.ir.ops import pwl_forward

        g = from_onnx(model)
    except Exception:  # noqa: BLE001 - a graph we cannot import has no tables we can read
        return None
    found: list[tuple[Any, str, torch.Tensor]] = []
    error, step, points, tables = 0.0, 0.0, 0, 0
    for nd in g.nodes:
        if nd.op != "pwl":
            continue
        t, w, sl, b = (torch.as_tensor(nd.attrs[k], dtype=torch.float64)
                       for k in ("breaks", "weights", "slope", "bias"))
        if t.ndim != 2 or t.shape[1] < 2:
            continue
        v = pwl_forward(t.T, t, w, sl, b).T  # the table at its grid points
        for fname, f in (("sin", torch.sin), ("cos", torch.cos)):
            miss = float((v - f(t)).abs().max())
            if miss <= _TABLE_MATCH:
                h = float((t[:, 1:] - t[:, :-1]).max())
                step, points = max(step, h), max(points, int(t.shape[1]))
                error = max(error, h * h / 8.0 + miss)
                tables += int(t.shape[0])
                found.append((nd, fname, t))
                break
    if not found:
        return None
    outside = 0
    if xs is not None:
        try:
            vals = g.evaluate_all(torch.as_tensor(xs, dtype=torch.float64))
            out = torch.zeros(xs.shape[0], dtype=torch.bool)
            for nd, _, t in found:
                xin = vals[nd.inputs[0]]
                lo, hi = t[:, 0] - 1e-9, t[:, -1] + 1e-9
                out |= ((xin < lo) | (xin > hi)).any(dim=1)
            outside = int(out.sum())
        except Exception:  # noqa: BLE001 - the range check is a diagnosis only
            outside = 0
    funcs = tuple(f for f in ("sin", "cos") if any(fn == f for _, fn, _ in found))
    return LookupTables(funcs, tables, points, step, error, outside)


def _table_note(lt: LookupTables, tol: float, samples: int) -> list[str]:
    fs = " and ".join(lt.funcs)
    notes = [f"{fs} approximated by lookup tables (piecewise-linear, {lt.points} points, "
             f"grid step up to {lt.step:.3g}): interpolation error at most {lt.error:.3g} "
             f"(h^2/8), tolerance raised to {tol:.3g}"]
    if lt.outside:
        notes.append(f"at {lt.outside} of {samples} samples an input of the {fs} tables lies "
                     "outside their grid (the table is not the function there): use a "
                     "smaller --width")
    return notes


def _layouts(case: CompiledCase) -> list[tuple[str, AcopfLayout]]:
    rated = acopf_layout(case)
    every = AcopfLayout(case.n_gen, case.n_bus, case.n_branch, np.arange(case.n_branch))
    out = [("rated", rated)]
    if every.size != rated.size:
        out.append(("all", every))
    return out


# --------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------


def _err(got: np.ndarray, ref: np.ndarray, scale: np.ndarray | float = 1.0
         ) -> tuple[np.ndarray, np.ndarray]:
    """(|diff|, |diff| / max(1, |ref|, scale)), NaN as inf; entries with ref = -inf give 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(got - ref)
        rel = d / np.maximum(np.maximum(1.0, np.abs(ref)), scale)
    skip = np.isneginf(ref)
    d = np.where(skip, 0.0, np.nan_to_num(d, nan=np.inf))
    rel = np.where(skip, 0.0, np.nan_to_num(rel, nan=np.inf))
    return d, rel


def _scales(case: CompiledCase, lay: AcopfLayout, xs: np.ndarray, ys: np.ndarray,
            ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Size of the terms gridverify sums for each entry (the unit of a disagreement).

    A branch flow sums terms of about ``|vv| + |c| + |s|`` (its largest template
    coefficients, voltages near 1); a balance residual the generation, demand
    and shunts at the bus and the flows of its branches; a thermal residual
    ``p**2 + q**2`` and ``rate**2``.  Rounding the graph's constants to float32
    moves an entry by about 1e-7 of this size, a modelling mistake by far more.
    """
    from gridverify.physics.equations import case_templates

    br = np.max([np.abs(t.vv) + np.abs(t.c) + np.abs(t.s) for t in case_templates(case)],
                axis=0)  # (E,)
    vm = np.abs(ys[:, lay.block("vm")])
    vmax = np.maximum(vm[:, case.f_bus], vm[:, case.t_bus]) ** 2
    flow = br * vmax  # (S, E)
    out = {f: flow for f in FLOW_FAMILIES}
    t = lay.thermal_branches
    rate2 = np.where(np.isfinite(case.rate_a), case.rate_a, 0.0)[t] ** 2
    for f, (p, q) in (("sf", ("pf", "qf")), ("st", ("pt", "qt"))):
        out[f] = (2.0 * (np.abs(ref[p][:, t]) + np.abs(ref[q][:, t])) * flow[:, t]
                  + ref[p][:, t] ** 2 + ref[q][:, t] ** 2 + rate2)
    inc = np.asarray((case.cf + case.ct).T.todense())  # (N, E) bus-branch incidence
    shunt = (np.abs(case.gs) + np.abs(case.bs)) * vm**2
    L = case.n_load
    for f, g, d in (("rp", "pg", xs[:, :L]), ("rq", "qg", xs[:, L:])):
        gen = np.abs(ys[:, lay.block(g)]) @ case.cg
        load = np.abs(d) @ case.cl
        out[f] = flow @ inc.T + shunt + np.asarray(gen) + np.asarray(load)
    return out


class _Names:
    def __init__(self, case: CompiledCase) -> None:
        self.case = case

    def branch(self, e: int) -> str:
        c = self.case
        return (f"branch {int(c.branch_row[e])} (bus {int(c.bus_ids[c.f_bus[e]])} - "
                f"{int(c.bus_ids[c.t_bus[e]])})")

    def bus(self, i: int) -> str:
        return f"bus {int(self.case.bus_ids[i])}"


def _element_entries(lay: AcopfLayout, fam: str, idx: int, flags: np.ndarray) -> bool:
    """Whether ``flags`` (per entry of block ``fam``) holds at an entry of element ``idx``."""
    if fam in THERMAL_FAMILIES:
        return bool(flags[np.asarray(lay.thermal_branches) == idx].any())
    return bool(flags[idx])


def _check_graph(model: Any, source: str) -> None:
    """GraphError unless ``model`` is a graph every ONNX runtime loads: outputs, float
    inputs and consistent types (``onnx.checker`` with its type and shape inference;
    the lax reference evaluator would run graphs onnxruntime refuses)."""
    import onnx

    g = model.graph
    if not g.output:
        raise GraphError(f"{source}: the ONNX graph has no outputs")
    fed = {t.name for t in g.initializer}
    TP = onnx.TensorProto
    for vi in g.input:
        kind = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else None
        if vi.name not in fed and kind not in (TP.FLOAT, TP.DOUBLE):
            from gridverify.ir.onnx_import import onnx_type_name

            raise GraphError(f"{source}: input {vi.name!r} has element type "
                             f"{onnx_type_name(kind)}; the ACOPF "
                             "layout takes float or double loads")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises its own types (ValidationError...)
        raise GraphError(f"{source}: not a valid ONNX graph ({one_line(exc)[:200]})") from None


def check_physics(model: Any, case: CompiledCase, options: CheckOptions | None = None
                  ) -> PhysicsCheck:
    """Compare the physics outputs of ``model`` (path or ModelProto) with ``case``'s equations."""
    opts = options or CheckOptions()
    m, source = _load_model(model)
    _check_graph(m, source)
    ev = _Evaluator(m, source)
    tol = opts.tol if ev.exact else max(opts.tol, FLOAT32_TOL)
    n_in = 2 * case.n_load
    if ev.input_size != n_in:
        raise GraphError(f"{source}: the model takes {ev.input_size} inputs; case {case.name} "
                         f"has {case.n_load} loads, so the ACOPF layout needs {n_in} ([pd, qd])")
    cands = _layouts(case)
    # the samples, the graph's outputs and the equations' values (a few copies of each)
    short = memory_shortfall(8 * 8 * opts.samples * (n_in + max(lay.size for _, lay in cands)))
    if short is not None:
        raise SpecError(f"--samples {opts.samples}: the samples and their outputs {short}")
    x0 = np.concatenate([case.pd, case.qd]).astype(np.float64)
    rng = np.random.default_rng(opts.seed)
    xs = x0 * (1.0 + opts.width * rng.uniform(-1.0, 1.0, size=(opts.samples, n_in)))
    xs = np.stack([ev.cast(x) for x in xs])
    first = ev.run(xs[0])
    match = [(nm, lay) for nm, lay in cands if lay.size == first.size]
    if not match:
        sizes = " or ".join(str(lay.size) for _, lay in cands)
        raise GraphError(
            f"{source}: the model has {first.size} outputs; the ACOPF layout for case "
            f"{case.name} has {sizes} (pg qg vm va pf pt qf qt sf st rp rq, thermal rows for the "
            f"rated or for all branches)")
    rows_kind, lay = match[0]
    ys = np.stack([first] + [ev.run(x) for x in xs[1:]])
    tables = sin_cos_tables(m, xs)
    return _judge(case, lay, xs, ys, tol, source, ev, rows_kind, opts, tables)


def _judge(case: CompiledCase, lay: AcopfLayout, xs: np.ndarray, ys: np.ndarray, tol: float,
           source: str, ev: _Evaluator, rows_kind: str, opts: CheckOptions,
           tables: LookupTables | None = None) -> PhysicsCheck:
    names = _Names(case)
    notes = list(ev.notes)
    if tables is not None:  # sin/cos interpolated: their error is no modelling mistake
        tol = tol + tables.error
        notes += _table_note(tables, tol, xs.shape[0])
    got = {f: ys[:, lay.block(f)] for f in PHYSICS_FAMILIES}
    ref = physics_outputs(case, lay, xs, ys)
    scale = _scales(case, lay, xs, ys, ref)
    rated = np.isfinite(np.asarray(case.rate_a)[lay.thermal_branches])
    if not rated.all():
        notes.append(f"{int((~rated).sum())} thermal rows of unrated branches not compared")

    def rel(f: str, value: np.ndarray, cols: Any = slice(None)) -> np.ndarray:
        """Per-element disagreement (max over samples) of ``value`` with the graph's ``f``."""
        return _err(got[f][:, cols], value, scale[f][:, cols])[1].max(axis=0)

    errs = {f: _err(got[f], ref[f], scale[f]) for f in PHYSICS_FAMILIES}
    not_finite = {f: ~np.isfinite(got[f]) & ~np.isneginf(ref[f]) for f in PHYSICS_FAMILIES}
    nf_samples = int(np.any([m.any(axis=1) for m in not_finite.values()], axis=0).sum())
    if nf_samples:
        fams = ", ".join(f for f, m in not_finite.items() if m.any())
        notes.append(f"the graph's outputs are NaN or infinite at {nf_samples} of "
                     f"{xs.shape[0]} load samples ({fams})")
    not_finite = {f: m.any(axis=0) for f, m in not_finite.items()}  # per element
    elem_err = {f: errs[f][1].max(axis=0) for f in PHYSICS_FAMILIES}  # per element

    def element_of(fam: str, j: int) -> tuple[str, int]:
        if fam in FLOW_FAMILIES:
            return "branch", j
        if fam in THERMAL_FAMILIES:
            return "branch", int(lay.thermal_branches[j])
        return "bus", j

    # blocks wholly of the opposite sign convention
    fam_cause: dict[str, str] = {}
    for f in PHYSICS_FAMILIES:
        if (elem_err[f] > tol).any() and (elem_err[f] <= tol).sum() <= 0.05 * elem_err[f].size:
            if _err(-got[f], ref[f], scale[f])[1].max() <= tol:
                fam_cause[f] = "opposite sign convention for the whole block"

    # branches: try each known mistake on the branches that disagree
    flow_fams = [f for f in FLOW_FAMILIES if f not in fam_cause]
    bad_br = sorted({element_of(f, int(j))[1] for f in FLOW_FAMILIES + THERMAL_FAMILIES
                     if f not in fam_cause for j in np.nonzero(elem_err[f] > tol)[0]})
    vm, va = ys[:, lay.block("vm")], ys[:, lay.block("va")]
    br_cause: dict[int, str] = {}
    fixed = case
    for key in BRANCH_MISTAKES:
        todo = np.array([e for e in bad_br if e not in br_cause], dtype=np.int64)
        todo = todo[_branch_applicable(case, key)[todo]] if todo.size else todo
        if not todo.size or not flow_fams:
            continue
        fl = branch_flows(with_branch_mistake(case, todo, key), vm, va)
        e_alt = np.max([rel(f, getattr(fl, f)[:, todo], todo) for f in flow_fams], axis=0)
        hit = todo[e_alt <= tol]
        if hit.size:
            fixed = with_branch_mistake(fixed, hit, key)
            br_cause.update({int(e): key for e in hit})

    # thermal rows: explained by the flows, or a different rating
    therm_cause: dict[int, str] = {}
    t = lay.thermal_branches
    alt_fl = branch_flows(fixed, vm, va)
    alt_th = dict(zip(THERMAL_FAMILIES, thermal_residuals(fixed, alt_fl)))
    for f, (p, q) in (("sf", ("pf", "qf")), ("st", ("pt", "qt"))):
        if f in fam_cause:
            continue
        e_alt = rel(f, alt_th[f][:, t])
        implied = got[p][:, t] ** 2 + got[q][:, t] ** 2 - got[f]  # the graph's rate**2
        for j in np.nonzero((elem_err[f] > tol) & (e_alt > tol))[0]:
            r2 = implied[:, j]
            rate = float(case.rate_a[t[j]])
            if _err(r2, np.full_like(r2, rate**2), scale[f][:, j])[1].max() <= tol:
                continue  # consistent with the graph's own flows: the flows are the cause
            if r2.min() >= 0 and np.ptp(r2) <= tol * max(1.0, float(r2.max())):
                therm_cause[int(t[j])] = (f"thermal rating differs (graph {np.sqrt(r2[0]):.6g} "
                                          f"p.u., case {rate:.6g} p.u.)")

    # balance rows: explained by the branch flows, or a shunt mistake
    bus_cause: dict[int, str] = {}
    bus_via: dict[int, list[int]] = {}
    bal_fams = [f for f in BALANCE_FAMILIES if f not in fam_cause]
    bad_bus = sorted({int(j) for f in bal_fams for j in np.nonzero(elem_err[f] > tol)[0]})
    if bad_bus:
        L = case.n_load
        pg, qg = ys[:, lay.block("pg")], ys[:, lay.block("qg")]
        own = Flows(*(got[f] for f in ("pf", "qf", "pt", "qt")))

        def bal_err(c: CompiledCase, graph_flows: bool, load_scale: float = 1.0) -> np.ndarray:
            """Balance disagreement with ``c``'s equations (optionally the graph's own flows
            and the loads scaled by ``load_scale``)."""
            loads = load_scale * xs
            res = list(balance_residuals(c, pg, qg, vm, va, loads[:, :L], loads[:, L:]))
            if graph_flows:  # residual = ... - flows out: swap gridverify's flows for the graph's
                for k, (mine, theirs) in enumerate(zip(bus_injections(c, vm, va),
                                                       bus_injections(c, vm, va, own))):
                    res[k] = res[k] + mine - theirs
            return np.max([rel(f, r) for f, r in zip(BALANCE_FAMILIES, res) if f in bal_fams],
                          axis=0)

        f_bus, t_bus = np.asarray(case.f_bus), np.asarray(case.t_bus)
        for graph_flows in (False, True):
            base = bal_err(fixed, graph_flows)
            src = br_cause if not graph_flows else bad_br
            for i in bad_bus:
                if i not in bus_via and base[i] <= tol:
                    bus_via[i] = sorted(e for e in src if i in (f_bus[e], t_bus[e]))
        for graph_flows in (False, True):
            rest = np.array([i for i in bad_bus if i not in bus_via and i not in bus_cause],
                            dtype=np.int64)
            for key in BUS_MISTAKES:
                if key == "load_mw":
                    has = np.isin(np.arange(case.n_bus), np.asarray(case.load_bus))
                else:
                    has = np.asarray(case.gs if key == "no_gs" else case.bs) != 0
                cand = rest[has[rest]] if rest.size else rest
                if not cand.size:
                    continue
                if key == "load_mw":
                    e_alt = bal_err(fixed, graph_flows, float(case.base_mva))[cand]
                else:
                    e_alt = bal_err(with_bus_mistake(fixed, cand, key), graph_flows)[cand]
                bus_cause.update({int(i): key for i in cand[e_alt <= tol]})
                rest = np.array([i for i in rest if i not in bus_cause], dtype=np.int64)

    # findings, one per element
    per: dict[tuple[str, int], list[tuple[str, float, float]]] = {}
    for f in PHYSICS_FAMILIES:
        d_abs = errs[f][0].max(axis=0)
        for j in np.nonzero(elem_err[f] > tol)[0]:
            per.setdefault(element_of(f, int(j)), []).append(
                (f, float(d_abs[j]), float(elem_err[f][j])))
    findings = []
    for (kind, idx), items in per.items():
        fams = tuple(f for f, _, _ in items)
        key: str | None = None
        cause: str | None = None
        bad = [f for f in fams if _element_entries(lay, f, idx, not_finite[f])]
        if bad:
            key, cause = "not_finite", f"the graph's {','.join(bad)} output is NaN or infinite"
        elif kind == "branch" and idx in br_cause:
            key = br_cause[idx]
            cause = BRANCH_MISTAKES[key]
        elif kind == "branch" and idx in therm_cause:
            key, cause = "rating", therm_cause[idx]
        elif kind == "bus" and idx in bus_cause:
            key = bus_cause[idx]
            cause = BUS_MISTAKES[key]
        elif kind == "bus" and bus_via.get(idx):
            key = "via_branch"
            cause = "follows from the flows of " + ", ".join(
                names.branch(e) for e in bus_via[idx][:3]) + (
                f" and {len(bus_via[idx]) - 3} more" if len(bus_via[idx]) > 3 else "")
        elif all(f in fam_cause for f in fams):
            key, cause = "sign_convention", fam_cause[fams[0]]
        elif tables is not None and tables.outside:
            key = "table_range"
            cause = (f"{' and '.join(tables.funcs)} lookup tables evaluated outside their grid "
                     f"at {tables.outside} sample(s)")
        findings.append(Finding(
            kind, int(idx), names.branch(idx) if kind == "branch" else names.bus(idx), fams,
            max(a for _, a, _ in items), max(r for _, _, r in items), cause, key))
    findings.sort(key=lambda fd: (fd.cause is None, -fd.max_err))
    fam_results = []
    for f in PHYSICS_FAMILIES:
        ee = elem_err[f]
        worst = ""
        if ee.size:
            kind, idx = element_of(f, int(np.argmax(ee)))
            worst = names.branch(idx) if kind == "branch" else names.bus(idx)
        fam_results.append(FamilyResult(
            f, int(ee.size), float(errs[f][0].max(initial=0.0)), float(ee.max(initial=0.0)),
            worst, int((ee > tol).sum())))
    return PhysicsCheck(source, str(case.name), ev.name, opts.samples, float(tol), rows_kind,
                        tuple(fam_results), tuple(findings), tuple(notes), tables)
