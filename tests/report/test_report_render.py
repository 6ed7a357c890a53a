"""Reports from stored study results: Markdown, self-contained HTML, figures, CSV, CLI."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from gridverify.study.jobs import Job, job_id, run_job
from gridverify.study.results import load_results
from gridverify.study.storage import StudyStore

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "case14_relu"
PNG = b"\x89PNG\r\n\x1a\n"


def _job(method: str, region: str, model: Path = MODEL) -> Job:
    from gridverify.grid import load_compiled
    from gridverify.spec.constraints import ConstraintSelection
    from gridverify.spec.region import box_region
    from gridverify.spec.thresholds import ThresholdSpec

    case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    a, b = {"near": (0.97, 1.03), "wide": (0.9, 1.1)}[region]
    return Job(
        id=job_id("c14", model.name, region, "all", method), case_key="c14",
        case="pglib_opf_case14_ieee", case_name=case.name, model_label=model.name,
        model=str(model), region_name=region, region=box_region(case, a, b).to_dict(),
        constraint_set="all", selection=ConstraintSelection().to_dict(), method=method,
        options={"timeout": None, "samples": 64, "seed": 0, "attack": "undecided", "threads": 1},
        thresholds=ThresholdSpec().to_dict(),
    )


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study folder with three finished jobs (run in this process) and one failed job."""
    if not MODEL.exists():
        pytest.skip("shipped proxy models/case14_relu not present")
    out = tmp_path_factory.mktemp("study") / "out"
    jobs = [_job("ibp", "near"), _job("crown", "near"), _job("crown", "wide"),
            _job("crown", "near", model=MODEL.parent / "no_such_model")]
    store = StudyStore(out)
    store.write_study("# test study\n", "t", jobs, "test.toml")
    for j in jobs:
        store.write_record(run_job(j))
    return out


def test_records_and_bounds_files(study_dir: Path) -> None:
    store = StudyStore(study_dir)
    res = load_results(study_dir)
    assert [r["state"] for r in res.records] == ["done", "done", "done", "failed"]
    bad = res.failed[0]
    assert bad["error"]["type"] == "ProxyError"
    assert "no_such_model" in bad["error"]["message"]
    assert not store.h5_path(bad["job_id"]).exists()
    for r in res.done:
        cert = res.certificate(r["job_id"])
        b = store.read_bounds(r["job_id"])
        assert list(b["family"]) == [c.family for c in cert.constraints]
        ub = np.array([c.upper_bound for c in cert.constraints])
        np.testing.assert_array_equal(b["upper_bound"], ub)
        np.testing.assert_array_equal(b["attained"], [c.attained for c in cert.constraints])
        assert np.isfinite(b["worst_load"]).all()  # every constraint's worst load is stored
        for c, wl in zip(cert.constraints, b["worst_load"]):
            if c.status == "violated":
                np.testing.assert_array_equal(c.witness, wl)
        json.loads(store.json_path(r["job_id"]).read_text())  # strict JSON


def test_combined_is_best_of_methods(study_dir: Path) -> None:
    res = load_results(study_dir)
    comb = res.combined_frame()
    ibp = res.certificate(job_id("c14", MODEL.name, "near", "all", "ibp"))
    crown = res.certificate(job_id("c14", MODEL.name, "near", "all", "crown"))
    near = comb[comb.region == "near"].set_index(["family", "component"])
    assert len(near) == len(crown.constraints)
    for a, b in zip(ibp.constraints, crown.constraints):
        row = near.loc[(a.family, a.component)]
        assert row.upper_bound == min(a.upper_bound, b.upper_bound)
        assert row.attained == max(a.attained, b.attained)
        assert row.upper_bound >= row.attained
        radii = [c.radius for c in (a, b) if c.radius is not None]
        assert (math.isnan(row.radius) and not radii) or row.radius == max(radii)
        if row.status == "certified":
            assert row.radius == 1.0
    summ = res.summary_frame()
    pb = summ[(summ.region == "near") & (summ.family == "p_balance")].iloc[0]
    assert math.isclose(pb.max_upper_bound, near.loc["p_balance"].upper_bound.max())
    assert pb["count"] == pb.certified + pb.violated + pb.open
    for _, r in summ.iterrows():
        fam = comb[(comb.region == r.region) & (comb.model == r.model) & (comb.family == r.family)]
        radii = fam.radius[fam.status == "open"]
        if len(radii) and radii.notna().all():
            assert r.open_radius == radii.min()
        else:
            assert math.isnan(r.open_radius)


def test_study_radius_figure(study_dir: Path) -> None:
    """One curve per model and region: the share of the combined frame's constraints
    whose radius is at least x (certified ones at 1, those without a radius nowhere)."""
    from gridverify.display import plot

    res = load_results(study_dir)
    comb = res.combined_frame()
    fig = plot(res, kind="radius")
    lines = {ln.get_label().split(" (")[0]: ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {f"{MODEL.name} | near", f"{MODEL.name} | wide"}
    for region in ("near", "wide"):
        radius = comb[comb.region == region].radius.fillna(-1.0).to_numpy()
        xs, share = lines[f"{MODEL.name} | {region}"].get_data()
        np.testing.assert_allclose(share, [(radius >= x).mean() for x in xs])
        assert share[-1] == (comb[comb.region == region].status == "certified").mean()


def test_render_report(study_dir: Path) -> None:
    from gridverify.report import render_report

    files = render_report(study_dir, command="gridverify study run test.toml")
    md = files.markdown.read_text()
    assert "## Summary per case, model and family" in md
    assert "| model | region | family |" in md
    assert "| open | open: radius | worst bound |" in md
    assert "Failed jobs" in md and "no_such_model" in md
    assert "| unstable relus |" in md
    counts = [int(u) for u in re.findall(r"\| (\d+) of 128 \|", md)]  # case14_relu: 64 + 64
    assert len(counts) == 3 and all(0 < u <= 128 for u in counts)
    assert "`gridverify study run test.toml`" in md
    for fam in ("p_balance", "thermal_fr", "vm_min", "qg_max", "angle_max"):
        assert f"| {fam} |" in md
    figs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(figs) == 4  # grid, bound and time, gaps, radius
    for rel in figs:
        data = (study_dir / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    page = files.html.read_text()
    srcs = re.findall(r'src="([^"]+)"', page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1]).startswith(PNG)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert '<td class="failed">failed</td>' in page
    csv = (study_dir / "constraints.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 * 156  # header + every constraint of both regions


def test_report_cli(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gridverify.cli import main

    # exit 1: violations exist in the shipped proxy's results
    assert main(["report", str(study_dir), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["study"] == "t" and Path(out["html"]).exists()
    assert {row["family"] for row in out["summary"]} >= {"p_balance", "thermal_to"}
    # every number as stored, at full precision (pandas' to_json rounded to 10 decimals)
    from gridverify.study.results import load_results

    frame = load_results(study_dir).summary_frame()
    for row, (_, want) in zip(out["summary"], frame.iterrows(), strict=True):
        for key in ("max_upper_bound", "max_attained", "gap"):
            v = float(want[key])
            assert row[key] == (v if math.isfinite(v) else None), (key, row[key], v)
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err
