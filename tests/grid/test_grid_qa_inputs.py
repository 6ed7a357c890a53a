"""Inputs found by a QA pass: infinite angle limits, numerically zero taps, arithmetic
without blanks, ``...`` right after a number, file names with rich markup in them, and
piecewise-linear costs of different lengths handed to pandapower."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify.cli import main
from gridverify.errors import CaseFormatError
from gridverify.grid import compile_case, load_case
from gridverify.grid.matpower import parse_matpower

CORPUS = Path(__file__).resolve().parents[1] / "data" / "broken_cases"

BRANCH = "7 8 0.01 0.1 0.02 100 0 0 {tap} 0 1 {angmin} {angmax}"


def _tiny(branch: str = BRANCH.format(tap=0, angmin=-30, angmax=30),
          gencost: str = "2 0 0 3 0 10 0", extra_gen: str = "") -> str:
    """A two-bus case; the branch row is line 7."""
    return (
        "function mpc = tiny\n"
        "mpc.version = '2';\n"
        "mpc.baseMVA = 100;\n"
        "mpc.bus = [ 7 3 50 10 0 0 1 1 0 230 1 1.1 0.9;\n"
        "            8 1 20 5 0 0 1 1 0 230 1 1.1 0.9 ];\n"
        f"mpc.gen = [ 7 50 10 100 -100 1 100 1 100 0 {extra_gen}];\n"
        f"mpc.branch = [ {branch} ];\n"
        f"mpc.gencost = [ {gencost} ];\n"
    )


def _write(tmp_path: Path, text: str, name: str = "case.m") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> CaseFormatError:
    with pytest.raises(CaseFormatError) as info:
        compile_case(load_case(path), emit_warnings=False)
    return info.value


def _cli_one_line_error(argv: list[str], capsys, name: str) -> str:
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridverify: error: ")
    assert name in lines[0] and "Traceback" not in out.err
    return lines[0]


# ------------------------------------------------------------ 1. infinite angle limits


@pytest.mark.parametrize("angmin, angmax, fld", [
    ("Inf", "Inf", "branch.angmin"),
    ("Inf", "30", "branch.angmin"),
    ("-Inf", "-Inf", "branch.angmax"),
    ("-30", "-Inf", "branch.angmax"),
])
def test_infinite_angle_limit_without_feasible_difference_is_rejected(tmp_path, angmin, angmax,
                                                                      fld):
    path = _write(tmp_path, _tiny(BRANCH.format(tap=0, angmin=angmin, angmax=angmax)))
    err = _error(path)
    assert err.line == 7 and err.field == fld
    assert "no feasible angle difference" in str(err)
    assert f"case.m:7, field {fld}" in str(err)


def test_unbounded_angle_limits_stay_accepted(tmp_path):
    path = _write(tmp_path, _tiny(BRANCH.format(tap=0, angmin="-Inf", angmax="Inf")))
    with pytest.warns(UserWarning, match=r"angle-difference limits \[-inf, inf\]"):
        cc = compile_case(load_case(path))
    assert cc.n_branch == 1


@pytest.mark.parametrize("command", [["case", "info"], ["opf", "solve"]])
@pytest.mark.parametrize("name", ["angmin_plus_inf.m", "angmax_minus_inf.m"])
def test_infinite_angle_limit_cli_exit_2(command, name, capsys):
    line = _cli_one_line_error([*command, str(CORPUS / name)], capsys, name)
    assert "field branch.ang" in line


# ------------------------------------------------------------ 3. numerically zero taps


@pytest.mark.parametrize("tap, what", [
    ("1e-200", "numerically zero tap ratio 1e-200"),
    ("1e-310", "numerically zero tap ratio"),  # subnormal
    ("1e-7", "numerically zero tap ratio 1e-07"),
    ("1e300", "non-finite branch-flow coefficients"),
])
def test_absurd_tap_ratio_is_rejected(tmp_path, tap, what):
    path = _write(tmp_path, _tiny(BRANCH.format(tap=tap, angmin=-30, angmax=30)))
    err = _error(path)
    assert err.line == 7 and err.field == "branch.ratio"
    assert what in str(err)


@pytest.mark.parametrize("tap", ["1e-5", "0.2", "3", "1e5"])
def test_unusual_but_finite_tap_ratio_only_warns(tmp_path, tap):
    path = _write(tmp_path, _tiny(BRANCH.format(tap=tap, angmin=-30, angmax=30)))
    with pytest.warns(UserWarning, match="unusual tap ratio"):
        cc = compile_case(load_case(path))
    for t in (cc.pf_t, cc.qf_t, cc.pt_t, cc.qt_t):
        assert np.all(np.isfinite(t.vv)) and np.all(np.isfinite(t.c)) and np.all(np.isfinite(t.s))
    assert np.all(np.isfinite(cc.ybus.data))


@pytest.mark.parametrize("shift, warns", [
    ("1e300", True), ("-400", True), ("360.0000001", True), ("360", False),
    ("-359.5", False), ("30", False),
])
def test_phase_shift_beyond_a_full_turn_warns(tmp_path, shift, warns):
    path = _write(tmp_path, _tiny(f"7 8 0.01 0.1 0.02 100 0 0 1 {shift} 1 -30 30"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cc = compile_case(load_case(path))
    text = " ".join(str(w.message) for w in seen)
    assert ("beyond a full turn" in text) == warns, text
    if warns:
        assert f"phase shift {float(shift):.10g} deg" in text
    assert np.all(np.isfinite(cc.pf_t.c)) and np.all(np.isfinite(cc.pf_t.s))


@pytest.mark.parametrize("command", [["case", "info"], ["opf", "solve"]])
def test_zero_tap_cli_exit_2(command, capsys):
    name = "tap_numerically_zero.m"
    line = _cli_one_line_error([*command, str(CORPUS / name)], capsys, name)
    assert "field branch.ratio" in line


# ------------------------------------------------------------ 4. the tokenizer


@pytest.mark.parametrize("cell, sign, number", [
    ("1.1+0", "+", "1.1"),
    ("1.1-0.2", "-", "1.1"),
    ("2-1", "-", "2"),
    ("-1-2", "-", "-1"),
    ("1e-5+1", "+", "1e-5"),
    ("Inf-1", "-", "Inf"),
    ("-Inf+1", "+", "-Inf"),
    (".5+1", "+", ".5"),
])
def test_sign_right_after_a_number_is_arithmetic(cell, sign, number):
    text = f"mpc.baseMVA = 100;\nmpc.x = [1 {cell} 3];\n"
    with pytest.raises(CaseFormatError) as info:
        parse_matpower(text, "a.m")
    err = info.value
    assert err.line == 2
    assert f"unexpected {sign!r} right after the number {number!r}" in str(err)
    assert "arithmetic is not supported" in str(err)


def test_sign_right_after_a_scalar_is_arithmetic():
    with pytest.raises(CaseFormatError, match=r"a\.m:1: unexpected '-' right after"):
        parse_matpower("mpc.baseMVA = 100-1;", "a.m")


@pytest.mark.parametrize("cell, values", [
    ("1e-5", [1e-5]),
    ("1.5E+3", [1500.0]),
    ("1D-3", [1e-3]),
    ("2d+2", [200.0]),
    ("1 -2", [1.0, -2.0]),  # blank, then a sign: two numbers, as in MATLAB
    ("1, -2", [1.0, -2.0]),
    ("1 +2", [1.0, 2.0]),
    ("-Inf +Inf", [-math.inf, math.inf]),
])
def test_exponents_and_signed_elements_still_read(cell, values):
    mf = parse_matpower(f"mpc.x = [{cell}];")
    assert mf.tables["x"].values[0].tolist() == values


@pytest.mark.parametrize("row", ["1 2 30.0...", "1 2 30...", "1 2 -30...", "1 2 Inf...",
                                 "1 2 3e1..."])
def test_continuation_right_after_a_number(row):
    mf = parse_matpower(f"mpc.x = [{row}\n 4];\nmpc.y = 1;")
    vals = mf.tables["x"].values
    assert vals.shape == (1, 4)
    assert vals[0, :2].tolist() == [1.0, 2.0] and vals[0, 3] == 4.0
    assert abs(vals[0, 2]) == 30.0 or vals[0, 2] == math.inf
    assert mf.scalars["y"] == 1.0


@pytest.mark.parametrize("text, fragment", [
    ("mpc.x = [30..];", "malformed number near '30..'"),
    ("mpc.x = [30.0.];", "malformed number near '30.0.'"),
    ("mpc.x = [-1.5x];", "malformed number near '-1.5x'"),
])
def test_malformed_numbers_still_rejected(text, fragment):
    with pytest.raises(CaseFormatError, match=fragment):
        parse_matpower(text, "a.m")


def test_case_with_continuation_after_number_loads(tmp_path):
    text = _tiny(BRANCH.format(tap=0, angmin=-30, angmax="30...\n"))
    cc = compile_case(load_case(_write(tmp_path, text)), emit_warnings=False)
    assert cc.n_branch == 1 and cc.angmax[0] == pytest.approx(np.deg2rad(30.0))


def test_sign_after_number_cli_exit_2(capsys):
    name = "sign_after_number.m"
    line = _cli_one_line_error(["case", "info", str(CORPUS / name)], capsys, name)
    assert f"{name}:50:" in line


# ------------------------------------------------------------ 2. markup in file names


@pytest.mark.parametrize("folder", ["dir[old]", "a[", "cases[bold]", "x[/]"])
def test_case_info_prints_bracketed_paths_verbatim(tmp_path, folder, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    parts = folder.split("/") if folder != "x[/]" else ["x[", "]"]
    where = tmp_path.joinpath(*parts)
    where.mkdir(parents=True)
    # a warning too: the angle limits [-inf, inf] are wider than 60 degrees
    path = _write(where, _tiny(BRANCH.format(tap=0, angmin="-Inf", angmax="Inf")), "c[b].m")
    assert main(["case", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out
    assert "case c[b]" in out  # the name: the file's stem
    assert "[-inf, inf] deg wider than 60 deg" in out


def test_case_info_markup_like_path_does_not_crash(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    where = tmp_path / "a[" / "b]"
    where.mkdir(parents=True)
    src = _write(tmp_path, _tiny())
    path = where / "c.m"
    shutil.copy(src, path)
    assert str(path).count("[/b]") == 1
    assert main(["case", "info", str(path)]) == 0
    out = capsys.readouterr()
    assert str(path) in out.out and "Traceback" not in out.err


def test_field_table_escapes_title_fields_and_values():
    from rich.console import Console

    from gridverify.cli._table import field_table

    table = field_table("case [bold]x[/bold] [/]", [("k[red]", "v[/b]"), ("f", 0.5)], ".2f")
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "case[bold]x[/bold][/]" in "".join(text.split())  # the title may wrap
    assert "k[red]" in text and "v[/b]" in text and "0.50" in text


# ------------------------------------------------------------ 5. pandapower pwl costs


def _pwl_cost(points: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.interp(p, points[0::2], points[1::2])


def test_to_pandapower_with_pwl_costs_of_different_lengths(tmp_path):
    pytest.importorskip("pandapower")
    from gridverify.grid.pandapower_io import ppc_of, to_pandapower

    gens = "7 50 10 100 -100 1 100 1 100 0;\n 7 10 0 50 -50 1 100 1 60 0;\n 8 5 0 9 -9 1 100 1 40 0"
    costs = ("1 0 0 2 0 0 100 1000 0 0 0 0;\n"
             "1 0 0 4 0 0 10 100 30 400 60 1000;\n"
             "2 0 0 3 0.01 10 0 0 0 0 0 0")
    text = _tiny(gencost=costs).replace(
        "mpc.gen = [ 7 50 10 100 -100 1 100 1 100 0 ];", f"mpc.gen = [ {gens} ];")
    raw = load_case(_write(tmp_path, text))
    before = ppc_of(raw)["gencost"].copy()
    net = to_pandapower(raw)
    np.testing.assert_array_equal(ppc_of(raw)["gencost"], before)  # the case is untouched
    assert len(net.pwl_cost) == 2 and len(net.poly_cost) == 1
    # each pandapower pwl cost ([p_from, p_to, slope] areas) is the file's cost function
    orig = {}
    for row in before[before[:, 0] == 1]:
        pts = row[4 : 4 + 2 * int(row[3])]
        orig[(pts[0], pts[-2])] = pts
    for _, pc in net.pwl_cost.iterrows():
        areas = np.array(pc["points"], dtype=float)
        assert np.all(np.isfinite(areas)) and np.all(areas[:, 1] > areas[:, 0])
        ref = orig.pop((areas[0, 0], areas[-1, 1]))
        q = np.linspace(ref[0], ref[-2], 41)
        ours = ref[1] + np.array([sum(max(0.0, min(x, b) - a) * s for a, b, s in areas)
                                  for x in q])
        np.testing.assert_allclose(ours, _pwl_cost(ref, q), rtol=0, atol=1e-9)
    assert not orig


def test_even_pwl_gencost_keeps_functions_and_polynomials():
    from gridverify.grid.pandapower_io import _even_pwl_gencost

    gc = np.array([[1, 0, 0, 2, 0, 0, 100, 1000, 0, 0],
                   [1, 0, 0, 3, 0, 0, 30, 400, 60, 1000],
                   [2, 0, 0, 3, 0.01, 10, 5, 0, 0, 0]], dtype=float)
    out = _even_pwl_gencost(gc)
    assert out.shape == (3, 10)
    assert out[:2, 3].tolist() == [3, 3]
    np.testing.assert_array_equal(out[1], gc[1])
    np.testing.assert_array_equal(out[2, :7], gc[2, :7])
    p = np.linspace(0, 100, 101)
    np.testing.assert_allclose(_pwl_cost(out[0, 4:], p), _pwl_cost(gc[0, 4:8], p), atol=1e-12)
    assert np.all(np.diff(out[0, 4::2]) > 0)
    # a polynomial with more coefficients than the points need widens every pwl row
    gc2 = np.array([[1, 0, 0, 2, 0, 0, 10, 100, 0, 0, 0],
                    [2, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3]], dtype=float)
    out2 = _even_pwl_gencost(gc2)
    assert out2.shape == (2, 12) and out2[0, 3] == 4
    np.testing.assert_array_equal(out2[1, :11], gc2[1])
    # rows already even are returned unchanged
    np.testing.assert_array_equal(_even_pwl_gencost(out), out)


# ------------------------------------------------- non-ASCII text, big ids, MATLAB forms


@pytest.mark.parametrize("bad, shown", [
    ("é", "é"),            # a non-ASCII letter alone on a line
    ("µ98.61", "µ"),       # one inside a matrix
    ("\uff13", "\uff13"),  # a full-width digit is not the digit 3
])
def test_non_ascii_characters_are_named_not_asserted(tmp_path, bad, shown):
    text = _tiny().replace("mpc.bus = [ 7 3 50", f"mpc.bus = [ 7 3 {bad}")
    err = _error(_write(tmp_path, text))
    assert err.line == 4 and f"unexpected character {shown!r}" in str(err)


def test_non_ascii_cli_exit_2(tmp_path, capsys):
    path = _write(tmp_path, _tiny() + "é\n")
    line = _cli_one_line_error(["case", "info", str(path)], capsys, "case.m")
    assert "'é'" in line


def test_utf16_file_reads_as_utf8(tmp_path):
    plain = load_case(_write(tmp_path, _tiny(), "plain.m"))
    path = tmp_path / "wide.m"
    path.write_bytes(_tiny().encode("utf-16"))  # with its byte-order mark
    wide = load_case(path)
    np.testing.assert_array_equal(wide.bus, plain.bus)
    np.testing.assert_array_equal(wide.branch, plain.branch)


def test_nested_block_comments(tmp_path):
    text = _tiny().replace("mpc.baseMVA = 100;\n", "mpc.baseMVA = 100;\n%{\n outer\n%{\n"
                           " inner\n%}\n mpc.bus = oops(1);\n%}\n")
    case = load_case(_write(tmp_path, text))
    assert case.bus.shape == (2, 13)


def test_base_mva_as_a_one_by_one_matrix(tmp_path):
    case = load_case(_write(tmp_path, _tiny().replace("mpc.baseMVA = 100;",
                                                      "mpc.baseMVA = [ 50 ];")))
    assert case.base_mva == 50.0


def test_bus_id_beyond_float_integers_is_rejected_on_its_row(tmp_path):
    text = _tiny().replace(" 8 1 20", " 1e19 1 20").replace("7 8 0.01", "7 1e19 0.01")
    err = _error(_write(tmp_path, text))
    assert err.field == "bus.bus_i" and "too large" in str(err) and err.line == 5


def test_grouped_island_warnings_do_not_name_a_table(tmp_path):
    buses = "".join(f" {b} {3 if b == 1 else 1} 10 0 0 0 1 1 0 230 1 1.1 0.9;\n"
                    for b in range(1, 15))
    gens = "".join(f" {b} 10 0 100 -100 1 100 1 100 0;\n" for b in range(1, 15))
    branches = "".join(f" {b} {b + 1} 0.01 0.1 0 100 0 0 0 0 1 -30 30;\n"
                       for b in range(1, 15, 2))
    costs = "".join(" 2 0 0 2 1 0;\n" for _ in range(14))
    text = (f"function mpc = islands\nmpc.version = '2';\nmpc.baseMVA = 100;\n"
            f"mpc.bus = [\n{buses}];\nmpc.gen = [\n{gens}];\nmpc.branch = [\n{branches}];\n"
            f"mpc.gencost = [\n{costs}];\n")
    from gridverify.grid.validate import validate_case

    warnings = validate_case(load_case(_write(tmp_path, text))).warnings
    line = next(w for w in warnings if "islands without a reference bus" in w)
    assert "None" not in line and "islands without a reference bus: 6;" in line
