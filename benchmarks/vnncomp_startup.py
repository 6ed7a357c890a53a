"""Start-up time of ``gridverify vnncomp run`` for a 300-bus-sized model.

Start-up = interpreter + imports, ONNX load and graph build, property parse.
The model is an MLP with about one million parameters and the input/output
sizes of a 300-bus case (~200 loads x (pd, qd) in; pg, qg of 69 generators and
vm, va of 300 buses out); the property has the load box and one output row per
voltage bound.  Run: ``.venv/bin/python benchmarks/vnncomp_startup.py [MODEL.onnx PROP.vnnlib]``
(with arguments it times that instance instead).  Prints a breakdown and the
``startup`` figure the runner reports, best of three runs.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "vnncomp"))


def make_instance(folder: Path) -> tuple[Path, Path]:
    """A ~1M-parameter MLP ONNX model and a property over its load box."""
    from vnncomp_fixtures import mlp_onnx, random_weights

    n_in, n_out = 2 * 200, 2 * 69 + 2 * 300
    sizes = [n_in, 1024, 512, 512, n_out]
    weights = random_weights(0, sizes)
    n_params = sum(W.size + b.size for W, b in weights)
    model = mlp_onnx(folder / "proxy300.onnx", weights)
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lines.append(f"(assert (>= X_{i} {0.8 + 0.001 * (i % 7):.4f}))")
        lines.append(f"(assert (<= X_{i} {1.2 - 0.001 * (i % 5):.4f}))")
    vm = range(2 * 69, 2 * 69 + 300)
    rows = [f"(and (<= Y_{j} 0.94))" for j in vm] + [f"(and (>= Y_{j} 1.06))" for j in vm]
    lines.append("(assert (or\n" + "\n".join(rows) + "\n))")
    prop = folder / "prop300.vnnlib"
    prop.write_text("\n".join(lines) + "\n")
    print(f"model: {n_params:,} parameters, {n_in} inputs, {n_out} outputs; "
          f"property: {len(lines)} lines")
    return model, prop


def main() -> None:
    if len(sys.argv) == 3:
        model, prop = Path(sys.argv[1]), Path(sys.argv[2])
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
    with tempfile.TemporaryDirectory() as out:
        for _ in range(3):
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.time()
            r = subprocess.run(
                [py, "-m", "gridverify", "vnncomp", "run", str(model), str(prop), "--timeout",
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
    print(f"START-UP (process start -> instance loaded): {best_start:.2f} s")
    if tmp is not None:
        tmp.cleanup()
    print("(wall times depend on machine load; the CPU time is the load-independent figure)")


if __name__ == "__main__":
    main()
