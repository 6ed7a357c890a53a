"""Bundled cases: loading, compiling, units, conventions, hashing, warnings, Ybus."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify.errors import CaseFormatError
from gridverify.grid import (
    CompiledCase,
    GridverifyWarning,
    bus_injections,
    compile_case,
    list_bundled_cases,
    load_case,
    load_compiled,
    ybus_injections,
)
from gridverify.grid.case import bundled_cases_dir

CASES = bundled_cases_dir()
BUNDLED = list_bundled_cases()
SMALL = [n for n in BUNDLED if "1354" not in n]


def _compile(name_or_path) -> CompiledCase:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridverifyWarning)
        return load_compiled(name_or_path)


def _edited(tmp_path: Path, base: str, edits: dict[str, str], name: str = "edited.m") -> Path:
    text = (CASES / f"{base}.m").read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bundled_list():
    assert len(BUNDLED) == 10
    assert BUNDLED[0] == "pglib_opf_case3_lmbd" and BUNDLED[-1] == "pglib_opf_case1354_pegase"
    assert all((CASES / f"{n}.m").is_file() for n in BUNDLED)


@pytest.mark.parametrize("name", SMALL)
def test_every_bundled_case_compiles(name):
    cc = _compile(name)
    raw = load_case(name)
    assert cc.name == name
    assert cc.n_bus == raw.bus.shape[0]
    assert cc.n_gen == int(np.count_nonzero(raw.gen_status > 0))
    assert cc.n_branch == int(np.count_nonzero(raw.branch_status > 0))
    assert cc.n_load == int(np.count_nonzero((raw.bus[:, 2] != 0) | (raw.bus[:, 3] != 0)))
    assert cc.ref_bus.size >= 1
    _check_structure(cc)


def test_case1354_compiles_fast():
    t0 = time.perf_counter()
    cc = _compile("pglib_opf_case1354_pegase")
    assert time.perf_counter() - t0 < 5.0
    assert (cc.n_bus, cc.n_gen, cc.n_branch) == (1354, 260, 1991)
    _check_structure(cc)


def _check_structure(cc: CompiledCase) -> None:
    for name, val in vars(cc).items():
        if isinstance(val, np.ndarray):
            assert not val.flags.writeable, name
            with pytest.raises(ValueError):
                val[...] = 0 if val.size else val
    for tpl in (cc.pf_t, cc.qf_t, cc.pt_t, cc.qt_t):
        assert not tpl.vv.flags.writeable
    assert cc.cf.shape == (cc.n_branch, cc.n_bus) and cc.ct.shape == cc.cf.shape
    assert cc.cg.shape == (cc.n_gen, cc.n_bus) and cc.cl.shape == (cc.n_load, cc.n_bus)
    np.testing.assert_array_equal(cc.cf.indices, cc.f_bus)
    np.testing.assert_array_equal(cc.ct.indices, cc.t_bus)
    np.testing.assert_array_equal(cc.cg.indices, cc.gen_bus)
    np.testing.assert_array_equal(cc.cl.indices, cc.load_bus)
    assert {cc.bus_index[int(b)] for b in cc.bus_ids} == set(range(cc.n_bus))
    assert cc.graph.number_of_nodes() == cc.n_bus
    assert cc.graph.number_of_edges() == cc.n_branch
    assert all(cc.graph.nodes[i]["bus_id"] == cc.bus_ids[i] for i in range(cc.n_bus))
    assert np.all(cc.tap > 0) and np.all(cc.rate_a > 0)
    assert np.all(cc.vmin <= cc.vmax) and np.all(cc.pmin <= cc.pmax)
    assert re.fullmatch(r"[0-9a-f]{64}", cc.content_hash)
    np.testing.assert_array_equal(cc.pd, cc.pd_bus[cc.load_bus])


@pytest.mark.parametrize("alias", ["pglib_opf_case14_ieee", "case14_ieee", "case14_ieee.m",
                                   "pglib_opf_case14_ieee.m"])
def test_case_names(alias):
    assert load_case(alias).source == str(CASES / "pglib_opf_case14_ieee.m")


def test_case_by_path_and_unknown(tmp_path):
    p = tmp_path / "mine.m"
    p.write_text((CASES / "pglib_opf_case5_pjm.m").read_text())
    raw = load_case(str(p))
    assert raw.name == "mine" and raw.source == str(p)
    with pytest.raises(CaseFormatError, match="no such case file or bundled case"):
        load_case("case99_nowhere")
    with pytest.raises(CaseFormatError, match="not a regular file"):
        load_case(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CaseFormatError, match="notes.txt is not a folder"):
        load_case(tmp_path / "notes.txt" / "case.m")


def test_units_and_costs_case5():
    cc = _compile("case5_pjm")
    assert cc.base_mva == 100.0
    np.testing.assert_allclose(cc.pd, [3.0, 3.0, 4.0])
    np.testing.assert_allclose(cc.qd, [0.9861, 0.9861, 1.3147])
    assert cc.load_bus.tolist() == [1, 2, 3]
    np.testing.assert_allclose(cc.pmax, [0.4, 1.7, 5.2, 2.0, 6.0])
    np.testing.assert_allclose(cc.cost_c1, [1400.0, 1500.0, 3000.0, 4000.0, 1000.0])
    np.testing.assert_allclose(cc.cost_c2, 0.0)
    np.testing.assert_allclose(cc.rate_a, [4.0, 4.26, 4.26, 4.26, 4.26, 2.4])
    np.testing.assert_allclose(cc.angmin, -np.pi / 6)
    np.testing.assert_allclose(cc.tap, 1.0)
    np.testing.assert_allclose(cc.shift, 0.0)
    assert cc.ref_bus.tolist() == [3]
    assert cc.gen_bus.tolist() == [0, 0, 2, 3, 4]


def test_quadratic_cost_scaling_case3():
    cc = _compile("case3_lmbd")
    # gencost row 1: 0.11 MW^-2, 5 $/MWh, 0 -> pg in pu: 0.11 * 100^2, 5 * 100
    np.testing.assert_allclose(cc.cost_c2, [1100.0, 850.0, 0.0])
    np.testing.assert_allclose(cc.cost_c1, [500.0, 120.0, 0.0])
    pg_mw = np.array([148.07, 170.01, 0.0])
    cost_mw = 0.11 * pg_mw[0] ** 2 + 5 * pg_mw[0] + 0.085 * pg_mw[1] ** 2 + 1.2 * pg_mw[1]
    pg = pg_mw / 100
    assert np.sum(cc.cost_c2 * pg**2 + cc.cost_c1 * pg + cc.cost_c0) == pytest.approx(cost_mw)


@pytest.mark.parametrize("name", ["case118_ieee", "case300_ieee"])
def test_taps_shifts_radians(name):
    """Taps (0 means 1) and phase shifts in radians with MATPOWER's sign, per branch
    row; case300 has phase shifters."""
    raw = load_case(name)
    cc = _compile(name)
    br = raw.branch[np.asarray(cc.branch_row) - 1]
    ratio = br[:, 8]
    np.testing.assert_array_equal(cc.tap, np.where(ratio == 0, 1.0, ratio))
    np.testing.assert_allclose(cc.shift, np.deg2rad(br[:, 9]), rtol=0, atol=1e-15)
    np.testing.assert_allclose(cc.va0, np.deg2rad(raw.bus[:, 8]))
    assert np.any(cc.tap != 1.0)
    if name == "case300_ieee":
        assert np.any(br[:, 9] != 0)


def test_status_rate_zero_and_isolated_bus(tmp_path):
    # case5: gen 2 off, branch 6 (4-5) off, branch 1 rateA 0 (unlimited)
    p = _edited(tmp_path, "pglib_opf_case5_pjm", {
        "1	 85.0	 0.0	 127.5	 -127.5	 1.0	 100.0	 1":
            "1	 85.0	 0.0	 127.5	 -127.5	 1.0	 100.0	 0",
        "4	 5	 0.00297	 0.0297	 0.00674	 240.0	 240.0	 240.0	 0.0	 0.0	 1":
            "4	 5	 0.00297	 0.0297	 0.00674	 240.0	 240.0	 240.0	 0.0	 0.0	 0",
        "0.00712	 400.0": "0.00712	 0.0",
    })
    cc = _compile(p)
    assert cc.gen_row.tolist() == [1, 3, 4, 5]
    assert cc.branch_row.tolist() == [1, 2, 3, 4, 5]
    assert cc.rate_a[0] == np.inf
    assert cc.n_gen == 4 and cc.n_branch == 5


def test_type4_bus_dropped_with_warnings(tmp_path):
    # case3: bus 3 isolated (type 4): its load, generator and branches go, with warnings
    p = _edited(tmp_path, "pglib_opf_case3_lmbd", {
        "3	 2	 95.0": "3	 4	 95.0"})
    with pytest.warns(GridverifyWarning) as rec:
        cc = load_compiled(p)
    assert cc.n_bus == 2 and cc.bus_ids.tolist() == [1, 2]
    assert cc.n_gen == 2 and cc.n_branch == 1 and cc.n_load == 2
    msgs = [str(w.message) for w in rec]
    assert any("load on an isolated (type 4) bus" in m for m in msgs)
    assert any("generator on isolated bus 3" in m for m in msgs)
    assert sum("touching an isolated (type 4) bus" in m for m in msgs) == 2
    assert set(cc.warnings) == set(msgs)


def test_unusual_things_warn(tmp_path):
    p = _edited(tmp_path, "pglib_opf_case5_pjm", {
        "0.0281	 0.00712	 400.0	 400.0	 400.0	 0.0	 0.0	 1	 -30.0	 30.0":
            "-0.0281	 0.00712	 400.0	 400.0	 400.0	 2.5	 0.0	 1	 -80.0	 30.0",
    })
    with pytest.warns(GridverifyWarning) as rec:
        cc = load_compiled(p)
    text = " | ".join(str(w.message) for w in rec)
    assert "negative reactance" in text and "unusual tap ratio 2.5" in text
    assert "wider than 60 deg" in text
    assert all(re.search(r"edited\.m:\d+: branch row 1", m) for m in cc.warnings)


def test_case300_negative_reactance_warning():
    with pytest.warns(GridverifyWarning, match="negative reactance"):
        cc = load_compiled("case300_ieee")
    assert len(cc.warnings) >= 1


def test_content_hash_ignores_formatting(tmp_path):
    base = _compile("case5_pjm")
    text = (CASES / "pglib_opf_case5_pjm.m").read_text()
    reformatted = "\n".join(
        "% extra comment\n" + ln.replace("\t", "   ").replace(" 1.00000", " 1.0")
        if not ln.startswith("%") else ln for ln in text.splitlines()
    )
    p = tmp_path / "other_name.m"
    p.write_text(reformatted)
    same = _compile(p)
    assert same.content_hash == base.content_hash
    changed = tmp_path / "changed.m"
    changed.write_text(text.replace("300.0	 98.61", "300.5	 98.61", 1))
    assert _compile(changed).content_hash != base.content_hash


def test_bus_name_and_inactive_dcline(tmp_path):
    text = (CASES / "pglib_opf_case3_lmbd.m").read_text()
    text += "mpc.bus_name = {\n 'North';\n 'South, A';\n 'East'\n};\n"
    text += "mpc.dcline = [\n 1 2 0 10 10 0 0 1 1 0 100 -100 100 -100 100 0 0;\n];\n"
    p = tmp_path / "named.m"
    p.write_text(text)
    raw = load_case(p)
    assert raw.bus_name == ("North", "South, A", "East")
    with pytest.warns(GridverifyWarning, match="dcline ignored"):
        compile_case(raw)


def test_bus_name_length_mismatch(tmp_path):
    text = (CASES / "pglib_opf_case3_lmbd.m").read_text() + "mpc.bus_name = { 'a'; 'b' };\n"
    p = tmp_path / "names.m"
    p.write_text(text)
    with pytest.raises(CaseFormatError, match="bus_name has 2 entries") as info:
        load_case(p)
    assert info.value.field == "bus_name" and info.value.line is not None


def test_reactive_cost_rows_ignored(tmp_path):
    text = (CASES / "pglib_opf_case3_lmbd.m").read_text()
    extra = "".join("\t2\t 0.0\t 0.0\t 3\t 0.0\t 1.0\t 0.0;\n" for _ in range(3))
    marker = "];\n\n%% branch data"
    assert marker in text
    text = text.replace(marker, extra + marker, 1)
    p = tmp_path / "qcost.m"
    p.write_text(text)
    with pytest.warns(GridverifyWarning, match="reactive power costs"):
        cc = load_compiled(p)
    np.testing.assert_allclose(cc.cost_c2, [1100.0, 850.0, 0.0])


@pytest.mark.parametrize("name", BUNDLED)
def test_ybus_matches_templates(name):
    """S = V conj(Ybus V) equals the template flows out plus the shunts, to 1e-10."""
    cc = _compile(name)
    rng = np.random.default_rng(7)
    vm = rng.uniform(0.85, 1.15, (4, cc.n_bus))
    va = rng.uniform(-0.6, 0.6, (4, cc.n_bus))
    p, q = bus_injections(cc, vm, va)
    ps, qs = ybus_injections(cc, vm, va)
    scale = max(1.0, float(np.abs(ps).max()))
    assert np.abs(ps - (p + cc.gs * vm**2)).max() <= 1e-10 * scale
    assert np.abs(qs - (q - cc.bs * vm**2)).max() <= 1e-10 * scale


@pytest.mark.parametrize("name", ["case14_ieee", "case118_ieee", "case300_ieee"])
def test_templates_match_branch_model(name):
    """Template flows equal the MATPOWER pi model written with complex numbers."""
    from gridverify.grid import branch_flows

    cc = _compile(name)
    rng = np.random.default_rng(3)
    vm = rng.uniform(0.9, 1.1, cc.n_bus)
    va = rng.uniform(-0.5, 0.5, cc.n_bus)
    v = vm * np.exp(1j * va)
    ys = 1 / (cc.r + 1j * cc.x)
    a = cc.tap * np.exp(1j * cc.shift)
    vf, vt = v[cc.f_bus], v[cc.t_bus]
    i_series = (vf / a - vt) * ys
    i_f = (i_series + 1j * cc.b / 2 * vf / a) / np.conj(a)
    i_t = -i_series + 1j * cc.b / 2 * vt
    sf, st = vf * np.conj(i_f), vt * np.conj(i_t)
    fl = branch_flows(cc, vm, va)
    for got, ref in ((fl.pf, sf.real), (fl.qf, sf.imag), (fl.pt, st.real), (fl.qt, st.imag)):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_repeated_warnings_are_grouped(tmp_path):
    text = (CASES / "pglib_opf_case5_pjm.m").read_text().replace("-30.0	 30.0", "-80.0	 30.0")
    p = tmp_path / "wide.m"
    p.write_text(text)
    with pytest.warns(GridverifyWarning) as rec:
        cc = load_compiled(p)
    wide = [w for w in cc.warnings if "wider than 60 deg" in w]
    assert len(wide) == 1 and "on 6 branch rows (1, 2, 3, 4, 5, ...)" in wide[0]
    assert len(rec) == len(cc.warnings)


def test_negative_resistance_and_unfed_island_warn(tmp_path):
    # case5: bus 5 cut off (branches 1-5 and 4-5 out), its generator off and no load there
    p = _edited(tmp_path, "pglib_opf_case5_pjm", {
        "0.00064	 0.0064	 0.03126	 426	 426	 426	 0.0	 0.0	 1":
            "0.00064	 0.0064	 0.03126	 426	 426	 426	 0.0	 0.0	 0",
        "0.00297	 0.0297	 0.00674	 240.0	 240.0	 240.0	 0.0	 0.0	 1":
            "0.00297	 0.0297	 0.00674	 240.0	 240.0	 240.0	 0.0	 0.0	 0",
        "0.00281	 0.0281": "-0.00281	 0.0281",
    })
    with pytest.warns(GridverifyWarning):
        cc = load_compiled(p)
    text = " | ".join(cc.warnings)
    assert "negative resistance" in text
    assert "bus 5 has no in-service branch" in text


def test_gen_q_limit_infinite_wrong_way(tmp_path):
    p = _edited(tmp_path, "pglib_opf_case3_lmbd", {"1000.0	 -1000.0": "-Inf	 -Inf"})
    with pytest.raises(CaseFormatError, match=r"Qmin = \+Inf or Qmax = -Inf") as info:
        load_case(p)
    assert info.value.line == 54


def test_tiny_impedance_rejected(tmp_path):
    p = _edited(tmp_path, "pglib_opf_case3_lmbd", {"0.065	 0.62": "0.0	 1e-300"})
    with pytest.raises(CaseFormatError, match="numerically zero impedance") as info:
        load_case(p)
    assert info.value.line == 70


# Nodes and edges of each bundled case as listed in PGLib-OPF's BASELINE.md (v23.07).
PGLIB_SIZES = {
    "pglib_opf_case3_lmbd": (3, 3), "pglib_opf_case5_pjm": (5, 6),
    "pglib_opf_case14_ieee": (14, 20), "pglib_opf_case24_ieee_rts": (24, 38),
    "pglib_opf_case30_ieee": (30, 41), "pglib_opf_case39_epri": (39, 46),
    "pglib_opf_case57_ieee": (57, 80), "pglib_opf_case118_ieee": (118, 186),
    "pglib_opf_case300_ieee": (300, 411), "pglib_opf_case1354_pegase": (1354, 1991),
}


def test_sizes_match_pglib_baseline():
    assert set(PGLIB_SIZES) == set(BUNDLED)
    for name, size in PGLIB_SIZES.items():
        cc = _compile(name)
        assert (cc.n_bus, cc.n_branch) == size, name


def test_case_without_generator_costs_is_certified_not_solved(tmp_path, capsys):
    """A power-flow case (no mpc.gencost) compiles and certifies; an OPF refuses it in
    one line naming the field."""
    import sys

    from gridverify.certify import CertifyOptions, certify
    from gridverify.cli import main
    from gridverify.errors import CaseFormatError
    from gridverify.opf import solve_opf
    from gridverify.spec import box_region

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "broken_cases"))
    try:
        from make_corpus import CASES, drop_table
    finally:
        sys.path.pop(0)
    lines = (CASES / "pglib_opf_case3_lmbd.m").read_text().splitlines()
    drop_table("gencost")(lines)
    path = tmp_path / "pf_case3.m"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="no generator costs"):
        case = load_compiled(path)
    assert not case.has_costs and load_compiled("pglib_opf_case3_lmbd").has_costs
    with pytest.raises(CaseFormatError, match="field gencost: no generator costs"):
        solve_opf(case)
    assert main(["opf", "solve", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([e for e in err if e.startswith("gridverify: error")]) == 1
    assert "an OPF needs them" in err[-1]
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    n_out = 2 * case.n_gen + 2 * case.n_bus
    net = torch.nn.Sequential(torch.nn.Linear(2 * case.n_load, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, n_out)).double()
    cert = certify(case, net, box_region(case, 0.9, 1.1), method="crown",
                   options=CertifyOptions(samples=32, attack="none", radius=False))
    assert cert.summary["total"] > 0
