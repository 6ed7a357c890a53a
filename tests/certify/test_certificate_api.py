"""The Certificate as a Python value: equality, hashing, short reprs, read errors, and
looking a job's certificate up in study results."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gridverify.certify import Certificate, ConstraintResult
from gridverify.errors import GridverifyError, SpecError
from gridverify.spec.region import Region
from gridverify.study.results import StudyResults, UnknownJobError


def _result(component: int, status: str = "certified", worst: list[float] | None = None,
            attained: float = -0.5) -> ConstraintResult:
    return ConstraintResult(
        family="vm_max", component=component, index=component - 1,
        upper_bound=-0.25 if status == "certified" else math.inf, attained=attained,
        threshold=1e-6, status=status, method="crown", seconds=0.01,
        worst_load=None if worst is None else np.array(worst))


def _cert(n: int = 40, **changes: object) -> Certificate:
    region = Region(np.full(4, 0.9), np.full(4, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    cons = tuple(_result(i + 1, "certified" if i % 3 else "open", [0.9 + 0.001 * i] * 4)
                 for i in range(n))
    cert = Certificate(case="pglib_opf_case14_ieee", model="models/case14_relu",
                       region=region, method="crown", seconds=12.345, constraints=cons,
                       provenance={"case_name": "pglib_opf_case14_ieee",
                                   "stage_seconds": {"bounds": 1.5}, "options": {"seed": 0}},
                       warnings=("a warning",))
    return dataclasses.replace(cert, **changes)


def test_equal_certificates_compare_equal_and_are_found_in_lists() -> None:
    a, b = _cert(), _cert()
    assert a.constraints[0].worst_load is not b.constraints[0].worst_load
    assert a == b and not a != b
    assert a in [b] and [a].index(b) == 0 and [a, b].count(b) == 2
    assert a == Certificate.from_json(a.to_json())  # the JSON round trip keeps the value


@pytest.mark.parametrize("change", [
    lambda c: dataclasses.replace(c, seconds=1.0),
    lambda c: dataclasses.replace(c, constraints=c.constraints[:-1]),
    lambda c: dataclasses.replace(c, constraints=(
        dataclasses.replace(c.constraints[0], worst_load=np.zeros(4)), *c.constraints[1:])),
    lambda c: dataclasses.replace(c, region=Region(np.full(4, 0.9), np.full(4, 1.2), "box",
                                                   (("a", 0.9), ("b", 1.2)))),
    lambda c: dataclasses.replace(c, provenance={**c.provenance, "seed": 1}),
    lambda c: dataclasses.replace(c, warnings=()),
])
def test_certificates_that_differ_compare_unequal(change) -> None:
    a = _cert()
    b = change(_cert())
    assert a != b and not a == b
    assert a not in [b]


def test_certificate_not_equal_to_other_types() -> None:
    a = _cert()
    assert a != a.to_dict() and a != "certificate" and a is not None
    assert a == a


def test_constraint_result_equality_arrays_and_nan() -> None:
    x = _result(1, "violated", [np.nan, 1.0], attained=math.nan)
    y = _result(1, "violated", [np.nan, 1.0], attained=math.nan)
    assert x == y and x in [y]
    assert x != _result(1, "violated", [np.nan, 2.0], attained=math.nan)
    assert x != _result(1, "violated", [np.nan, 1.0, 3.0], attained=math.nan)  # other shape
    assert x != _result(1, "violated", None, attained=math.nan)
    assert _result(2) == _result(2) and _result(2) != _result(3)
    assert x != (x.family, x.component)


def test_certificates_and_results_are_unhashable() -> None:
    """Both hold numpy arrays (and the certificate a provenance dict): no hash, said
    plainly, rather than a hash that breaks on the arrays."""
    assert Certificate.__hash__ is None and ConstraintResult.__hash__ is None
    with pytest.raises(TypeError, match="unhashable type: 'Certificate'"):
        hash(_cert())
    for r in (_result(1), _result(1, worst=[1.0])):
        with pytest.raises(TypeError, match="unhashable type: 'ConstraintResult'"):
            hash(r)


def test_short_reprs() -> None:
    cert = _cert(n=400)
    text = repr(cert)
    assert "\n" not in text and len(text) < 300, text
    for part in ("pglib_opf_case14_ieee", "models/case14_relu", "'crown'", "box:0.9,1.1",
                 "certified=266", "violated=0", "open=134", "seconds=12.3"):
        assert part in text, (part, text)
    r = repr(_result(3, "open", [1.0] * 500))
    assert "\n" not in r and len(r) < 200, r
    assert "vm_max[3]" in r and "open" in r and "inf" in r and "-0.5" in r
    assert len(repr(cert.constraints[:3])) < 600


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00bad")
    for path, match in ((tmp_path, "is a folder"), (tmp_path / "missing.json", "no such"),
                        (tmp_path / "bad.json", "invalid JSON"),
                        (tmp_path / "bin.json", "not UTF-8")):
        with pytest.raises(SpecError) as info:
            Certificate.read(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and match in msg and "\n" not in msg, msg
    good = _cert().write(tmp_path / "good.json")
    assert Certificate.read(good) == _cert()


def _record(job_id: str, state: str, cert: Certificate | None) -> dict:
    job = {"case_key": "c14", "case": "pglib_opf_case14_ieee",
           "case_name": "pglib_opf_case14_ieee", "model_label": "case14_relu",
           "region_name": "near", "constraint_set": "all", "method": job_id}
    return {"job_id": job_id, "job": job, "state": state,
            "certificate": None if cert is None else cert.to_dict(),
            "seconds": 2.5 if cert is not None else None,
            "error": {"type": "ProxyError", "message": "x"} if state == "failed" else None}


def _results(tmp_path: Path) -> StudyResults:
    recs = (_record("crown", "done", _cert()), _record("ibp", "done", _cert(n=5)),
            _record("bab", "failed", None), _record("alpha", "pending", None))
    return StudyResults(tmp_path, "t", recs)


def test_study_certificate_of_unknown_or_unfinished_job(tmp_path: Path) -> None:
    res = _results(tmp_path)
    assert res.certificate("crown") == _cert()
    for job, match in (("nope", "'nope' is not a job of the study"),
                       ("bab", "'bab' is failed"), ("alpha", "'alpha' is pending")):
        with pytest.raises(UnknownJobError) as info:
            res.certificate(job)
        msg = str(info.value)
        assert isinstance(info.value, KeyError) and isinstance(info.value, GridverifyError)
        assert match in msg and "finished jobs: crown, ibp" in msg and "\n" not in msg, msg
    with pytest.raises(KeyError):  # callers catching KeyError keep working
        res.certificate("nope")


def test_study_unknown_job_lists_a_few_ids(tmp_path: Path) -> None:
    recs = tuple(_record(f"job{i:02d}", "done", _cert(n=1)) for i in range(25))
    with pytest.raises(UnknownJobError, match=r"job00, job01, .*job09 \.\.\. \(15 more\)"):
        StudyResults(tmp_path, "t", recs).certificate("nope")


def test_study_results_repr_is_one_short_line(tmp_path: Path) -> None:
    res = _results(tmp_path)
    text = repr(res)
    assert "\n" not in text and len(text) < 300, text
    for part in ("name='t'", "jobs=4 (2 done, 1 failed, 1 pending)", "certified=29",
                 "open=16", "seconds=5.0"):
        assert part in text, (part, text)
    json.dumps(res.records)  # the records stay plain JSON data
