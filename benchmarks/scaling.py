"""How certification grows with the grid: wall time and peak memory per stage, case14 to case1354.

Usage::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/scaling.py \
        [--cases case14,case57,case118,case300,case1354] [--methods ibp,crown,alpha-crown] \
        [--samples 1024] [--attack uncertified] [--timeout 900] [--json OUT.json]

Every (case, method) runs in a fresh worker process (one torch thread) that
times, and records the peak resident memory (``VmHWM``, reset at the start of
each stage through ``/proc/self/clear_refs``) of: case compile, proxy import
(model directory to IR graph), physics graph build (physics graph composed
with the proxy), then one :func:`gridverify.certify` call whose stages
(sampling, the bound stages, attack) are cut at its progress callbacks.
``total`` is the certify call alone; ``peak`` the whole worker's peak RSS.
The growth exponent of a quantity ``q`` is the slope of ``log q`` against
``log n_bus`` (least squares over the cases run, and between case118 and
case1354); ``net`` memory is the peak minus the worker's RSS after its imports.

Proxies: the shipped ``models/caseN_relu`` for case14 to case300.  case1354
has none shipped; the benchmark makes one on first use and caches it under
``.cache/scaling/`` (ignored by git): an OPF dataset of 8 samples
(``gridverify dataset make``, about 2 minutes) and ``gridverify train --hidden
256,256 --epochs 20``.  It is a poor proxy (8 samples), which is all a scaling
measurement needs: same architecture as the case300 one, bounds over the
``[0.9, 1.1]`` training box.

A worker that runs past ``--timeout`` seconds or maps more than ``--memory-limit``
GB of address space beyond what its imports mapped is reported as such (the
limit keeps the shared machine alive).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import _common

from gridverify.certify.options import ATTACKS, METHODS

ROOT = _common.REPO
CACHE = ROOT / ".cache" / "scaling"
CASES = {
    "case14": "pglib_opf_case14_ieee",
    "case57": "pglib_opf_case57_ieee",
    "case118": "pglib_opf_case118_ieee",
    "case300": "pglib_opf_case300_ieee",
    "case1354": "pglib_opf_case1354_pegase",
}
STAGE_ORDER = ("compile", "proxy import", "physics graph", "building graph", "sampling", "ibp",
               "crown", "alpha-crown", "attack", "bab")


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # pragma: no cover - not Linux: peaks are then cumulative
        pass


class _Stages:
    """Cuts a run into stages: wall seconds and peak RSS (MB) of each."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._name: str | None = None
        self._t = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._name = name
        _reset_peak()
        self._t = time.perf_counter()

    def stop(self) -> None:
        if self._name is None:
            return
        self.rows.append({"stage": self._name, "seconds": time.perf_counter() - self._t,
                          "peak_mb": _status_kb("VmHWM") / 1024})
        self._name = None

    def progress(self, stage: str, frac: float) -> None:
        del frac
        name = stage.split(":")[0].split(" (")[0]
        name = "bab" if name.startswith("bab") else name
        if name == "done":
            self.stop()
        elif name != self._name:
            self.start(name)


def model_for(case: str) -> Path:
    """The proxy of ``case`` (shipped, or made once and cached for case1354)."""
    shipped = ROOT / "models" / f"{case}_relu"
    if shipped.is_dir():
        return shipped
    out = CACHE / f"{case}_relu"
    if (out / "card.json").is_file():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    data = CACHE / f"{case}.h5"
    exe = [sys.executable, "-m", "gridverify"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    print(f"making a proxy for {case} (8 OPF samples, 20 epochs) in {out}", file=sys.stderr)
    subprocess.run([*exe, "dataset", "make", CASES[case], "--samples", "8", "--seed", "0",
                    "--out", str(data), "--no-progress", "--time-limit", "600"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([*exe, "train", str(data), "--out", str(out), "--hidden", "256,256",
                    "--epochs", "20", "--seed", "0", "--no-progress"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return out


def worker(case: str, method: str, samples: int, attack: str, extra: dict) -> dict:
    """One (case, method) run in this process; returns its stages."""
    import torch

    torch.set_num_threads(1)
    from gridverify.certify import CertifyOptions, certify
    from gridverify.certify.certify import _resolve_constraints, proxy_graph
    from gridverify.grid import load_compiled
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.proxy.load import load_proxy

    base_mb = _status_kb("VmRSS") / 1024
    st = _Stages()
    st.start("compile")
    compiled = load_compiled(CASES[case])
    st.start("proxy import")
    prox = load_proxy(model_for(case), case=compiled)
    pg = proxy_graph(prox)
    st.start("physics graph")
    physics = build_physics_graph(compiled, _resolve_constraints(compiled, None))
    graph = compose_with_proxy(physics, pg)
    st.stop()
    n_rows, n_nodes = physics.n_rows, len(graph.nodes)
    del physics, graph, pg
    opts = CertifyOptions(samples=samples, attack=attack, **extra)
    t0 = time.perf_counter()
    cert = certify(compiled, prox, method=method, options=opts, progress=st.progress)
    total = time.perf_counter() - t0
    st.stop()
    counts: dict[str, int] = {}
    for c in cert.constraints:
        counts[c.status] = counts.get(c.status, 0) + 1
    return {
        "case": case, "method": method, "n_bus": compiled.n_bus, "n_rows": n_rows,
        "n_nodes": n_nodes, "stages": st.rows, "total": total,
        "peak_mb": _status_kb("VmHWM") / 1024, "base_mb": base_mb,
        "max_peak_mb": max(r["peak_mb"] for r in st.rows), "status": counts,
        "warnings": list(cert.warnings),
    }


def _run_worker(case: str, method: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, method, "--samples", str(args.samples),
           "--attack", args.attack, "--memory-limit", str(args.memory_limit)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"case": case, "method": method, "failed": f"timeout > {args.timeout:.0f} s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"case": case, "method": method,
                "failed": f"exit {p.returncode} after {time.perf_counter() - t0:.0f} s: {last}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _slope(xs: list[float], ys: list[float]) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else float("nan")


def _stage(res: dict, name: str) -> dict | None:
    rows = [r for r in res.get("stages", []) if r["stage"] == name]
    if not rows:
        return None
    return {"seconds": sum(r["seconds"] for r in rows),
            "peak_mb": max(r["peak_mb"] for r in rows)}


def table(results: list[dict]) -> str:
    """The markdown table of the runs and the growth exponents."""
    lines = ["| case | buses | rows | method | stage | seconds | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        head = f"| {res['case']} | {res.get('n_bus', '')} | {res.get('n_rows', '')} | " \
               f"{res['method']} |"
        if "failed" in res:
            lines.append(f"{head} (run) | {res['failed']} | |")
            continue
        for name in STAGE_ORDER:
            s = _stage(res, name)
            if s is not None:
                lines.append(f"{head} {name} | {s['seconds']:.2f} | {s['peak_mb']:.0f} |")
        lines.append(f"{head} **certify total** | **{res['total']:.2f}** | "
                     f"**{res['peak_mb']:.0f}** |")
    lines += ["", "| method | quantity | exponent (all cases) | exponent (case118 to case1354) |",
              "|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in results):
        ok = [r for r in results if r["method"] == method and "failed" not in r]
        if len(ok) < 2:
            continue
        nb = [r["n_bus"] for r in ok]
        qty = {
            "certify time": [r["total"] for r in ok],
            "peak RSS": [r["peak_mb"] for r in ok],
            "net peak RSS": [max(r["peak_mb"] - r["base_mb"], 1.0) for r in ok],
        }
        bound = _stage(ok[0], method if method != "alpha-crown" else "crown")
        if bound is not None:
            qty[f"{'ibp' if method == 'ibp' else 'crown'} stage time"] = [
                (_stage(r, "ibp" if method == "ibp" else "crown") or {"seconds": 0})["seconds"]
                for r in ok]
        for name, ys in qty.items():
            pair = {r["case"]: y for r, y in zip(ok, ys)}
            two = "n/a"
            if "case118" in pair and "case1354" in pair:
                two = f"{math.log(pair['case1354'] / pair['case118']) / math.log(1354 / 118):.2f}"
            lines.append(f"| {method} | {name} | {_slope(nb, ys):.2f} | {two} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default=",".join(CASES))
    ap.add_argument("--methods", type=_common.keys(METHODS, "method"),
                    default="ibp,crown,alpha-crown")
    ap.add_argument("--samples", type=_common.count(1), default=1024)
    ap.add_argument("--attack", default="uncertified", choices=ATTACKS)
    ap.add_argument("--timeout", type=_common.positive_float, default=900.0,
                    help="seconds per worker")
    ap.add_argument("--memory-limit", type=_common.positive_float, default=12.0,
                    help="address-space limit of a worker, GB")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--render", nargs="+", metavar="JSON", type=_common.existing_file,
                    help="print the table of results saved with --json (no runs)")
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        import torch  # noqa: F401 - loaded before the limit (its libraries map much address space)

        import gridverify.certify  # noqa: F401

        lim = int(args.memory_limit * 2**30) + _status_kb("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        print(json.dumps(worker(*args.worker, args.samples, args.attack, {})))
        return 0
    if args.render:
        saved = []
        for f in args.render:
            try:
                data = json.loads(f.read_text())
            except ValueError as exc:
                ap.error(f"--render {f}: not JSON ({exc})")
            if not isinstance(data, list) or not all(
                    isinstance(r, dict) and "case" in r and "method" in r for r in data):
                ap.error(f"--render {f}: not a results file of --json")
            saved += data
        print(table(saved))
        return 0
    _common.check_outputs(json=args.json)
    for case in args.cases:
        model_for(case)
    results = []
    for case in args.cases:
        for method in args.methods:
            res = _run_worker(case, method, args)
            results.append(res)
            summary = res.get("failed") or f"{res['total']:.1f} s, peak {res['peak_mb']:.0f} MB"
            print(f"{case} {method}: {summary}", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        _common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    _common.run(main)
