"""Frames of study results keep their columns (and dtypes) when there is nothing to put
in them: a study whose jobs are all pending, or whose certificates have no constraint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gridverify.certify import Certificate, ConstraintResult
from gridverify.spec.region import Region
from gridverify.study.results import StudyResults

LEVELS = ("jobs", "summary", "families", "constraints", "combined")


def _cert(n: int) -> Certificate:
    region = Region(np.full(4, 0.9), np.full(4, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    cons = tuple(ConstraintResult(
        family="vm_max", component=i + 1, index=i,
        upper_bound=-0.25 if i % 2 else math.inf, attained=-0.5, threshold=1e-6,
        status="certified" if i % 2 else "open", method="crown", seconds=0.01, radius=None)
        for i in range(n))
    return Certificate(case="pglib_opf_case14_ieee", model="m", region=region,
                       method="crown", seconds=1.0, constraints=cons)


def _record(job_id: str, cert: Certificate | None) -> dict:
    job = {"case_key": "c14", "case": "pglib_opf_case14_ieee",
           "case_name": "pglib_opf_case14_ieee", "model_label": "m", "region_name": "near",
           "constraint_set": "all", "method": job_id}
    if cert is None:
        return {"job_id": job_id, "job": job, "state": "pending", "certificate": None,
                "error": None}
    return {"job_id": job_id, "job": job, "state": "done", "certificate": cert.to_dict(),
            "seconds": 2.5, "error": None}


@pytest.mark.parametrize("records", [
    (_record("ibp", None), _record("crown", None)),  # every job pending
    (_record("ibp", _cert(0)), _record("crown", None)),  # a certificate of no constraint
], ids=["pending", "no-constraints"])
def test_empty_frames_have_the_columns_and_dtypes(tmp_path: Path, records) -> None:
    full = StudyResults(tmp_path, "t", (_record("ibp", _cert(4)), _record("crown", _cert(4))))
    res = StudyResults(tmp_path, "t", records)
    for level in LEVELS:
        want, got = full.to_dataframe(level), res.to_dataframe(level)
        assert list(got.columns) == list(want.columns), level
        if level != "jobs":
            assert got.empty, level
            assert got.dtypes.to_dict() == want.dtypes.to_dict(), level
    summ = res.summary_frame()
    assert summ[summ.open > 0].empty
    comb = res.combined_frame()
    assert comb[comb.status == "open"].empty and comb.upper_bound.dtype == np.float64


def test_frames_with_rows_keep_their_columns_in_order(tmp_path: Path) -> None:
    full = StudyResults(tmp_path, "t", (_record("ibp", _cert(4)), _record("crown", None)))
    comb = full.combined_frame()
    assert list(comb.columns)[:5] == ["case", "model", "region", "family", "component"]
    assert comb.upper_bound.tolist() == [math.inf, -0.25, math.inf, -0.25]
    summ = full.summary_frame()
    assert summ.max_upper_bound.iloc[0] == math.inf and summ.open.iloc[0] == 2


def _one(status: str, ub: float, att: float, reason: str | None) -> Certificate:
    region = Region(np.full(4, 0.9), np.full(4, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    c = ConstraintResult(family="vm_max", component=1, index=0, upper_bound=ub, attained=att,
                         threshold=1e-6, status=status, method="crown", seconds=0.01,
                         reason=reason, radius=None)
    return Certificate(case="pglib_opf_case14_ieee", model="m", region=region, method="crown",
                       seconds=1.0, constraints=(c,))


def test_combined_status_keeps_what_certify_never_certifies(tmp_path: Path) -> None:
    """A constraint some job found undefined (NaN) stays open across methods, and a
    bound below another job's worst found certifies nothing; the summary follows."""
    from gridverify.certify.certificate import INCONSISTENT_REASON, UNDEFINED_REASON

    cases = {  # (job ibp, job crown) -> combined status
        "undefined": ((("open", -0.2, -0.5, UNDEFINED_REASON)),
                      ("open", -0.25, -0.5, UNDEFINED_REASON), "open"),
        "inconsistent": (("open", -0.9, -0.95, INCONSISTENT_REASON),
                         ("certified", -0.1, -0.5, None), "open"),
        "plain": (("open", 0.3, -0.5, "bound above threshold"),
                  ("certified", -0.1, -0.5, None), "certified"),
    }
    for name, (a, b, want) in cases.items():
        res = StudyResults(tmp_path, "t", (_record("ibp", _one(*a)), _record("crown", _one(*b))))
        comb = res.combined_frame()
        assert comb.status.tolist() == [want], name
        summ = res.summary_frame()
        assert int(summ[want].iloc[0]) == 1, name


def test_summary_gap_and_report_row_use_the_worst_of_each(tmp_path: Path) -> None:
    """Two constraints of one family, (bound, attained) = (0.3, -0.1) and (0.5, -0.4):
    the summary's worst bound is 0.5, worst attained -0.1 and gap 0.6 (not the spread
    to the smallest attained), and the report's summary row prints those three."""
    from gridverify.report.content import _summary

    region = Region(np.full(4, 0.9), np.full(4, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    cons = tuple(ConstraintResult(
        family="vm_max", component=i + 1, index=i, upper_bound=u, attained=a,
        threshold=1e-6, status="open", method="crown", seconds=0.01, radius=None)
        for i, (u, a) in enumerate([(0.3, -0.1), (0.5, -0.4)]))
    cert = Certificate(case="pglib_opf_case14_ieee", model="m", region=region,
                       method="crown", seconds=1.0, constraints=cons)
    res = StudyResults(tmp_path, "t", (_record("crown", cert),))
    (row,) = res.summary_frame()[["max_upper_bound", "max_attained", "gap"]].to_dict("records")
    assert row == pytest.approx({"max_upper_bound": 0.5, "max_attained": -0.1, "gap": 0.6})
    cells = _summary(res).tables[0].rows[0]
    assert cells[8:11] == ("0.5", "-0.1", "0.6")
