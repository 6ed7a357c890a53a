"""Cost of the training progress file (``train_proxy(resume=TrainProgress(...))``).

Trains the same proxy with and without a progress file in one process, on a
fresh case14 dataset (``--samples`` AC-OPF solves, box 0.9..1.1), and prints the
ratio of their wall times per repeat; the first, warm-up run is not counted.
Both runs must end with the same weights (checked).

    .venv/bin/python benchmarks/train_resume.py [--samples 400] [--epochs 150]
        [--hidden 64,64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common
import torch

from gridverify.grid import load_compiled
from gridverify.opf.dataset import make_dataset
from gridverify.opf.samplers import BoxSampler
from gridverify.proxy.data import read_proxy_data
from gridverify.proxy.train import TrainOptions, TrainProgress, train_proxy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=_common.count(1), default=400,
                    help="dataset rows to solve")
    ap.add_argument("--epochs", type=_common.count(1), default=150,
                    help="epochs per training run")
    ap.add_argument("--hidden", type=_common.hidden_sizes, default="64,64",
                    help="hidden sizes")
    ap.add_argument("--repeats", type=_common.count(1), default=3, help="timed pairs of runs")
    args = ap.parse_args()
    case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case14.h5"
        make_dataset(case, args.samples, path, BoxSampler(0.9, 1.1), seed=0, progress=False)
        data = read_proxy_data(path, case)
        hidden = args.hidden
        opts = TrainOptions(hidden=hidden, epochs=args.epochs, patience=10 * args.epochs,
                            progress=False)
        train_proxy(case, data, TrainOptions(hidden=hidden, epochs=3, progress=False),
                    compute_baseline=False)  # warm-up
        print("| repeat | without file, s | with file, s | ratio |")
        print("|---|---|---|---|")
        for rep in range(args.repeats):
            t = time.perf_counter()
            a = train_proxy(case, data, opts, compute_baseline=False)
            plain = time.perf_counter() - t
            t = time.perf_counter()
            b = train_proxy(case, data, opts, compute_baseline=False,
                            resume=TrainProgress(Path(tmp) / f"p{rep}.pt"))
            saved = time.perf_counter() - t
            sa, sb = a.module.state_dict(), b.module.state_dict()
            if not all(torch.equal(sa[k], sb[k]) for k in sa):
                print("MISMATCH: the runs end with different weights")
                return 1
            print(f"| {rep + 1} | {plain:.2f} | {saved:.2f} | {saved / plain:.3f} |")
    return 0


if __name__ == "__main__":
    _common.run(main)
