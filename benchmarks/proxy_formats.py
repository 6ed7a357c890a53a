"""One shipped proxy saved in every file format gridverify reads, side by side.

Usage: ``python benchmarks/proxy_formats.py [--models case14_relu,case118_relu]
[--runs 3]``.

Writes each model (a shipped model directory) as its ONNX file (shipped), a
torch.export program (``.pt2``, dynamic batch) and a TorchScript archive
(traced), then, in this process, per format: the time of ``load_proxy`` (the
import into the gridverify graph included; best of ``--runs``), its ratio to
loading the model directory, the time of a CROWN certificate of every
constraint over ``box:0.9,1.1`` as a ratio to the directory's, and the largest
difference of its bounds from the directory's (0: the same graph).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import _common
import numpy as np
import torch


def _best(fn, runs: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(model: str, runs: int, folder: Path) -> list[dict]:
    from gridverify.certify import CertifyOptions, certify
    from gridverify.grid import load_compiled
    from gridverify.proxy import load_proxy
    from gridverify.spec.region import parse_region

    directory = Path(_common.model_path(model))
    base = load_proxy(directory)
    case = load_compiled(base.case_name, emit_warnings=False)
    module = base.module.float().eval()  # what a user saves: float32 weights
    x = torch.zeros(4, base.input_size)
    pt2, ts = folder / f"{model}.pt2", folder / f"{model}.pt"
    torch.export.save(torch.export.export(module, (x,), dynamic_shapes=(
        {0: torch.export.Dim("batch")},)), pt2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, x), ts)
    sources = {"directory": directory, "onnx": directory / "model.onnx", "pt2": pt2,
               "torchscript": ts}
    region = parse_region("box:0.9,1.1", case)
    opts = CertifyOptions(samples=16, attack="none", radius=False)
    rows, ref = [], {}
    for name, src in sources.items():
        t_load, proxy = _best(lambda s=src: load_proxy(s, case=case), runs)
        t_cert, cert = _best(lambda p=proxy: certify(case, p, region, method="crown",
                                                     options=opts), runs)
        ub = np.array([c.upper_bound for c in cert.constraints])
        if not ref:
            ref = {"load": t_load, "cert": t_cert, "ub": ub}
        fin = np.isfinite(ub) & np.isfinite(ref["ub"])
        diff = float(np.max(np.abs(ub[fin] - ref["ub"][fin]) / np.maximum(1, np.abs(ub[fin]))))
        rows.append({"model": model, "format": name, "load_s": t_load,
                     "load_ratio": t_load / ref["load"], "certify_ratio": t_cert / ref["cert"],
                     "max_rel_bound_diff": diff, "constraints": int(ub.size)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shipped = _common.shipped_models()
    ap.add_argument("--models", type=_common.keys(shipped, "model"),
                    default="case14_relu,case118_relu",
                    help=f"comma list of shipped models ({', '.join(shipped)})")
    ap.add_argument("--runs", type=_common.count(1), default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'model':14s} {'format':12s} {'load s':>8s} {'load/dir':>9s} {'certify/dir':>12s} "
          f"{'bound diff':>11s}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for r in measure(model, args.runs, Path(tmp)):
                print(f"{r['model']:14s} {r['format']:12s} {r['load_s']:8.3f} "
                      f"{r['load_ratio']:9.2f} {r['certify_ratio']:12.2f} "
                      f"{r['max_rel_bound_diff']:11.1e}", flush=True)
    return 0


if __name__ == "__main__":
    _common.run(main)
