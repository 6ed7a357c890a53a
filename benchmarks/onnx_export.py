"""ONNX export of the ACOPF graph: this checkout's exporter against an earlier one.

Usage: ``python benchmarks/onnx_export.py [--cases case300,case1354] [--baseline REV]
[--runs 200]``.

Builds the proxy + physics graph of ``vnncomp make-instances`` (an untrained
relu 64x64 proxy with the clamp head) for each case and exports it twice in the
same process: with ``gridverify.ir.onnx_export`` of this checkout and with the
same module as of git revision ``REV`` (default: the last one that wrote
``ScatterElements``).  Prints, as ratios this/baseline: file size, onnxruntime
time per inference (batch 1, one thread), re-import time, and the time of IBP
and CROWN bounds (20 balance rows, a 1 % load box) on the re-imported graphs,
whose bounds must be equal.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import numpy as np
import torch

CASES = {"case118": "pglib_opf_case118_ieee", "case300": "pglib_opf_case300_ieee",
         "case1354": "pglib_opf_case1354_pegase"}


def _baseline_module(rev: str):
    try:
        src = subprocess.run(["git", "show", f"{rev}:gridverify/ir/onnx_export.py"],
                             check=True, capture_output=True, text=True, cwd=_common.REPO).stdout
    except subprocess.CalledProcessError as e:
        _common.fail(f"--baseline {rev}: git show failed in {_common.REPO}: {e.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / "baseline_onnx_export.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_onnx_export", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _best(fn, runs: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(runs):
            fn()
        best = min(best, (time.perf_counter() - t) / runs)
    return best


def _measure(to_onnx, graph, case, spec, lo, hi, runs: int) -> dict[str, float]:
    import onnxruntime as ort

    from gridverify.bounds import compute_bounds
    from gridverify.ir import from_onnx

    m = to_onnx(graph, None, batch_dim=1, input_names=["X"], output_names=["Y"],
                dtype=np.float32)
    data = m.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    x = np.concatenate([case.pd, case.qd]).astype(np.float32)[None]
    out: dict[str, float] = {"size MB": len(data) / 1e6}
    out["onnxruntime s"] = _best(lambda: sess.run(None, {"X": x}), runs)
    t = time.perf_counter()
    g = from_onnx(m)
    out["import s"] = time.perf_counter() - t
    for method in ("ibp", "crown"):
        res: list = []

        def bound(meth: str = method, acc: list = res) -> None:
            acc.append(compute_bounds(g, lo, hi, method=meth, spec=spec))

        out[f"{method} s"] = _best(bound, 1)
        out[f"{method} ub"] = float(res[-1].upper.max())
    return out


def main(argv: list[str] | None = None) -> int:
    from gridverify.grid import load_compiled
    from gridverify.ir import onnx_export
    from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits
    from gridverify.vnncomp.instances import acopf_graph

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case300",
                    help=f"comma-separated, of {', '.join(CASES)} (default case300)")
    ap.add_argument("--baseline", default="4d7ea73")
    ap.add_argument("--runs", type=_common.count(1), default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = _baseline_module(args.baseline)
    print("| case | quantity | baseline | this | this/baseline |")
    print("|---|---|---|---|---|")
    for key in args.cases:
        case = load_compiled(CASES[key], emit_warnings=False)
        arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (64, 64), "relu", True)
        lo_h, hi_h = case_limits(case)
        torch.manual_seed(0)
        proxy = ProxyMLP(arch, head_lo=lo_h, head_hi=hi_h, dtype=torch.float64).eval()
        graph, lay = acopf_graph(case, proxy)
        x0 = np.concatenate([case.pd, case.qd])
        a, c = x0 * 0.99, x0 * 1.01
        lo, hi = torch.tensor(np.minimum(a, c))[None], torch.tensor(np.maximum(a, c))[None]
        spec = torch.zeros(20, lay.size, dtype=torch.float64)
        spec[torch.arange(20), lay.block("rp").start + torch.arange(20)] = 1.0
        b: dict[str, float] = {}
        n: dict[str, float] = {}
        for _ in range(2):  # alternate, keep the best of each (warm-up is not measured)
            for fn, acc in ((base.to_onnx, b), (onnx_export.to_onnx, n)):
                for q, v in _measure(fn, graph, case, spec, lo, hi, args.runs).items():
                    acc[q] = min(acc.get(q, v), v)
        for q in b:
            print(f"| {key} | {q} | {b[q]:.4g} | {n[q]:.4g} | {n[q] / b[q]:.2f}x |")
        if b["crown ub"] != n["crown ub"] or b["ibp ub"] != n["ibp ub"]:
            print(f"{key}: bounds differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    _common.run(main)
