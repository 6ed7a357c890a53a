"""``gridverify.certify``: bound and falsify every selected constraint over a load region.

Pipeline (one batched pass over all constraints):

1. **Sampling** (falsification, cheap): ``samples`` uniform loads, the box
   centre and the two extreme corners, evaluated in float64 on the concrete
   proxy module and the grid flow equations.
2. **Bounds** on the composed graph (proxy then physics) in float64 with the
   chosen method.  ``alpha-crown`` first runs CROWN on every row, then
   alpha-CROWN on the rows CROWN left undecided (or on every row with
   ``CertifyOptions(refine="all")``).  Upper bounds are padded for rounding.
3. **Attack** (falsification): projected gradient ascent with restarts and box
   corners (:func:`gridverify.attack.pgd.pgd_maximize`) on the rows the bound
   did not certify, violated ones included, so the reported worst violation is
   pushed as high as the attack gets it (``attack="undecided"``: only rows not
   yet violated either; ``"all"``: every row); every point found is
   re-evaluated in float64 on the proxy module and the grid equations (not the
   graph) and kept as the witness.
4. ``bab``: constraints still open go to :mod:`gridverify.bab`.

A stage that would start after ``timeout`` seconds is skipped; results of
finished stages stand (they are sound), so a timeout leaves constraints
``open``, never ``certified``.
"""

from __future__ import annotations

import hashlib
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from gridverify.certify.certificate import (
    CERTIFIED,
    OPEN,
    VIOLATED,
    Certificate,
    ConstraintResult,
    decide_status,
)
from gridverify.certify.memory import MemoryBudget
from gridverify.errors import GridverifyError, SpecError
from gridverify.physics.acp import PhysicsGraph, build_physics_graph, compose_with_proxy
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import (
    Constraint,
    ConstraintSelection,
    parse_constraints,
    select_constraints,
)
from gridverify.spec.region import Region, box_region, validate_region
from gridverify.spec.thresholds import ThresholdSpec, resolve_thresholds

METHODS = ("ibp", "crown", "alpha-crown", "bab")

Progress = Callable[[str, float], None]


#: which constraints the attack stage targets (see :class:`CertifyOptions`)
ATTACKS = ("uncertified", "undecided", "all", "none")


class RegionWarning(UserWarning):
    """The certified region is wider than the proxy's training region."""


@dataclass(frozen=True)
class CertifyOptions:
    """Options of :func:`certify` (frozen; pass explicitly).

    ``timeout``: seconds for the whole run (None: no limit).  ``samples``:
    uniform random loads for the sampling stage.  ``attack``: which rows get
    the PGD attack: ``"uncertified"`` (bound above the threshold: the
    worst violation found is pushed up, not just past the threshold; rows a
    sample already violated get one restart each),
    ``"undecided"`` (bound above and attained below the threshold), ``"all"``
    or ``"none"``.  ``attack_restarts``/``attack_steps``:
    PGD effort per row.  ``refine``: rows for alpha-CROWN after CROWN,
    ``"undecided"`` or ``"all"``.  ``alpha_iterations``: alpha-CROWN steps.
    ``intermediate``: the alpha-CROWN stage's intermediate bounds,
    ``"alpha-crown"`` (optimized node by node: on case57 and case118 it
    certified more thermal and angle constraints for 10-25 % more time) or
    ``"crown"``.
    ``pad_rel``/``pad_abs``: rounding pad added to every upper bound
    (``ub + pad_abs + pad_rel * |ub|``).  ``seed``: sampling and attack seed.
    ``bab_timeout``: seconds of branch-and-bound per undecided constraint
    (method ``bab``; also capped by ``timeout``).  ``bab_memory_mb``: cap on the
    memory of branch-and-bound's domain store (reaching it leaves the constraint
    ``open`` with a sound bound).  ``memory_cap_mb``: memory cap of the whole run
    (MB; ``None``: a share of the machine's available memory): stages are sized
    to it, fall back to cheaper methods or leave constraints ``open`` (see
    :mod:`gridverify.certify.memory`).
    """

    timeout: float | None = None
    samples: int = 1024
    attack: str = "uncertified"
    attack_restarts: int = 4
    attack_steps: int = 30
    refine: str = "undecided"
    alpha_iterations: int = 20
    intermediate: str = "alpha-crown"
    pad_rel: float = 1e-9
    pad_abs: float = 1e-9
    seed: int = 0
    bab_timeout: float | None = 30.0
    bab_memory_mb: float = 512.0
    memory_cap_mb: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise SpecError(f"options.timeout: must be > 0 seconds, got {self.timeout!r}")
        if self.samples < 0:
            raise SpecError(f"options.samples: must be >= 0, got {self.samples}")
        if self.attack not in ATTACKS:
            raise SpecError(f"options.attack: one of {', '.join(ATTACKS)}, got {self.attack!r}")
        if self.refine not in ("undecided", "all"):
            raise SpecError(f"options.refine: 'undecided' or 'all', got {self.refine!r}")
        if self.attack_restarts < 1 or self.attack_steps < 0:
            raise SpecError("options.attack_restarts must be >= 1 and attack_steps >= 0")
        if self.alpha_iterations < 0:
            raise SpecError("options.alpha_iterations must be >= 0")
        if self.intermediate not in ("crown", "alpha-crown"):
            raise SpecError(
                f"options.intermediate: 'crown' or 'alpha-crown', got {self.intermediate!r}"
            )
        if self.bab_timeout is not None and not self.bab_timeout > 0:
            raise SpecError(f"options.bab_timeout: must be > 0, got {self.bab_timeout!r}")
        if not self.bab_memory_mb > 0:
            raise SpecError(f"options.bab_memory_mb: must be > 0, got {self.bab_memory_mb!r}")
        if self.memory_cap_mb is not None and not self.memory_cap_mb > 0:
            raise SpecError(f"options.memory_cap_mb: must be > 0, got {self.memory_cap_mb!r}")
        if not (self.pad_rel >= 0 and self.pad_abs >= 0):
            raise SpecError("options.pad_rel/pad_abs must be >= 0")


@dataclass
class _State:
    """Mutable working state of one certify run (internal)."""

    physics: PhysicsGraph
    thresholds: np.ndarray
    ub: np.ndarray  # per constraint
    att: np.ndarray  # per constraint
    worst: np.ndarray  # (K, n_in) load of the attained value
    seconds: np.ndarray  # per constraint share
    stage_methods: list[str] = field(default_factory=list)

    def rows_of(self, cons_mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(cons_mask[self.physics.row_constraint])

    def uncertified(self) -> np.ndarray:
        """Constraint mask: not certified by the bound."""
        return ~(self.ub <= self.thresholds)

    def undecided(self) -> np.ndarray:
        """Constraint mask: not certified by the bound and not violated by a point."""
        return ~(self.ub <= self.thresholds) & ~(self.att > self.thresholds)


def _resolve_case(case: Any) -> Any:
    if hasattr(case, "content_hash") and hasattr(case, "pf_t"):
        return case
    from gridverify.grid import load_compiled

    return load_compiled(case)


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
    elif isinstance(constraints, Sequence) and constraints and isinstance(
        constraints[0], Constraint
    ):
        return list(constraints)
    elif isinstance(constraints, Sequence):
        sel = parse_constraints(",".join(str(c) for c in constraints))
    else:
        raise SpecError(f"constraints: unsupported selection {type(constraints).__name__}")
    out = select_constraints(case, sel)
    if not out:
        raise SpecError("constraints: the selection is empty for this case")
    return out


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


def model_hash(module: torch.nn.Module) -> str:
    """sha256 of the module's state (names, shapes, float64 bytes)."""
    h = hashlib.sha256()
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


def evaluate_violations(
    case: Any, module: torch.nn.Module, constraints: Sequence[Constraint], x: np.ndarray,
    batch: int = 8192,
) -> np.ndarray:
    """Violations ``(B, K)`` at loads ``x`` in float64 on the proxy module and grid equations."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            xt = torch.from_numpy(x[s:s + batch])
            y = module(xt).to(torch.float64)
            outs.append(violation_values(case, constraints, xt, y).numpy())
    if not outs:
        return np.zeros((0, len(constraints)))
    return np.concatenate(outs, axis=0)


def _update_attained(st: _State, case: Any, module: torch.nn.Module, x: np.ndarray,
                     batch: int = 8192) -> None:
    if x.shape[0] == 0:
        return
    v = evaluate_violations(case, module, st.physics.constraints, x, batch=batch)
    v = np.where(np.isnan(v), -np.inf, v)
    best = v.argmax(axis=0)
    vals = v[best, np.arange(v.shape[1])]
    better = vals > st.att
    st.att[better] = vals[better]
    st.worst[better] = x[best[better]]


def _bound_rows(graph: Any, region: Region, rows: np.ndarray, n_rows: int, method: str,
                alpha_iterations: int, intermediate: str = "crown",
                budget: MemoryBudget | None = None,
                notes: list[str] | None = None) -> np.ndarray:
    """Upper bounds (float64) of the given violation rows (``inf``: not bounded).

    With a ``budget`` the stage is sized to the memory left (see
    :mod:`gridverify.certify.memory`); what it gave up is appended to ``notes``.
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
        method=method, spec=spec, options=opts, dtype=torch.float64,
    )
    up = b.upper.detach().to(torch.float64).cpu().numpy().reshape(-1)
    return np.where(np.isnan(up), np.inf, up)


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
                    f"memory cap {budget.cap_mb:.0f} MB: the {method} stage on {m} rows would "
                    f"need ~{estimate_mb(graph, method, m, opts).total:.0f} MB, "
                    f"{left:.0f} MB left; ran {meth} (intermediate {fitted.intermediate}) instead"
                )
            return meth, fitted
    if notes is not None:
        need = estimate_mb(graph, tries[-1][0], m, tries[-1][1])
        what = ("its rows keep their CROWN bounds" if method == "alpha-crown"
                else "their constraints are left open")
        notes.append(
            f"memory cap {budget.cap_mb:.0f} MB: the {method} stage on {m} rows needs "
            f"~{need.fixed:.0f} MB even in one-row chunks, {left:.0f} MB left; skipped, {what}"
        )
    return None


def _apply_row_bounds(st: _State, rows: np.ndarray, up: np.ndarray, opts: CertifyOptions) -> None:
    up = up + opts.pad_abs + opts.pad_rel * np.abs(up)
    K = len(st.physics.constraints)
    rc = st.physics.row_constraint
    per = np.full(K, -np.inf)
    np.maximum.at(per, rc[rows], up)
    # a constraint's bound is the max over ALL its rows: only update constraints whose
    # rows were all bounded in this call
    hit = np.zeros(rc.size, dtype=bool)
    hit[rows] = True
    done = np.bincount(rc[hit], minlength=K) == np.bincount(rc, minlength=K)
    done &= np.bincount(rc[rows], minlength=K) > 0
    st.ub[done] = np.minimum(st.ub[done], per[done])


def proxy_graph(proxy: Any) -> Any:
    """The IR graph of a loaded proxy: from its ONNX file for ONNX proxies, else from torch."""
    from gridverify.ir import from_onnx, from_torch

    src = str(getattr(proxy, "source", ""))
    if src.lower().endswith(".onnx"):
        g = from_onnx(src, keep_outputs=proxy.output_size)
    else:
        g = from_torch(proxy.module, input_size=proxy.input_size)
    if len(g.inputs) != 1 or g.input_size != proxy.input_size or g.output_size != (
        proxy.output_size
    ):
        raise SpecError(
            f"proxy graph of {src or '<module>'} maps {g.input_size} inputs to "
            f"{g.output_size} outputs; the case needs {proxy.input_size} -> {proxy.output_size}"
        )
    return g


def _timed_out(t0: float, opts: CertifyOptions) -> bool:
    return opts.timeout is not None and time.perf_counter() - t0 > opts.timeout


def certify(
    case: Any,
    proxy: Any,
    region: Region | None = None,
    constraints: Any = None,
    method: str = "alpha-crown",
    options: CertifyOptions | None = None,
    thresholds: ThresholdSpec | None = None,
    progress: Progress | None = None,
) -> Certificate:
    """Certify ``proxy`` against the AC-OPF constraints of ``case`` over ``region``.

    ``case``: a compiled case or a case name/path.  ``proxy``: a loaded
    :class:`~gridverify.proxy.load.Proxy`, a model path or an ``nn.Module``.
    ``region``: a :class:`Region` (default: the proxy's training region, else
    ``[0.9, 1.1] x nominal``).  ``constraints``: a ConstraintSelection, a string
    such as ``"p_balance,thermal_fr[1,5]"``, a list of family names or of
    Constraint objects (default: every family).  ``method``: ``ibp``, ``crown``,
    ``alpha-crown`` or ``bab``.  ``thresholds``: per-family rules (default:
    documented defaults).  ``progress(stage, fraction)`` is called between stages.
    """
    t0 = time.perf_counter()
    opts = options or CertifyOptions()
    if method not in METHODS:
        raise SpecError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    bab_mod = None
    if method == "bab":
        bab_mod = _bab_entry()
    bab_runs: list[dict[str, Any]] = []
    case = _resolve_case(case)
    prox = _resolve_proxy(proxy, case)
    warn_list: list[str] = []
    if region is None:
        region = default_region(case, prox)
    else:
        region = validate_region(case, region)
        warn_list += _region_warnings(region, prox)
    for w in warn_list:
        warnings.warn(w, RegionWarning, stacklevel=2)
    cons = _resolve_constraints(case, constraints)
    thr = resolve_thresholds(case, cons, thresholds)
    module = prox.module  # float64, evaluation mode (load_proxy's contract)
    notify = progress or (lambda stage, frac: None)

    budget = MemoryBudget.resolve(opts.memory_cap_mb)
    budget.check_start("building the graph")
    notify("building graph", 0.0)
    physics = build_physics_graph(case, cons)
    graph = compose_with_proxy(physics, proxy_graph(prox))
    per_point = _point_bytes(graph)
    K = len(cons)
    st = _State(physics, thr, np.full(K, np.inf), np.full(K, -np.inf),
                np.tile(region.center, (K, 1)), np.zeros(K))
    rng = np.random.default_rng(opts.seed)

    # 1. sampling
    notify("sampling", 0.05)
    ts = time.perf_counter()
    pts = [region.center[None, :], region.lower[None, :], region.upper[None, :]]
    if opts.samples:
        pts.append(region.sample(opts.samples, rng))
    budget.check_start("sampling")
    _update_attained(st, case, module, np.concatenate(pts, axis=0),
                     batch=max(1, budget.batch(per_point, 8192)))
    st.seconds += (time.perf_counter() - ts) / K

    # 2. bounds
    all_rows = np.arange(physics.n_rows)
    stages = {"ibp": ["ibp"], "crown": ["crown"], "alpha-crown": ["crown", "alpha-crown"],
              "bab": ["crown", "alpha-crown"]}[method]
    for i, stage in enumerate(stages):
        if _timed_out(t0, opts):
            warn_list.append(f"timeout before the {stage} stage: remaining constraints open")
            break
        if stage == "alpha-crown" and opts.refine == "undecided":
            rows = st.rows_of(st.undecided())
        else:
            rows = all_rows
        if rows.size == 0:
            continue
        notify(f"{stage} ({rows.size} rows)", 0.1 + 0.5 * i / len(stages))
        ts = time.perf_counter()
        up = _bound_rows(graph, region, rows, physics.n_rows, stage, opts.alpha_iterations,
                         opts.intermediate, budget=budget, notes=warn_list)
        _apply_row_bounds(st, rows, up, opts)
        dt = time.perf_counter() - ts
        touched = np.unique(physics.row_constraint[rows])
        st.seconds[touched] += dt / max(touched.size, 1)

    # 3. attack
    if opts.attack != "none" and not _timed_out(t0, opts):
        mask = {"undecided": st.undecided, "uncertified": st.uncertified,
                "all": lambda: np.ones(K, dtype=bool)}[opts.attack]()
        # constraints a sample already violated get one restart (it finds nearly
        # all of the extra violation at a quarter of the cost), the rest the full effort
        seen = mask & (st.att > st.thresholds)
        for part, restarts in ((mask & ~seen, opts.attack_restarts), (seen, 1)):
            rows = st.rows_of(part)
            if not rows.size or _timed_out(t0, opts):
                continue
            notify(f"attack ({rows.size} rows)", 0.7)
            ts = time.perf_counter()
            # PGD keeps every node's value of its batch for the gradient
            max_batch = budget.batch(4 * per_point, 4096, smallest=restarts)
            if not max_batch:
                warn_list.append(f"memory cap {budget.cap_mb:.0f} MB: no room for the attack "
                                 f"on {rows.size} rows; skipped")
                continue
            xs = _attack_rows(graph, region, rows, physics.n_rows, opts, t0, restarts,
                              max_batch)
            _update_attained(st, case, module, xs)
            dt = time.perf_counter() - ts
            touched = np.unique(physics.row_constraint[rows])
            st.seconds[touched] += dt / max(touched.size, 1)

    # 4. branch and bound
    if bab_mod is not None and not _timed_out(t0, opts):
        notify("bab", 0.85)
        bab_runs = _run_bab(bab_mod, st, graph, region, case, module, opts, t0, notify)

    notify("done", 1.0)
    results = []
    for k, c in enumerate(cons):
        ub, att = float(st.ub[k]), float(st.att[k])
        status = decide_status(ub, att, float(thr[k]))
        rate = float(case.rate_a[c.index]) if c.family.startswith("thermal") else None
        results.append(ConstraintResult(
            c.family, c.component, c.index, ub, att, float(thr[k]), status, method,
            float(st.seconds[k]), st.worst[k].copy(), rate,
        ))
    prov = {
        "case_name": case.name,
        "case_hash": case.content_hash,
        "case_source": str(getattr(case, "source", "")),
        "model_source": prox.source,
        "model_hash": model_hash(module),
        "proxy_case_hash": prox.case_hash,
        "options": asdict(opts),
        "thresholds": (thresholds or ThresholdSpec()).to_dict(),
        "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if bab_mod is not None:
        prov["bab"] = bab_runs
    return Certificate(
        case=case.name, model=prox.source or "<module>", region=region, method=method,
        seconds=time.perf_counter() - t0, constraints=tuple(results), provenance=prov,
        warnings=tuple(warn_list),
    )


def _point_bytes(graph: Any) -> float:
    """Bytes one load point takes when evaluated on ``graph`` (every node's value, twice)."""
    return 16.0 * sum(n.size for n in graph.nodes)


def _attack_rows(graph: Any, region: Region, rows: np.ndarray, n_rows: int,
                 opts: CertifyOptions, t0: float, restarts: int,
                 max_batch: int = 4096) -> np.ndarray:
    """PGD on the composed graph, one objective per row; returns the inputs found."""
    from gridverify.attack.pgd import pgd_maximize_fn

    pick = torch.from_numpy(np.asarray(rows, dtype=np.int64))  # objective r: violation row

    def obj(y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return y.gather(-1, pick[r].to(y.device).unsqueeze(-1)).squeeze(-1)

    limit = None
    if opts.timeout is not None:
        limit = max(opts.timeout - (time.perf_counter() - t0), 0.1)
    res = pgd_maximize_fn(
        graph, region.lower, region.upper, obj, int(rows.size), restarts=restarts,
        steps=opts.attack_steps, seed=opts.seed, include_corners=True,
        dtype=torch.float64, time_limit=limit, max_batch=max_batch,
    )
    x = res.inputs.detach().cpu().numpy().astype(np.float64)
    return np.clip(x, region.lower, region.upper)


def bab_available() -> bool:
    """Whether method ``bab`` can run (:mod:`gridverify.bab` and its ``bab_maximize`` import)."""
    try:
        _bab_entry()
    except GridverifyError:
        return False
    return True


def _bab_entry() -> Any:
    try:
        from gridverify.bab import bab_maximize
    except ImportError:
        raise SpecError("method bab: gridverify.bab (bab_maximize) is not available") from None
    return bab_maximize


def _bab_call(fn: Any, graph: Any, region: Region, spec: np.ndarray, threshold: float,
              limit: float | None, memory_mb: float | None = None,
              progress: Callable[[dict], None] | None = None) -> Any:
    """One bab_maximize call; without the pre-built branching-point table, midpoints."""
    from gridverify.bab import BabOptions
    from gridverify.bab.points import PointsUnavailableError

    kw = {"threshold": threshold, "timeout": limit, "memory_mb": memory_mb,
          "progress": progress}
    try:
        return fn(graph, region.lower, region.upper, spec, **kw)
    except PointsUnavailableError:
        pass
    return fn(graph, region.lower, region.upper, spec, options=BabOptions(points="midpoint"),
              **kw)


def _run_bab(fn: Any, st: _State, graph: Any, region: Region, case: Any,
             module: torch.nn.Module, opts: CertifyOptions, t0: float,
             notify: Progress | None = None) -> list[dict[str, Any]]:
    """Branch-and-bound on every undecided constraint (decision mode at its threshold).

    The spec of a constraint is its violation rows, so BaB bounds their maximum
    (``|residual|`` for balance constraints).  Returns one trace per BaB call
    (see :func:`_bab_trace`), for ``provenance["bab"]``.
    """
    runs: list[dict[str, Any]] = []
    n_rows = st.physics.n_rows
    todo = np.flatnonzero(st.undecided())
    for j, k in enumerate(todo):
        if _timed_out(t0, opts):
            break
        c = st.physics.constraints[k]
        label = f"bab {c.family}[{c.component}] ({j + 1}/{todo.size})"
        frac = 0.85 + 0.15 * j / max(todo.size, 1)

        def show(info: dict, _label: str = label, _frac: float = frac) -> None:
            if notify is not None:
                notify(f"{_label}: {int(info['open'])} open domains, bound "
                       f"{info['bound']:.4g}, gap {info['gap']:.3g}", _frac)

        rows = np.flatnonzero(st.physics.row_constraint == k)
        spec = np.zeros((rows.size, n_rows))
        spec[np.arange(rows.size), rows] = 1.0
        limit = opts.bab_timeout
        if opts.timeout is not None:
            left = max(opts.timeout - (time.perf_counter() - t0), 0.1)
            limit = left if limit is None else min(limit, left)
        ts = time.perf_counter()
        out = _bab_call(fn, graph, region, spec, float(st.thresholds[k]), limit,
                        opts.bab_memory_mb, show)
        ub = float(out.upper_bound)
        if math.isfinite(ub):
            ub = ub + opts.pad_abs + opts.pad_rel * abs(ub)
            st.ub[k] = min(st.ub[k], ub)
        if out.witness is not None:
            x = np.clip(np.atleast_2d(np.asarray(out.witness, dtype=np.float64)),
                        region.lower, region.upper)
            _update_attained(st, case, module, x)
        st.seconds[k] += time.perf_counter() - ts
        runs.append(_bab_trace(c, out, ts - t0))
    return runs


def _json_num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _bab_trace(c: Constraint, out: Any, offset: float) -> dict[str, Any]:
    """One BaB call as JSON: ``{"family", "component", "history", "domains", "status"}``.

    ``history`` rows are ``[seconds, bound, attained]`` with ``seconds`` counted
    from the start of :func:`certify` (the BaB call's own clock plus ``offset``,
    when it started) and the unpadded BaB bound; non-finite values are ``None``.
    """
    hist = [[float(t) + offset, _json_num(b), _json_num(a)] for t, b, a in out.history]
    return {"family": c.family, "component": int(c.component), "history": hist,
            "domains": int(out.domains_visited), "status": str(out.status)}


__all__ = [
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
