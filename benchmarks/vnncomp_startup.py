"""Start-up time of ``gridverify vnncomp run`` for a 300-bus-sized model.

Start-up = interpreter + imports, ONNX load and graph build, property parse.
The model is a case300 proxy (clamp head, about 1.1M parameters) with the AC
physics in one ONNX graph (see ``gridverify.vnncomp.instances``); the property
is power balance at every bus over a +-20% load box.
Run: ``.venv/bin/python benchmarks/vnncomp_startup.py [MODEL.onnx PROP.vnnlib]``
(with arguments it times that instance instead).  Prints a breakdown and the
``startup`` figure the runner reports, best of three runs.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common


def make_instance(folder: Path) -> tuple[Path, Path]:
    """case300 proxy (clamp head, ~1.1M parameters) + physics as one ONNX graph.

    The property is power balance at every bus (2 x 2 x 300 output rows) over
    a +-20% load box.
    """
    import numpy as np
    import torch

    from gridverify.grid import load_compiled
    from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits
    from gridverify.vnncomp.instances import _property_text, _rows, acopf_graph, export_onnx

    case = load_compiled("pglib_opf_case300_ieee", emit_warnings=False)
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (640, 640), "relu", True)
    lo, hi = case_limits(case)
    torch.manual_seed(0)
    proxy = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
    n_params = sum(p.numel() for p in proxy.parameters())
    graph, lay = acopf_graph(case, proxy)
    model = export_onnx(graph, folder / "case300_proxy.onnx")
    x0 = np.concatenate([case.pd, case.qd])
    a, b = x0 * 0.8, x0 * 1.2
    C, d = _rows("balance_all", case, lay, np.random.default_rng(0), x0, graph)
    text = _property_text(np.minimum(a, b), np.maximum(a, b), lay.size, C, d, 1e3, "startup")
    prop = folder / "case300_balance_all.vnnlib"
    prop.write_text(text)
    print(f"model: case300 proxy {n_params:,} parameters + physics, {graph.input_size} inputs, "
          f"{graph.output_size} outputs, {model.stat().st_size / 1e6:.1f} MB; property: "
          f"{len(text.splitlines())} lines")
    return model, prop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Without arguments it builds the case300 proxy instance in a temporary folder "
               "and times that.  Prints a breakdown and the start-up figure, "
               "best of three runs.")
    ap.add_argument("model", nargs="?", type=_common.existing_file, metavar="MODEL.onnx",
                    help="with PROP.vnnlib: time this instance instead")
    ap.add_argument("prop", nargs="?", type=_common.existing_file, metavar="PROP.vnnlib",
                    help="the property of that instance")
    args = ap.parse_args(argv)
    if (args.model is None) != (args.prop is None):
        ap.error("give both MODEL.onnx and PROP.vnnlib, or neither")
    if args.model is not None:
        model, prop = args.model, args.prop
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory()
        model, prop = make_instance(Path(tmp.name))
    py = sys.executable
    imp = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([py, "-c", "import gridverify.vnncomp.runner, torch, onnx"], check=True)
        imp.append(time.perf_counter() - t0)
    print(f"interpreter + imports:            {min(imp):.2f} s")

    from gridverify.ir import from_onnx
    from gridverify.vnncomp.vnnlib import parse_vnnlib

    t0 = time.perf_counter()
    import onnx

    g = from_onnx(onnx.load(str(model)))
    t1 = time.perf_counter()
    parse_vnnlib(prop)
    t2 = time.perf_counter()
    print(f"ONNX load + graph build (in-process): {t1 - t0:.2f} s ({len(g.nodes)} nodes)")
    print(f"property parse (in-process):          {t2 - t1:.2f} s")

    best, best_start, best_cpu = float("inf"), float("inf"), float("inf")
    best_startup_cpu = float("inf")
    with tempfile.TemporaryDirectory() as out:
        for _ in range(3):
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.time()
            r = subprocess.run(
                [py, "-m", "gridverify.cli.vnncomp", "run", str(model), str(prop), "--timeout",
                 "60", "--out", f"{out}/r.txt", "--bounds", "none", "--no-bab",
                 "--no-extend-attack", "--attack-steps", "0", "--attack-restarts", "1",
                 "--started-at", str(t0)],
                capture_output=True, text=True,
            )
            wall = time.time() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            best_cpu = min(best_cpu, cpu)
            m = re.search(r"startup ([0-9.]+)s", r.stdout)
            m_cpu = re.search(r"startup_cpu ([0-9.]+)s", r.stdout)
            if m_cpu:
                best_startup_cpu = min(best_startup_cpu, float(m_cpu.group(1)))
            if m is None:
                print(r.stdout, r.stderr)
                raise SystemExit(1)
            # start-up = wall time until the runner's clock started + its startup lap
            m_total = re.search(r"; ([0-9.]+) s:", r.stdout)
            run_total = float(m_total.group(1)) if m_total else 0.0
            start = wall - run_total + float(m.group(1))
            best = min(best, wall)
            best_start = min(best_start, start)
    print(f"process wall time (attack 0 steps):   {best:.2f} s (CPU {best_cpu:.2f} s)")
    print(f"START-UP (process start -> instance loaded): {best_start:.2f} s wall, "
          f"{best_startup_cpu:.2f} s CPU")
    if tmp is not None:
        tmp.cleanup()
    print("(wall times depend on machine load; the CPU time is the load-independent figure)")
    return 0


if __name__ == "__main__":
    _common.run(main)
