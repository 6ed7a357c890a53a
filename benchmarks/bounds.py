"""Benchmark of the bound engine on ACOPF-proxy-shaped graphs.

Three sizes (MLP with relu hidden layers and a sigmoid head, then a physics block
of products and trig over the branches):

* small  22 -> 32x3 -> 38, 20 branches
* medium 198 -> 128 -> 128 -> 256 -> 344, 186 branches
* large  402 -> 256 -> 256 -> 512 -> 738, 411 branches

For 1 and 256 domains (boxes of radius ``--radius`` around random centres), the
time and peak memory of IBP, CROWN and alpha-CROWN, absolute and as ratios to
IBP in the same run.  Peak memory: on CUDA ``torch.cuda.max_memory_allocated``;
on CPU the growth of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` after ``malloc_trim`` before each run) over the
resident set before it (allocations served from pages the process already
holds are not seen, so small figures are lower bounds; memory ratios use a
floor of 1 MiB for IBP).

    .venv/bin/python benchmarks/bounds.py                       # cpu, everything
    .venv/bin/python benchmarks/bounds.py --device cuda --json out.json
    .venv/bin/python benchmarks/bounds.py --sizes small,medium --domains 1,16

``--device cuda`` on a machine without CUDA prints ``cuda: skipped (no CUDA)`` and
exits 0 (no JSON is written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bounds"))
import _common  # noqa: E402
from engine_graphs import mlp_physics_graph  # noqa: E402

from gridverify.bounds import BoundOptions, compute_bounds  # noqa: E402
from gridverify.bounds.options import METHODS  # noqa: E402

SIZES = {
    "small": (22, (32, 32, 32), 38, 20),
    "medium": (198, (128, 128, 256), 344, 186),
    "large": (402, (256, 256, 512), 738, 411),
}


def _rss_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak_cpu() -> int:
    try:  # hand freed heap pages back so that the next run's growth is visible
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _rss_kib("VmRSS")


def measure(graph, lo, hi, method: str, options: BoundOptions, device: torch.device,
            dtype: torch.dtype) -> dict:
    """Time (s) and peak memory (MiB) of one ``compute_bounds`` call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _reset_peak_cpu()
    t0 = time.perf_counter()
    r = compute_bounds(graph, lo, hi, method=method, options=options, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = max(0, _rss_kib("VmHWM") - base) / 1024
    width = float((r.upper - r.lower).double().mean())
    return {"time_s": dt, "peak_mib": peak, "mean_width": width}


def run(args: argparse.Namespace) -> list[dict]:
    """Every (size, domains, method) row of the benchmark."""
    device = torch.device(args.device)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    opts = BoundOptions(alpha_iterations=args.alpha_iterations, alpha_lr=0.1,
                        memory_mb=args.memory_mb)
    rows: list[dict] = []
    # warm-up (lazy imports, CUDA context, kernels)
    g0 = mlp_physics_graph(*SIZES["small"], seed=1)
    z = torch.zeros(1, 22, dtype=dtype, device=device)
    for m in args.methods:
        compute_bounds(g0, z - 0.1, z + 0.1, method=m,
                       options=BoundOptions(alpha_iterations=2), dtype=dtype)
    for size in args.sizes:
        n_in, hidden, n_out, n_br = SIZES[size]
        g = mlp_physics_graph(n_in, hidden, n_out, n_br, seed=0)
        for b in args.domains:
            gen = torch.Generator().manual_seed(b)
            c = torch.randn(b, n_in, generator=gen, dtype=torch.float64)
            lo = (c - args.radius).to(device, dtype)
            hi = (c + args.radius).to(device, dtype)
            base = None
            for m in args.methods:
                res = measure(g, lo, hi, m, opts, device, dtype)
                if m == "ibp":
                    base = res
                row = {"size": size, "domains": b, "method": m, "nodes": len(g.nodes),
                       "outputs": g.output_size, **res}
                if base is not None:
                    row["time_vs_ibp"] = res["time_s"] / max(base["time_s"], 1e-9)
                    # IBP's own peak is often below the resolution: floor it at 1 MiB
                    row["mem_vs_ibp"] = res["peak_mib"] / max(base["peak_mib"], 1.0)
                    row["width_vs_ibp"] = res["mean_width"] / max(base["mean_width"], 1e-300)
                rows.append(row)
                print(_fmt(row), flush=True)
    return rows


def _fmt(r: dict) -> str:
    s = (f"{r['size']:>6} B={r['domains']:<4} {r['method']:<11} "
         f"time {r['time_s']:9.3f} s  peak {r['peak_mib']:9.1f} MiB  "
         f"width {r['mean_width']:.4g}")
    if "time_vs_ibp" in r:
        s += (f"  | vs IBP: time x{r['time_vs_ibp']:.1f}, mem x{r['mem_vs_ibp']:.1f}, "
              f"width x{r['width_vs_ibp']:.3f}")
    return s


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", type=_common.device,
                   default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=_common.keys(SIZES, "size"), default="small,medium,large")
    p.add_argument("--domains", type=_common.number_list(), default="1,256")
    p.add_argument("--methods", type=_common.keys(METHODS, "method"),
                   default="ibp,crown,alpha-crown")
    p.add_argument("--alpha-iterations", type=_common.count(0), default=20)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--radius", type=_common.positive_float, default=0.05)
    p.add_argument("--memory-mb", type=_common.positive_float, default=2048.0)
    p.add_argument("--threads", type=_common.count(0), default=0,
                   help="torch CPU threads (0: default)")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = p.parse_args(argv)
    _common.check_outputs(json=args.json)
    if _common.cuda_missing(args.device):
        return 0
    if "ibp" in args.methods:
        args.methods.remove("ibp")
    args.methods.insert(0, "ibp")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (
        f"cpu ({torch.get_num_threads()} threads)")
    print(f"# device {name}, dtype {args.dtype}, torch {torch.__version__}, "
          f"alpha iterations {args.alpha_iterations}, radius {args.radius}", flush=True)
    rows = run(args)
    if args.json:
        _common.write_json(args.json, {"device": name, "dtype": args.dtype, "rows": rows})
    return 0


if __name__ == "__main__":
    _common.run(main)
