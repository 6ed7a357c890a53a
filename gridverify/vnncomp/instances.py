"""VNN-COMP instances of our own: a proxy and the AC physics in one ONNX graph.

The model (:func:`acopf_graph`) maps the loads ``X = [pd, qd]`` (``2L``, batch
dimension 1 in the file) through the proxy (clamp head: ``pg, qg, vm`` are
``lo + (hi - lo) * sigmoid(z)`` inside their limits) to one output ``Y``, the
concatenation of the blocks of :class:`AcopfLayout`::

    pg (G) qg (G) vm (N) va (N) pf (E) pt (E) qf (E) qt (E)
    sf (T) st (T)      thermal residuals pf^2 + qf^2 - rate^2 (from/to side) of
                       the T branches with a finite rating
    rp (N) rq (N)      power-balance residuals (P, Q) of every bus

Properties (:func:`make_benchmark`) come in the five kinds an AC-OPF benchmark
asks, each over a small and a large box of loads around the nominal ones:
power balance at every bus, the thermal limit of one line, generator limits,
voltage limits, power balance at one bus.  Each kind has a violated variant
(the threshold below a worst case found by sampling and attack; the witness is
confirmed with onnxruntime when the instance is made, so the expected answer is
``sat``) and a holding variant (the threshold above a sound bound; expected
``unsat``).  Generator and voltage limits hold by construction of the clamp
head.  ``expected.csv`` records the expected answers.

A benchmark folder grows by appending: each run adds its model to ``onnx/`` and
its properties to ``vnnlib/`` and the CSV files.  The model is named
``<name>.onnx`` (the case and proxy, ``_lut`` for the lookup-table variant)
unless a file of that name holds another graph (another proxy of the same file
name, other layout flags, another table): then it is ``<name>_<sha8>.onnx``,
``sha8`` the first 8 hex digits of the SHA-256 of the exported bytes, and the
properties are named after it, so both graphs and their properties stay
consistent.  A run that exports the same bytes again reuses the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify.errors import GraphError, GridverifyError, SpecError
from gridverify.ir import Graph
from gridverify.vnncomp.result import write_atomic

__all__ = [
    "AcopfLayout",
    "InstanceSpec",
    "KINDS",
    "acopf_graph",
    "acopf_layout",
    "export_onnx",
    "make_benchmark",
    "model_name",
    "onnx_bytes",
]

KINDS = ("balance_all", "thermal_one", "gen_limits", "voltage_limits", "balance_one")


@dataclass(frozen=True)
class AcopfLayout:
    """Where each block lives in the flat output ``Y``."""

    n_gen: int
    n_bus: int
    n_branch: int
    thermal_branches: np.ndarray  # branch index of each thermal row (T,)

    def sizes(self) -> list[tuple[str, int]]:
        """Block names and sizes, in output order."""
        g, n, e, t = self.n_gen, self.n_bus, self.n_branch, self.thermal_branches.size
        return [
            ("pg", g),
            ("qg", g),
            ("vm", n),
            ("va", n),
            ("pf", e),
            ("pt", e),
            ("qf", e),
            ("qt", e),
            ("sf", t),
            ("st", t),
            ("rp", n),
            ("rq", n),
        ]

    def block(self, name: str) -> slice:
        """The slice of block ``name`` in ``Y``."""
        at = 0
        for nm, k in self.sizes():
            if nm == name:
                return slice(at, at + k)
            at += k
        raise KeyError(name)

    @property
    def size(self) -> int:
        """Length of ``Y``."""
        return sum(k for _, k in self.sizes())


def acopf_layout(case: Any) -> AcopfLayout:
    """The output layout of :func:`acopf_graph` for ``case`` (thermal rows: rated branches)."""
    from gridverify.spec.constraints import (
        ConstraintSelection,
        select_constraints,
    )

    sel = select_constraints(case, ConstraintSelection(families=("thermal_fr",)))
    thermal = np.array([c.index for c in sel if c.family == "thermal_fr"], dtype=np.int64)
    return AcopfLayout(case.n_gen, case.n_bus, case.n_branch, thermal)


def acopf_graph(case: Any, proxy: Any) -> tuple[Any, AcopfLayout]:
    """The proxy and the physics as one graph ``X -> Y`` (see module docstring).

    ``proxy`` is a torch module ``(B, 2L) -> (B, 2G + 2N)`` (imported by
    :func:`~gridverify.ir.from_torch`) or a graph with one input and that output
    first.
    """
    from gridverify.ir import GraphBuilder, compose, from_torch
    from gridverify.physics.acp import LOAD_INPUT, PROXY_INPUT, build_physics_graph
    from gridverify.spec.constraints import (
        THERMAL_FAMILIES,
        ConstraintSelection,
        select_constraints,
    )

    n_load, n_gen, n_bus, n_br = case.n_load, case.n_gen, case.n_bus, case.n_branch
    pg = proxy if isinstance(proxy, Graph) else from_torch(proxy.eval(), 2 * n_load)
    if len(pg.inputs) != 1 or pg.input_size != 2 * n_load:
        raise GraphError(f"proxy graph must have one input of size {2 * n_load}")
    if pg.nodes[pg.outputs[0]].size != 2 * n_gen + 2 * n_bus:
        raise GraphError(f"proxy output must have {2 * n_gen + 2 * n_bus} entries")
    sel = select_constraints(case, ConstraintSelection(families=THERMAL_FAMILIES))
    physics = build_physics_graph(case, sel, expose_flows=True)
    layout = acopf_layout(case)
    thermal = layout.thermal_branches
    b = GraphBuilder(pg)
    b.output(pg.outputs[0], "proxy_out")
    b.output(pg.inputs[0], "loads")
    inner = b.build()
    full = compose(
        physics.graph,
        inner,
        {PROXY_INPUT: "proxy_out", LOAD_INPUT: "loads"},
        keep_inner_outputs=True,
    )
    names = list(full.output_names)
    sol = full.outputs[names.index("proxy_out")]
    flows = full.outputs[names.index("flows")]
    res = full.outputs[names.index("residuals")]
    b = GraphBuilder(full)
    parts = [sol]
    e = n_br
    # flows are [pf, qf, pt, qt]; Y wants pf, pt, qf, qt
    for k in (0, 2, 1, 3):
        parts.append(b.slice(flows, k * e, (k + 1) * e))
    if thermal.size:
        viol = full.outputs[names.index("violation")]
        parts.append(viol)  # thermal_fr rows then thermal_to rows (selection order)
    parts.append(res)
    b.output(b.concat(parts, name="Y"), "Y")
    graph = b.build()
    if graph.output_size != layout.size:
        raise GraphError(f"ACOPF graph has {graph.output_size} outputs, layout {layout.size}")
    return graph, layout


def export_onnx(graph: Any, path: str | Path) -> Path:
    """Write the graph as a float32 ONNX model, input ``X`` and output ``Y`` of batch 1.

    Opset :data:`~gridverify.ir.onnx_export.OPSET` and the portable operator subset of
    :func:`~gridverify.ir.onnx_export.to_onnx` (bus aggregation by MatMul or
    Gather + ReduceSum, no ScatterElements).
    """
    from gridverify.fileio import atomic_write_bytes

    atomic_write_bytes(path, onnx_bytes(graph), fsync=False)
    return Path(path)


def onnx_bytes(graph: Any) -> bytes:
    """The serialized ONNX model :func:`export_onnx` writes (what model names are hashed from)."""
    from gridverify.ir.onnx_export import OPSET, to_onnx

    model = to_onnx(graph, None, opset=OPSET, batch_dim=1, input_names=["X"],
                    output_names=["Y"], dtype=np.float32)
    return model.SerializeToString(deterministic=True)


def model_name(data: bytes, name: str, folders: Any) -> str:
    """The model name under which ``data`` (ONNX bytes) goes into ``onnx/`` of ``folders``.

    ``name`` when no folder's ``onnx/<name>.onnx`` (or ``.onnx.gz``) holds other
    bytes, else ``<name>_<sha8>`` (first 8 hex digits of the SHA-256 of ``data``):
    a graph never replaces another one that properties were made for, and the
    same graph exported again reuses its file.
    """
    names = (name, f"{name}_{hashlib.sha256(data).hexdigest()[:8]}")
    for cand in names:
        clash = False
        for folder in folders:
            for path in (Path(folder) / "onnx" / f"{cand}.onnx",
                         Path(folder) / "onnx" / f"{cand}.onnx.gz"):
                if path.is_file():
                    raw = path.read_bytes()
                    if path.suffix == ".gz":
                        try:
                            raw = gzip.decompress(raw)
                        except (OSError, EOFError):
                            raw = b""
                    clash = clash or raw != data
        if not clash:
            return cand
    raise SpecError(f"onnx/{names[1]}.onnx: exists with other content (and so does "
                    f"onnx/{names[0]}.onnx); not overwriting")


@dataclass(frozen=True)
class InstanceSpec:
    """One property: its file name, kind, box width, variant and expected answer."""

    name: str
    kind: str
    width: float
    variant: str  # "violated", "holds" or "open"
    expected: str  # "sat", "unsat" or "unknown"
    text: str
    threshold: float


def _rows(kind: str, case: Any, lay: AcopfLayout, rng: np.random.Generator, x0, graph):
    """The score rows ``(C, d)`` of a kind: unsafe iff ``C[r] @ y - d[r] >= t`` for some r."""
    n_out = lay.size
    rows: list[tuple[int, float, float]] = []  # (output index, sign, offset)
    if kind in ("balance_all", "balance_one"):
        blocks = [lay.block("rp"), lay.block("rq")]
        if kind == "balance_one":
            # the bus with the largest nominal residual
            with torch.no_grad():
                y0 = graph.evaluate_flat(torch.tensor(x0).unsqueeze(0))[0].numpy()
            rp = y0[lay.block("rp")]
            bus = int(np.argmax(np.abs(rp)))
            blocks = [slice(lay.block("rp").start + bus, lay.block("rp").start + bus + 1)]
        for blk in blocks:
            for j in range(blk.start, blk.stop):
                rows += [(j, 1.0, 0.0), (j, -1.0, 0.0)]
    elif kind == "thermal_one":
        if lay.thermal_branches.size == 0:
            return None
        with torch.no_grad():
            y0 = graph.evaluate_flat(torch.tensor(x0).unsqueeze(0))[0].numpy()
        sf = y0[lay.block("sf")]
        k = int(np.argmax(sf))  # the most loaded rated line at nominal load
        rows = [(lay.block("sf").start + k, 1.0, 0.0)]
    elif kind in ("gen_limits", "voltage_limits"):
        # sign * (quantity - limit) > 0, from the limit table of physics.equations
        from gridverify.physics.equations import LIMITS, limit_values

        for q in (("pg", "qg") if kind == "gen_limits" else ("vm",)):
            fams = (f"{q}_max", f"{q}_min")
            lims = [(LIMITS[f].sign, limit_values(case, f)) for f in fams]
            blk = lay.block(q)
            for i, j in enumerate(range(blk.start, blk.stop)):  # Inf: no limit, no row
                rows += [(j, s, s * float(lim[i])) for s, lim in lims if math.isfinite(lim[i])]
    else:
        raise SpecError(f"unknown property kind {kind!r} (known: {', '.join(KINDS)})")
    C = np.zeros((len(rows), n_out))
    d = np.zeros(len(rows))
    for r, (j, s, off) in enumerate(rows):
        C[r, j] = s
        d[r] = off
    return C, d


def _property_text(lo, hi, n_out: int, C: np.ndarray, d: np.ndarray, t: float, title: str) -> str:
    """VNN-LIB 1.0: the box and ``or`` over rows of ``C[r] @ Y >= d[r] + t``."""
    out = io.StringIO()
    out.write(f"; {title}\n")
    for i in range(lo.size):
        out.write(f"(declare-const X_{i} Real)\n")
    for j in range(n_out):
        out.write(f"(declare-const Y_{j} Real)\n")
    for i in range(lo.size):
        out.write(f"(assert (>= X_{i} {float(lo[i])!r}))\n(assert (<= X_{i} {float(hi[i])!r}))\n")
    out.write("(assert (or\n")
    for r in range(C.shape[0]):
        (j,) = np.nonzero(C[r])[0]
        rhs = float(d[r] + t)
        if C[r, j] > 0:
            out.write(f"    (and (>= Y_{j} {rhs!r}))\n")
        else:  # -y >= rhs  <=>  y <= -rhs
            out.write(f"    (and (<= Y_{j} {-rhs!r}))\n")
    out.write("))\n")
    return out.getvalue()


def _worst(graph, lo, hi, C, d, rng, seed: int, max_rows: int = 32) -> tuple[float, np.ndarray]:
    """Largest score found by sampling and the attack, and where.

    The property is a disjunction, so only its largest row matters: the attack
    searches the ``max_rows`` rows that score highest on the samples (a
    balance-at-every-bus property of a 300-bus grid has 1,200 rows).
    """
    from gridverify.attack.pgd import pgd_maximize

    xs = rng.uniform(lo, hi, size=(512, lo.size))
    with torch.no_grad():
        ys = graph.evaluate_flat(torch.tensor(xs)).numpy()
    scores = ys @ C.T - d
    k = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best, best_x = float(scores[k]), xs[k[0]]
    rows = np.argsort(-scores.max(axis=0), kind="stable")[:max_rows]
    res = pgd_maximize(graph, lo, hi, C[rows], restarts=8, steps=40, seed=seed)
    vals = res.values.numpy() - d[rows]
    j = int(np.argmax(vals))
    if vals[j] > best:
        best, best_x = float(vals[j]), res.inputs[j].numpy()
    return best, best_x


def _upper(graph, lo, hi, C, d, methods: tuple[str, ...]) -> float:
    """A sound upper bound of the score: the best of the bound ``methods``."""
    from gridverify.bounds import compute_bounds

    lo_t = torch.tensor(lo).unsqueeze(0)
    hi_t = torch.tensor(hi).unsqueeze(0)
    spec = torch.tensor(C)
    best = np.inf
    for method in methods:
        try:
            r = compute_bounds(graph, lo_t, hi_t, method=method, spec=spec)
        except Exception:  # noqa: BLE001 - a method that fails just gives no bound
            continue
        ub = r.upper.reshape(-1).numpy() - d
        if np.all(np.isfinite(ub)):
            best = min(best, float(ub.max()))
    return best


def make_benchmark(
    case: Any,
    proxy: Any,
    out_dir: str | Path,
    *,
    widths: tuple[float, ...] = (0.01, 0.2),
    kinds: tuple[str, ...] = KINDS,
    timeout: float = 60.0,
    seed: int = 0,
    prefix: str | None = None,
    bound_methods: tuple[str, ...] = ("ibp", "crown"),
    open_variant: bool = False,
    exact: bool = False,
    exact_time: float = 60.0,
    lut_points: int | None = None,
    merge_into: str | Path | None = None,
) -> list[InstanceSpec]:
    """Write ``onnx/``, ``vnnlib/``, ``instances.csv`` and ``expected.csv`` under ``out_dir``.

    Returns the properties written.  The violated variants' witnesses are
    confirmed with onnxruntime before they are recorded as ``sat``; the holding
    variants' thresholds lie above the best bound of ``bound_methods`` and above
    everything sampling and the attack found.  With ``open_variant`` a third
    property per kind puts the threshold halfway between the worst case found
    and the bound (answer not known in advance: expected ``unknown``).
    With ``exact`` (a torch proxy; kinds ``thermal_one`` and ``balance_one``)
    SCIP brackets the true worst case (:mod:`gridverify.exact.scip`): its
    attained value must stay below every holding threshold and its dual bound
    above every violated one (else SpecError: something is unsound), and it
    decides the open variants it can (expected ``unsat`` when its dual bound is
    below the threshold, ``sat`` when its float64 re-evaluated witness is above
    it and onnxruntime confirms).
    With ``lut_points`` the smooth nonlinearities are replaced by ReLU lookup
    tables of that many points covering the largest box
    (:func:`gridverify.vnncomp.lut.lut_graph`); the model is then
    ``<name>_lut.onnx`` and ``exact`` is refused (SCIP models the smooth graph).
    The model is ``<name>_<sha8>.onnx`` instead when ``onnx/<name>.onnx`` holds
    another graph in ``out_dir`` or in ``merge_into`` (the folder a staging
    ``out_dir`` is merged into afterwards; see :func:`model_name`); the
    properties are named after the model.  A width or kind given twice counts once;
    no kind at all, or no width, is a SpecError.
    """
    from gridverify.ir.onnx_check import OnnxChecker
    from gridverify.vnncomp.vnnlib import parse_vnnlib_text

    widths = tuple(dict.fromkeys(float(w) for w in widths))
    kinds = tuple(dict.fromkeys(kinds))
    if not widths or not kinds:
        raise SpecError(f"make_benchmark: no {'width' if not widths else 'kind'} of "
                        "property given")
    out = Path(out_dir)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "vnnlib").mkdir(parents=True, exist_ok=True)
    name = prefix or str(case.name)
    graph, lay = acopf_graph(case, proxy)
    if lut_points is not None:
        graph, name = _lut_variant(graph, case, widths, lut_points, exact, name)
    data = onnx_bytes(graph)
    folders = [out] + ([Path(merge_into)] if merge_into is not None else [])
    name = model_name(data, name, folders)
    onnx_rel = f"onnx/{name}.onnx"
    if not (out / onnx_rel).is_file():  # else: the same bytes are there already
        from gridverify.fileio import atomic_write_bytes

        atomic_write_bytes(out / onnx_rel, data, fsync=False)
    checker = OnnxChecker(data)
    # the graph the runner will see is the ONNX import: make properties on it
    from gridverify.ir import from_onnx

    graph = from_onnx(str(out / onnx_rel))
    x0 = np.concatenate([case.pd, case.qd]).astype(np.float64)
    rng = np.random.default_rng(seed)
    specs: list[InstanceSpec] = []
    for w in widths:
        a, b = x0 * (1 - w), x0 * (1 + w)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        for kind in kinds:
            rows = _rows(kind, case, lay, rng, x0, graph)
            if rows is None:
                continue
            C, d = rows
            worst, wx = _worst(graph, lo, hi, C, d, rng, seed)
            up = _upper(graph, lo, hi, C, d, bound_methods)
            scale = max(1e-3, abs(worst))
            # violated: a threshold below the worst case found (confirmed by onnxruntime)
            t_v = worst - 0.1 * scale
            # holds: above a sound bound (clamped limits: 1e-4 above the limit)
            if kind in ("gen_limits", "voltage_limits"):
                t_h = max(1e-4, up + 1e-4) if np.isfinite(up) else 1e-4
            else:
                t_h = (up + 0.05 * abs(up) + 1e-3) if np.isfinite(up) else None
            # open: only where the gap is above float32 noise (else the answer is rounding)
            gap_ok = np.isfinite(up) and up - worst > 1e-5 * max(1.0, abs(worst))
            t_o = 0.5 * (worst + up) if open_variant and gap_ok else None
            ex = None
            if exact and kind in ("thermal_one", "balance_one") and not isinstance(proxy, Graph):
                ex = _exact(case, proxy, lo, hi, kind, C, lay, exact_time)
            for variant, t in (("violated", t_v), ("holds", t_h), ("open", t_o)):
                if t is None:
                    continue
                fname = f"{name}_{kind}_w{w:g}_{variant}.vnnlib"
                title = (
                    f"{name} {kind} load box +-{w:g} {variant}; threshold {t!r} "
                    f"(worst found {worst!r}, bound {up!r}"
                    + (f", exact in [{ex.witness_value!r}, {ex.bound!r}])" if ex else ")")
                )
                text = _property_text(lo, hi, lay.size, C, d, t, title)
                expected = {"holds": "unsat", "violated": "sat", "open": "unknown"}[variant]
                if ex is not None:
                    expected = _exact_expected(ex, t, variant, fname, checker, text, wx)
                if variant == "violated":
                    prop = parse_vnnlib_text(text, fname)
                    from gridverify.vnncomp.runner import confirm

                    if confirm(checker, prop.cases[0], wx) is None:
                        continue  # float32 rounding ate the margin: no sure witness
                elif variant == "holds" and worst >= t:
                    raise SpecError(f"{fname}: sampled worst {worst} above the sound bound {t}")
                write_atomic(out / "vnnlib" / fname, text)
                specs.append(InstanceSpec(fname, kind, w, variant, expected, text, float(t)))
    _write_csvs(out, onnx_rel, specs, timeout)
    return specs


def _lut_variant(graph, case, widths, lut_points: int, exact: bool, name: str):  # noqa: ANN001, ANN202
    """The lookup-table graph over the largest box, and its model name."""
    from gridverify.vnncomp.lut import lut_graph

    if exact:
        raise SpecError("--exact cannot check the lookup-table variant (SCIP models the "
                        "smooth functions)")
    x0 = np.concatenate([case.pd, case.qd]).astype(np.float64)
    w = max(widths)
    a, b = x0 * (1 - w), x0 * (1 + w)
    return lut_graph(graph, np.minimum(a, b), np.maximum(a, b), lut_points), f"{name}_lut"


def _exact(case, proxy, lo, hi, kind: str, C: np.ndarray, lay: AcopfLayout, time_limit: float):
    """SCIP's bracket of the worst case of the single constraint behind a kind's rows.

    None when the exact encoding refuses the model (then that kind is not cross-checked).
    """
    from gridverify.exact.scip import ExactOptions, exact_worst_case
    from gridverify.spec.constraints import (
        ConstraintSelection,
        select_constraints,
    )

    j = int(np.nonzero(C[0])[0][0])
    if kind == "thermal_one":
        family, index = "thermal_fr", int(lay.thermal_branches[j - lay.block("sf").start])
    else:
        family, index = "p_balance", j - lay.block("rp").start
    sel = select_constraints(case, ConstraintSelection(families=(family,)))
    (con,) = [c for c in sel if c.index == index]
    try:
        return exact_worst_case(case, proxy, lo, hi, con, ExactOptions(time_limit=time_limit))
    except GridverifyError:  # a model SCIP cannot take (e.g. too wide for exp): no check
        return None


def _exact_expected(ex, t: float, variant: str, fname: str, checker, text: str, wx) -> str:
    """The answer the exact bracket implies; SpecError when it contradicts the variant."""
    from gridverify.vnncomp.runner import confirm
    from gridverify.vnncomp.vnnlib import parse_vnnlib_text

    margin = 1e-5 * max(1.0, abs(t))  # float32 model vs float64 module
    # SCIP's bracket: witness_value is attained (float64, re-evaluated), bound is a sound
    # upper bound (loose when SCIP stops at its time or gap limit).
    if variant == "holds" and ex.witness_value >= t + margin:
        raise SpecError(f"{fname}: SCIP attains {ex.witness_value} above the holding threshold {t}")
    if variant == "violated" and ex.bound < t - margin:
        raise SpecError(f"{fname}: SCIP bound {ex.bound} below the violated threshold {t}")
    if variant != "open":
        return "unsat" if variant == "holds" else "sat"
    if ex.bound < t - margin:
        return "unsat"
    if ex.witness_value >= t + margin:
        case = parse_vnnlib_text(text, fname).cases[0]
        if confirm(checker, case, np.asarray(ex.witness, dtype=np.float64)) is not None:
            return "sat"
    return "unknown"


def _write_csvs(out: Path, onnx_rel: str, specs: list[InstanceSpec], timeout: float) -> None:
    inst_path, exp_path = out / "instances.csv", out / "expected.csv"
    old_inst = inst_path.read_text() if inst_path.exists() else ""
    old_exp = exp_path.read_text() if exp_path.exists() else "onnx,vnnlib,result\n"
    mine = {f"vnnlib/{s.name}" for s in specs}

    def keep(text: str) -> list[str]:
        lines = []
        for line in text.splitlines():
            parts = line.split(",")
            if len(parts) >= 2 and parts[0] == onnx_rel and parts[1] in mine:
                continue
            lines.append(line)
        return lines

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in specs:
        w.writerow([onnx_rel, f"vnnlib/{s.name}", f"{timeout:g}"])
    inst = "".join(ln + "\n" for ln in keep(old_inst) if ln)  # the rows of other graphs
    write_atomic(inst_path, inst + buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in specs:
        if s.expected != "unknown":
            w.writerow([onnx_rel, f"vnnlib/{s.name}", s.expected])
    exp = "".join(ln + "\n" for ln in keep(old_exp) if ln)  # its header kept
    write_atomic(exp_path, exp + buf.getvalue())
