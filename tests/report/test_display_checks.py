"""Notebook views and figures check what they are given: a certificate is drawn on its
own case only, and a comparison's HTML shows every kind of change."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify import display
from gridverify.certify import Certificate, ConstraintResult, compare_certificates
from gridverify.errors import SpecError
from gridverify.report import figures
from gridverify.spec.region import box_region
from gridverify.study.results import StudyResults


def _case(name: str):
    from gridverify.grid import load_compiled

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled(name, emit_warnings=False)


@pytest.fixture(scope="module")
def case5():
    return _case("pglib_opf_case5_pjm")


def _cert(case, families=("vm_max", "p_balance")) -> Certificate:
    """A certificate of ``case``: every bus of each family, the last bus open."""
    cons = []
    for fam in families:
        for i in range(case.n_bus):
            status = "open" if i == case.n_bus - 1 else "certified"
            cons.append(ConstraintResult(
                family=fam, component=int(case.bus_ids[i]), index=i,
                upper_bound=0.01 if status == "open" else -0.02, attained=-0.03,
                threshold=1e-6, status=status, method="crown", seconds=0.0))
    return Certificate(case=case.name, model="m", region=box_region(case, 0.97, 1.03),
                       method="crown", seconds=1.0, constraints=tuple(cons),
                       provenance={"case_name": case.name, "case_hash": case.content_hash})


def test_plot_on_its_own_case(case14) -> None:
    cert = _cert(case14)
    fig = display.plot(cert, case=case14)
    assert fig.axes[0].get_title().startswith(case14.name)


def test_plot_takes_a_case_by_name_or_file(case14) -> None:
    """``case=`` a case's name or .m file, as every other function takes it (an
    AttributeError on the string before)."""
    from gridverify.grid.case import resolve_case_path

    cert = _cert(case14)
    for given in (case14.name, resolve_case_path(case14.name)):
        fig = display.plot(cert, case=given)
        assert fig.axes[0].get_title().startswith(case14.name)
    with pytest.raises(SpecError, match="pglib_opf_case5_pjm"):
        display.plot(cert, case="pglib_opf_case5_pjm")


def test_plot_on_another_case_names_both(case14, case5) -> None:
    cert = _cert(case14)
    for other in (case5, _case("pglib_opf_case30_ieee")):  # fewer and more buses
        with pytest.raises(SpecError) as info:
            display.plot(cert, case=other)
        msg = str(info.value)
        assert msg.startswith("plot: ") and other.name in msg and case14.name in msg, msg
        assert "\n" not in msg


def test_plot_same_name_other_content(case14) -> None:
    cert = _cert(case14)
    prov = {**cert.provenance, "case_hash": "0" * 64}
    from dataclasses import replace

    with pytest.raises(SpecError, match="case hashes differ"):
        display.plot(replace(cert, provenance=prov), case=case14)
    # without a recorded hash the names decide
    fig = display.plot(replace(cert, provenance={}), case=case14)
    assert fig.axes


def test_grid_values_rejects_rows_of_another_case(case14, case5) -> None:
    rows = display.certificate_frame(_cert(case14))
    vals = figures.grid_values(case14, rows)
    assert vals["bus_status"].max() == 1 and np.isfinite(vals["bus_value"]).all()
    with pytest.raises(SpecError, match=r"index 5 is out of range for case "
                                        r"'pglib_opf_case5_pjm' \(5 buses\)"):
        figures.grid_values(case5, rows)
    figures.check_case(case14, case14.name, case14.content_hash, "x")
    with pytest.raises(SpecError, match="is not the case of x"):
        figures.check_case(case5, case14.name, case14.content_hash, "x")


def _study(tmp_path: Path, cert: Certificate) -> StudyResults:
    job = {"case_key": "c14", "case": "pglib_opf_case14_ieee", "case_name": cert.case,
           "model_label": "m", "region_name": "near", "constraint_set": "all",
           "method": "crown"}
    rec = {"job_id": "j", "job": job, "state": "done", "certificate": cert.to_dict(),
           "seconds": 1.0, "error": None}
    return StudyResults(tmp_path, "t", (rec,))


def test_grid_figure_checks_a_given_case(tmp_path: Path, case14, case5) -> None:
    res = _study(tmp_path, _cert(case14))
    assert figures.grid_figure(res, compiled=case14).axes
    with pytest.raises(SpecError, match="pglib_opf_case5_pjm.*pglib_opf_case14_ieee"):
        figures.grid_figure(res, compiled=case5)


def test_diff_html_shows_added_removed_and_dashes(case14) -> None:
    old = _cert(case14)
    d = json.loads(old.to_json())
    d["constraints"] = [c for c in d["constraints"] if c["family"] == "vm_max"]
    new = Certificate.from_dict(d)
    diff = compare_certificates(old, new)
    assert diff.counts["removed"] == case14.n_bus
    h = diff._repr_html_()
    head = h[:h.index("</p>")]
    assert f"{case14.n_bus} unchanged, {case14.n_bus} removed" in head, head
    assert "added" not in head  # only kinds that occur
    lost = sum(c.status == "certified" for c in old.constraints if c.family != "vm_max")
    assert lost > 0 and f"{lost} of them certified before: lost certificates" in head, head
    assert "NaN" not in h and "nan" not in h and "None" not in h
    fam_table = h[h.index("<table"):h.index("</table>")]
    row = fam_table[fam_table.index("<td>p_balance</td>"):]
    row = row[:row.index("</tr>")]
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    assert cells[1:4] == ["13", "0", "1"] and cells[6:] == ["-"] * 5, cells
    # the other way round the constraints are added
    back = compare_certificates(new, old)._repr_html_()
    assert f"{case14.n_bus} added" in back[:back.index("</p>")]
    # counts stay integers where both sides have the family
    row = fam_table[fam_table.index("<td>vm_max</td>"):]
    assert "13.0" not in row[:row.index("</tr>")]


def test_diff_html_without_changes(case14) -> None:
    cert = _cert(case14)
    h = compare_certificates(cert, cert)._repr_html_()
    head = h[:h.index("</p>")]
    assert "0 regressed" in head and "added" not in head and "removed" not in head


def test_views_agree_on_no_finite_bound(tmp_path: Path, case14) -> None:
    """A family without a finite bound shows ``inf`` (with a note saying what it means) in
    the certificate's view, in a comparison's view and in the study report, never
    ``NaN``, ``None`` or the ``-`` of an absent value."""
    from dataclasses import replace

    from gridverify._html import NO_BOUND_NOTE, value_text
    from gridverify.report.content import fmt

    old = _cert(case14)
    rows = tuple(replace(c, upper_bound=np.inf, status="open")
                 if (c.family, c.index) == ("p_balance", 0) else c for c in old.constraints)
    new = Certificate.from_json(replace(old, constraints=rows).to_json())  # null in the file
    assert new.get("p_balance", int(case14.bus_ids[0])).upper_bound == np.inf

    def row_of(h: str, first: str) -> list[str]:
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", h, re.S) if f"<td>{first}</td>" in r)
        return re.findall(r"<td>(.*?)</td>", row, re.S)

    h = new._repr_html_()
    fam = row_of(h, "p_balance")
    assert fam[5] == "inf" and fam[7] == "inf", fam  # max_upper_bound, gap
    assert NO_BOUND_NOTE in h and not re.search(r"NaN|None|nan", h)
    assert NO_BOUND_NOTE not in old._repr_html_()
    d = compare_certificates(old, new)._repr_html_()
    fam = row_of(d, "p_balance")
    assert fam[4] == "0.01" and fam[9] == "inf", fam  # old, new max_upper_bound
    cells = row_of(d, "regression")  # the changed constraints' table
    assert cells[3] == "certified" and cells[8] == "inf", cells  # old status, new bound
    assert NO_BOUND_NOTE in d and not re.search(r"NaN|None|nan", d)
    # the study report writes it so too, with the same helper
    assert fmt(np.inf) == value_text(np.inf) == "inf" and fmt(-np.inf) == "-inf"
    assert fmt(None) == fmt(np.nan) == "-" and fmt(-0.0) == "0" and fmt(np.int64(3)) == "3"
    res = _study(tmp_path, new)
    summ = res.summary_frame()
    assert summ[summ.family == "p_balance"].max_upper_bound.iloc[0] == np.inf
    from gridverify.report.content import _summary

    table = _summary(res).tables[0]
    row = next(r for r in table.rows if r[2] == "p_balance")
    assert row[8] == "inf" and row[10] == "inf", row
