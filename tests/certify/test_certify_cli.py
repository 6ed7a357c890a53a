"""``gridverify certify``: JSON contract, exit statuses, bad input -> exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gridverify.certify import Certificate
from gridverify.cli import main
from gridverify.grid import load_compiled
from gridverify.proxy.artifacts import write_model_dir
from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits
from gridverify.spec import box_region

CASE = "pglib_opf_case14_ieee"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    case = load_compiled(CASE)
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (16, 16), "relu", True)
    lo, hi = case_limits(case)
    torch.manual_seed(0)
    m = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
    with torch.no_grad():
        m.layers[-1].weight.mul_(0.05)
    reg = box_region(case, 0.95, 1.05)
    card = {"case_name": case.name, "case_hash": case.content_hash,
            "region": {"kind": "box", "lower": reg.lower.tolist(), "upper": reg.upper.tolist()}}
    return write_model_dir(tmp_path_factory.mktemp("m") / "case14_tiny", m, card)


def _run(capsys, *args):
    code = main(["certify", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract_and_exit_1(model_dir, capsys, tmp_path):
    out_file = tmp_path / "cert.json"
    code, out, err = _run(capsys, CASE, "--model", str(model_dir), "--region", "box:0.95,1.05",
                          "--method", "crown", "--json", "--out", str(out_file),
                          "--samples", "64")
    d = json.loads(out)
    assert code == 1 and d["summary"]["violated"] > 0
    for key in ("case", "model", "region", "method", "seconds", "summary", "constraints"):
        assert key in d
    assert d["method"] == "crown" and len(d["region"]["lower"]) == 22
    fams = {c["family"] for c in d["constraints"]}
    assert fams == {"p_balance", "q_balance", "thermal_fr", "thermal_to", "vm_max", "vm_min",
                    "pg_max", "pg_min", "qg_max", "qg_min", "angle_max", "angle_min"}
    assert json.loads(out_file.read_text())["summary"] == d["summary"]


def test_certified_exit_0_and_table(model_dir, capsys):
    # the clamp head keeps vm inside [vmin, vmax]: certified
    code, out, err = _run(capsys, CASE, "--model", str(model_dir), "--constraints",
                          "vm_max,vm_min", "--method", "ibp", "--samples", "16")
    assert code == 0
    assert "vm_max" in out and "certified" in out


def test_open_exit_3(model_dir, capsys):
    args = [CASE, "--model", str(model_dir), "--constraints", "p_balance[4]", "--method",
            "ibp", "--attack", "none", "--samples", "0", "--json"]
    code, out, _ = _run(capsys, *args)
    c = json.loads(out)["constraints"][0]
    assert c["upper_bound"] > c["attained"]
    mid = 0.5 * (c["upper_bound"] + c["attained"])
    code, out, _ = _run(capsys, *args, "--threshold", f"p_balance={mid!r}")
    d = json.loads(out)
    assert code == 3 and d["constraints"][0]["status"] == "open"
    assert d["constraints"][0]["threshold"] == pytest.approx(mid)


def test_open_hint_names_unstable_relus(model_dir, capsys):
    args = [CASE, "--model", str(model_dir), "--constraints", "p_balance[4]", "--method",
            "ibp", "--attack", "none", "--samples", "0"]
    code, out, _ = _run(capsys, *args, "--json")
    d = json.loads(out)
    c = d["constraints"][0]
    relus = d["provenance"]["proxy_relus"]
    assert relus["total"] == 32 and 0 <= relus["unstable"] <= 32
    laps = d["provenance"]["stage_seconds"]  # every stage that ran, in order, within the total
    assert list(laps) == ["setup", "sampling", "bounds", "attack", "radius", "onnx recheck"]
    # each lap is rounded to the millisecond
    assert all(v >= 0 for v in laps.values())
    assert sum(laps.values()) <= d["seconds"] + 5e-4 * len(laps) + 1e-9
    from gridverify.cli.certify import _stage_text

    top = max(laps, key=laps.get)  # the summary line names the longest stage
    text = _stage_text(Certificate.from_json(out))
    assert text.startswith(" (") and f"{top} {laps[top]:.1f} s" in text
    mid = 0.5 * (c["upper_bound"] + c["attained"])
    code, out, _ = _run(capsys, *args, "--threshold", f"p_balance={mid!r}")
    text = " ".join(out.split())  # the console wraps long lines
    assert code == 3
    assert "hint: 1 constraint is open" in text
    assert f"{relus['unstable']} of 32 relus of the proxy are unstable" in text
    assert "--method bab with a longer --timeout" in text
    assert "loads that move together (--region scale:A,B" in text  # a box region
    code, out, _ = _run(capsys, *args, "--threshold", f"p_balance={mid!r}", "--json")
    html = Certificate.from_json(out)._repr_html_()
    assert f"{relus['unstable']} of 32 relus of the proxy are unstable" in html
    code, out, _ = _run(capsys, *args)  # nothing open: no hint
    assert "hint:" not in out
    # with no relu unstable there is nothing to stabilise: no relu note, no training advice
    from dataclasses import replace

    from gridverify.cli.certify import open_hint

    cert = Certificate.from_dict(d)
    cert = replace(cert, constraints=[replace(c, status="open") for c in cert.constraints],
                   provenance={**cert.provenance, "proxy_relus": {"total": 32, "unstable": 0}})
    hint = " ".join(open_hint(cert).split())
    assert cert.relu_note() is None and "hint: 1 constraint is open" in hint
    assert "relus" not in hint and "--stability-weight" not in hint


def test_refine_all_tightens_decided_constraints(model_dir, capsys):
    """``--refine all``: alpha-CROWN also tightens the constraints CROWN already decided,
    in a pass after the undecided ones', so those keep the default's bounds exactly."""
    args = [CASE, "--model", str(model_dir), "--constraints",
            "p_balance,q_balance,thermal_fr,angle_max",
            "--samples", "0", "--attack", "none", "--json"]
    code, out, _ = _run(capsys, *args, "--method", "crown")
    c = json.loads(out)["constraints"][0]  # p_balance at bus 1, inside its bracket: open
    args += ["--threshold", f"p_balance={0.5 * (c['attained'] + c['upper_bound'])!r}"]
    runs = {}
    for method, refine in (("crown", "undecided"), ("alpha-crown", "undecided"),
                           ("alpha-crown", "all")):
        code, out, _ = _run(capsys, *args, "--method", method, "--refine", refine)
        d = json.loads(out)
        assert d["provenance"]["options"]["refine"] == refine
        runs[method, refine] = {(c["family"], c["component"]): c for c in d["constraints"]}
    crown, default, every = (runs["crown", "undecided"], runs["alpha-crown", "undecided"],
                             runs["alpha-crown", "all"])
    # no point but the box centre and corners: open after CROWN = undecided after CROWN
    undecided = [k for k, c in crown.items() if c["status"] == "open"]
    decided = [k for k in crown if k not in undecided]
    assert undecided and decided
    assert [every[k]["upper_bound"] for k in undecided] == [
        default[k]["upper_bound"] for k in undecided]
    ub_c = np.array([crown[k]["upper_bound"] for k in decided])
    assert [default[k]["upper_bound"] for k in decided] == ub_c.tolist()
    ub_a = np.array([every[k]["upper_bound"] for k in decided])
    assert np.all(ub_a <= ub_c)
    assert np.any(ub_a < ub_c - 1e-6)
    for c in every.values():
        assert c["attained"] <= c["upper_bound"]


def test_default_region_is_training_region_and_wider_warns(model_dir, capsys):
    case = load_compiled(CASE)
    code, out, err = _run(capsys, CASE, "--model", str(model_dir), "--constraints", "vm_max",
                          "--method", "ibp", "--json", "--samples", "8")
    d = json.loads(out)
    np.testing.assert_allclose(d["region"]["upper"], box_region(case, 0.95, 1.05).upper)
    assert "warning" not in err
    code, out, err = _run(capsys, CASE, "--model", str(model_dir), "--constraints", "vm_max",
                          "--method", "ibp", "--json", "--region", "box:0.8,1.2")
    assert code == 0 and "wider than the proxy's training region" in err


def test_spec_file(model_dir, capsys, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[region]\nbox = [0.97, 1.03]\n[constraints]\nfamilies = ["vm_min"]\n'
                    "[thresholds]\nvm_min = 0.5\n")
    code, out, _ = _run(capsys, CASE, "--model", str(model_dir), "--spec", str(spec),
                        "--method", "ibp", "--json")
    d = json.loads(out)
    assert code == 0 and {c["family"] for c in d["constraints"]} == {"vm_min"}
    assert all(c["threshold"] == 0.5 for c in d["constraints"])
    assert d["region"]["params"] == {"a": 0.97, "b": 1.03}


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--region", "box:1.1,0.9"], "inverted"),
        (["--region", "box:-1,1"], "negative"),
        (["--region", "box:nan,1"], "finite"),
        (["--constraints", "p_balanse"], "unknown family"),
        (["--constraints", "thermal_fr[999]"], "no component"),
        (["--threshold", "vm_max=nan"], "finite"),
        (["--timeout", "-1"], "timeout"),
        (["--threshold", "p_balance=1,p_balance=2"], "rule for p_balance is given twice"),
        (["--region", ""], "--region: empty region"),
        (["--region", " "], "--region: empty region"),
        (["--threshold", ""], "--threshold: empty value"),
        (["--spec", ""], "--spec: empty file name"),
        (["--out", ""], "--out: empty file name"),
        (["--constraints", ""], "--constraints: empty selection"),
        (["--threshold", "thermal_fr=rel:0.1"],
         "--threshold thermal_fr=rel:0.1: threshold.thermal_fr: relative thresholds"),
        (["--method", "bab", "--out", "x.json", "--checkpoint", "./x.json"],
         "--out x.json and --checkpoint ./x.json name the same file"),
        (["--method", "bab", "--gap-rel-tolerance", "1"],
         "argument --gap-rel-tolerance: must be in [0, 1), got 1"),
        (["--gap-rel-tolerance", "2"], "argument --gap-rel-tolerance: must be in [0, 1)"),
    ],
)
def test_bad_input_exit_2(model_dir, capsys, extra, match):
    code, out, err = _run(capsys, CASE, "--model", str(model_dir), *extra)
    assert code == 2
    assert match in err and err.count("\n") == 1


def test_bare_family_with_components_certifies_the_whole_family(model_dir, capsys):
    # the items of --constraints are a union: p_balance holds p_balance[1]
    code, out, _ = _run(capsys, CASE, "--model", str(model_dir), "--method", "ibp", "--json",
                        "--samples", "0", "--constraints", "p_balance,p_balance[1]")
    comps = [c["component"] for c in json.loads(out)["constraints"]]
    assert comps == load_compiled(CASE).bus_ids.tolist()


def test_spec_file_errors_name_the_file(model_dir, capsys, tmp_path):
    bodies = {
        "comp.toml": ("[constraints]\nfamilies = ['p_balance']\n"
                      "components = { p_balance = [99] }\n", "constraints.components.p_balance"),
        "fam.toml": ("[constraints]\nfamilies = []\n", "constraints.families"),
        "thr.toml": ("[thresholds]\ndefault = -1\n", "threshold.default"),
    }
    for name, (body, key) in bodies.items():
        spec = tmp_path / name
        spec.write_text(body)
        code, _, err = _run(capsys, CASE, "--model", str(model_dir), "--spec", str(spec))
        assert code == 2 and f"{spec}: {key}" in err and err.count("\n") == 1, err


def test_bad_input_exit_2_spec_and_model(model_dir, capsys, tmp_path):
    spec = tmp_path / "nan.toml"
    spec.write_text("[region]\nbox = [nan, 1.1]\n")
    code, _, err = _run(capsys, CASE, "--model", str(model_dir), "--spec", str(spec))
    assert code == 2 and "finite" in err
    # a proxy of another case
    code, _, err = _run(capsys, "pglib_opf_case30_ieee", "--model", str(model_dir))
    assert code == 2 and "case" in err
    code, _, err = _run(capsys, CASE, "--model", str(tmp_path / "missing"))
    assert code == 2 and "missing: no such model file or folder" in err


def _argparse_exit(capsys, *args):
    code = main(["certify", *args])  # usage errors are a returned status too
    capsys.readouterr()
    return code


def test_usage_errors_exit_2(capsys):
    assert _argparse_exit(capsys, CASE) == 2  # --model is required
    assert _argparse_exit(capsys, CASE, "--model", "m", "--method", "magic") == 2
