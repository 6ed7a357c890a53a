"""Time the VNN-LIB parser on large generated properties.

Run: ``.venv/bin/python benchmarks/vnnlib_parse.py [N_ASSERTIONS]`` (default 20000).
Prints the seconds per file for three shapes: input bounds only (one assertion
per bound), output rows in one big disjunction, and an input disjunction of
boxes.  The issue's acceptance asks for under 1 s at 20,000 assertions.  Wall
time depends on the machine's load; the CPU time of this process does much less.
"""

from __future__ import annotations

import argparse
import time

import _common

from gridverify.vnncomp.vnnlib import parse_vnnlib_text


def box_property(n_assert: int) -> str:
    """n_assert/2 inputs each bounded by two assertions, and 4 outputs."""
    n_in = n_assert // 2
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(4)]
    for i in range(n_in):
        lines.append(f"(assert (>= X_{i} {-0.1 - i * 1e-6:.9f}))")
        lines.append(f"(assert (<= X_{i} {0.1 + i * 1e-6:.9f}))")
    lines.append("(assert (or (and (>= Y_0 Y_1)) (and (<= (+ (* 2.0 Y_2) (* -1 Y_3)) 0.5))))")
    return "\n".join(lines) + "\n"


def output_property(n_assert: int) -> str:
    """10 inputs and n_assert output rows in one disjunction."""
    lines = [f"(declare-const X_{i} Real)" for i in range(10)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(100)]
    lines += [f"(assert (<= X_{i} 1.0))\n(assert (>= X_{i} -1.0))" for i in range(10)]
    rows = [f"(and (>= Y_{k % 100} {k * 0.001:.6f}))" for k in range(n_assert)]
    lines.append("(assert (or\n" + "\n".join(rows) + "\n))")
    return "\n".join(lines) + "\n"


def input_disjunction(n_assert: int) -> str:
    """n_assert/10 boxes over 5 inputs, each with its own output row."""
    lines = [f"(declare-const X_{i} Real)" for i in range(5)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(2)]
    cases = []
    for k in range(n_assert // 11):
        bounds = " ".join(f"(>= X_{i} {k:.1f}) (<= X_{i} {k + 0.5:.1f})" for i in range(5))
        cases.append(f"(and {bounds} (>= Y_0 Y_1))")
    lines.append("(assert (or\n" + "\n".join(cases) + "\n))")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Prints the best of three parses (wall and CPU seconds) for each shape.")
    ap.add_argument("n_assertions", nargs="?", type=_common.count(1), default=20000,
                    metavar="N_ASSERTIONS",
                    help="assertions per generated property (default 20000)")
    n = ap.parse_args(argv).n_assertions
    for name, make in (
        ("input bounds", box_property),
        ("output disjunction", output_property),
        ("input disjunction", input_disjunction),
    ):
        text = make(n)
        best = best_cpu = float("inf")
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            prop = parse_vnnlib_text(text)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        n_out_rows = sum(len(c.output) for c in prop.cases)
        print(
            f"{name:20s} {n} assertions-equivalent, {len(text.splitlines())} lines: "
            f"{best:.3f} s wall, {best_cpu:.3f} s CPU  (cases {len(prop.cases)}, "
            f"output disjuncts {n_out_rows})"
        )
    return 0


if __name__ == "__main__":
    _common.run(main)
