"""``gridverify compare``: exit status, text and JSON output, bad input."""

from __future__ import annotations

import json

import pytest

from gridverify.cli import main


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Certificates of the shipped plain and verification-friendly case14 proxies."""
    d = tmp_path_factory.mktemp("certs")
    for name in ("case14_relu", "case14_relu_stable"):
        rc = main(["certify", "pglib_opf_case14_ieee", "--model", f"models/{name}",
                   "--method", "crown", "--samples", "64", "--no-radius", "--quiet",
                   "--threads", "1", "--out", str(d / f"{name}.json")])
        assert rc in (0, 1, 3)
    return d / "case14_relu.json", d / "case14_relu_stable.json"


def test_improvement_exits_0_and_regression_exits_1(certs, capsys):
    plain, stable = certs
    assert main(["compare", str(plain), str(stable)]) == 0
    out = capsys.readouterr().out
    assert "0 regressed" in out and "improvements (status, bound, found):" in out
    assert "p_balance" in out and " -> " in out
    assert main(["compare", str(stable), str(plain), "--limit", "1"]) == 1
    out = capsys.readouterr().out
    assert "regressions (status, bound, found):" in out
    assert main(["compare", str(stable), str(plain), "--quiet"]) == 1
    assert capsys.readouterr().out == ""


def test_plot_file(certs, tmp_path, capsys):
    plain, stable = certs
    png = tmp_path / "cmp.png"
    assert main(["compare", str(plain), str(stable), "--quiet", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", str(plain), str(stable), "--plot", str(tmp_path)]) == 2
    assert "--plot" in capsys.readouterr().err


def test_json(certs, capsys):
    plain, stable = certs
    assert main(["compare", str(stable), str(plain), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["regressed"] and d["counts"]["regression"] == len(d["changes"]) > 0
    assert {c["kind"] for c in d["changes"]} == {"regression"}
    assert d["old"]["model"].endswith("case14_relu_stable")
    assert main(["compare", str(plain), str(plain), "--json", "--all"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["changes"]) == d["old"]["summary"]["total"] and not d["notes"]
    # --quiet prints nothing, with --json too (it printed the JSON)
    assert main(["compare", str(stable), str(plain), "--json", "--quiet"]) == 1
    assert capsys.readouterr().out == ""


def test_bad_input_is_one_line_exit_2(certs, tmp_path, capsys):
    plain, _ = certs
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, match in (([str(tmp_path / "missing.json"), str(plain)], "missing.json"),
                        ([str(plain), str(bad)], "bad.json: invalid JSON"),
                        ([str(plain), str(tmp_path)], str(tmp_path)),
                        ([str(plain), str(plain), "--limit", "0"], "positive integer")):
        assert main(["compare", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err, err
    # damaged certificates: an unknown status, a NaN or missing bound, a newer version
    for name, edit, match in (
            ("status", lambda d: d["constraints"][0].update(status="bogus"), "unknown status"),
            ("nan", lambda d: d["constraints"][0].update(upper_bound=float("nan")), "is NaN"),
            ("nobound", lambda d: d["constraints"][0].pop("upper_bound"), "no upper_bound"),
            ("version", lambda d: d.update(version=99), "version 99")):
        d = json.loads(plain.read_text())
        edit(d)
        (tmp_path / f"{name}.json").write_text(json.dumps(d))
        assert main(["compare", str(plain), str(tmp_path / f"{name}.json")]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{name}.json: " in err and match in err and "\n" not in err, err
    other = tmp_path / "other.json"
    d = json.loads(plain.read_text())
    d["case"] = "pglib_opf_case5_pjm"
    other.write_text(json.dumps(d))
    assert main(["compare", str(plain), str(other)]) == 2
    assert "different cases" in capsys.readouterr().err


def test_the_family_table_fits_an_80_column_terminal(certs, capsys, monkeypatch):
    """Cells "old -> new" wrap after the arrow (the table was 89 columns wide and every
    row wrapped on an 80-column terminal); family names stay whole."""
    plain, stable = certs
    monkeypatch.setenv("COLUMNS", "80")
    main(["compare", str(plain), str(stable)])
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("family"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("cert / viol"))
    assert all(len(ln) <= 80 for ln in lines[start:end]), "\n".join(lines[start:end])
    assert any(ln.startswith("p_balance") for ln in lines[start:end])
