"""``gridverify.certify``: bound and falsify every selected constraint over a load region.

Pipeline (one batched pass over all constraints):

1. **Sampling** (falsification, cheap): ``samples`` uniform loads, the box
   centre and the two extreme corners, evaluated in float64 on the concrete
   proxy module and the grid flow equations.
2. **Bounds** on the composed graph (proxy then physics) in float64 with the
   chosen method.  ``alpha-crown`` first runs CROWN on every row, then
   alpha-CROWN on the rows CROWN left undecided (and then on the decided ones
   with ``CertifyOptions(refine="all")``, and by default for ``bab`` in
   tighten mode).  Upper bounds are padded for rounding.
3. **Attack** (falsification, :func:`gridverify.attack.falsify`): structured
   starts (each constraint's best sample, the loads that minimize and maximize
   each proxy output, gradient-sign vertices, the best points of the other
   rows), projected ascent, a polish and a vertex search, on the constraints
   the bound did not certify, violated ones included, so the reported worst
   violation is pushed as high as the attack gets it (``attack="undecided"``:
   only constraints not yet violated either; ``"all"``: every one); the
   constraints nearest to deciding first.  Every point found is re-evaluated
   in float64 on the proxy module and the grid equations (not the graph), and
   for ONNX proxies once more in onnxruntime, and kept as the witness.
4. **Radius** (``CertifyOptions.radius``): for every constraint the bound does
   not certify, the largest box about the region's centre on which CROWN
   certifies it (IBP with ``method="ibp"``: never a stronger bound than the
   method's own; a ladder of radii, then bisection steps).
5. ``bab`` (:func:`gridverify.bab.bab_maximize`; the stage is
   :mod:`gridverify.certify.bab_stage`): first the open constraints
   are decided at their threshold, the nearly certified first, in searches of
   growing length; ``bab_mode="tighten"`` then tightens every constraint whose
   gap still exceeds ``bab.tolerance``.

The stages share one :class:`~gridverify.certify.state.State` (bounds, worst
values found, reasons and radii per constraint and row) and one time budget.

Statuses are anytime: ``violated`` whenever the worst found exceeds the
threshold, whatever stage found it; ``open`` only when the bound is above and
no violation is found.  One ``timeout`` budget covers every stage; a stage the
budget does not reach is skipped for the constraints it would have processed,
and each of them carries a reason (``not reached: timeout (stage)``; the
certificate gets a warning).  Results of finished stages stand (they are
sound), so a timeout leaves constraints ``open``, never ``certified``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify._consistency import below_attained
from gridverify.certify.bab_stage import (
    CUT_SHORT,
    WORKER_DIED,
    bab_available,
    bab_entry,
    run_bab,
)
from gridverify.certify.certificate import (
    CERTIFIED,
    OPEN,
    RADIUS_STOPPED,
    VIOLATED,
    Certificate,
    ConstraintResult,
    final_status,
)
from gridverify.certify.checkpoint import Checkpoint, run_key
from gridverify.certify.memory import MemoryBudget, MemoryCapError, mb_text, sample_bytes
from gridverify.certify.options import (
    ATTACKS,
    BAB_MODES,
    METHODS,
    RADII,
    CertifyOptions,
    radius_midpoint,
)
from gridverify.certify.state import (
    Budget,
    Progress,
    State,
    apply_row_bounds,
    evaluate_violations,
    padded,
    update_attained,
)
from gridverify.errors import GridverifyError, SpecError
from gridverify.physics.acp import (
    PROXY_INPUT,
    build_physics_graph,
    compose_with_proxy,
)
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import (
    Constraint,
    ConstraintSelection,
    parse_constraints,
    select_constraints,
)
from gridverify.spec.region import Region, box_region, parse_region, validate_region
from gridverify.spec.thresholds import ThresholdSpec, as_thresholds, resolve_thresholds


class RegionWarning(UserWarning):
    """The certified region is wider than the proxy's training region."""


def _resolve_case(case: Any) -> Any:
    from gridverify.grid import compile_case

    compiled = compile_case(case)  # a compiled case, a name or path, a RawCase, a pandapower net
    if compiled.n_load == 0:
        raise SpecError(f"case {compiled.name!r} has no in-service load: there is no load "
                        "region to certify a proxy over (its inputs are the loads)")
    return compiled


def _resolve_proxy(proxy: Any, case: Any) -> Any:
    from gridverify.proxy.load import Proxy, load_proxy

    if isinstance(proxy, Proxy):
        if proxy.case_hash != case.content_hash:
            raise SpecError(
                f"proxy {proxy.source or '<proxy>'} belongs to case {proxy.case_name!r}, "
                f"not to {case.name!r} (case hashes differ)"
            )
        return proxy
    return load_proxy(proxy, case=case)


def _resolve_constraints(case: Any, constraints: Any) -> list[Constraint]:
    if constraints is None:
        sel = ConstraintSelection()
    elif isinstance(constraints, ConstraintSelection):
        sel = constraints
    elif isinstance(constraints, str):
        sel = parse_constraints(constraints)
    elif isinstance(constraints, Iterable) and not isinstance(constraints, Mapping):
        items = list(dict.fromkeys(constraints))  # a list, tuple, set, array or Series
        if items and all(isinstance(c, Constraint) for c in items):
            return _known_constraints(case, items)
        if items and not all(isinstance(c, str) for c in items):
            bad = next(c for c in items if not isinstance(c, str))
            raise SpecError(f"constraints: expected family names or constraint strings "
                            f"('p_balance', 'thermal_fr[3]') or Constraint objects, got "
                            f"{type(bad).__name__} {bad!r}")
        sel = parse_constraints(",".join(items))
    else:
        raise SpecError(f"constraints: expected a string such as 'p_balance,thermal_fr[1,5]', "
                        f"a list of family names or of Constraint objects, or a "
                        f"ConstraintSelection, got {type(constraints).__name__}")
    out = select_constraints(case, sel)
    if not out:
        raise SpecError("constraints: the selection is empty for this case")
    return out


def _known_constraints(case: Any, items: list[Constraint]) -> list[Constraint]:
    """``items`` when each is a constraint of ``case`` (family, component and index as
    :func:`select_constraints` gives them), else a SpecError naming the first that is not."""
    families = tuple(dict.fromkeys(c.family for c in items))
    known = set(select_constraints(case, ConstraintSelection(families=families)))
    for c in items:
        if c not in known:
            raise SpecError(f"constraints: {c.family}[{c.component}] (index {c.index}) is not a "
                            f"constraint of case {case.name!r}")
    return items


def default_region(case: Any, proxy: Any) -> Region:
    """The proxy's training region (model card) or ``[0.9, 1.1] x nominal``."""
    reg = getattr(proxy, "region", None)
    if reg is not None:
        return validate_region(
            case, Region(np.asarray(reg.lower), np.asarray(reg.upper), "training", ()),
            name="proxy training region",
        )
    return box_region(case, 0.9, 1.1)


def _region_warnings(region: Region, proxy: Any) -> list[str]:
    reg = getattr(proxy, "region", None)
    if reg is None:
        return []
    train = Region(np.asarray(reg.lower), np.asarray(reg.upper), "training", ())
    if train.n_input == region.n_input and not train.contains(region, tol=1e-9):
        return [
            "the region is wider than the proxy's training region: the proxy is "
            "certified outside the loads it was trained on"
        ]
    return []


def model_hash(module: torch.nn.Module, graph: Any = None) -> str:
    """sha256 identifying the proxy's function: the module's state (names, shapes,
    float64 bytes) and its IR graph (:meth:`~gridverify.ir.Graph.digest`: the ops
    too, such as the activation a model folder's ``arch.json`` names, which no
    state holds).  ``graph``: the module's graph when already imported (as
    :func:`proxy_graph` imports it), else :func:`~gridverify.ir.from_torch` of
    the module."""
    if graph is None:
        from gridverify.ir import from_torch

        graph = from_torch(module)
    h = hashlib.sha256(graph.digest().encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        arr = t.detach().to(torch.float64).cpu().contiguous().numpy()
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from gridverify import __version__

    return {
        "gridverify": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _bound_rows(graph: Any, region: Region, rows: np.ndarray, n_rows: int, method: str,
                alpha_iterations: int, intermediate: str = "crown",
                budget: MemoryBudget | None = None,
                notes: list[str] | None = None,
                deadline: float | None = None) -> np.ndarray:
    """Upper bounds (float64) of the given violation rows (``inf``: not bounded).

    With a ``budget`` the stage is sized to the memory left (see
    :mod:`gridverify.certify.memory`); what it gave up is appended to ``notes``.
    ``deadline``: when alpha-CROWN's optimizations stop (:func:`compute_bounds
    <gridverify.bounds.compute_bounds>`).
    """
    from gridverify.bounds import BoundOptions, compute_bounds
    from gridverify.bounds.selection import RowSelection

    spec = RowSelection.of(rows, n_rows)  # index vector: memory linear in the rows
    opts = BoundOptions(alpha_iterations=alpha_iterations,
                        intermediate=intermediate if method == "alpha-crown" else "crown")
    if budget is not None:
        plan = _fit_stage(graph, method, rows.size, opts, budget, notes)
        if plan is None:
            return np.full(rows.size, np.inf)
        method, opts = plan
    b = compute_bounds(
        graph, torch.from_numpy(region.lower.copy()), torch.from_numpy(region.upper.copy()),
        method=method, spec=spec, options=opts, dtype=torch.float64, deadline=deadline,
    )
    up = b.upper.detach().to(torch.float64).cpu().numpy().reshape(-1)
    return np.where(np.isnan(up), np.inf, up)


#: the reason of a constraint whose alpha-CROWN optimization the time budget stopped
#: early (its bound, from the iterations run, is sound)
ALPHA_CUT_SHORT = "cut short: timeout (alpha-crown)"

#: how a stage note says the stage was skipped for memory (the radius stage sums
#: those of its passes up by it)
_SKIPPED = "; skipped"

def _fit_stage(graph: Any, method: str, m: int, opts: Any, budget: MemoryBudget,
               notes: list[str] | None) -> tuple[str, Any] | None:
    """The method and options of a bound stage that fit the memory left, or ``None``.

    Row chunks shrink first; then alpha-CROWN drops its alpha-optimized
    intermediate bounds, CROWN falls back to IBP; an alpha-CROWN stage that
    does not fit is skipped (its rows keep their CROWN bounds), an IBP stage
    that does not fit leaves its rows unbounded.
    """
    from dataclasses import replace as _replace

    from gridverify.bounds.memory import estimate_mb, fit_options

    tries = [(method, opts)]
    if method == "alpha-crown" and opts.intermediate != "crown":
        tries.append((method, _replace(opts, intermediate="crown")))
    if method == "crown":
        tries.append(("ibp", opts))
    left = budget.left()
    for meth, o in tries:
        fitted = fit_options(graph, meth, m, o, left)
        if fitted is not None:
            if (meth, fitted.intermediate) != (method, opts.intermediate) and notes is not None:
                notes.append(
                    f"memory cap {mb_text(budget.cap_mb)} MB: the {method} stage on {m} rows "
                    f"would need ~{estimate_mb(graph, method, m, opts).total:.0f} MB, "
                    f"{mb_text(left)} MB left; ran {meth}"
                    f"{'' if meth == 'ibp' else f' (intermediate {fitted.intermediate})'} "
                    "instead"
                )
            return meth, fitted
    if notes is not None:
        need = estimate_mb(graph, tries[-1][0], m, tries[-1][1])
        what = ("its rows keep their CROWN bounds" if method == "alpha-crown"
                else "their constraints are left open")
        notes.append(
            f"memory cap {mb_text(budget.cap_mb)} MB: the {method} stage on {m} rows needs "
            f"~{need.fixed:.0f} MB even in one-row chunks, {mb_text(left)} MB left{_SKIPPED}, "
            f"{what}"
        )
    return None


def proxy_graph(proxy: Any) -> Any:
    """The IR graph of a loaded proxy (:func:`~gridverify.ir.from_torch`): the graph
    the module of a proxy read from a file evaluates (imported once, when it was
    loaded, its heads ``pg, qg, vm, va`` read one after the other), else the
    module traced."""
    from gridverify.ir import from_torch

    src = str(getattr(proxy, "source", ""))
    g = from_torch(proxy.module, input_size=proxy.input_size)
    if len(g.inputs) != 1 or g.input_size != proxy.input_size or g.output_size != (
        proxy.output_size
    ):
        raise SpecError(
            f"proxy graph of {src or '<module>'} maps {g.input_size} inputs to "
            f"{g.output_size} outputs; the case needs {proxy.input_size} -> {proxy.output_size}"
        )
    return g


def certify(
    case: Any,
    proxy: Any,
    region: Region | str | os.PathLike[str] | None = None,
    constraints: Any = None,
    method: str = "alpha-crown",
    options: CertifyOptions | None = None,
    thresholds: ThresholdSpec | float | str | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint: str | Path | None = None,
) -> Certificate:
    """Certify ``proxy`` against the AC-OPF constraints of ``case`` over ``region``.

    ``case``: a compiled case, a case name or path, a pandapower network or a
    :class:`~gridverify.grid.case.RawCase`.  ``proxy``: a loaded
    :class:`~gridverify.proxy.load.Proxy`, a model path or an ``nn.Module``.
    ``region``: a :class:`Region` or a region string as ``certify --region``
    takes it (``"box:0.9,1.1"``, ``"scale:0.8,1.2"``, a spec file; default: the
    proxy's training region, else ``[0.9, 1.1] x nominal``); over a factor region
    (``scale``, ``zones``, ``load-factors``, ``correlated``) every stage bounds and
    searches over its factors, and worst loads are reported as loads.
    ``constraints``: a ConstraintSelection, a string such as
    ``"p_balance,thermal_fr[1,5]"``, a list of family names or of Constraint
    objects (default: every family).  ``method``: ``ibp``, ``crown``,
    ``alpha-crown`` or ``bab``.  ``thresholds``: per-family rules (default:
    documented defaults): a :class:`ThresholdSpec`, a number for every family, a
    string as ``certify --threshold`` takes it (``"p_balance=0.01,thermal_fr=0"``)
    or a mapping as a spec file's ``[thresholds]`` table.  ``progress(stage, fraction)``
    is called between stages.
    ``checkpoint`` (method ``bab``): a file where branch-and-bound's progress is
    saved as it goes; a run given the file of an earlier run of the same
    certificate resumes from it (:mod:`gridverify.certify.checkpoint`).
    """
    t0 = time.perf_counter()
    opts = options or CertifyOptions()
    if not isinstance(opts, CertifyOptions):
        raise SpecError(f"options: expected a CertifyOptions, got {type(opts).__name__} "
                        "(e.g. CertifyOptions(samples=16))")
    if isinstance(region, os.PathLike):  # a spec file, as certify --region takes it
        region = os.fspath(region)
    if region is not None and not isinstance(region, (Region, str)):
        raise SpecError(f"region: expected a Region or a region string such as "
                        f"'box:0.9,1.1' (or a spec file), got {type(region).__name__}")
    if not isinstance(method, str) or method not in METHODS:
        raise SpecError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if progress is not None and not callable(progress):
        raise SpecError(f"progress: expected a function progress(stage, fraction), got "
                        f"{type(progress).__name__}")
    with _torch_threads(opts.threads):
        return _certify(t0, case, proxy, region, constraints, method, opts,
                        as_thresholds(thresholds), progress, checkpoint)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU thread count ``threads`` inside the block (None: unchanged), restored after."""
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(old)


def _certify(t0: float, case: Any, proxy: Any, region: Region | str | None, constraints: Any,
             method: str, opts: CertifyOptions, thresholds: ThresholdSpec,
             progress: Progress | None, checkpoint: str | Path | None) -> Certificate:
    """:func:`certify` once its arguments are checked."""
    bab_fn = bab_entry() if method == "bab" else None
    if checkpoint is not None and bab_fn is None:
        raise SpecError(f"checkpoint: only method bab saves progress (method {method!r})")
    case = _resolve_case(case)
    prox = _resolve_proxy(proxy, case)
    warn_list: list[str] = []
    if region is None:
        region = default_region(case, prox)
    else:
        if isinstance(region, str):  # as certify --region takes it
            region = parse_region(region, case)
        region = validate_region(case, region)
        warn_list += _region_warnings(region, prox)
    for w in warn_list:
        warnings.warn(w, RegionWarning, stacklevel=2)
    cons = _resolve_constraints(case, constraints)
    thr = resolve_thresholds(case, cons, thresholds)
    module = prox.module  # float64, evaluation mode (load_proxy's contract)
    warn_list += _check_source(prox, region, opts.seed)
    warn_list += _layout_warnings(case, prox)
    notify = progress or (lambda stage, frac: None)
    budget = Budget(t0, opts.timeout)
    memory = MemoryBudget.resolve(opts.memory_cap_mb)
    memory.check_start("building the graph")

    notify("building graph", 0.0)
    physics = build_physics_graph(case, cons)
    # the stages below search and bound over `space`: the loads, or a factor region's factors
    space = region.search_box()
    pg = proxy_graph(prox)
    mhash = model_hash(module, pg)
    pgraph = on_search_space(pg, region)
    graph = on_search_space(compose_with_proxy(physics, pg), region)
    K = len(cons)
    st = State(physics, thr, np.full(K, np.inf), np.full(K, -np.inf),
                np.tile(space.center, (K, 1)), np.zeros(K))
    st.to_loads = region.to_loads
    st.relus = _relu_stability(pgraph, space)
    warn_list += _float32_range_warnings(pgraph, space)

    ck = None
    if bab_fn is not None and checkpoint is not None:
        # a foreign or damaged file is refused now, not after the bounds and the attack
        key = run_key(case, mhash, region, cons, thr, opts.seed, (opts.pad_abs, opts.pad_rel))
        ck = Checkpoint.open(checkpoint, key, K, physics.n_rows)
        ck.worst_loads(space, st.worst.shape)
    budget.lap("setup")  # the case, the proxy, the graphs, the relu census
    notify("sampling", 0.05)
    _sample_stage(st, case, module, region, opts, memory, _point_bytes(graph))
    budget.lap("sampling")
    _bound_stages(st, graph, space, method, opts, budget, notify, memory, warn_list)
    budget.lap("bounds")
    _attack_stage(st, graph, pgraph, space, case, module, opts, budget, notify,
                  last=bab_fn is None, memory=memory, notes=warn_list)
    budget.lap("attack")
    if opts.radius:
        _radius_stage(st, graph, space, _radius_engine(method), opts, budget, notify, memory,
                      warn_list)
        budget.lap("radius")
    bab_runs: list[dict[str, Any]] = []
    if bab_fn is not None:
        notify("bab", 0.85)
        if ck is not None and ck.searched is not None:
            n = ck.restore(st, case, module, space)
            warn_list.append(f"resumed from checkpoint {checkpoint}: {n} constraints "
                             f"tightened or violated further by the earlier run, "
                             f"{int(ck.searched.sum())} decision and "
                             f"{int(ck.tightened.sum())} tightening searches done")
        bab_runs = run_bab(bab_fn, st, graph, space, case, module, opts, budget, notify,
                           checkpoint=ck)
        budget.lap("bab")
    warn_list += _source_recheck(st, case, prox)
    budget.lap("onnx recheck")
    warn_list += (_budget_warnings(st, opts) + _nan_warnings(st, cons)
                  + _inconsistent_warnings(st, cons))
    notify("done", 1.0)
    return _certificate(st, case, prox, mhash, cons, region, method, opts, thresholds,
                        warn_list, bab_runs, t0, budget.laps)


def on_search_space(graph: Any, region: Region) -> Any:
    """``graph`` (its one input: the loads) read from the region's search space: unchanged
    for a box, behind the affine map ``e -> center + factors @ e`` for a factor region."""
    if region.factors is None:
        return graph
    from gridverify.ir.builder import GraphBuilder, compose

    g = region.factors
    rows, cols = np.nonzero(g)
    b = GraphBuilder()
    e = b.input("load_factors", region.n_search)
    x = b.sparse_linear(e, torch.from_numpy(rows), torch.from_numpy(cols),
                        torch.from_numpy(g[rows, cols]), region.n_input,
                        bias=torch.from_numpy(region.center))
    b.output(x, "loads")
    return compose(graph, b.build(), {graph.input_names[0]: "loads"})


#: the bound method whose intermediate intervals decide a relu's stability in the certificate
_RELU_BOUNDS = "crown"


def relu_census(proxy_graph: Any, region: Region) -> tuple[int, int] | None:
    """``(unstable, total)`` relus of a proxy graph over ``region`` (over its
    factors for a factor region), as certificates record them; ``None`` without
    relus."""
    return _relu_stability(on_search_space(proxy_graph, region), region.search_box())


def _relu_stability(pgraph: Any, region: Region) -> tuple[int, int] | None:
    """``(unstable, total)`` relus of the proxy over the region (CROWN), ``None`` without relus.

    Reported with the certificate: a proxy whose relus are mostly unstable over
    the region keeps loose bounds (docs/tightness.md), which tells the engineer
    why constraints stay open and what to change (region, training).
    """
    from gridverify.bounds import relu_stability

    try:
        counts = relu_stability(pgraph, torch.from_numpy(region.lower.copy()),
                                torch.from_numpy(region.upper.copy()), method=_RELU_BOUNDS)
    except MemoryError:  # a diagnosis only: the certificate does without it
        return None
    return counts if counts[1] else None


#: float32's largest finite number: a runtime computing in float32 overflows beyond it
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float32_range_warnings(pgraph: Any, space: Region) -> list[str]:
    """A warning when some value inside the proxy can leave float32's range over
    the region (IBP intervals of every node of ``pgraph``, on the search space).

    The certificate is about the function the proxy's graph defines, computed
    exactly (docs/physics.md on rounding); a runtime evaluating it in float32
    (onnxruntime on a float32 model, a float32 torch module) overflows to
    ``inf`` where a value passes ``_FLOAT32_MAX``, and its outputs are then not
    that function's.  Intervals over-approximate, so the warning says *may*.
    """
    from gridverify.bounds.ibp import ibp

    lo, hi = (torch.from_numpy(np.array(v, dtype=np.float64))[None] for v in (space.lower,
                                                                                 space.upper))
    try:
        bounds = ibp(pgraph, {pgraph.inputs[0]: (lo, hi)}, torch.float64, torch.device("cpu"))
    except MemoryError:  # a diagnosis only: the certificate does without it
        return []
    worst = None
    for node, b in zip(pgraph.nodes, bounds, strict=True):
        if b is None or node.op == "input":
            continue
        mag = torch.maximum(b[0].abs(), b[1].abs())
        mag = mag[torch.isfinite(mag)]  # unbounded (undefined) values: said elsewhere
        m = float(mag.max()) if mag.numel() else 0.0
        if m > _FLOAT32_MAX and (worst is None or m > worst[1]):
            worst = (node, m)
    if worst is None:
        return []
    node, m = worst
    return [f"op {node.op!r} at proxy node {node.name!r} (#{node.id}) can reach |value| "
            f"{m:.3g} over the region (interval bound), beyond float32's range "
            f"({_FLOAT32_MAX:.3g}): a float32 runtime of this proxy (onnxruntime on a float32 "
            "model, a float32 torch module) may overflow to inf there; this certificate is "
            "about the proxy's function computed exactly, not that runtime's outputs"]


def _point_bytes(graph: Any) -> float:
    """Bytes one load point takes when evaluated on ``graph`` (every node's value, twice)."""
    return 16.0 * sum(n.size for n in graph.nodes)


#: an allocation this small (MB) goes ahead whatever is left of the memory cap
_SMALL_MB = 64.0


def _sample_stage(st: State, case: Any, module: torch.nn.Module, region: Region,
                  opts: CertifyOptions, memory: MemoryBudget, per_point: float) -> None:
    """Uniform loads, the box centre and its two extreme corners, in float64.

    A region made from an OPF dataset adds up to ``samples`` of the dataset's
    loads; every constraint's best point is an attack start later.
    """
    ts = time.perf_counter()
    rng = np.random.default_rng(opts.seed)
    space = region.search_box()  # points of the search space (update_attained maps them)
    pts = [space.center[None, :], space.lower[None, :], space.upper[None, :]]
    if opts.samples:
        need = sample_bytes(opts.samples, space.lower.size) / 2.0**20
        if need > max(memory.left(), _SMALL_MB):  # what a cap cannot hold, not a few MB
            raise MemoryCapError(
                f"samples {opts.samples} (--samples): that many loads of {space.lower.size} "
                f"inputs take about {need:.0f} MB, more than the {mb_text(memory.left())} "
                f"MB left of the memory cap ({memory.source}); lower --samples")
        pts.append(space.sample(opts.samples, rng))
    if region.factors is None:
        pts.append(_dataset_points(case, region, opts.samples, rng))
    memory.check_start("sampling")
    update_attained(st, case, module, np.concatenate(pts, axis=0),
                     batch=max(1, memory.batch(per_point, 8192)))
    st.seconds += (time.perf_counter() - ts) / len(st.thresholds)


def _dataset_points(case: Any, region: Region, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` load samples of the OPF dataset a ``dataset`` region was made from."""
    path = dict(region.params).get("path") if region.kind == "dataset" else None
    if path is None or n <= 0:
        return np.zeros((0, region.n_input))
    from gridverify.spec.region import dataset_loads

    try:
        x = dataset_loads(case, path)
    except GridverifyError:
        return np.zeros((0, region.n_input))  # the region stands; its points are a bonus
    if x.shape[0] > n:
        x = x[rng.choice(x.shape[0], n, replace=False)]
    return np.clip(x, region.lower, region.upper)


def _bound_stages(st: State, graph: Any, region: Region, method: str, opts: CertifyOptions,
                  budget: Budget, notify: Progress, memory: MemoryBudget,
                  notes: list[str]) -> None:
    """The bound stages of ``method`` (alpha-CROWN after CROWN on what CROWN left).

    When it refines all (:meth:`CertifyOptions.refines_all`) alpha-CROWN takes
    the constraints CROWN decided in a pass of their own, after the undecided
    ones: one pass optimizes one set of slopes and intermediate bounds for all
    its rows, so sharing it with the decided rows would loosen the undecided
    ones.
    """
    physics = st.physics
    # with an attack to follow, the bound stages leave it a share of the time:
    # alpha-CROWN's last iterations gain little, the attack's first ones much
    deadline = budget.deadline(1.0 if opts.attack == "none" else opts.bounds_time_share)
    stages = {"ibp": ["ibp"], "crown": ["crown"], "alpha-crown": ["crown", "alpha-crown"],
              "bab": ["crown", "alpha-crown"]}[method]
    for i, stage in enumerate(stages):
        if stage == "alpha-crown":
            und = st.undecided()
            passes = [und, ~und] if opts.refines_all(method) else [und]
        else:
            passes = [np.ones(len(st.thresholds), dtype=bool)]
        for cmask in passes:
            rows = st.rows_of(cmask)
            if rows.size == 0:
                continue
            if budget.expired() or _past(deadline):
                st.skip(cmask, stage)
                continue
            notify(f"{stage} ({rows.size} rows)", 0.1 + 0.5 * i / len(stages))
            ts = time.perf_counter()
            up = _bound_rows(graph, region, rows, physics.n_rows, stage,
                             opts.bounds.alpha_iterations, opts.bounds.intermediate,
                             budget=memory, notes=notes, deadline=deadline)
            apply_row_bounds(st, rows, up, opts)
            dt = time.perf_counter() - ts
            touched = np.unique(physics.row_constraint[rows])
            for k in touched:
                st.stage[k] = stage
            st.seconds[touched] += dt / max(touched.size, 1)
            if stage == "alpha-crown" and _past(deadline):  # optimization stopped early
                for k in touched:
                    if st.reason[k] is None:
                        st.reason[k] = ALPHA_CUT_SHORT


def _past(deadline: float | None) -> bool:
    """Whether the :func:`time.monotonic` ``deadline`` (``None``: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline


def _radius_engine(method: str) -> str:
    """The bound of the radius stage: CROWN, or IBP when the certificate's method is
    IBP (a stronger bound than the method's own would certify, on boxes all but as
    wide as the region, constraints the certificate leaves open)."""
    return "ibp" if method == "ibp" else "crown"


def _radius_stage(st: State, graph: Any, region: Region, engine: str, opts: CertifyOptions,
                  budget: Budget, notify: Progress, memory: MemoryBudget,
                  notes: list[str]) -> None:
    """For every constraint the bound does not certify: the largest radius at which
    ``engine`` (:func:`_radius_engine`) certifies it on ``region.shrunk(radius)``.

    First the ladder :data:`RADII`: one pass per radius, largest first, over
    the rows of the constraints not certified at a larger one (a smaller box is
    tried only for those).  Then ``opts.radius_steps`` bisection steps: each
    constraint with a radius has a bracket, its radius and the smallest radius
    tried that failed; the constraints whose brackets share a midpoint
    (:func:`radius_midpoint`) are bounded in one pass at it, largest first.
    Only radii at which a pass certified are recorded.  Passes the memory cap
    skips are summed up in one note (they cost a radius, not a bound); the
    passes' other memory notes are given once each.
    """
    skipped: list[str] = []
    try:
        _radius_ladder(st, graph, region, engine, opts, budget, notify, memory, notes,
                       skipped)
    finally:
        gone = [n for n in skipped if _SKIPPED in n]
        notes.extend(dict.fromkeys(n for n in skipped if _SKIPPED not in n))
        if gone:
            why = gone[0].split(_SKIPPED)[0]
            notes.append(f"radius stage: {len(gone)} {engine.upper()} pass(es) skipped ({why}); "
                         "the constraints they held have no radius from them")


def _radius_ladder(st: State, graph: Any, region: Region, engine: str,
                   opts: CertifyOptions, budget: Budget, notify: Progress,
                   memory: MemoryBudget, notes: list[str], skipped: list[str]) -> None:
    """The ladder and the bisection of :func:`_radius_stage`; the passes' memory
    notes go to ``skipped``."""
    todo = st.uncertified()
    failed = np.ones(len(st.thresholds))  # per constraint: smallest radius tried that failed
    for r in RADII:
        if not todo.any():
            break
        if budget.expired():
            notes.append(f"{RADIUS_STOPPED} {r:g}; "
                         f"{int(todo.sum())} constraint(s) have no radius")
            return
        hit = _radius_pass(st, graph, region, engine, r, todo, opts, notify, memory, skipped)
        st.radius[hit] = r
        todo &= ~hit
        failed[todo] = r
    for step in range(opts.radius_steps):
        has = np.isfinite(st.radius)  # set above for uncertified constraints only
        mids = np.full(len(st.thresholds), np.nan)
        for k in np.flatnonzero(has):
            mids[k] = radius_midpoint(float(st.radius[k]), float(failed[k]))
        mids[~((mids > st.radius) & (mids < failed))] = np.nan  # bracket too narrow
        for m in sorted(set(mids[np.isfinite(mids)].tolist()), reverse=True):
            if budget.expired():
                notes.append(f"timeout: the radius stage stopped at bisection step {step + 1} "
                             f"of {opts.radius_steps}; the radii found so far stand")
                return
            sel = mids == m
            hit = _radius_pass(st, graph, region, engine, m, sel, opts, notify, memory,
                               skipped)
            st.radius[hit] = m
            failed[sel & ~hit] = m


def _radius_pass(st: State, graph: Any, region: Region, engine: str, radius: float,
                 cons: np.ndarray, opts: CertifyOptions, notify: Progress,
                 memory: MemoryBudget, notes: list[str]) -> np.ndarray:
    """Constraint mask: those of ``cons`` ``engine`` certifies on ``region.shrunk(radius)``."""
    rows = st.rows_of(cons)
    notify(f"radius {radius:g} ({rows.size} rows)", 0.8)
    up = padded(_bound_rows(graph, region.shrunk(radius), rows, st.physics.n_rows, engine, 0,
                            budget=memory, notes=notes), opts)
    return cons & (st.row_max(rows, up) <= st.thresholds)


def _attack_stage(st: State, graph: Any, pgraph: Any, region: Region, case: Any,
                  module: torch.nn.Module, opts: CertifyOptions, budget: Budget,
                  notify: Progress, last: bool, memory: MemoryBudget,
                  notes: list[str]) -> None:
    """The falsifier on the targeted constraints, nearest to deciding first.

    The undecided constraints are attacked first (exactly as with
    ``attack="undecided"``), then the other targeted ones.  Starts: every
    targeted constraint's best load so far and the loads that minimize and
    maximize each proxy output the targeted rows read.  Every point found is
    re-evaluated in float64 on the proxy module and the grid equations (not the
    graph).  The searches are sized to the memory left (points per evaluation,
    objectives per search); with no room for one objective's starts the attack
    is skipped with a note.
    """
    from gridverify.attack import output_extremizers

    if opts.attack == "none":
        return
    K = len(st.thresholds)
    mask = {"undecided": st.undecided, "uncertified": st.uncertified,
            "all": lambda: np.ones(K, dtype=bool)}[opts.attack]()
    if not mask.any():
        return
    if budget.expired():
        st.skip(mask, "attack")
        return
    sizes = _attack_sizes(memory, graph, 4 * opts.attack_options.restarts)
    if sizes is None:
        notes.append(f"memory cap {mb_text(memory.cap_mb)} MB: no room for the attack "
                     f"({mb_text(memory.left())} MB left); skipped, the worst found is the "
                     "samples'")
        return
    notify("attack", 0.7)
    deadline = budget.deadline(1.0 if last else opts.attack_options.time_share)
    ext = output_extremizers(pgraph, region.lower, region.upper, deadline=deadline,
                             outputs=_proxy_outputs_read(st.physics, mask),
                             max_batch=sizes[0], max_objectives=sizes[1]).numpy()
    first = mask & st.undecided()
    for group in (first, mask & ~first):
        if group.any():
            _attack_group(st, graph, region, case, module, opts, group, ext, deadline, sizes)


def _attack_sizes(memory: MemoryBudget, graph: Any, restarts: int) -> tuple[int, int] | None:
    """(points per evaluation, objectives per search) of the attack that fit the memory
    left, for searches of up to ``restarts`` starts; ``None`` when not even one
    objective's starts fit.  Half of what is left goes to evaluation batches
    (values, gradients and the autograd tape of a point: three times its values).
    """
    from gridverify.attack import objective_bytes

    per_point = 3.0 * _point_bytes(graph)
    batch = memory.batch(2.0 * per_point, 4096, smallest=restarts)
    if not batch:
        return None
    objectives = memory.batch(2.0 * objective_bytes(graph.input_size, restarts), 1 << 30)
    return (batch, objectives) if objectives else None


def _proxy_outputs_read(physics: Any, mask: np.ndarray) -> np.ndarray:
    """Indices of the proxy outputs that the rows of the constraints in ``mask`` read
    (structurally, through the physics graph): the ones whose extremes are worth
    starting from.  A few constraints of a large grid read a handful of outputs."""
    from gridverify.bounds.relevance import relevant_entries
    from gridverify.bounds.selection import RowSelection

    g = physics.graph
    rows = np.flatnonzero(mask[physics.row_constraint])
    need = relevant_entries(g, RowSelection.of(rows, g.output_size))
    pin = next(i for i in g.inputs if g.nodes[i].name == PROXY_INPUT)
    return need[pin].nonzero().reshape(-1).numpy()


def _attack_group(st: State, graph: Any, region: Region, case: Any, module: torch.nn.Module,
                  opts: CertifyOptions, group: np.ndarray, ext: np.ndarray,
                  deadline: float | None, sizes: tuple[int, int]) -> None:
    """One falsifier call on the rows of the constraints in ``group``, then the focus."""
    from gridverify.attack import falsify, row_objectives

    ts = time.perf_counter()
    order = st.priority(group)
    rows = np.concatenate([np.flatnonzero(st.physics.row_constraint == k) for k in order])
    aopts = replace(opts.attack_options, seed=opts.seed)
    starts = np.concatenate([np.unique(st.worst[group], axis=0), ext])
    batch, per_search = sizes
    res = falsify(graph, region.lower, region.upper,
                  row_objectives(rows, st.physics.n_rows), aopts, starts=starts,
                  deadline=deadline, max_batch=batch, max_objectives=per_search)
    x = np.clip(res.inputs.numpy().astype(np.float64), region.lower, region.upper)
    update_attained(st, case, module, x)
    if res.reached is not None and not bool(res.reached.all()):
        missed = np.unique(st.physics.row_constraint[rows[~res.reached.numpy()]])
        st.skip(missed, "attack")
    focus = _focus(st, order, opts.attack_focus)
    if focus.size and (deadline is None or time.monotonic() < deadline):
        frows = np.concatenate([np.flatnonzero(st.physics.row_constraint == k) for k in focus])
        # longer trajectories rather than more of them: on relu proxies the worst
        # cases lie far along piecewise-linear ridges (case300_relu p_balance:
        # 4x restarts x 2x steps 34.53, 2x x 8x 35.39, a 100x heavier search 35.62)
        fopts = replace(aopts, restarts=2 * aopts.restarts, steps=8 * aopts.steps,
                        seed=opts.seed + 1)
        res = falsify(graph, region.lower, region.upper,
                      row_objectives(frows, st.physics.n_rows), fopts,
                      starts=np.concatenate([starts, x]), deadline=deadline,
                      max_batch=batch, max_objectives=per_search)
        update_attained(st, case, module,
                         np.clip(res.inputs.numpy(), region.lower, region.upper))
    dt = time.perf_counter() - ts
    st.seconds[order] += dt / max(order.size, 1)


def _focus(st: State, order: np.ndarray, per_family: int) -> np.ndarray:
    """The constraints of ``order`` that get a second, 16x heavier attack.

    Per family, the ``per_family`` undecided ones nearest their threshold (a
    violation decides them) and the ``per_family`` with the largest worst found
    (the family's worst magnitude); none when ``per_family`` is 0.
    """
    if per_family <= 0 or not order.size:
        return order[:0]
    fams = np.array([st.physics.constraints[k].family for k in order])
    und = st.undecided()[order]
    pick: list[int] = []
    for fam in dict.fromkeys(fams):
        mine = order[fams == fam]
        pick += list(mine[und[fams == fam]][:per_family])  # order: nearest first
        pick += list(mine[np.argsort(-st.att[mine], kind="stable")][:per_family])
    return np.array(sorted(set(pick)), dtype=np.int64)


#: region points at which an imported proxy is compared with its file's own runtime
_SOURCE_POINTS = 8


#: |va| beyond this (rad) at the region's centre reads as degrees
_VA_PLAUSIBLE = math.pi
#: vm outside this band (pu) at the region's centre reads as another layout or units
_VM_PLAUSIBLE = (0.5, 1.5)


def _layout_warnings(case: Any, prox: Any) -> list[str]:
    """A warning when the proxy's outputs at the loads it was trained about (its
    training region's centre, else the case's nominal loads: in distribution, so
    that a poor extrapolation is not taken for a layout) read as another layout or
    units than the one declared (voltages far from 1 pu, angles beyond pi,
    generation far from the load): the certificate is then about another function
    than the engineer's, though sound for the one declared.  None for gridverify's
    model directories, which follow the convention."""
    if prox.card is not None:
        return []
    module = prox.module
    reg = prox.region
    x = (0.5 * (np.asarray(reg.lower) + np.asarray(reg.upper)) if reg is not None
         else np.concatenate([case.pd, case.qd]))[None, :]
    with torch.no_grad():
        y = module(torch.from_numpy(np.asarray(x, dtype=np.float64))).double().numpy()[0]
    g, n = int(case.n_gen), int(case.n_bus)
    pg, vm, va = y[:g], y[2 * g:2 * g + n], y[2 * g + n:2 * g + 2 * n]
    odd = []
    if vm.size and (vm.min() < _VM_PLAUSIBLE[0] or vm.max() > _VM_PLAUSIBLE[1]):
        odd.append(f"vm {vm.min():.3g} to {vm.max():.3g} pu")
    if va.size and np.abs(va).max() > _VA_PLAUSIBLE:
        odd.append(f"|va| up to {np.abs(va).max():.3g} rad")
    load = float(np.sum(x[0, : x.shape[1] // 2]))
    # generation covers the load and the losses: far above reads as MW, far below as
    # reactive power (qg totals a fifth to a third of the load) or kW
    low, high = load - 0.4 * abs(load) - 0.25, load + 0.5 * abs(load) + 1.0
    if g and not low <= float(pg.sum()) <= high:
        odd.append(f"total pg {pg.sum():.4g} pu for a total load of {load:.4g} pu")
    if not odd:
        return []
    return ["the proxy's outputs at its nominal loads look like another layout or units "
            f"than declared ({'; '.join(odd)}): check the order and units of its inputs and "
            "outputs (certify --inputs, --outputs, --interleaved-loads, --interleaved-outputs, "
            "--load-units, --gen-units, --angle-units; docs/proxy.md)"]


def _check_source(prox: Any, region: Region, seed: int) -> list[str]:
    """A proxy read from a file, against the file's own runtime at the region's
    centre, its two extreme corners and random points of it
    (:func:`~gridverify.proxy.load.check_source`); a warning when that runtime
    cannot run the model."""
    from gridverify.proxy.load import check_source

    if getattr(prox.module, "reference_name", None) is None:
        return []
    space = region.search_box()
    rng = np.random.default_rng(seed)
    pts = [space.center, space.lower, space.upper]
    pts += list(rng.uniform(space.lower, space.upper, (_SOURCE_POINTS - len(pts),
                                                       space.lower.size)))
    check_source(prox, region.to_loads(np.stack(pts)))
    problem = getattr(prox.module, "reference_problem", None)
    if problem is None:
        return []
    return [f"{problem}: the graph gridverify imported from the proxy file is not checked "
            "against it, nor are its witnesses"]


def _source_recheck(st: State, case: Any, prox: Any) -> list[str]:
    """Proxies read from a file: every witness re-run by the file's own runtime
    (the module's ``reference``: onnxruntime for ONNX, torch for torch.export
    programs and TorchScript archives); the lower of the two values counts.

    Returns warnings for witnesses that runtime does not confirm.
    """
    ks = np.flatnonzero(st.att > st.thresholds)
    who = getattr(prox.module, "reference_name", None)
    if who is None or not ks.size:
        return []
    x = st.to_loads(st.worst[ks])
    y = prox.module.reference(x)
    if y is None:  # the runtime cannot run it (said at the start)
        return []
    y = y[:, : prox.output_size]
    v = violation_values(case, st.physics.constraints, torch.from_numpy(x),
                         torch.from_numpy(y)).numpy()
    ort = np.where(np.isnan(v[np.arange(ks.size), ks]), -np.inf, v[np.arange(ks.size), ks])
    st.att[ks] = np.minimum(st.att[ks], ort)
    lost = int((ort <= st.thresholds[ks]).sum())
    if lost:
        return [f"{lost} violation(s) found on the proxy graph are not confirmed by "
                f"{who}; those constraints are not reported violated"]
    return []


def _budget_warnings(st: State, opts: CertifyOptions) -> list[str]:
    """A warning per kind of work left undone (timeout, memory cap)."""
    out = []
    n = sum(r is not None and r.startswith(("not reached: timeout", CUT_SHORT, ALPHA_CUT_SHORT))
            for r in st.reason)
    if n:
        out.append(f"timeout: the {opts.timeout:g} s budget ran out before {n} constraint(s) "
                   "were fully processed (see each constraint's reason)")
    n = sum(r == WORKER_DIED for r in st.reason)
    if n:
        out.append(f"a branch-and-bound worker process died (out of memory?): {n} "
                   "constraint(s) keep the bounds of the stages before their search; the "
                   "other searches ran in this process")
    n = sum(r == "memory cap" for r in st.reason)
    if n:
        out.append(f"memory cap: branch-and-bound stopped at its {opts.bab.memory_mb:g} MB "
                   f"domain store on {n} constraint(s)")
    return out


def _inconsistent_warnings(st: State, cons: list[Constraint]) -> list[str]:
    """A warning when a bound lies below the value found at a load (never certified)."""
    bad = np.flatnonzero(below_attained(st.ub, st.att))
    if not bad.size:
        return []
    k = int(bad[0])
    return [f"{bad.size} constraint(s) have a bound below the worst value found, e.g. "
            f"{cons[k].family}[{cons[k].component}]: bound {st.ub[k]:.6g}, found "
            f"{st.att[k]:.6g}; they are reported open or violated, never certified. This "
            "is a bug in gridverify's bounds; please report it with the case and the proxy"]


def _nan_warnings(st: State, cons: list[Constraint]) -> list[str]:
    """A warning when the proxy's constraint values are NaN (or +inf) at evaluated loads."""
    bad = np.flatnonzero(st.nan_count)
    if not bad.size:
        return []
    k = int(bad[0])
    load = ", ".join(f"{v:.6g}" for v in st.to_loads(st.nan_point[k])[0])
    return [f"the proxy is undefined (NaN or infinite values) at loads of the region: "
            f"{bad.size} constraint(s) are NaN or infinite at some evaluated load and are "
            f"never certified; e.g. {cons[k].family}[{cons[k].component}] at the load ({load})"]


def _certificate(st: State, case: Any, prox: Any, mhash: str,
                 cons: list[Constraint], region: Region, method: str, opts: CertifyOptions,
                 thresholds: ThresholdSpec | None, warn_list: list[str],
                 bab_runs: list[dict[str, Any]], t0: float,
                 stage_seconds: dict[str, float]) -> Certificate:
    results = []
    thr = st.thresholds
    for k, c in enumerate(cons):
        ub, att = float(st.ub[k]), float(st.att[k])
        status, reason = final_status(ub, att, float(thr[k]), bool(st.nan_count[k]))
        reason = reason or st.reason[k]
        if reason is None and status == OPEN:  # branch-and-bound has a gap tolerance
            reason = "gap above tolerance" if method == "bab" else "bound above threshold"
        how = method if reason is None or not reason.startswith("not reached") else st.stage[k]
        rate = float(case.rate_a[c.index]) if c.family.startswith("thermal") else None
        radius = None
        if opts.radius:
            radius = 1.0 if status == CERTIFIED else (
                float(st.radius[k]) if np.isfinite(st.radius[k]) else None)
        results.append(ConstraintResult(
            c.family, c.component, c.index, ub, att, float(thr[k]), status, how,
            float(st.seconds[k]), st.to_loads(st.worst[k])[0].copy(), rate, reason, radius,
        ))
    prov = {
        "case_name": case.name,
        "case_hash": case.content_hash,
        "case_source": str(getattr(case, "source", "")),
        "model_source": prox.source,
        "model_hash": mhash,
        "proxy_case_hash": prox.case_hash,
        "proxy_layout": None if prox.layout is None else prox.layout.to_dict(),
        # the sampler of the proxy's data, where the region is the box enclosing it
        # (Certificate.region_note)
        "training_sampler": (getattr(prox.region, "sampler", None)
                             if region.kind == "training" else None),
        "options": opts.to_dict(),
        "thresholds": (thresholds or ThresholdSpec()).to_dict(),
        "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    prov["stage_seconds"] = stage_seconds
    if method == "bab":
        prov["bab"] = bab_runs
    if st.relus is not None:
        prov["proxy_relus"] = {"unstable": st.relus[0], "total": st.relus[1],
                               "bounds": _RELU_BOUNDS}
    return Certificate(
        case=case.name, model=prox.source or "<module>", region=region, method=method,
        seconds=time.perf_counter() - t0, constraints=tuple(results), provenance=prov,
        warnings=tuple(warn_list),
    )


__all__ = [
    "ATTACKS",
    "BAB_MODES",
    "CERTIFIED",
    "METHODS",
    "OPEN",
    "VIOLATED",
    "CertifyOptions",
    "RegionWarning",
    "bab_available",
    "certify",
    "default_region",
    "evaluate_violations",
    "model_hash",
]
