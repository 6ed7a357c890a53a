"""``gridverify case info`` and ``gridverify case list``."""

from __future__ import annotations

import json

from gridverify.cli import main


def test_case_info_json(capsys):
    assert main(["case", "info", "pglib_opf_case14_ieee", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    info = json.loads(out)
    assert info["name"] == "pglib_opf_case14_ieee"
    assert (info["n_bus"], info["n_gen"], info["n_branch"], info["n_load"]) == (14, 5, 20, 11)
    assert info["base_mva"] == 100.0
    assert abs(info["total_pd_mw"] - 259.0) < 1e-9
    assert len(info["content_hash"]) == 64 and info["warnings"] == []


def test_case_info_short_name_and_warnings(capsys):
    assert main(["case", "info", "case300_ieee", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_bus"] == 300 and any("negative reactance" in w for w in info["warnings"])


def test_case_info_table(capsys):
    assert main(["case", "info", "case5_pjm"]) == 0
    out = capsys.readouterr().out
    assert "pglib_opf_case5_pjm" in out and "n_branch" in out


def test_case_list(capsys):
    assert main(["case", "list", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)["cases"]
    assert "pglib_opf_case118_ieee" in cases and len(cases) == 10
    assert main(["case", "list"]) == 0
    assert "pglib_opf_case3_lmbd" in capsys.readouterr().out.split()


def test_case_info_unknown_is_exit_2(capsys):
    assert main(["case", "info", "no_such_case"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_case" in err[0]


def test_case_info_lists_the_zones_of_a_zone_region(capsys):
    assert main(["case", "info", "pglib_opf_case57_ieee", "--zones", "4", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    zones = info["zones"]
    assert [z["zone"] for z in zones] == [0, 1, 2, 3]
    assert sum(z["n_load"] for z in zones) == info["n_load"]
    assert sum(z["n_bus"] for z in zones) == info["n_bus"]
    assert abs(sum(z["pd_mw"] for z in zones) - info["total_pd_mw"]) < 1e-6
    ids = [i for z in zones for i in z["load_bus_ids"]]
    assert len(ids) == len(set(ids)) == info["n_load"]
    assert main(["case", "info", "pglib_opf_case57_ieee", "--zones", "4"]) == 0
    assert "zones:A,B,4" in capsys.readouterr().out
    assert main(["case", "info", "pglib_opf_case14_ieee", "--zones", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--zones 12: zones: k=12 must be between 1 and the number of loads (11)" in err
    assert main(["case", "info", "pglib_opf_case14_ieee", "--zones", "0"]) == 2
    assert "argument --zones: must be >= 1, got 0" in capsys.readouterr().err


def _pandapower_file(tmp_path):
    import pytest

    pp = pytest.importorskip("pandapower")
    pn = pytest.importorskip("pandapower.networks")
    path = tmp_path / "grid9.json"
    pp.to_json(pn.case9(), str(path))
    return path


def test_case_info_reads_a_pandapower_json_file(tmp_path, capsys):
    path = _pandapower_file(tmp_path)
    assert main(["case", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "grid9" and info["source"] == str(path)
    assert (info["n_bus"], info["n_gen"], info["n_branch"], info["n_load"]) == (9, 3, 9, 3)
    assert abs(info["total_pd_mw"] - 315.0) < 1e-9


def test_opf_solve_reads_a_pandapower_json_file(tmp_path, capsys):
    path = _pandapower_file(tmp_path)
    assert main(["opf", "solve", str(path), "--json"]) == 0
    sol = json.loads(capsys.readouterr().out)
    # pandapower's runopp optimum of its case9 (PIPS): 5311.9118 $/h
    assert abs(sol["objective"] - 5311.9118) < 1e-3


def test_bad_pandapower_json_file_is_exit_2(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"bus": [1, 2')
    assert main(["case", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "pandapower" in err[0]
