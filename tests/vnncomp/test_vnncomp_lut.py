"""Lookup-table variant of our instances: tables, ONNX pattern, import as pwl, answers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from vnncomp_fixtures import tiny_acopf_proxy  # noqa: E402

from gridverify.grid import load_compiled
from gridverify.ir import from_onnx
from gridverify.vnncomp.instances import acopf_graph, export_onnx, make_benchmark
from gridverify.vnncomp.lut import lut_graph, table_attrs
from gridverify.vnncomp.runner import RunOptions, run_instance

F64 = torch.float64


_proxy = tiny_acopf_proxy


@pytest.fixture(scope="module")
def case5():
    return load_compiled("pglib_opf_case5_pjm", emit_warnings=False)


def _box(case, w):
    x0 = np.concatenate([case.pd, case.qd])
    a, b = x0 * (1 - w), x0 * (1 + w)
    return np.minimum(a, b), np.maximum(a, b)


def test_table_interpolates_within_the_interpolation_error():
    from gridverify.ir.ops import pwl_forward

    lo = torch.tensor([-4.0, 0.5, -1.0], dtype=F64)
    hi = torch.tensor([3.0, 0.6, 7.0], dtype=F64)
    n = 17
    a = table_attrs(torch.sin, lo, hi, n)
    t = a["breaks"]
    args = (a["breaks"], a["weights"], a["slope"], a["bias"])
    # exact at the grid points, within h^2/8 max|sin''| between them, constant outside
    assert torch.allclose(pwl_forward(t.T, *args).T, torch.sin(t), atol=1e-14)
    xs = lo + (hi - lo) * torch.linspace(0, 1, 5001, dtype=F64)[:, None]
    h = (hi - lo) / (n - 1)
    err = (pwl_forward(xs, *args) - torch.sin(xs)).abs().amax(0)
    assert bool((err <= h**2 / 8 + 1e-14).all()), (err, h**2 / 8)
    out = pwl_forward(torch.stack([lo - 5, hi + 5]), *args)
    assert torch.allclose(out, torch.sin(torch.stack([lo, hi])), atol=1e-14)


def test_lut_export_close_to_smooth_and_imports_as_pwl(case5, tmp_path: Path):
    graph, _ = acopf_graph(case5, _proxy(case5))
    lo, hi = _box(case5, 0.1)
    xs = np.random.default_rng(0).uniform(lo, hi, size=(64, lo.size)).astype(np.float32)

    def run(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(None, {"X": x[None]})[0] for x in xs]).astype(np.float64)

    y_smooth = run(export_onnx(graph, tmp_path / "smooth.onnx"))
    errs = {}
    for n in (16, 32):
        path = export_onnx(lut_graph(graph, lo, hi, n), tmp_path / f"lut{n}.onnx")
        ops = {nd.op_type for nd in onnx.load(str(path)).graph.node}
        assert "Relu" in ops and not ops & {"Sin", "Cos", "Sigmoid", "Tanh"}
        y = run(path)
        errs[n] = float(np.abs(y - y_smooth).max() / (1 + np.abs(y_smooth).max()))
        g = from_onnx(str(path))
        gops = {nd.op for nd in g.nodes}
        assert "pwl" in gops and not gops & {"relu", "sin", "cos", "sigmoid", "tanh"}
        y_gv = g.evaluate_flat(torch.tensor(xs, dtype=F64)).numpy()
        assert np.allclose(y_gv, y, rtol=1e-4, atol=1e-3 * (1 + np.abs(y).max()))
    # interpolation error: small, and quadratic in the grid step
    assert errs[32] < 1e-3 and errs[32] < errs[16] / 2.5, errs


def test_lut_benchmark_answers_match_expected(case5, tmp_path: Path):
    specs = make_benchmark(case5, _proxy(case5), tmp_path, widths=(0.05,),
                           kinds=("thermal_one", "balance_one"), timeout=30, lut_points=24)
    assert specs and {s.expected for s in specs} == {"sat", "unsat"}
    rows = list(csv.reader((tmp_path / "instances.csv").open()))
    exp = {r[1]: r[2] for r in csv.reader((tmp_path / "expected.csv").open())}
    assert rows[0][0].endswith("_lut.onnx")
    decided = 0
    for onnx_rel, vnn_rel, _ in rows:
        out = run_instance(tmp_path / onnx_rel, tmp_path / vnn_rel,
                           RunOptions(timeout=60, extend_attack=False))
        assert out.result in (exp[vnn_rel], "unknown"), (vnn_rel, out)
        decided += out.result != "unknown"
    assert decided == len(rows)


def test_make_instances_lut_flags(tmp_path: Path, capsys):
    from gridverify.cli import main

    base = ["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out", str(tmp_path),
            "--hidden", "4", "--kinds", "thermal_one", "--widths", "0.05"]
    assert main([*base, "--nonlinear", "lut", "--lut-points", "12"]) == 0
    out = capsys.readouterr().out
    assert "_lut.onnx" in out
    (model,) = (tmp_path / "onnx").iterdir()
    assert model.name.endswith("_lut.onnx")
    assert main([*base, "--nonlinear", "lut", "--lut-points", "1"]) == 2
    assert "--lut-points" in capsys.readouterr().err
    assert main([*base, "--nonlinear", "lut", "--exact"]) == 2
    assert "--exact" in capsys.readouterr().err
    # --lut-points without --nonlinear lut is refused, naming both flags (not ignored)
    for extra in ([], ["--nonlinear", "smooth"]):
        assert main([*base, *extra, "--lut-points", "5"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--lut-points" in err and "--nonlinear lut" in err and "\n" not in err
    # another table of the same proxy: a graph of its own, the first one kept
    assert main([*base, "--nonlinear", "lut", "--lut-points", "6"]) == 0
    assert "_lut_" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert len(names) == 2 and names[0] == model.name, names
    rows = list(csv.reader((tmp_path / "instances.csv").open()))
    assert {r[0] for r in rows} == {f"onnx/{n}" for n in names}


def test_tables_beyond_onnx_or_memory_are_refused_before_building(case5, tmp_path: Path,
                                                                  capsys):
    """Points that cannot fit the ONNX model (or memory) are refused naming --lut-points,
    before any table is built (a linspace of 1e11 points ended in a traceback)."""
    from gridverify.cli import main
    from gridverify.errors import SpecError

    graph, _ = acopf_graph(case5, _proxy(case5))
    lo, hi = _box(case5, 0.1)
    with pytest.raises(SpecError, match=r"--lut-points 100000000000: \d+ tables .* limit"):
        lut_graph(graph, lo, hi, 10**11)
    argv = ["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out", str(tmp_path / "b"),
            "--hidden", "4", "--kinds", "thermal_one", "--widths", "0.05", "--nonlinear", "lut",
            "--lut-points", str(10**11)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gridverify: error: --lut-points") and "\n" not in err
    assert not (tmp_path / "b" / "onnx").exists()
