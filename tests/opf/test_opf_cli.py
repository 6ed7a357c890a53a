"""CLI: ``opf solve`` JSON contract, ``dataset make/info``, bad input -> exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run


def test_opf_solve_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "opf", "solve", "pglib_opf_case5_pjm", "--json")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    assert d["case"] == "pglib_opf_case5_pjm" and d["status"] == "optimal"
    assert d["objective"] == pytest.approx(17551.89, rel=1e-5)
    assert d["max_balance_residual_pu"] <= 1e-6
    assert d["solve_seconds"] > 0 and d["solver"].startswith("pounce")


def test_opf_solve_by_path_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[2] / "cases" / "pglib_opf_case3_lmbd.m"
    code, out, _ = run(capsys, "opf", "solve", str(path))
    assert code == 0
    assert "optimal" in out and "5812" in out


def test_opf_not_optimal_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "opf", "solve", "pglib_opf_case118_ieee", "--max-iter", "2",
                       "--json")
    assert code == 1
    assert json.loads(out)["status"] == "max_iter"


def test_dataset_make_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c5.h5"
    code, stdout, _ = run(capsys, "dataset", "make", "pglib_opf_case5_pjm", "--samples", "6",
                          "--out", str(out), "--region", "pglearn:0.9,1.05,0.05", "--seed", "2",
                          "--no-progress", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n_done"] == 6 and summary["seed"] == 2
    code, stdout, _ = run(capsys, "dataset", "info", str(out), "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["case_name"] == "pglib_opf_case5_pjm" and info["n_samples"] == 6
    assert info["sampler"] == {"kind": "pglearn", "a": 0.9, "b": 1.05, "r": 0.05}
    code, stdout, _ = run(capsys, "dataset", "info", str(out))
    assert code == 0 and "pglib_opf_case5_pjm" in stdout
    # same command on a finished file: nothing to do, still complete
    code, _, _ = run(capsys, "dataset", "make", "pglib_opf_case5_pjm", "--samples", "6",
                     "--out", str(out), "--region", "pglearn:0.9,1.05,0.05", "--seed", "2",
                     "--no-progress")
    assert code == 0


def test_dataset_of_an_infeasible_case_warns(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Every generator capped at 1 MW: no sample can be optimal, and the command says so."""
    import re

    text = (Path(__file__).resolve().parents[2] / "cases" / "pglib_opf_case5_pjm.m").read_text()
    head, body = text.split("mpc.gen = [\n", 1)
    rows, tail = body.split("];", 1)
    capped = []
    for ln in rows.strip().splitlines():
        cols = re.split(r"\s+", ln.strip().rstrip(";"))
        cols[8] = "1.0"  # Pmax
        capped.append("\t" + "\t".join(cols) + ";")
    case = tmp_path / "case5_capped.m"
    case.write_text(head + "mpc.gen = [\n" + "\n".join(capped) + "\n];" + tail)
    code, _, err = run(capsys, "dataset", "make", str(case), "--samples", "2", "--out",
                       str(tmp_path / "c.h5"), "--no-progress")
    assert code == 0
    assert "no sample" in err and "infeasible" in err and str(case) in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["opf", "solve", "no_such_case"], "no_such_case"),
        (["opf", "solve", "pglib_opf_case5_pjm", "--solver", "gurobi"], "--solver"),
        (["opf", "solve", "pglib_opf_case5_pjm", "--max-iter", "0"], "--max-iter"),
        (["opf", "solve", "pglib_opf_case5_pjm", "--tol", "-1"], "tol"),
        (["opf", "solve", "pglib_opf_case5_pjm", "--max-iter", "x"], "--max-iter"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "0", "--out", "{tmp}/a.h5"],
         "samples"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "3", "--out", "{tmp}/a.h5",
          "--workers", "0"], "workers"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "3", "--out", "{tmp}/a.h5",
          "--region", "box:1.2,0.8"], "box"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "3", "--out", "{tmp}/a.h5",
          "--region", "ellipse:1"], "unknown kind"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "3", "--out", "{tmp}/a.h5",
          "--seed", "-1"], "seed"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--samples", "3",
          "--out", "{tmp}/text.h5/dir/a.h5"], "is not a folder"),
        (["dataset", "make", "pglib_opf_case5_pjm", "--out", "{tmp}/a.h5"], "--samples"),
        (["dataset", "info", "{tmp}/nothing.h5"], "nothing.h5"),
        (["dataset", "info", "{tmp}/text.h5"], "not a readable HDF5"),
    ],
)
def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                          needle: str) -> None:
    (tmp_path / "text.h5").write_text("not hdf5")
    code, _, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert needle in lines[0]


def test_dataset_mismatch_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c3.h5"
    base = ["dataset", "make", "pglib_opf_case3_lmbd", "--samples", "3", "--out", str(out),
            "--no-progress"]
    assert run(capsys, *base)[0] == 0
    code, _, err = run(capsys, *base[:-1], "--seed", "9", "--no-progress")
    assert code == 2 and "seed 0 != 9" in err


def test_console_script_exit_status(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "gridverify", "opf", "solve", "nope.m", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
