"""The helpers the benchmark scripts share (``benchmarks/_common.py``): one-line errors with
exit status 2, and the ``type=`` checks that refuse a bad option before any work."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402

from gridverify.errors import OutputPathError, SpecError  # noqa: E402


def _exit_of(main, capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as info:
        _common.run(main)
    return info.value.code, capsys.readouterr().err.splitlines()


def test_run_turns_a_gridverify_error_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py"])

    def main() -> int:
        raise SpecError("unknown family 'bogus'\n(second line)")

    code, err = _exit_of(main, capsys)
    assert code == 2
    assert err == ["bench.py: error: unknown family 'bogus' (second line)"]


def test_run_turns_an_os_error_into_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["bench.py"])
    missing = tmp_path / "nope.json"

    def main() -> int:
        return len(missing.read_text())

    code, err = _exit_of(main, capsys)
    assert code == 2
    assert err == [f"bench.py: error: file not found: {missing}"]


def test_run_passes_the_status_through_and_other_errors_up(capsys):
    code, err = _exit_of(lambda: 3, capsys)
    assert (code, err) == (3, [])

    def bug() -> int:
        raise ZeroDivisionError("a bug: the traceback is wanted")

    with pytest.raises(ZeroDivisionError):
        _common.run(bug)


@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf", "x"])
def test_positive_float_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _common.positive_float(text)


def test_positive_float_and_counts_accept():
    assert _common.positive_float("0.5") == 0.5
    assert _common.count(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        _common.count(1)("0")
    assert _common.number_list()("1,2") == [1, 2]
    with pytest.raises(argparse.ArgumentTypeError, match="must be >= 1"):
        _common.number_list()("1,0")
    with pytest.raises(argparse.ArgumentTypeError, match="must be > 0"):
        _common.number_list(_common.positive_float)("1,-2")


def test_keys_accepts_known_and_names_unknown():
    parse = _common.keys(["case14", "case57"], "case")
    assert parse("case14,case57") == ["case14", "case57"]
    with pytest.raises(argparse.ArgumentTypeError,
                       match=r"unknown case case99 \(valid: case14, case57\)"):
        parse("case14,case99")


def test_families_come_from_the_package():
    from gridverify.spec.constraints import FAMILIES

    assert _common.families(",".join(FAMILIES)) == list(FAMILIES)
    assert _common.family("p_balance") == "p_balance"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown family bogus"):
        _common.families("p_balance,bogus")
    with pytest.raises(argparse.ArgumentTypeError):
        _common.family("p_balance,q_balance")


def test_device_and_files(tmp_path):
    assert _common.devices("cpu,cuda,cuda:1") == ["cpu", "cuda", "cuda:1"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown device 'gpu'"):
        _common.device("gpu")
    f = tmp_path / "a.json"
    f.write_text("[]")
    assert _common.existing_file(str(f)) == f
    with pytest.raises(argparse.ArgumentTypeError, match="file not found"):
        _common.existing_file(str(tmp_path / "b.json"))
    assert _common.existing_dir(str(tmp_path)) == tmp_path
    with pytest.raises(argparse.ArgumentTypeError, match="folder not found"):
        _common.existing_dir(str(tmp_path / "c"))


def test_a_parser_reports_a_bad_option_as_a_usage_error(capsys):
    ap = argparse.ArgumentParser(prog="bench.py")
    ap.add_argument("--timeout", type=_common.positive_float, default=60.0)
    with pytest.raises(SystemExit) as info:
        ap.parse_args(["--timeout", "-1"])
    assert info.value.code == 2
    assert "argument --timeout: must be > 0, got -1" in capsys.readouterr().err


def test_outputs_checked_and_written_with_their_folders(tmp_path):
    with pytest.raises(OutputPathError, match="--out"):
        _common.check_outputs(out=str(tmp_path))  # a folder, not a file
    target = tmp_path / "new" / "deeper" / "rows.json"
    _common.check_outputs(out=str(target), md=None)
    _common.write_json(target, [{"x": float("nan")}])
    assert target.read_text() == '[\n {\n  "x": NaN\n }\n]\n'
    assert [p.name for p in target.parent.iterdir()] == ["rows.json"]  # no temporary left
