"""Resuming ``certify --method bab`` from a checkpoint file.

A run is cut short by its timeout; the same run given the same file goes on:
the earlier bounds and worst loads are kept (never loosened), the searches the
earlier run finished are not repeated, and the certificate stays sound
(sampling).  A file of another run, a corrupt file and a method without
branch-and-bound are named errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridverify.bab.options import BabOptions
from gridverify.certify import CertifyOptions, certify
from gridverify.certify.bab_stage import bab_available
from gridverify.cli import main
from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.spec.region import box_region

pytestmark = pytest.mark.skipif(not bab_available(), reason="bab unavailable")


def _run(case, net, path, seed=0, timeout=6.0):
    opts = CertifyOptions(samples=128, seed=seed, timeout=timeout,
                          bab=BabOptions(timeout=1.0, tolerance=1e-6))
    return certify(case, net, box_region(case, 0.8, 1.2), method="bab",
                   constraints="p_balance,q_balance", options=opts, checkpoint=path)


def _searched(cert) -> set[tuple[str, int]]:
    return {(r["family"], r["component"]) for r in cert.provenance["bab"]}


def test_a_resumed_run_keeps_the_earlier_bounds_and_skips_its_searches(tmp_path, tiny_mlp,
                                                                       check_sound):
    case = load_compiled("pglib_opf_case5_pjm")
    net = tiny_mlp(case, act="relu", seed=3, out_scale=0.3)
    # the first run must finish a few searches before its timeout cuts it short; on a
    # busy machine the stages before them take longer: a fresh run with more time
    for timeout in (6.0, 12.0, 24.0):
        path = tmp_path / f"run{timeout:g}.ckpt"
        first = _run(case, net, path, timeout=timeout)
        if len(first.provenance["bab"]) >= 3:
            break
    assert path.is_file()
    second = _run(case, net, path, timeout=timeout)
    assert any("resumed from checkpoint" in w for w in second.warnings)
    ub1 = np.array([c.upper_bound for c in first.constraints])
    ub2 = np.array([c.upper_bound for c in second.constraints])
    att1 = np.array([c.attained for c in first.constraints])
    att2 = np.array([c.attained for c in second.constraints])
    assert np.all(ub2 <= ub1)
    # worst loads re-evaluated: equal up to float64 rounding of another batch shape
    assert np.all(att2 >= att1 - 1e-12 * (1 + np.abs(att1)))
    # the tightening searches the first run finished are not run again: only the one
    # its budget cut short (one search at a time here) is searched again
    tightened1 = {(r["family"], r["component"]) for r in first.provenance["bab"]}
    again = tightened1 & _searched(second)
    assert len(tightened1) >= 3 and len(again) <= 1
    check_sound(second, case, net, n=20_000)


def test_a_checkpoint_of_another_run_is_refused(tmp_path, tiny_mlp):
    case = load_compiled("pglib_opf_case5_pjm")
    net = tiny_mlp(case, act="relu", seed=3, out_scale=0.3)
    path = tmp_path / "run.ckpt"
    _run(case, net, path, timeout=2.0)
    # refused before any work: not after the sampling, bounds and attack stages
    stages: list[str] = []
    with pytest.raises(SpecError, match="another run"):
        certify(case, net, box_region(case, 0.8, 1.2), method="bab",
                constraints="p_balance,q_balance", checkpoint=path,
                options=CertifyOptions(samples=128, seed=1, timeout=2.0),
                progress=lambda stage, frac: stages.append(stage))
    assert "sampling" not in stages and "bounds" not in stages, stages
    with pytest.raises(SpecError, match="another run"):
        _run(case, tiny_mlp(case, act="relu", seed=4, out_scale=0.3), path, timeout=2.0)
    # the same weights under another activation: another function, another run
    with pytest.raises(SpecError, match="another run"):
        _run(case, tiny_mlp(case, act="tanh", seed=3, out_scale=0.3), path, timeout=2.0)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match=r"not a gridverify checkpoint \(not an .npz archive\)"):
        _run(case, net, bad, timeout=2.0)  # not numpy's advice on pickled files
    with pytest.raises(SpecError, match="only method bab"):
        certify(case, net, box_region(case, 0.9, 1.1), method="crown", checkpoint=path)
    # truncated, empty or corrupt files, a folder: one clear error, never a traceback
    raw = path.read_bytes()
    for name, data in (("trunc", raw[: len(raw) // 2]), ("empty", b""),
                       ("flip", raw[:200] + bytes(b ^ 255 for b in raw[200:300]) + raw[300:])):
        bad = tmp_path / f"{name}.ckpt"
        bad.write_bytes(data)
        with pytest.raises(SpecError, match="not a gridverify checkpoint, or a damaged"
                           if data else "not an .npz archive"):
            _run(case, net, bad, timeout=2.0)
    with pytest.raises(SpecError, match="is a folder"):
        _run(case, net, tmp_path, timeout=2.0)
    # a bound below what its own worst loads attain cannot be of this run: refused
    with np.load(path) as z:
        saved = {k: z[k] for k in z.files}
    saved["row_ub"] = saved["row_ub"] - 10.0
    low = tmp_path / "low.ckpt"
    with open(low, "wb") as fh:
        np.savez(fh, **saved)
    with pytest.raises(SpecError, match="lies below a value attained"):
        _run(case, net, low, timeout=2.0)


def test_cli_checkpoint_needs_bab_and_names_a_foreign_file(tmp_path, capsys):
    ck = tmp_path / "c.ckpt"
    argv = ["certify", "pglib_opf_case14_ieee", "--model", "case14_relu", "--constraints",
            "p_balance[3]", "--samples", "16", "--checkpoint", str(ck), "--no-progress",
            "--quiet"]
    assert main(argv) == 2  # default method alpha-crown
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--checkpoint" in err[0]
    bab = argv + ["--method", "bab", "--timeout", "15", "--bab-timeout", "2"]
    assert main(bab) in (0, 1, 3) and ck.is_file()
    capsys.readouterr()
    assert main(bab + ["--seed", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ck) in err[0] and "another run" in err[0]


def test_sigterm_saves_the_checkpoint_and_exits_143(tmp_path):
    """kill/timeout/batch schedulers send SIGTERM: it unwinds as Ctrl-C does (the
    checkpoint is saved on the way), one line, exit status 143."""
    import signal
    import subprocess
    import sys
    import time

    ck = tmp_path / "t.ckpt"
    cmd = [sys.executable, "-m", "gridverify", "certify", "pglib_opf_case14_ieee", "--model",
           "case14_relu", "--constraints", "p_balance", "--samples", "16", "--method", "bab",
           "--timeout", "300", "--bab-timeout", "8", "--checkpoint", str(ck), "--quiet",
           "--no-radius"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ck.exists() and proc.poll() is None and time.time() - t0 < 240:
        time.sleep(0.2)  # the first search that ends saves the file
    assert proc.poll() is None, proc.communicate()
    first = ck.stat().st_mtime_ns
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "gridverify: terminated" and "Traceback" not in err
    assert ck.stat().st_mtime_ns >= first  # saved again on the way out
    with np.load(ck) as z:
        assert str(z["format"]) and np.isfinite(z["row_ub"]).any()


def test_a_decision_search_cut_by_the_phase_end_is_not_counted_as_done(tmp_path):
    """Each decision search may take its share of ``bab.timeout`` (here 1/16 of 1000 s),
    but the decision phase ends at half the time left: a search cut there is not one of
    the constraint's searches, so a resumed run searches it again (it used to count,
    and an open constraint kept its bound for good)."""
    from gridverify.resources import bundled_model

    case = load_compiled("pglib_opf_case14_ieee")
    path = tmp_path / "run.ckpt"
    opts = CertifyOptions(samples=64, timeout=8.0, bab=BabOptions(timeout=1000.0))
    cert = certify(case, str(bundled_model("case14_tanh")), method="bab",
                   constraints="pg_max,qg_max", options=opts, checkpoint=path)
    opened = [k for k, c in enumerate(cert.constraints) if c.status == "open"]
    assert opened  # the instance keeps constraints open: otherwise nothing is tested
    with np.load(path) as z:
        searched = z["searched"]
    assert (searched[opened] == 0).all()  # every search of theirs was cut short


def test_the_run_key_tells_factor_regions_of_one_box_apart():
    """``zones:a,b,K`` of every K (and the system load level) share their bounding box
    and their kind: the key must still differ, or one run's bounds would be
    imported into another region's certificate."""
    from gridverify.certify.checkpoint import run_key
    from gridverify.spec.constraints import ConstraintSelection, select_constraints
    from gridverify.spec.region import parse_region

    case = load_compiled("pglib_opf_case14_ieee")
    cons = select_constraints(case, ConstraintSelection(("p_balance",)))
    thr = np.zeros(len(cons))
    regions = [parse_region(t, case) for t in ("zones:0.9,1.1,1", "zones:0.9,1.1,3",
                                               "zones:0.9,1.1,11")]
    assert all(np.array_equal(r.lower, regions[0].lower) for r in regions)
    keys = {run_key(case, "m", r, cons, thr, 0, (0.0, 0.0)) for r in regions}
    assert len(keys) == 3


def test_every_ingredient_of_the_run_key_changes_it():
    """Case, model, region, constraints, thresholds, seed and either rounding pad: a run that
    differs in any of them must not import another's bounds (a smaller pad would
    pass off less-padded bounds as this run's)."""
    from gridverify.certify.checkpoint import run_key
    from gridverify.spec.constraints import ConstraintSelection, select_constraints

    case = load_compiled("pglib_opf_case14_ieee")
    cons = select_constraints(case, ConstraintSelection(("p_balance",)))
    thr = np.zeros(len(cons))
    base = dict(case=case, model_digest="m", region=box_region(case, 0.9, 1.1),
                constraints=cons, thresholds=thr, seed=0, pad=(1e-9, 1e-9))
    variants = [{"model_digest": "n"}, {"region": box_region(case, 0.9, 1.2)},
                {"constraints": cons[:-1], "thresholds": thr[:-1]},
                {"thresholds": thr + 1e-3}, {"seed": 1}, {"pad": (0.0, 1e-9)},
                {"pad": (1e-9, 0.0)}, {"case": load_compiled("pglib_opf_case5_pjm")},
                {"constraints": cons[1:] + cons[:1]}]  # same count, other order
    keys = [run_key(**base)] + [run_key(**{**base, **v}) for v in variants]
    assert len(set(keys)) == len(keys)


def test_damaged_fields_and_worst_loads_are_refused(tmp_path, tiny_mlp):
    """A valid archive with a field of the wrong kind or shape, a negative search count,
    or worst loads outside the region (or NaN): one SpecError naming it, never a crash
    deep in the run nor loads from outside the region counted as found."""
    case = load_compiled("pglib_opf_case5_pjm")
    net = tiny_mlp(case, act="relu", seed=3, out_scale=0.3)
    path = tmp_path / "run.ckpt"
    _run(case, net, path, timeout=2.0)
    with np.load(path) as z:
        good = {k: z[k] for k in z.files}
    region = box_region(case, 0.8, 1.2)
    found = np.isfinite(good["att"])
    assert found.any()
    outside = good["worst"].copy()
    outside[found] = region.upper * 1.03
    nan_worst = good["worst"].copy()
    nan_worst[found] = np.nan
    one_out = good["worst"].copy()
    one_out[np.flatnonzero(found)[0]] = region.lower * 0.97
    cases = {
        "field att holds <U": {"att": good["att"].astype(str)},
        "field row_ub holds <U": {"row_ub": good["row_ub"].astype(str)},
        "field searched holds <U": {"searched": good["searched"].astype(str)},
        "field searched is missing or of the wrong size": {"searched": np.array(3)},
        "field row_ub is missing or of the wrong size": {
            "row_ub": np.stack([good["row_ub"], good["row_ub"]], axis=1)},
        "field searched holds a negative count": {"searched": good["searched"] - 5},
        r"field row_ub is missing or of the wrong size \(expected": {
            "row_ub": np.append(good["row_ub"], 0.0)},
        "its worst loads are of shape": {
            "worst": np.concatenate([good["worst"], good["worst"][:, :1]], axis=1)},
        "1 of its worst loads lie outside the region": {"worst": one_out},
        "field worst is not a matrix": {"worst": good["worst"][0]},
        "worst loads lie outside the region": {"worst": outside},
        "worst loads lie outside the region or are not finite": {"worst": nan_worst},
    }
    for k, (match, change) in enumerate(cases.items()):
        bad = tmp_path / f"bad{k}.ckpt"
        with open(bad, "wb") as fh:
            np.savez(fh, **{**good, **change})
        with pytest.raises(SpecError, match=match):
            _run(case, net, bad, timeout=2.0)
