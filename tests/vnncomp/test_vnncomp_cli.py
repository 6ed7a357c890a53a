"""The ``gridverify vnncomp`` commands, the batch runner and the competition scripts."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vnncomp_fixtures import mlp_onnx, tiny_relu_weights, vnnlib_text  # noqa: E402

from gridverify.cli import main  # noqa: E402
from gridverify.vnncomp.batch import read_expected, read_instances, summarize  # noqa: E402
from gridverify.vnncomp.result import format_result, read_result  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAT = [["(>= Y_0 1.9)", "(<= Y_1 0.1)"]]
UNSAT_IBP = [["(>= Y_0 2.5)"]]


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A benchmark folder: onnx/, vnnlib/ (one gzipped), instances.csv, expected.csv."""
    (tmp_path / "onnx").mkdir()
    (tmp_path / "vnnlib").mkdir()
    mlp_onnx(tmp_path / "onnx" / "tiny.onnx", tiny_relu_weights())
    lo, hi = np.zeros(2), np.ones(2)
    (tmp_path / "vnnlib" / "sat.vnnlib").write_text(vnnlib_text(lo, hi, 2, SAT))
    text = vnnlib_text(lo, hi, 2, [["(>= Y_1 0.999)"]])
    (tmp_path / "vnnlib" / "sat2.vnnlib.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "vnnlib" / "unsat.vnnlib").write_text(vnnlib_text(lo, hi, 2, UNSAT_IBP))
    (tmp_path / "instances.csv").write_text(
        "onnx/tiny.onnx,vnnlib/sat.vnnlib,10\n"
        "onnx/tiny.onnx,vnnlib/sat2.vnnlib,10\n"
        "onnx/tiny.onnx,vnnlib/unsat.vnnlib,2\n"
    )
    (tmp_path / "expected.csv").write_text(
        "onnx,vnnlib,result\n"
        "onnx/tiny.onnx,vnnlib/sat.vnnlib,sat\n"
        "onnx/tiny.onnx,vnnlib/sat2.vnnlib.gz,violated\n"
        "onnx/tiny.onnx,vnnlib/unsat.vnnlib,holds\n"
    )
    return tmp_path


def test_format_and_read_result(tmp_path: Path) -> None:
    text = format_result("sat", np.array([0.1, 1 / 3]), np.array([-2.5]))
    assert text == "sat\n((X_0 0.1)\n (X_1 0.3333333333333333)\n (Y_0 -2.5))\n"
    p = tmp_path / "r.txt"
    p.write_text(text)
    word, vals = read_result(p)
    assert word == "sat" and vals == {"X_0": 0.1, "X_1": 1 / 3, "Y_0": -2.5}
    assert format_result("unsat") == "unsat\n"
    with pytest.raises(ValueError):
        format_result("sat")
    with pytest.raises(ValueError):
        format_result("maybe")


def test_cli_run_sat_unknown_and_bad_input(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "res" / "r.txt"
    model = str(bench / "onnx" / "tiny.onnx")
    rc = main(
        [
            "vnncomp",
            "run",
            model,
            str(bench / "vnnlib" / "sat.vnnlib"),
            "--timeout",
            "10",
            "--out",
            str(out),
        ]
    )
    assert rc == 1
    word, vals = read_result(out)
    assert word == "sat" and vals["Y_0"] >= 1.9 and 0 <= vals["X_0"] <= 1
    rc = main(
        [
            "vnncomp",
            "run",
            model,
            str(bench / "vnnlib" / "unsat.vnnlib"),
            "--timeout",
            "5",
            "--out",
            str(out),
            "--bounds",
            "none",
            "--no-bab",
            "--no-extend-attack",
        ]
    )
    assert rc == 3 and out.read_text() == "unknown\n"
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(assert (<= X_0 1)\n")
    capsys.readouterr()
    rc = main(["vnncomp", "run", model, str(bad), "--timeout", "5", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and f"{bad}:2:" in err and "never closed" in err
    rc = main(
        [
            "vnncomp",
            "run",
            model,
            str(bad),
            "--timeout",
            "5",
            "--out",
            str(out),
            "--started-at",
            "0",
        ]
    )  # the whole timeout already spent
    assert rc == 3 and out.read_text() == "timeout\n"


def test_batch_with_expected(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.csv"
    rc = main(
        [
            "vnncomp",
            "batch",
            str(bench),
            "--expected",
            str(bench / "expected.csv"),
            "--out",
            str(out),
            "--no-progress",
            "--no-extend-attack",
            "--timeout-scale",
            "0.5",
            "--memory-cap",
            "256",
        ]
    )
    printed = capsys.readouterr().out
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["onnx", "vnnlib", "result", "seconds", "detail"]
    assert [r[2] for r in rows[1:3]] == ["sat", "sat"]
    assert rows[3][2] in ("unsat", "unknown")  # unsat once the bound engine is in
    assert "instances: 3" in printed and "median" in printed
    assert "wrong 0" in printed
    assert rc == 0


def test_batch_summary_counts() -> None:
    from gridverify.vnncomp.batch import BatchRow

    rows = [
        BatchRow("a", "p1", "sat", 1.0),
        BatchRow("a", "p2", "unsat", 3.0),
        BatchRow("a", "p3", "timeout", 5.0),
        BatchRow("a", "p4", "sat", 2.0),
    ]
    exp = {("a", "p1"): "sat", ("a", "p2"): "sat", ("a", "p3"): "unsat", ("a", "p4"): "sat"}
    s = summarize(rows, exp)
    assert (s.correct, s.wrong, s.missed) == (2, 1, 1)
    assert s.counts == {"sat": 2, "unsat": 1, "timeout": 1}
    assert s.total_seconds == 11.0 and s.median_seconds == 2.5
    assert any("WRONG: a p2" in line for line in s.lines())


def test_instance_and_expected_errors(tmp_path: Path) -> None:
    from gridverify.errors import VnnlibError

    p = tmp_path / "instances.csv"
    p.write_text("a.onnx,b.vnnlib,10\n\na.onnx,b.vnnlib\n")
    with pytest.raises(VnnlibError, match=r"instances.csv:3: expected onnx,vnnlib,timeout"):
        read_instances(p)
    p.write_text("a.onnx,b.vnnlib,10,x\n")  # a field more was dropped without a word
    with pytest.raises(VnnlibError, match=r"instances.csv:1: expected onnx,vnnlib,timeout, "
                                          r"got 4 field\(s\)"):
        read_instances(p)
    p.write_text("a.onnx,b.vnnlib,10,\n")  # a trailing comma is no field
    assert read_instances(p)[0].timeout == 10
    p.write_text("onnx,vnnlib,timeout\nx,y,1\n")  # a header row is skipped
    assert len(read_instances(p)) == 1
    p.write_text("a.onnx,b.vnnlib,10s\nx,y,1\n")  # a first row naming a model is not one
    with pytest.raises(VnnlibError, match=r":1: bad timeout '10s'"):
        read_instances(p)
    p.write_text("onnx,vnnlib,timeout\n")
    with pytest.raises(VnnlibError, match=r"instances.csv: no instances"):
        read_instances(p)
    p.write_text("a.onnx,b.vnnlib,inf\n")
    with pytest.raises(VnnlibError, match=r":1: timeout must be a number > 0"):
        read_instances(p)
    p.write_text("x,y,1\na.onnx,b.vnnlib,ten\n")
    with pytest.raises(VnnlibError, match=r":2: bad timeout"):
        read_instances(p)
    e = tmp_path / "expected.csv"
    e.write_text("a,b,sat\na,c,perhaps\n")
    with pytest.raises(VnnlibError, match=r"expected.csv:2: unknown expected result"):
        read_expected(e)
    # bytes that are not UTF-8 are named, not a traceback
    p.write_bytes(b"\xff\xfe\n")
    with pytest.raises(VnnlibError, match=r"instances.csv: not a UTF-8 text file"):
        read_instances(p)
    e.write_bytes(b"a,b,sat\n\xff,c,unsat\n")
    with pytest.raises(VnnlibError, match=r"expected.csv: not a UTF-8 text file"):
        read_expected(e)


def test_cli_run_reads_gz_siblings(bench: Path, tmp_path: Path) -> None:
    """Files named without ``.gz`` are read from their ``.gz`` sibling, as ``batch`` does
    (``prepare_instance.sh`` accepts either)."""
    model = bench / "onnx" / "tiny.onnx"
    (bench / "onnx" / "tiny.onnx.gz").write_bytes(gzip.compress(model.read_bytes()))
    model.unlink()
    out = tmp_path / "r.txt"
    rc = main(["vnncomp", "run", str(model), str(bench / "vnnlib" / "sat2.vnnlib"),
               "--timeout", "10", "--out", str(out)])
    assert rc == 1 and read_result(out)[0] == "sat"
    # the result file as a third positional argument (the competition's order)
    out2 = tmp_path / "r2.txt"
    rc = main(["vnncomp", "run", str(model), str(bench / "vnnlib" / "sat2.vnnlib"), str(out2),
               "--timeout", "10"])
    assert rc == 1 and read_result(out2)[0] == "sat"
    assert main(["vnncomp", "run", str(model), str(bench / "vnnlib" / "sat2.vnnlib"),
                 "--timeout", "10"]) == 2


def test_batch_missing_file_is_named(bench: Path, tmp_path: Path, capsys) -> None:
    (bench / "instances.csv").write_text("onnx/tiny.onnx,vnnlib/nope.vnnlib,5\n")
    rc = main(["vnncomp", "batch", str(bench), "--out", str(tmp_path / "r.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "instances.csv:1: file not found" in err
    # one missing row among others is an error row, named; the others run
    (bench / "instances.csv").write_text(
        "onnx/tiny.onnx,vnnlib/nope.vnnlib,5\nonnx/tiny.onnx,vnnlib/sat.vnnlib,5\n")
    out = tmp_path / "r.csv"
    rc = main(["vnncomp", "batch", str(bench), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    rows = list(csv.reader(out.open()))
    assert rc == 0 and [r[2] for r in rows[1:]] == ["error", "sat"]
    assert "instances.csv:1: file not found" in rows[1][4]
    assert "ERROR: onnx/tiny.onnx vnnlib/nope.vnnlib: " in printed and "nope.vnnlib" in printed


def test_batch_row_with_an_unreadable_file_is_an_error_row(bench: Path, tmp_path: Path,
                                                          capsys) -> None:
    """A property path that is a folder (an OS error, not a parse error) makes its row
    an error; the rows after it still run."""
    (bench / "vnnlib" / "folder.vnnlib").mkdir()
    (bench / "instances.csv").write_text(
        "onnx/tiny.onnx,vnnlib/sat.vnnlib,5\nonnx/tiny.onnx,vnnlib/folder.vnnlib,5\n"
        "onnx/tiny.onnx,vnnlib/unsat.vnnlib,5\n")
    out = tmp_path / "r.csv"
    rc = main(["vnncomp", "batch", str(bench), "--out", str(out), "--no-progress"])
    capsys.readouterr()
    rows = list(csv.reader(out.open()))
    assert rc == 0 and [r[2] for r in rows[1:]] == ["sat", "error", "unsat"]
    assert "folder.vnnlib" in rows[2][4]


@pytest.mark.skipif(not os.access("/bin/bash", os.X_OK), reason="needs bash")
def test_competition_scripts(bench: Path, tmp_path: Path) -> None:
    scripts = REPO / "vnncomp_scripts"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    model, prop = bench / "onnx" / "tiny.onnx", bench / "vnnlib" / "sat.vnnlib"
    r = subprocess.run(
        ["bash", str(scripts / "prepare_instance.sh"), "v1", "test", str(model), str(prop)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        ["bash", str(scripts / "prepare_instance.sh"), "v2", "test", str(model), str(prop)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1
    res = tmp_path / "out.txt"
    res.write_text("stale\n")
    r = subprocess.run(
        [
            "bash",
            str(scripts / "run_instance.sh"),
            "v1",
            "test",
            str(model),
            str(prop),
            str(res),
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_result(res)[0] == "sat"
    r = subprocess.run(
        [
            "bash",
            str(scripts / "run_instance.sh"),
            "v1",
            "test",
            str(model),
            str(tmp_path / "none.vnnlib"),
            str(res),
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0 and res.read_text() == "error\n"


def test_bad_run_options_are_one_line_errors(bench: Path, tmp_path: Path, capsys) -> None:
    model = str(bench / "onnx" / "tiny.onnx")
    prop = str(bench / "vnnlib" / "sat.vnnlib")
    out = str(tmp_path / "r.txt")
    for extra, fragment in (
        (["--device", "gpu7"], "unknown device 'gpu7'"),
        (["--attack-restarts", "0"], "argument --attack-restarts: must be >= 1"),
        (["--timeout", "-1"], "argument --timeout: must be > 0"),
        (["--memory-cap", "0"], "argument --memory-cap: must be > 0"),
    ):
        args = ["vnncomp", "run", model, prop, "--out", out]
        args += extra if "--timeout" in extra else ["--timeout", "5", *extra]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and "\n" not in err


def test_watchdog_writes_timeout_and_ends_the_process(tmp_path: Path) -> None:
    """A run that overshoots its deadline still leaves a 'timeout' result (exit 3)."""
    out = tmp_path / "r.txt"
    code = (
        "import time\n"
        "from gridverify.cli.vnncomp import _Watchdog\n"
        f"dog = _Watchdog({str(out)!r}, 0.3)\n"
        "dog.timer.start()\n"
        "time.sleep(30)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and out.read_text() == "timeout\n"
    # a finished run cancels the watchdog and writes its own result
    from gridverify.cli.vnncomp import _Watchdog
    from gridverify.vnncomp.result import write_result

    dog = _Watchdog(str(out), 0.2)
    dog.timer.start()
    assert dog.finish(lambda: write_result(out, "unsat"))
    import time

    time.sleep(0.4)
    assert out.read_text() == "unsat\n"


def test_batch_resumes_from_the_rows_it_wrote(bench: Path, tmp_path: Path, capsys) -> None:
    """A stopped batch run again keeps the rows its results file holds for the same
    instances, in order (errors run again); --fresh runs every row; --out must not be
    the instance list, nor a file that is not a results CSV."""
    from gridverify.vnncomp.batch import read_results

    (bench / "instances.csv").write_text(
        "onnx/tiny.onnx,vnnlib/sat.vnnlib,5\nonnx/tiny.onnx,vnnlib/unsat.vnnlib,5\n"
        "onnx/tiny.onnx,vnnlib/sat2.vnnlib,5\n")
    out = tmp_path / "r.csv"
    # as a run stopped after two rows left it, marked so that a kept row shows
    out.write_text("onnx,vnnlib,result,seconds,detail\n"
                   "onnx/tiny.onnx,vnnlib/sat.vnnlib,sat,1.5,kept row\n"
                   "onnx/tiny.onnx,vnnlib/unsat.vnnlib,error,0.1,was broken\n")
    assert main(["vnncomp", "batch", str(bench), "--out", str(out), "--no-progress"]) == 0
    rows = read_results(out)
    assert [(r.vnnlib, r.result) for r in rows] == [
        ("vnnlib/sat.vnnlib", "sat"), ("vnnlib/unsat.vnnlib", "unsat"),
        ("vnnlib/sat2.vnnlib", "sat")]
    assert rows[0].detail == "kept row" and rows[0].seconds == 1.5  # not run again
    assert rows[1].detail != "was broken"  # an error row runs again
    assert main(["vnncomp", "batch", str(bench), "--out", str(out), "--no-progress",
                 "--fresh"]) == 0
    assert read_results(out)[0].detail != "kept row"
    capsys.readouterr()
    listing = (bench / "instances.csv").read_text()
    assert main(["vnncomp", "batch", str(bench), "--out", str(bench / "instances.csv"),
                 "--no-progress"]) == 2
    assert "is the instances CSV" in capsys.readouterr().err
    assert (bench / "instances.csv").read_text() == listing
    other = tmp_path / "notes.csv"
    other.write_text("my,own,notes\n")
    assert main(["vnncomp", "batch", str(bench), "--out", str(other), "--no-progress"]) == 2
    assert "is not a results CSV" in capsys.readouterr().err
    assert other.read_text() == "my,own,notes\n"
    # while another run writes the results file, a second is refused
    from gridverify._lock import lock_beside, run_lock
    from gridverify.errors import OutputPathError

    before = out.read_text()
    with run_lock(lock_beside(out), out, "vnncomp batch", OutputPathError):
        assert main(["vnncomp", "batch", str(bench), "--out", str(out), "--no-progress"]) == 2
        assert "another vnncomp batch run" in capsys.readouterr().err
    assert out.read_text() == before and not lock_beside(out).exists()


def test_expected_answers_must_be_known_and_agree(tmp_path: Path) -> None:
    from gridverify.errors import VnnlibError

    e = tmp_path / "expected.csv"
    e.write_text("m.onnx,p.vnnlib,maybe\n")  # a first row naming a model is no header
    with pytest.raises(VnnlibError, match=r"expected.csv:1: unknown expected result 'maybe'"):
        read_expected(e)
    e.write_text("m.onnx,p.vnnlib,unsat\nm.onnx,./p.vnnlib,sat\n")
    with pytest.raises(VnnlibError, match=r"expected.csv:2: expected result sat for "
                                          r"\./p.vnnlib, but line 1 says unsat"):
        read_expected(e)
    e.write_text("onnx,vnnlib,result\nm.onnx,p.vnnlib,holds\nm.onnx,p.vnnlib,unsat\n")
    assert read_expected(e) == {("m.onnx", "p.vnnlib"): "unsat"}


def test_a_model_onnxruntime_cannot_run_is_one_line(tmp_path: Path, capsys) -> None:
    """onnxruntime has no float64 Elu: confirming a counterexample with it was an
    internal error (exit 4); it is one line naming the file."""
    import warnings

    import torch

    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ELU(),
                              torch.nn.Linear(4, 1)).double()
    model = tmp_path / "elu64.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 2, dtype=torch.float64),), str(model),
                          dynamo=False)
    prop = tmp_path / "p.vnnlib"
    prop.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
                    "(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
                    "(assert (>= X_1 0))\n(assert (<= X_1 1))\n(assert (>= Y_0 -1e9))\n")
    rc = main(["vnncomp", "run", str(model), str(prop), "--timeout", "10", "--out",
               str(tmp_path / "r.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"{model}: onnxruntime cannot run the model" in err and "Elu" in err, err
