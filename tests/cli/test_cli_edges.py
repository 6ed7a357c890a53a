"""CLI edges: non-finite and out-of-range numbers, a command group without its
subcommand, and a check-physics report with several findings.  They run in-process
through :func:`gridverify.cli.main`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from cli_run import run

from gridverify.cli import build_parser
from gridverify.grid.case import RATE_A, load_case
from gridverify.grid.compile import compile_case
from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits
from gridverify.vnncomp.instances import acopf_graph, export_onnx

# check-physics writes and reads ONNX graphs (imported once here, not inside the timed test)
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
CASE5 = "pglib_opf_case5_pjm"
CERTIFY = ["certify", "pglib_opf_case14_ieee", "--model", str(REPO / "models" / "case14_relu"),
           "--quiet", "--method", "bab"]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridverify: error:"), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan"])
def test_a_non_finite_time_limit_is_a_usage_error(capsys, tmp_path, monkeypatch, value):
    """``opf solve --time-limit inf``: refused before anything is solved, naming the flag."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "opf", "solve", CASE5, f"--time-limit={value}")
    assert code == 2
    line = _one_error_line(err)
    assert "--time-limit" in line and "finite" in line and repr(value) in line, line
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_finite_time_limit_is_accepted_by_the_parser():
    """The same parser passes a finite positive number through (its value, as a float)."""
    args = build_parser().parse_args(["opf", "solve", CASE5, "--time-limit", "1e3"])
    assert args.time_limit == 1000.0


@pytest.mark.parametrize("flag,extra", [("--gap-rel-tolerance", CERTIFY),
                                        ("--val-fraction", ["train", "nosuch.h5", "--out", "m"]),
                                        ("--test-fraction", ["train", "nosuch.h5", "--out", "m"])])
@pytest.mark.parametrize("value", ["1", "1.0", "-0.1"])
def test_a_fraction_of_one_or_more_is_refused(capsys, tmp_path, monkeypatch, flag, extra,
                                              value):
    """The fraction flags take a number in [0, 1) (the help of --gap-rel-tolerance says
    so; train's narrower (0, 0.5) is checked later): 1 is a usage error naming the flag
    and the range, before any file is read."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *extra, f"{flag}={value}")
    assert code == 2
    line = _one_error_line(err)
    assert f"argument {flag}: must be in [0, 1), got {value}" in line, line
    assert list(tmp_path.iterdir()) == []


def test_the_gap_rel_tolerance_help_states_its_range(capsys):
    code, out, _ = run(capsys, "certify", "--help")
    assert code == 0
    assert "fraction in [0, 1)" in " ".join(out.split())


def test_case_without_a_subcommand_prints_its_usage_and_exits_2(capsys):
    code, out, err = run(capsys, "case")
    assert code == 2
    assert out == ""
    assert err.startswith("usage: gridverify case"), err
    assert "info" in err and "list" in err


def test_check_physics_prints_every_finding(capsys, tmp_path):
    """A graph exported from case5 with two branch ratings changed: the text report
    counts both findings and names each branch with its cause."""
    raw = load_case(CASE5)
    case = compile_case(raw, emit_warnings=False)
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (8,), "tanh", True)
    lo, hi = case_limits(case)
    torch.manual_seed(0)
    proxy = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
    branch = raw.branch.copy()
    branch[[0, 3], RATE_A] *= 0.8
    bad = compile_case(dataclasses.replace(raw, branch=branch), emit_warnings=False)
    graph, _ = acopf_graph(bad, proxy)
    model = export_onnx(graph, tmp_path / "bad.onnx")
    code, out, err = run(capsys, "check-physics", str(model), CASE5, "--samples", "4")
    assert code == 1, err
    assert "DISAGREE: 2 branch(es)/bus(es) above 1e-06" in out
    findings = [ln for ln in out.splitlines() if ln.startswith("  branch ")]
    assert [ln.split(":")[0].strip() for ln in findings] == ["branch 1 (bus 1 - 2)",
                                                              "branch 4 (bus 2 - 3)"]
    assert all("sf,st off by" in ln for ln in findings)
    assert out.count("-> thermal rating differs") == 2
