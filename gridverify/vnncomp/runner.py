"""Run one VNN-COMP instance: an ONNX model and a VNN-LIB property.

Pipeline (:func:`run_instance`), all under one deadline:

1. start-up: load the ONNX model, import it as a graph (:func:`gridverify.ir.from_onnx`),
   parse the property;
2. a cheap attack (:func:`gridverify.attack.falsify`: gradient-sign vertices,
   ascent, polish, vertex search) on every input box, maximizing
   ``min_k (b_k - A_k y)`` for every disjunct ``A y <= b``; a point with value
   ``>= 0`` is a candidate counterexample;
3. bounds (:func:`gridverify.bounds.compute_bounds`, alpha-CROWN by default)
   with the rows of every disjunct as the spec: a disjunct is infeasible on a box
   when some row has ``lower(A_k y) - b_k > 0``; ``unsat`` when every disjunct
   of every box is infeasible;
4. branch-and-bound (:func:`gridverify.bab.bab_maximize`) on what is left: one
   search per open disjunct on its least margin ``min_k (b_k - A_k y)`` (so a
   conjunction whose rows fail in different parts of the box is ruled out too);
5. with time left, more attack rounds (other seeds, more restarts).

``sat`` is returned only for a counterexample confirmed by running the ONNX
model in onnxruntime: the input (as the model's input dtype) lies in the box and
the onnxruntime outputs satisfy every row of the disjunct, compared in float64
without tolerance.  The one exception is an input whose interval holds no value
of the model's dtype (pinned to 0.3, which float32 cannot hold): it gets the
nearest one, less than one step outside.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify._typed import check_field_types
from gridverify.bounds.options import METHODS as BOUND_METHODS
from gridverify.errors import (
    GraphError,
    GridverifyError,
    RuntimeUnavailableError,
    VnnlibError,
    one_line,
)
from gridverify.ir.onnx_check import OnnxChecker, first_disagreement
from gridverify.vnncomp.vnnlib import Property, PropertyCase, parse_vnnlib

__all__ = [
    "OnnxChecker",
    "RunOptions",
    "RunOutcome",
    "VnncompOptionError",
    "run_instance",
]


class VnncompOptionError(GridverifyError):
    """A run option is out of range or names a device this machine lacks."""


@dataclass(frozen=True)
class RunOptions:
    """How to run one instance (passed explicitly; no global configuration).

    ``memory_cap_mb``: what the run may allocate once the instance is loaded
    (``None``: :data:`~gridverify.certify.memory.DEFAULT_SHARE` of the available
    memory); the bound stages size their row chunks to it and branch-and-bound's
    domain store gets half of what is left (at most 512 MB).
    """

    timeout: float = 60.0
    device: str = "cpu"
    seed: int = 0
    attack_restarts: int = 16
    attack_steps: int = 50
    attack_dtype: str = "float64"
    bound_method: str = "alpha-crown"
    use_bab: bool = True
    extend_attack: bool = True
    safety_margin_s: float = 0.5
    memory_cap_mb: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self, VnncompOptionError, "run options")
        if not self.timeout > 0:
            raise VnncompOptionError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.attack_dtype not in ("float32", "float64"):
            raise VnncompOptionError(
                f"attack_dtype must be float32 or float64, got {self.attack_dtype}"
            )
        if self.bound_method != "none" and self.bound_method not in BOUND_METHODS:
            raise VnncompOptionError(f"unknown bound method {self.bound_method!r}")
        if self.memory_cap_mb is not None and not self.memory_cap_mb > 0:
            raise VnncompOptionError(f"memory cap must be > 0 MB, got {self.memory_cap_mb}")
        if self.attack_restarts < 1 or self.attack_steps < 0:
            raise VnncompOptionError("attack_restarts must be >= 1 and attack_steps >= 0")
        try:
            dev = torch.device(self.device)
        except RuntimeError:
            raise VnncompOptionError(f"unknown device {self.device!r}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise VnncompOptionError(f"device {self.device!r}: no CUDA device on this machine")


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_instance` decided.

    ``result``: sat / unsat / unknown / timeout.  For ``sat``, ``x`` and ``y``
    are the confirmed counterexample (flat float64; ``y`` from onnxruntime).
    ``stage`` names the step that decided, ``timings`` the seconds per step.
    """

    result: str
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    stage: str = ""
    detail: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def _in_dtype_box(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, checker: OnnxChecker):
    """A point of the model's input dtype inside [lo, hi] near ``x``, or None.

    An entry whose interval holds no value of the dtype (an input pinned to 0.3,
    which float32 cannot hold) takes the value nearest to the interval, less than
    one float32 step outside it: the only inputs the model can be run on there (the
    competition's checker accepts a counterexample within 1e-4 of the box).
    """
    x = np.clip(x, lo, hi)
    xc = checker.cast(x)
    if np.all(xc >= lo) and np.all(xc <= hi):
        return xc
    # Nudge entries that rounding pushed out of the box (one float32 step inwards).
    x32 = xc.astype(np.float32)
    up = np.nextafter(x32, np.float32(np.inf)).astype(np.float64)
    down = np.nextafter(x32, np.float32(-np.inf)).astype(np.float64)
    xc = np.where(xc < lo, up, np.where(xc > hi, down, xc))
    xc = checker.cast(xc)
    out = (xc < lo) | (xc > hi)
    if not np.any(out):
        return xc
    xc = np.where(out, checker.cast(0.5 * (lo + hi)), xc)
    off = np.maximum(lo - xc, xc - hi)
    step = np.spacing(np.abs(xc).astype(np.float32)).astype(np.float64)
    return xc if np.all(off <= step) else None


def confirm(
    checker: OnnxChecker, case: PropertyCase, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x, y)`` when onnxruntime confirms ``x`` violates some disjunct of ``case``."""
    xc = _in_dtype_box(np.asarray(x, dtype=np.float64), case.lower, case.upper, checker)
    if xc is None:
        return None
    y = checker.run(xc)
    if not np.all(np.isfinite(y)):
        return None
    for A, b in case.output:
        if A.shape[1] != y.size:
            raise VnnlibError(f"the property has {A.shape[1]} outputs, the model {y.size}")
        if np.all(A @ y <= b):
            return xc, y
    return None


class _Clock:
    def __init__(self, timeout: float, margin: float) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + timeout
        self.soft = self.deadline - min(margin, 0.1 * timeout)
        self.timings: dict[str, float] = {}
        self._mark = self.t0

    def left(self) -> float:
        return self.soft - time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._mark
        self._mark = now
        if name == "startup":
            # CPU seconds of the whole process so far (interpreter, imports, load, parse)
            self.timings["startup_cpu"] = time.process_time()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


@dataclass
class _Instance:
    graph: Any
    prop: Property
    model_bytes: bytes
    checker: OnnxChecker | None = None
    path: str = "<onnx model>"

    def onnx(self) -> OnnxChecker:
        if self.checker is None:
            try:
                self.checker = OnnxChecker(self.model_bytes)
            except RuntimeUnavailableError as exc:  # name the file
                raise RuntimeUnavailableError(f"{self.path}: {exc}") from None
        return self.checker


def load_instance(onnx_path: str | Path, vnnlib_path: str | Path) -> _Instance:
    """Start-up: read the ONNX model (``.gz`` allowed), build its graph, parse the property."""

    from gridverify.ir import from_onnx
    from gridverify.vnncomp.vnnlib import read_onnx_file

    model = read_onnx_file(onnx_path)
    try:
        graph = from_onnx(model)
    except GridverifyError as exc:  # name the file (the importer saw only the model)
        exc.args = (f"{onnx_path}: {str(exc).removeprefix('<onnx model>: ')}",)
        raise
    prop = parse_vnnlib(vnnlib_path)
    if prop.n_inputs != graph.input_size:
        raise VnnlibError(
            f"{vnnlib_path}: the property declares {prop.n_inputs} inputs, "
            f"the model {onnx_path} has {graph.input_size}"
        )
    if prop.n_outputs != graph.output_size:
        raise VnnlibError(
            f"{vnnlib_path}: the property declares {prop.n_outputs} outputs, "
            f"the model {onnx_path} has {graph.output_size}"
        )
    return _Instance(graph, prop, model.SerializeToString(), path=str(onnx_path))


def run_instance(
    onnx_path: str | Path, vnnlib_path: str | Path, options: RunOptions | None = None
) -> RunOutcome:
    """Decide one instance within ``options.timeout`` seconds (see the module docstring)."""
    opts = options or RunOptions()
    clock = _Clock(opts.timeout, opts.safety_margin_s)
    inst = load_instance(onnx_path, vnnlib_path)
    clock.lap("startup")
    return decide(inst, opts, clock)


def _outcome(result: str, clock: _Clock, stage: str, detail: str = "", x=None, y=None):
    return RunOutcome(result, x, y, stage, detail, clock.elapsed(), dict(clock.timings))


def decide(inst: _Instance, opts: RunOptions, clock: _Clock) -> RunOutcome:
    """Stages 2-5 of the pipeline on a loaded instance."""
    prop = inst.prop
    if not prop.cases:
        return _outcome("unsat", clock, "parse", "the unsafe set is empty")
    device = torch.device(opts.device)
    dtype = torch.float64 if opts.attack_dtype == "float64" else torch.float32

    # 2. cheap attack (a crash of it, e.g. restarts beyond memory, finds nothing)
    hit, attack_note = _safe_attack(inst, opts, clock, device, dtype, opts.seed,
                                    opts.attack_restarts, opts.attack_steps, share=0.3)
    clock.lap("attack")
    if hit is not None:
        return _outcome("sat", clock, "attack", "counterexample confirmed by onnxruntime", *hit)
    if clock.left() <= 0:
        return _outcome("timeout", clock, "attack", attack_note[2:])

    # 3. bounds: which disjuncts of which boxes remain open
    open_items: list[tuple[int, int]] = [
        (ci, di) for ci, case in enumerate(prop.cases) for di in range(len(case.output))
    ]
    bound_note = "bounds not run"
    budget = None
    if opts.bound_method != "none" or opts.use_bab:
        from gridverify.certify.memory import MemoryBudget

        # counted from what the process holds once the instance is loaded and attacked
        budget = MemoryBudget.resolve(opts.memory_cap_mb)
    if opts.bound_method != "none":
        try:
            open_items = _bound_filter(inst, opts, clock, device, open_items, budget)
            bound_note = f"{len(open_items)} disjunct(s) open after {opts.bound_method}"
        except ImportError as exc:
            bound_note = f"bound engine unavailable ({exc})"
        except GridverifyError as exc:
            bound_note = f"bounds failed: {exc}"
        except (RuntimeError, MemoryError, ValueError) as exc:
            # a crash of the bound engine proves nothing but must not lose the instance
            bound_note = f"bounds failed: {type(exc).__name__}: {exc}"
        clock.lap("bounds")
        if not open_items:
            return _unsat(
                inst, clock, "bounds", f"every disjunct infeasible by {opts.bound_method}"
            )
    if clock.left() <= 0:
        return _outcome("timeout", clock, "bounds", bound_note + attack_note)

    # 4. branch-and-bound
    if opts.use_bab:
        try:
            verdict = _bab(inst, opts, clock, device, open_items, budget)
        except (GridverifyError, RuntimeError, MemoryError, ValueError) as exc:
            bound_note += f"; BaB failed: {type(exc).__name__}: {exc}"
            verdict = open_items
        clock.lap("bab")
        if isinstance(verdict, RunOutcome):
            return verdict
        open_items = verdict
        if not open_items:
            return _unsat(inst, clock, "bab", "every open disjunct infeasible by BaB")

    # 5. more attack rounds with the remaining time
    rnd = 1
    while opts.extend_attack and not attack_note and clock.left() > 0.05 * opts.timeout:
        hit, attack_note = _safe_attack(inst, opts, clock, device, dtype, opts.seed + 1000 * rnd,
                                        opts.attack_restarts * 2, opts.attack_steps * 2,
                                        share=1.0, items=open_items)
        clock.lap("attack")
        if hit is not None:
            return _outcome("sat", clock, "attack", "counterexample confirmed by onnxruntime", *hit)
        rnd += 1
    if opts.extend_attack:
        return _outcome("timeout", clock, "attack", bound_note + attack_note)
    return _outcome("unknown", clock, "bounds", bound_note + attack_note)


def _unsat(inst: _Instance, clock: _Clock, stage: str, detail: str) -> RunOutcome:
    """``unsat``, unless the graph and onnxruntime disagree (then ``unknown``)."""
    bad = graph_disagreement(inst)
    if bad is not None:
        return _outcome("unknown", clock, stage, f"not claiming unsat: {bad}")
    return _outcome("unsat", clock, stage, detail)


def graph_disagreement(inst: _Instance, points: int = 4, seed: int = 0) -> str | None:
    """Compare the imported graph (float64) with onnxruntime at a few points of each box.

    Bounds are proved on the graph; a wrong import must not turn into a wrong
    ``unsat``.  Returns a message on disagreement (:func:`~gridverify.ir.onnx_check.
    first_disagreement`), else None.
    """
    rng = np.random.default_rng(seed)
    checker = inst.onnx()
    for case in inst.prop.cases[:8]:
        xs = [0.5 * (case.lower + case.upper)]
        xs += [rng.uniform(case.lower, case.upper) for _ in range(points - 1)]
        for x in xs:
            xc = checker.cast(x)
            y_ref = checker.run(xc)
            with torch.no_grad():
                y = inst.graph.evaluate_flat(torch.tensor(xc).unsqueeze(0))
            y = y.reshape(-1).numpy()
            if y.shape != y_ref.shape:
                return f"graph has {y.size} outputs, onnxruntime {y_ref.size}"
            j = first_disagreement(y, y_ref)
            if j is not None:
                return (f"graph and onnxruntime disagree at Y_{j}: "
                        f"{float(y[j])!r} vs {float(y_ref[j])!r}")
    return None


#: disjuncts of one box above which an attack round screens before it searches
_SCREEN_ABOVE = 16


def _safe_attack(inst, opts, clock, device, dtype, seed, restarts, steps, share, items=None):
    """:func:`_attack_round` and a note: an attack that fails (restarts beyond memory)
    finds nothing, which proves nothing either way; the note (``""`` when it ran)
    says why, for the outcome's detail."""
    try:
        return _attack_round(inst, opts, clock, device, dtype, seed, restarts, steps, share,
                             items), ""
    except (RuntimeError, MemoryError) as exc:
        return None, f"; attack failed: {type(exc).__name__}: {one_line(exc)}"


def _attack_round(inst, opts, clock, device, dtype, seed, restarts, steps, share, items=None):
    """Attack every box once (:func:`gridverify.attack.falsify`); a confirmed ``(x, y)`` or None.

    The first, cheap round (``share`` < 1) runs the phases once; later rounds
    twice, the second from the best points of every disjunct.  A box with many
    disjuncts (more than :data:`_SCREEN_ABOVE`, e.g. a balance residual per bus
    and sign) is screened first: with more than four times that many, every
    disjunct is scored on 256 uniform points and 256 random vertices and only
    the best-scoring ``4 * _SCREEN_ABOVE`` go on (1,200 on a 300-bus grid);
    then a light search of each (a quarter
    of the restarts, a third of the steps, a third of the time), then the full
    search on the :data:`_SCREEN_ABOVE` most promising ones, started from the
    screen's best points; an even split of the effort over hundreds of
    disjuncts spends the time limit before any of them is searched well.
    """
    from gridverify.attack import AttackOptions
    from gridverify.attack.pgd import pgd_maximize_fn, polytope_objective

    prop = inst.prop
    wanted = None if items is None else {}
    if items is not None:
        for ci, di in items:
            wanted.setdefault(ci, []).append(di)
    for ci, case in enumerate(prop.cases):
        if wanted is not None and ci not in wanted:
            continue
        left = clock.left()
        if left <= 0:
            return None
        dis = list(range(len(case.output))) if wanted is None else wanted[ci]
        polys = [case.output[d] for d in dis]
        fn, m = polytope_objective(polys)
        scale = max(1.0, max((float(np.abs(b).max()) if b.size else 1.0) for _, b in polys))
        aopts = AttackOptions(restarts=restarts, steps=steps, seed=seed + ci,
                              rounds=1 if share < 1 else 2,
                              dtype="float64" if dtype == torch.float64 else "float32")
        limit = share * left / max(1, len(prop.cases) - ci)
        starts = None
        if m > _SCREEN_ABOVE:
            t_end = time.monotonic() + limit
            if m > 4 * _SCREEN_ABOVE:  # sampled first: the light search gets the best 4x
                keep, vals, xs = _sample_screen(inst.graph, case, fn, m, seed + ci)
                hit = _confirm_top(inst, case, vals, xs)
                if hit is not None:
                    return hit
                keep = keep[:4 * _SCREEN_ABOVE]
                polys = [polys[j] for j in keep]
                fn, m = polytope_objective(polys)
                starts = xs[:4 * _SCREEN_ABOVE]
            light = replace(aopts, restarts=max(1, restarts // 4), steps=max(1, steps // 3),
                            rounds=1)
            res = pgd_maximize_fn(inst.graph, case.lower, case.upper, fn, m, options=light,
                                  device=device, time_limit=limit / 3, target=1e-6 * scale,
                                  starts=starts)
            hit = _confirm_best(inst, case, res)
            if hit is not None:
                return hit
            top = torch.argsort(res.values, descending=True)[:_SCREEN_ABOVE].tolist()
            fn, m = polytope_objective([polys[j] for j in top])
            starts = res.inputs[top].numpy()
            limit = max(0.0, t_end - time.monotonic())
        res = pgd_maximize_fn(inst.graph, case.lower, case.upper, fn, m, options=aopts,
                              device=device, time_limit=limit, target=1e-6 * scale,
                              starts=starts)
        hit = _confirm_best(inst, case, res)
        if hit is not None:
            return hit
    return None


def _sample_screen(graph, case, fn, m: int, seed: int, n: int = 256
                   ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Disjuncts ordered by their best value over ``n`` uniform points and ``n``
    random vertices of the box (float64), with that value and its point."""
    gen = torch.Generator().manual_seed(seed)
    lo = torch.tensor(case.lower, dtype=torch.float64)
    hi = torch.tensor(case.upper, dtype=torch.float64)
    u = torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64)
    v = torch.rand(n, lo.numel(), generator=gen) < 0.5
    xs = torch.cat([lo + u * (hi - lo), torch.where(v, hi, lo)])
    best = torch.empty(m, dtype=torch.float64)
    arg = torch.empty(m, dtype=torch.int64)
    with torch.no_grad():
        y = graph.evaluate_flat(xs, dtype=torch.float64)
        for j in range(m):
            vals = torch.nan_to_num(fn(y, torch.full((xs.shape[0],), j)), nan=-torch.inf)
            best[j], arg[j] = vals.max(dim=0)
    order = torch.argsort(best, descending=True)
    return order.tolist(), best[order].numpy(), xs[arg[order]].numpy()


def _confirm_best(inst, case, res, k: int = 8):
    """The first of the ``k`` best points of an attack that onnxruntime confirms, or None."""
    return _confirm_top(inst, case, res.values, res.inputs, k)


def _confirm_top(inst, case, values, inputs, k: int = 8):
    """The first of the ``k`` best-valued points (value >= 0) that onnxruntime confirms."""
    values = torch.as_tensor(values)
    order = torch.argsort(values, descending=True)
    for j in order[: min(k, values.numel())].tolist():
        if not values[j] >= 0.0:
            break
        hit = confirm(inst.onnx(), case, np.asarray(inputs[j]))
        if hit is not None:
            return hit
    return None


def _bound_filter(inst, opts, clock, device, items, budget):
    """The (case, disjunct) pairs that the bound engine cannot rule out.

    Methods are tried from cheap to strong (IBP, CROWN, alpha-CROWN, up to
    ``opts.bound_method``), each on what the previous one left open; alpha-CROWN
    stops its optimization at the instance's soft deadline (its bounds so far are
    sound).
    """
    from gridverify.bounds import compute_bounds

    methods = BOUND_METHODS[: BOUND_METHODS.index(opts.bound_method) + 1]
    remaining = list(items)
    for method in methods:
        if not remaining or clock.left() <= 0:
            break
        remaining = _bound_pass(compute_bounds, inst, method, device, remaining, budget,
                                clock.soft)
    return remaining


def _bound_pass(compute_bounds, inst, method, device, items, budget, deadline=None):
    prop = inst.prop
    remaining = []
    by_case: dict[int, list[int]] = {}
    for ci, di in items:
        by_case.setdefault(ci, []).append(di)
    for ci, dis in by_case.items():
        case = prop.cases[ci]
        sizes = [case.output[d][0].shape[0] for d in dis]
        if sum(sizes) == 0:
            remaining.extend((ci, d) for d in dis)
            continue
        C = np.concatenate([case.output[d][0] for d in dis], axis=0)
        bvec = np.concatenate([case.output[d][1] for d in dis])
        lb = _spec_lower(compute_bounds, inst.graph, case, C, method, device, budget, deadline)
        margin = lb - bvec  # > 0: that row can never hold on the box
        at = 0
        for d, k in zip(dis, sizes):
            seg = margin[at : at + k]
            at += k
            if not (k > 0 and np.any(np.isfinite(seg) & (seg > 0))):
                remaining.append((ci, d))
    return remaining


def _spec_lower(compute_bounds, graph, case, C, method, device, budget,
                deadline: float | None = None) -> np.ndarray:
    """Lower bounds of ``C @ y`` over the case's box (float64 numpy, NaN -> -inf).

    Row chunks are sized to what ``budget`` (a :class:`MemoryBudget`) has left;
    a method that cannot fit rules nothing out (the cheaper ones before it ran).
    """
    lo = torch.tensor(np.array(case.lower), dtype=torch.float64, device=device).unsqueeze(0)
    hi = torch.tensor(np.array(case.upper), dtype=torch.float64, device=device).unsqueeze(0)
    spec = torch.tensor(np.array(C), dtype=torch.float64, device=device)
    from gridverify.bounds import BoundOptions
    from gridverify.bounds.memory import fit_options

    opts = fit_options(graph, method, C.shape[0], BoundOptions(), budget.left())
    if opts is None:
        return np.full(C.shape[0], -math.inf)
    res = compute_bounds(graph, lo, hi, method=method, spec=spec, device=device, options=opts,
                         deadline=deadline)
    lower = res.lower.detach().to(torch.float64).reshape(-1).cpu().numpy()
    if lower.size != C.shape[0]:
        raise GraphError(f"bound engine returned {lower.size} bounds for {C.shape[0]} rows")
    return np.where(np.isnan(lower), -math.inf, lower)


def _offset_graph(graph, groups: list[list[tuple[np.ndarray, float]]]):
    """``graph`` with one more output per group of rows ``(a_r, b_r)``: the least
    margin ``min_r (b_r - a_r @ y)`` over the group (y: the flat outputs).

    Where it is >= 0 every row ``a_r y <= b_r`` of the group holds; a group of one
    row gives that row's margin.  The minimum is written with relus
    (``min(u, v) = u - relu(u - v)``, a balanced tree), so the bound engine's
    optimized slope of each relu weighs the rows (``min(u, v) <= (1 - s) u + s v``)
    and branch-and-bound splits them like any other neuron.
    """
    from gridverify.ir import GraphBuilder

    b = GraphBuilder(graph)
    outs = list(graph.outputs)
    y = outs[0] if len(outs) == 1 else b.concat(outs)
    rows = [r for g in groups for r in g]
    W = torch.tensor(np.stack([-np.asarray(a, dtype=np.float64) for a, _ in rows]))
    bias = torch.tensor(np.array([float(v) for _, v in rows], dtype=np.float64))
    z = b.linear(y, W, bias)
    if all(len(g) == 1 for g in groups):
        b.output(z, "margin")
        return b.build()
    parts, at = [], 0
    for g in groups:
        parts.append(b.extreme("minimum", [b.slice(z, at + k, at + k + 1)
                                           for k in range(len(g))]))
        at += len(g)
    b.output(parts[0] if len(parts) == 1 else b.concat(parts), "margin")
    return b.build()


_BAB_PASSES = 3
# open one-row disjuncts of a box searched one at a time up to this many; beyond,
# one joint search (each search starts with a root bound of its own)
_BAB_PER_ROW_MAX = 32


def _bab_rows(inst, opts, device, case, disjuncts: list[int], seconds: float, budget):
    """One decision-mode search on the maximum over ``disjuncts`` of ``case`` of
    each disjunct's least margin, for ``seconds`` (``None`` when the memory budget
    leaves no room for a domain store)."""
    from gridverify.bab import BabOptions, bab_maximize

    groups = [[(A[k], float(bv[k])) for k in range(A.shape[0])]
              for A, bv in (case.output[d] for d in disjuncts)]
    g2 = _offset_graph(inst.graph, groups)
    n = len(disjuncts)
    spec = np.zeros((n, g2.output_size))
    spec[:, g2.output_size - n:] = np.eye(n)
    store_mb = min(BabOptions().memory_mb, budget.left() / 2)
    if store_mb < 1.0:
        return None
    bopts = BabOptions(timeout=max(0.05, seconds), device=str(device), seed=opts.seed,
                       memory_mb=store_mb)
    return bab_maximize(g2, case.lower, case.upper, spec, threshold=0.0, options=bopts,
                        mode="decision")


def _bab(inst, opts, clock, device, items, budget):
    """Branch-and-bound (:func:`gridverify.bab.bab_maximize`) on the open disjuncts.

    A disjunct ``A y <= b`` is infeasible on its box when its least margin is
    negative everywhere: ``max_x min_k (b_k - A_k y(x)) < 0`` (at every point some
    row fails, not necessarily the same one).  The least margin is put behind the
    graph as an output (:func:`_offset_graph`) and one decision-mode search with
    threshold 0 bounds it: an upper bound below 0 rules the disjunct out; a point
    at or above 0 is a candidate counterexample (confirmed with onnxruntime).
    One search per disjunct: a joint search over disjuncts must prove all of them
    in every domain, so the splits one needs multiply with another's
    (case14_relu's open balance property, five one-row disjuncts: 11 s one by
    one, open after 40 s together); only a box with more than
    ``_BAB_PER_ROW_MAX`` open one-row disjuncts puts them in one joint search
    (the maximum of their rows), as every search starts with a root bound of
    its own.  Each search gets an equal share of the box's time; rows left
    undecided are searched again (up to ``_BAB_PASSES`` passes) with what the
    decided ones did not use.  The domain store of each search gets half of
    what ``budget`` has left (at most the default ``BabOptions.memory_mb``);
    with less than 2 MB left the disjuncts stay open.  Returns a RunOutcome
    (decided) or the still-open items.
    """
    if importlib.util.find_spec("gridverify.bab") is None:
        return items
    by_case: dict[int, list[int]] = {}
    for ci, di in items:
        by_case.setdefault(ci, []).append(di)
    still: list[tuple[int, int]] = []
    cases = list(by_case.items())
    for n, (ci, dis) in enumerate(cases):
        case = inst.prop.cases[ci]
        single = [d for d in dis if case.output[d][0].shape[0] == 1]
        multi = [d for d in dis if case.output[d][0].shape[0] > 1]
        still.extend((ci, d) for d in dis if case.output[d][0].shape[0] == 0)
        # searches: lists of disjuncts, one each but for many one-row ones
        pending = ([single] if len(single) > _BAB_PER_ROW_MAX else [[d] for d in single])
        pending += [[d] for d in multi]
        proved: set[int] = set()
        case_end = time.monotonic() + clock.left() / (len(cases) - n)

        def case_left(_end: float = case_end) -> float:
            return min(clock.left(), _end - time.monotonic())

        for _ in range(_BAB_PASSES):
            failed: list[list[int]] = []
            for j, group in enumerate(pending):
                group = [d for d in group if d not in proved]
                left = case_left()
                if not group or left <= 0.05:
                    continue
                res = _bab_rows(inst, opts, device, case, group, left / (len(pending) - j),
                                budget)
                if res is None:
                    continue
                if math.isfinite(res.upper_bound) and res.upper_bound < 0.0:
                    proved.update(group)
                    continue
                if res.witness is not None and res.attained >= 0.0:
                    hit = confirm(inst.onnx(), case, np.asarray(res.witness, dtype=np.float64))
                    if hit is not None:
                        return _outcome(
                            "sat", clock, "bab", "counterexample confirmed by onnxruntime", *hit
                        )
                failed.append(group)
            pending = failed
            if not pending or case_left() <= 0.5:
                break
        still.extend((ci, d) for d in single + multi if d not in proved)
    return still
