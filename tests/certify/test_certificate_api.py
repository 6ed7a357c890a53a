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


def test_the_json_text_puts_one_constraint_on_a_line() -> None:
    """Indented, but a constraint (and its load vectors) on one line: the text stays
    small for large cases; compact and indented forms hold the same object."""
    import json

    cert = _cert(5)
    text = cert.to_json()
    lines = [ln for ln in text.splitlines() if '"family": "vm_max"' in ln]
    assert len(lines) == 5 and all(ln.startswith("    {") for ln in lines)
    assert json.loads(text) == json.loads(cert.to_json(indent=None)) == cert.to_dict()
    assert Certificate.from_json(text) == cert
    empty = _cert(0)
    assert '"constraints": []' in empty.to_json()
    assert Certificate.from_json(empty.to_json()) == empty


def test_certificate_not_equal_to_other_types() -> None:
    a = _cert()
    assert a != a.to_dict() and a != "certificate"
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
    # text json cannot parse (deep nesting, huge integers) and radii or ratings out of
    # their range: one line naming the file (a traceback and exit 4 before)
    d = _cert().to_dict()
    bad = {"deep.json": "[" * 100_000, "huge.json": "1" * 5001}
    for key, value in (("radius", float("nan")), ("radius", 2.0), ("radius", 0),
                       ("rate", float("inf")), ("rate", -1.0)):
        row = {**d["constraints"][0], key: value}
        bad[f"{key}{value}.json"] = json.dumps({**d, "constraints": [row]})
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SpecError) as info:
            Certificate.read(tmp_path / name)
        msg = str(info.value)
        assert msg.startswith(f"{tmp_path / name}: ") and "\n" not in msg, msg


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


def _cert_dict(**changes: object) -> dict:
    """The JSON object of ``_cert(n=6)`` (constraints 1 and 4 open, the others certified)."""
    return json.loads(_cert(n=6, **changes).to_json())


def _edit(path: str, value: object):
    """An edit of a certificate dict: set (or, for ``...``, delete) the item at
    ``path`` (keys and list indices separated by ``/``)."""
    def edit(d: dict) -> dict:
        *head, last = path.split("/")
        obj: object = d
        for k in head:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        key = int(last) if isinstance(obj, list) else last
        if value is ...:
            del obj[key]
        else:
            obj[key] = value
        return d
    return edit


@pytest.mark.parametrize("doc", [[], "certificate", 3, None, True])
def test_read_refuses_a_json_value_that_is_no_object(tmp_path: Path, doc: object) -> None:
    with pytest.raises(SpecError, match="^certificate: expected a JSON object, got "):
        Certificate.from_dict(doc)  # type: ignore[arg-type]
    path = tmp_path / "l.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpecError, match=f"^{path}: expected a JSON object"):
        Certificate.read(path)


@pytest.mark.parametrize("path, value, match", [
    ("constraints", ..., "missing 'constraints'"),
    ("constraints", {"a": 1}, "constraints: expected a list, got an object"),
    ("constraints/2", [], r"constraints\[2\]: expected an object, got a list"),
    ("constraints/2", "x", r"constraints\[2\]: expected an object, got a string"),
    ("constraints/2/family", ..., r"constraints\[2\]: missing 'family'"),
    ("constraints/2/family", 3, r"constraints\[2\].family: expected a string"),
    ("constraints/2/family", "vm_maxx", r"constraints\[2\].family: unknown family 'vm_maxx' "
                                        r"\(known: p_balance, "),
    ("constraints/2/component", ..., r"constraints\[2\]: missing 'component'"),
    ("constraints/2/component", "3", r"constraints\[2\].component: expected an integer"),
    ("constraints/2/component", 3.0, r"constraints\[2\].component: expected an integer"),
    ("constraints/2/upper_bound", "abc",
     r"constraints\[2\] \(vm_max\[3\]\).upper_bound: expected a number or null, got a "
     r"string \('abc'\)"),
    ("constraints/2/upper_bound", True, r"\(vm_max\[3\]\).upper_bound: expected a number"),
    ("constraints/2/upper_bound", ..., r"\(vm_max\[3\]\): no upper_bound"),
    ("constraints/2/attained", [1.0], r"\(vm_max\[3\]\).attained: expected a number"),
    ("constraints/2/attained", ..., r"\(vm_max\[3\]\): missing 'attained'"),
    ("constraints/2/worst_load", [1.0], r"\(vm_max\[3\]\): its load has 1 entries, the "
                                        r"region \d+"),
    ("constraints/2/threshold", ..., r"\(vm_max\[3\]\): missing 'threshold'"),
    ("constraints/2/threshold", None, r"\(vm_max\[3\]\).threshold: expected a number, got null"),
    ("constraints/2/status", "fine", r"\(vm_max\[3\]\): unknown status 'fine'"),
    ("constraints/2/seconds", "1", r"\(vm_max\[3\]\).seconds: expected a number"),
    ("constraints/2/reason", 1, r"\(vm_max\[3\]\).reason: expected a string or null"),
    ("constraints/2/worst_load", ["a"], r"\(vm_max\[3\]\).worst_load: expected a list of"),
    ("constraints/2/worst_load", 1.0, r"\(vm_max\[3\]\).worst_load: expected a list of"),
    ("constraints/2/index", 1.5, r"\(vm_max\[3\]\).index: expected an integer or null"),
    ("case", ..., "missing 'case'"),
    ("model", 1, "model: expected a string, got a number"),
    ("seconds", "12", "seconds: expected a finite number, got a string"),
    ("region", ..., "missing 'region'"),
    ("region", [], "region: expected an object, got a list"),
    ("region/lower", ..., "region: missing key 'lower'"),
    ("region/params", [1], "region.params: expected an object"),
    ("provenance", [], "provenance: expected an object, got a list"),
    ("provenance/options/pad_abs", "x", "provenance.options.pad_abs: a number >= 0"),
    ("warnings", "w", "warnings: expected a list of strings"),
])
def test_read_names_the_malformed_field(tmp_path: Path, path: str, value: object,
                                        match: str) -> None:
    """Any malformed content is a SpecError naming the field (study reports rely on it),
    one line, prefixed with the file by ``read``."""
    d = _edit(path, value)(_cert_dict())
    with pytest.raises(SpecError) as info:
        Certificate.from_dict(d)
    msg = str(info.value)
    assert "\n" not in msg and "Error:" not in msg, msg  # no leaked KeyError or TypeError
    assert msg.startswith(("certificate: ", "region")), msg
    import re
    assert re.search(match, msg), (match, msg)
    file = tmp_path / "c.json"
    file.write_text(json.dumps(d))
    with pytest.raises(SpecError, match=f"^{re.escape(str(file))}: "):
        Certificate.read(file)


def _one(status: str, ub: float | None, att: float | None, reason: str | None = None,
         thr: float = 1e-3) -> dict:
    d = _cert_dict()
    d["constraints"][0].update(status=status, upper_bound=ub, attained=att, threshold=thr,
                               reason=reason)
    return d


@pytest.mark.parametrize("status, ub, att, reason, match", [
    # a violated constraint edited to certified (QA: bound 0.146, found 0.0132 > 0.001)
    ("certified", 0.146, 0.0132, None, "status 'certified' but attained > threshold"),
    ("certified", 0.0011, -1.0, None, "status 'certified' but upper_bound > threshold"),
    ("certified", None, -1.0, None, "status 'certified' but upper_bound > threshold"),
    ("open", 0.146, 0.0132, "bound above threshold", "status 'open' but attained > threshold"),
    ("violated", 0.146, 0.0005, None, "status 'violated' but attained <= threshold"),
    ("violated", 0.146, None, None, "status 'violated' but attained <= threshold"),
    ("open", 0.0005, -1.0, None, "status 'open' but upper_bound <= threshold .* no reason"),
    # a bound below a value attained cannot hold: only certify's own report of it
    ("violated", 0.0005, 0.0011, None, "upper_bound below attained"),
    ("certified", 0.0005, 0.0009, None, "upper_bound below attained"),
    ("certified", 0.0005, 0.0009, "inconsistent: x", "upper_bound below attained"),
    # certify's bounds are padded already: no slack above the threshold
    ("certified", 0.001 + 1e-9, -1.0, None, "status 'certified' but upper_bound > threshold"),
    # a value that overflows at a load of the region is a violation, under no finite bound
    ("certified", 0.0005, float("inf"), None, "upper_bound below attained"),
    ("open", None, float("inf"), "bound above threshold", "status 'open' but attained > "),
    ("certified", 0.0005, -1.0, "the proxy is undefined (NaN) at some loads",
     "status 'certified' but its reason says"),
])
def test_read_refuses_statuses_that_contradict_their_numbers(status, ub, att, reason,
                                                             match) -> None:
    with pytest.raises(SpecError, match=r"^certificate: constraints\[0\] \(vm_max\[1\]\): "
                                        + match):
        Certificate.from_dict(_one(status, ub, att, reason))


@pytest.mark.parametrize("status, ub, att, reason", [
    ("certified", 0.001, 0.001, None),  # at the threshold: certified, not violated
    ("violated", None, float("inf"), None),  # overflows at a load: violated
    ("violated", None, 0.0011, None),  # a violation needs no bound
    # a bound below the worst found, as certify reports it: never certified
    ("violated", 0.0005, 0.0011, "inconsistent: bound below the worst found"),
    ("open", 0.0005, 0.0009, "inconsistent: bound below the worst found"),
    ("open", None, None, None),
    ("open", 0.5, -1.0, "not reached: timeout (bab)"),
    ("open", 0.5, -1.0, "cut short: timeout (bab)"),
    ("open", 0.0005, -1.0, "the proxy is undefined (NaN) at some loads"),  # as certify does
])
def test_read_accepts_statuses_certify_gives(status, ub, att, reason) -> None:
    c = Certificate.from_dict(_one(status, ub, att, reason)).constraints[0]
    assert c.status == status and c.reason == reason


def test_read_gives_a_certified_bound_no_slack_whatever_pad_is_recorded() -> None:
    """Certify pads every bound by ``pad_abs + pad_rel |ub|`` before it decides: a
    certified bound above the threshold is refused, even with a huge recorded pad
    (a tampered pad made any bound pass)."""
    for pad in ({}, {"pad_abs": 1e9}, {"pad_rel": 1e12}):
        d = _one("certified", 0.001 + 5e-6, -1.0)
        d["provenance"]["options"].update(pad)
        with pytest.raises(SpecError, match="upper_bound > threshold"):
            Certificate.from_dict(d)


@pytest.mark.parametrize("path, value, match", [
    ("options", "x", r"provenance\.options: expected an object, got a string"),
    ("options", [1], r"provenance\.options: expected an object, got a list"),
    ("proxy_relus", "x", r"provenance\.proxy_relus: expected an object"),
    ("proxy_relus", {"unstable": "a", "total": 3}, r"proxy_relus\.unstable: expected an"),
    ("proxy_relus", {"unstable": 2}, r"proxy_relus\.total: expected an integer"),
    ("proxy_relus", {"unstable": 4, "total": 3}, r"proxy_relus: more unstable relus than"),
])
def test_read_refuses_malformed_provenance_it_reads(path, value, match) -> None:
    """What the certificate's notes, views and ``compare`` read of the provenance is
    checked on reading (they crashed with AttributeError or KeyError)."""
    d = _cert_dict()
    d.setdefault("provenance", {})[path] = value
    with pytest.raises(SpecError, match=r"^certificate: provenance\." + match.removeprefix(
            r"provenance\.")):
        Certificate.from_dict(d)


def test_read_refuses_a_constraint_listed_twice() -> None:
    d = _cert_dict()
    d["constraints"].append(dict(d["constraints"][1]))
    with pytest.raises(SpecError, match=r"^certificate: constraints\[6\]: vm_max\[2\] is "
                                        r"listed twice \(also constraints\[1\]\)$"):
        Certificate.from_dict(d)


def test_summary_and_families_are_recomputed_from_the_constraints() -> None:
    """What the file says in ``summary`` and ``families`` is not read: a falsified
    summary changes nothing, and a file cut down to some constraints stays readable."""
    d = _cert_dict()
    d["summary"] = {"certified": 999, "violated": 0, "open": 0, "total": 999}
    d["families"]["vm_max"]["certified"] = 999
    cert = Certificate.from_dict(d)
    assert cert.summary == {"certified": 4, "violated": 0, "open": 2, "total": 6}
    assert cert.to_dict()["families"]["vm_max"]["certified"] == 4
    del d["summary"], d["families"]
    d["constraints"] = d["constraints"][:2]
    assert Certificate.from_dict(d).summary["total"] == 2


def test_constraint_result_from_dict_alone_names_the_constraint() -> None:
    row = _cert_dict()["constraints"][0]
    assert ConstraintResult.from_dict(row) == _cert(n=6).constraints[0]
    with pytest.raises(SpecError, match=r"^constraint vm_max\[1\].threshold: expected a "):
        ConstraintResult.from_dict({**row, "threshold": "1e-6"})
    with pytest.raises(SpecError, match="^constraint: expected an object, got a list"):
        ConstraintResult.from_dict([])  # type: ignore[arg-type]


def test_frames_of_a_certificate_without_constraints_keep_their_columns() -> None:
    """``constraints: []`` reads (a file cut down to no constraint); its frame, and that
    of a comparison without constraints, have the usual columns and dtypes."""
    import pandas as pd

    from gridverify import display
    from gridverify.certify import compare_certificates

    full = display.to_dataframe(_cert(n=3))
    empty = Certificate.from_dict(_cert_dict(constraints=()))
    assert empty.summary["total"] == 0
    df = display.to_dataframe(empty)
    assert len(df) == 0 and list(df.columns) == list(full.columns)
    assert df.dtypes.to_dict() == full.dtypes.to_dict()
    assert df[df.status == "open"].empty and df.upper_bound.dtype == np.float64
    assert full.rate.dtype == np.float64 and full.rate.isna().all()  # no thermal constraint
    diff = display.to_dataframe(compare_certificates(empty, empty))
    every = display.to_dataframe(compare_certificates(_cert(n=3), _cert(n=2)))
    assert isinstance(diff, pd.DataFrame) and len(diff) == 0
    assert list(diff.columns) == list(every.columns)
    assert diff.dtypes.to_dict() == every.dtypes.to_dict()
    gone = every[every.kind == "removed"].iloc[0]  # absent from the new one: None and NaN
    assert gone.new_status is None and np.isnan(gone.new_upper_bound)
    assert sorted(every[every.kind == "unchanged"].new_upper_bound) == [-0.25, np.inf]


def test_an_overflowing_violation_reads_back_as_violated() -> None:
    """A load where the constraint's value overflows is a violation (attained +inf);
    JSON writes it null, and reading it back kept -inf, which contradicted the status
    and refused the certificate."""
    row = _result(1, "violated", [0.95] * 4, attained=math.inf)
    assert row.status == "violated" and row.to_dict()["attained"] is None
    back = ConstraintResult.from_dict(row.to_dict())
    assert back.attained == math.inf and back.status == "violated"
    nothing = _result(2, "open", None, attained=-math.inf)
    assert ConstraintResult.from_dict(nothing.to_dict()).attained == -math.inf


def _missing(component: int, family: str = "p_balance", radius: float | None = None,
             ub: float = math.inf, att: float = -math.inf) -> ConstraintResult:
    """A constraint that a timeout left without a bound (and without a load evaluated
    unless ``att`` is given)."""
    status = "violated" if att > 1e-3 else "open"
    return ConstraintResult(family=family, component=component, index=component - 1,
                            upper_bound=ub, attained=att, threshold=1e-3, status=status,
                            method="none", seconds=0.0, reason="not reached: timeout",
                            radius=radius)


def test_families_name_no_worst_component_or_radius_that_was_not_computed() -> None:
    """A timeout before any bound and before the radius stage: the worst-bound component
    was an arbitrary argmax (1) over missing bounds, and the radius 0.0 ("certified on no
    box") though no radius was computed; both are null."""
    from gridverify.cli.certify import certify_table

    cons = (_missing(1), _missing(2, att=0.02), _missing(3, att=0.05),
            _missing(1, "vm_max", radius=0.5, ub=0.1, att=-0.2),
            _missing(2, "vm_max", ub=math.inf, att=-0.1))
    from gridverify.certify.certificate import RADIUS_STOPPED

    cut = (f"{RADIUS_STOPPED} 0.7071; 5 constraint(s) have no radius",)
    cert = _cert(constraints=cons, provenance={"options": {"radius": True}}, warnings=cut)
    fams = cert.to_dict()["families"]
    p = fams["p_balance"]
    assert (p["max_upper_bound"], p["gap"], p["worst_upper_bound_component"]) == (
        None, None, None)
    assert (p["max_attained"], p["worst_attained_component"]) == (0.05, 3)
    assert p["radius"] is None
    v = fams["vm_max"]  # an unbounded constraint is the worst; the stage reached one
    assert v["worst_upper_bound_component"] == 2 and v["worst_attained_component"] == 2
    assert v["radius"] == 0.0
    none_at_all = _cert(constraints=(_missing(1), _missing(2)), warnings=cut,
                        provenance={"options": {"radius": True}}).families()["p_balance"]
    assert none_at_all["worst_attained_component"] is None and none_at_all["radius"] is None
    # the stage ran and certified none of them on any box: 0.0 ("none"), not null
    ran = _cert(constraints=cons, provenance={"options": {"radius": True}}).families()
    assert ran["p_balance"]["radius"] == 0.0
    # an overflow found is a finding: its component is the worst attained
    over = _cert(constraints=(_missing(1), _missing(3, att=math.inf)))
    assert over.families()["p_balance"]["worst_attained_component"] == 3
    again = Certificate.from_json(cert.to_json())
    assert again.to_dict()["families"] == fams
    table, _, _ = certify_table(cert, 200)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table)
    rows = {ln.split()[0]: ln.split() for ln in console.export_text().splitlines()
            if ln.split() and ln.split()[0] in fams}
    assert rows["p_balance"][-1] == "-" and rows["vm_max"][-1] == "none"
    from gridverify.certify import compare_certificates

    diff = compare_certificates(cert, cert).to_dict()
    assert diff["families"]["p_balance"]["old"]["worst_upper_bound_component"] is None


def test_the_radius_note_says_when_the_radius_stage_was_cut_short() -> None:
    """"0 of 13 open" read as "certified on no box" though the stage never ran."""
    from gridverify.certify.certificate import RADIUS_STOPPED

    ran = _cert(n=6, provenance={"options": {"radius": True}})
    assert ran.radius_note().endswith("0 of 2 open")
    cut = _cert(n=6, provenance={"options": {"radius": True}},
                warnings=(f"{RADIUS_STOPPED} before radius 0.7071; 2 constraint(s) have "
                          "no radius",))
    assert cut.radius_note().endswith("the radius stage stopped early (timeout): the others "
                                      "were not all tried")


def test_study_frames_read_an_overflow_as_violated(tmp_path: Path) -> None:
    """A job whose certificate found an overflow (attained +inf, written null): the
    study's frames read it as the certificate does (they read -inf, and the combined
    status became open, the summary counting no violation)."""
    over = dataclasses.replace(_result(1, "violated", [0.95] * 4, attained=math.inf),
                               family="p_balance")
    cert = _cert(constraints=(over, _result(2, "certified", [0.9] * 4)))
    res = StudyResults(tmp_path, "t", (_record("crown", "done", cert),))
    cons = res.constraints_frame()
    assert cons.attained.tolist()[0] == math.inf
    assert res.combined_frame().status.tolist()[0] == "violated"
    fams = res.families_frame().set_index("family")
    assert fams.loc["p_balance", "max_attained"] == math.inf


def test_a_certificate_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + _cert(n=3).to_json().encode())
    assert Certificate.read(path) == _cert(n=3)
