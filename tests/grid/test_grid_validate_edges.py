"""Edges of case validation: boundaries of the checks in ``validate.py`` (NaN where Inf
is allowed, zero baseMVA and bus id, thresholds of impedance, ratings, taps and
costs, grouped warnings), ``#`` comments, short rows and a UTF-8 BOM in MATPOWER
files, and pandapower costs and impedances that the converter must refuse or sign."""

from __future__ import annotations

import codecs
import warnings
from pathlib import Path

import pytest

from gridverify.errors import CaseFormatError
from gridverify.grid import GridverifyWarning, compile_case, from_pandapower, load_case

try:
    import pandapower as pp
except ImportError:  # pragma: no cover - pandapower is an optional dependency
    pp = None

needs_pandapower = pytest.mark.skipif(pp is None, reason="pandapower is not installed")

BUS = "{bid} {btype} {pd} {qd} 0 0 1 1 0 230 1 1.1 {vmin}"


def _error(path: Path) -> CaseFormatError:
    with pytest.raises(CaseFormatError) as info:
        load_case(path)
    return info.value


def _warnings(path: Path) -> list[str]:
    """The GridverifyWarning texts compiling the case issues."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_case(load_case(path))
    return [str(w.message) for w in caught if issubclass(w.category, GridverifyWarning)]


def _replace(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


# ------------------------------------------------------------------ non-finite values


@pytest.mark.parametrize(("table", "row", "column", "field"), [
    ("gen", "1 0 0 100 -100 1 100 1 NaN 0", "column 9 (Pmax)", "gen.Pmax"),
    ("branch", "1 2 0.01 0.05 0.04 NaN 0 0 0 0 1 -30 30", "column 6 (rateA)", "branch.rateA"),
    ("branch", "1 2 0.01 0.05 0.04 100 0 0 0 0 1 NaN 30", "column 12 (angmin)",
     "branch.angmin"),
    ("branch", "1 2 0.01 0.05 0.04 100 0 0 0 0 1 -30 NaN", "column 13 (angmax)",
     "branch.angmax"),
])
def test_nan_is_refused_where_inf_is_allowed(mpc3, table, row, column, field):
    err = _error(mpc3(**{table: {0: row}}))
    assert f"NaN in {column}" in str(err)
    assert err.field == field and f"{table} row 1" in str(err)


# ------------------------------------------------------------------ baseMVA and buses


def test_zero_base_mva_is_refused(mpc3):
    path = _replace(mpc3(), "mpc.baseMVA = 100;", "mpc.baseMVA = 0;")
    err = _error(path)
    assert "baseMVA must be a positive number, got 0" in str(err)
    assert err.field == "baseMVA" and err.line == 3


def test_bus_id_zero_is_refused(mpc3):
    err = _error(mpc3(bus_extra=[BUS.format(bid=0, btype=1, pd=0, qd=0, vmin=0.9)]))
    assert "bus row 4: bus id 0 is not a positive integer" in str(err)
    assert err.field == "bus.bus_i"


def test_negative_vmin_is_refused(mpc3):
    err = _error(mpc3(bus={2: BUS.format(bid=3, btype=1, pd=80, qd=30, vmin=-0.1)}))
    assert "bus row 3: negative Vmin -0.1" in str(err)
    assert err.field == "bus.Vmin"


# ------------------------------------------------------------------ branches


@pytest.mark.parametrize("x", ["1e-14", "1e-13"])
def test_numerically_zero_impedance_is_refused(mpc3, x):
    err = _error(mpc3(branch={0: f"1 2 0 {x} 0.04 100 0 0 0 0 1 -30 30"}))
    assert f"branch row 1: numerically zero impedance (|r + jx| = {x})" in str(err)
    assert err.field == "branch.x"


def test_impedance_at_the_threshold_is_accepted(mpc3):
    raw = load_case(mpc3(branch={0: "1 2 0 1e-12 0.04 100 0 0 0 0 1 -30 30"}))
    assert raw.branch[0, 3] == 1e-12


def test_small_negative_rating_is_refused(mpc3):
    err = _error(mpc3(branch={1: "1 3 0.02 0.08 0.04 -0.5 0 0 0 0 1 -30 30"}))
    assert "branch row 2: negative rating rateA = -0.5" in str(err)
    assert err.field == "branch.rateA"


@pytest.mark.parametrize(("tap", "warns"), [
    ("0.5", False), ("1.5", False), ("0.4999", True), ("1.5001", True),
])
def test_unusual_tap_warning_starts_just_outside_the_range(mpc3, tap, warns):
    path = mpc3(branch={0: f"1 2 0.01 0.05 0.04 100 0 0 {tap} 0 1 -30 30"})
    found = [w for w in _warnings(path) if "unusual tap ratio" in w]
    assert bool(found) is warns, found
    if warns:
        assert f"branch row 1: unusual tap ratio {tap}" in found[0]


def test_exactly_the_group_limit_of_warnings_are_shown_one_per_line(mpc3):
    extra = ["1 2 0.01 0.05 0.04 100 0 0 1.6 0 1 -30 30" for _ in range(4)]
    path = mpc3(branch={0: "1 2 0.01 0.05 0.04 100 0 0 1.6 0 1 -30 30"}, branch_extra=extra)
    found = [w for w in _warnings(path) if "unusual tap ratio" in w]
    assert len(found) == 5
    for w, row in zip(found, (1, 4, 5, 6, 7)):
        assert f"branch row {row}: unusual tap ratio 1.6" in w
    assert not any(" on 5 branch rows" in w for w in found)


# ------------------------------------------------------------------ generator costs


def _gencost(pwl: str) -> dict[int, str]:
    """Both gencost rows as piecewise-linear (model 1, three points); ``pwl`` for gen 1."""
    return {0: f"1 0 0 3 {pwl}", 1: "1 0 0 3 0 0 50 1250 100 2500"}


def test_pwl_cost_with_equal_power_points_is_refused(mpc3):
    err = _error(mpc3(gencost=_gencost("0 0 0 5 10 20")))
    assert "gencost row 1: piecewise-linear cost points are not strictly increasing" in str(err)
    assert err.field == "gencost.cost"


def test_slightly_concave_pwl_cost_is_refused(mpc3):
    # the middle point 0.1 % of the largest cost (1000) above the chord
    err = _error(mpc3(gencost=_gencost("0 0 50 501 100 1000")))
    assert "gencost row 1: piecewise-linear cost is not convex" in str(err)
    assert err.field == "gencost.cost"


def test_gencost_with_one_row_too_many_is_refused(mpc3):
    path = mpc3(gencost=["2 0 0 3 0.02 20 0", "2 0 0 3 0.03 25 0", "2 0 0 3 0.04 30 0"])
    err = _error(path)
    assert "gencost has 3 rows, expected 2 (one per generator) or 4" in str(err)
    assert err.field == "gencost"


def test_out_of_service_generator_with_concave_cost_is_accepted(mpc3):
    path = mpc3(gen={1: "2 0 0 100 -100 1 100 0 100 0"},
                gencost={0: "1 0 0 3 0 0 100 2000 200 4000",
                         1: "1 0 0 3 0 0 50 2000 100 2500"})
    raw = load_case(path)
    assert raw.gen.shape[0] == 2
    # in service, the same cost is refused
    err = _error(mpc3("active", gencost={0: "1 0 0 3 0 0 100 2000 200 4000",
                                         1: "1 0 0 3 0 0 50 2000 100 2500"}))
    assert "gencost row 2: piecewise-linear cost is not convex" in str(err)


def test_cubic_polynomial_cost_is_refused(mpc3):
    err = _error(mpc3(gencost=["2 0 0 4 0.001 0.02 20 0", "2 0 0 4 0 0.03 25 0"]))
    assert "gencost row 1: polynomial cost of degree 3 is not supported" in str(err)
    assert err.field == "gencost.n"


# ------------------------------------------------------------------ islands


def test_island_with_only_reactive_load_and_no_generator_is_refused(mpc3):
    err = _error(mpc3(bus_extra=[BUS.format(bid=4, btype=1, pd=0, qd=10, vmin=0.9)]))
    assert "bus row 4: island of buses [4] has load 0 MW and no in-service generator" \
        in str(err)
    assert err.field == "bus.Pd"


# ------------------------------------------------------------------ MATPOWER parsing


def test_hash_comment_lines_are_comments(mpc3):
    path = _replace(mpc3(), "mpc.baseMVA = 100;", "# Octave comment\nmpc.baseMVA = 100;  # MVA")
    raw = load_case(path)
    assert raw.base_mva == 100.0 and raw.bus.shape == (3, 13)


def test_short_matrix_row_is_refused_naming_the_row(mpc3):
    path = _replace(mpc3(), " 2 2 50 10 0 0 1 1 0 230 1 1.1 0.9;",
                    " 2 2 50 10 0 0 1 1 0 230 1 1.1;")
    err = _error(path)
    assert "row 2 of bus has 12 columns, expected 13 (as in row 1)" in str(err)
    assert err.line == 6 and f"{path}:6" in str(err)


def test_utf8_bom_file_parses(mpc3):
    path = mpc3()
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    raw = load_case(path)
    assert raw.bus.shape == (3, 13) and raw.base_mva == 100.0


# ------------------------------------------------------------------ pandapower


def _net3():
    """Three 110 kV buses on two lines, an ext_grid with a cost and a load (built by
    hand: ``pandapower.networks.case9()`` takes about 0.5 s to load)."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110, min_vm_pu=0.95, max_vm_pu=1.05) for _ in range(3)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0, min_p_mw=-300, max_p_mw=300, min_q_mvar=-300,
                       max_q_mvar=300)
    for f, t in ((0, 1), (1, 2)):
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.12,
                                       x_ohm_per_km=0.39, c_nf_per_km=9.5, max_i_ka=0.47)
    pp.create_load(net, b[2], p_mw=30, q_mvar=5)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=20)
    return net


@needs_pandapower
def test_pandapower_impedance_asymmetric_in_resistance_only_is_refused():
    net = _net3()
    pp.create_impedance(net, 0, 2, rft_pu=0.01, xft_pu=0.05, sn_mva=100, rtf_pu=0.02,
                        xtf_pu=0.05)
    with pytest.raises(CaseFormatError, match="asymmetric branch impedance") as info:
        from_pandapower(net)
    assert info.value.field == "branch row 3"  # the impedance, after the two lines


@needs_pandapower
def test_pandapower_storage_cost_sign_is_flipped():
    """pandapower's generator variable of a storage unit is minus its power: a cost of
    10 per MW it draws is -10 per MW of generation."""
    net = _net3()
    s = pp.create_storage(net, 1, p_mw=0, max_e_mwh=100, controllable=True, max_p_mw=10,
                          min_p_mw=-10, max_q_mvar=0, min_q_mvar=0)
    pp.create_poly_cost(net, s, "storage", cp1_eur_per_mw=10)
    raw = from_pandapower(net)
    row = raw.element_names["gen"].index(f"storage {s}")
    assert raw.gencost[row, 0] == 2
    assert raw.gencost[row, 5] == -10.0
