"""Start-up time of ``gridverify --help`` and of the light ``vnncomp run`` entry.

Usage::

    python benchmarks/startup.py [--against OTHER_CHECKOUT] [--repeats 7]

Each command runs in a fresh interpreter with the checkout on ``PYTHONPATH``;
the figure is the best wall time of ``--repeats`` runs.  With ``--against``,
the other checkout (e.g. a ``git worktree`` of an earlier commit) is timed in
the same script, runs of the two alternating, and the ratio is printed
(below 1: this checkout starts faster).  ``vnncomp run`` decides a tiny
instance (a 4-input network, one output property) with the bounds, the
branch-and-bound and the extended attack off, so that its time is start-up:
imports, ONNX load, property parse, one attack round and the result file.
The vnncomp entry is ``python -m gridverify.cli.vnncomp`` where the checkout
has it, else the older ``python -m gridverify.vnncomp``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

ROOT = _common.REPO


def _tiny_instance(folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import torch

    from gridverify.ir import GraphBuilder
    from gridverify.ir.onnx_export import to_onnx

    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", 4)
    h = b.relu(b.linear(x, torch.tensor(rng.normal(size=(8, 4))), torch.zeros(8)))
    b.output(b.linear(h, torch.tensor(rng.normal(size=(2, 8))), torch.zeros(2)), "y")
    model = folder / "tiny.onnx"
    to_onnx(b.build(), model, batch_dim=1, dtype=np.float32)
    lines = [f"(declare-const X_{i} Real)" for i in range(4)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(2)]
    lines += [f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))" for i in range(4)]
    lines += ["(assert (>= Y_0 1000.0))"]
    prop = folder / "tiny.vnnlib"
    prop.write_text("\n".join(lines) + "\n")
    return model, prop


def _vnncomp_entry(checkout: Path) -> str:
    entry = checkout / "gridverify" / "cli" / "vnncomp.py"
    text = entry.read_text() if entry.is_file() else ""
    return "gridverify.cli.vnncomp" if "def main(" in text else "gridverify.vnncomp"


def _time(checkout: Path, args: list[str], cwd: str) -> float:
    """Wall seconds of one run (``cwd`` outside both checkouts: ``-m`` puts it first on
    the path); a run that fails is an error, not a fast start."""
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                       text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 3):  # --help: 0; the tiny instance: unknown (3)
        raise SystemExit(f"{checkout}: {' '.join(args[:2])} exited {r.returncode}: "
                         f"{r.stderr.strip()[-300:]}")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=_common.existing_dir,
                    help="another checkout to time in the same run")
    ap.add_argument("--repeats", type=_common.count(1), default=7)
    a = ap.parse_args(argv)
    if a.against and not (a.against / "gridverify" / "__init__.py").is_file():
        ap.error(f"--against {a.against}: not a gridverify checkout (no gridverify/__init__.py)")
    checkouts = {"this": ROOT} | ({"against": a.against.resolve()} if a.against else {})
    with tempfile.TemporaryDirectory() as tmp:
        model, prop = _tiny_instance(Path(tmp))
        cmds = {
            "gridverify --help": lambda co: ["-m", "gridverify", "--help"],
            "vnncomp run (tiny)": lambda co: [
                "-m", _vnncomp_entry(co), "run", str(model), str(prop), "--timeout", "30",
                "--out", str(Path(tmp) / f"r_{co.name}.txt"), "--bounds", "none", "--no-bab",
                "--no-extend-attack"],
        }
        best = {(c, k): float("inf") for c in cmds for k in checkouts}
        for _ in range(a.repeats):
            for c, make in cmds.items():
                for k, co in checkouts.items():
                    best[c, k] = min(best[c, k], _time(co, make(co), tmp))
    print("| command | " + " | ".join(f"{k} (s)" for k in checkouts)
          + (" | this / against |" if a.against else " |"))
    print("|---|" + "---|" * len(checkouts) + ("---|" if a.against else ""))
    for c in cmds:
        row = f"| {c} | " + " | ".join(f"{best[c, k]:.2f}" for k in checkouts)
        if a.against:
            row += f" | {best[c, 'this'] / best[c, 'against']:.2f}"
        print(row + " |")
    return 0


if __name__ == "__main__":
    _common.run(main)
