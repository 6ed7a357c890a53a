"""Comparing two certificates of one case: status changes, families, notes, JSON."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest

from gridverify.certify import (
    CERTIFIED,
    OPEN,
    VIOLATED,
    Certificate,
    CertifyOptions,
    certify,
    compare_certificates,
)
from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.spec import box_region

_CASE = load_compiled("pglib_opf_case5_pjm")


@pytest.fixture
def two_certs(tiny_mlp):
    """Certificates of two (tiny, random) proxies of case5 over the same region."""
    region = box_region(_CASE, 0.9, 1.1)
    opts = CertifyOptions(samples=64, radius=False)
    return tuple(certify(_CASE, tiny_mlp(_CASE, seed=s, out_scale=0.05), region,
                         method="crown", options=opts) for s in (0, 1))


def _with(cert: Certificate, changes: dict[tuple[str, int], dict]) -> Certificate:
    rows = tuple(dataclasses.replace(c, **changes.get((c.family, c.component), {}))
                 for c in cert.constraints)
    return dataclasses.replace(cert, constraints=rows)


def test_same_certificate_changes_nothing(two_certs):
    a, _ = two_certs
    d = compare_certificates(a, Certificate.from_json(a.to_json()))
    assert d.counts == {"regression": 0, "improvement": 0, "added": 0, "removed": 0,
                        "unchanged": len(a.constraints)}
    assert not d.regressed and d.notes == ()
    assert set(d.families()) == set(a.families())
    assert d.to_dict()["changes"] == [] and len(d.to_dict(every=True)["changes"]) == len(
        a.constraints)


def test_status_changes_are_classified_and_ordered(two_certs):
    a, _ = two_certs
    cs = [c for c in a.constraints]
    k = [(c.family, c.component) for c in cs[:5]]
    old = _with(a, {k[0]: {"status": CERTIFIED}, k[1]: {"status": OPEN},
                    k[2]: {"status": VIOLATED}, k[3]: {"status": OPEN},
                    k[4]: {"status": CERTIFIED}})
    new = _with(a, {k[0]: {"status": VIOLATED}, k[1]: {"status": VIOLATED},
                    k[2]: {"status": CERTIFIED}, k[3]: {"status": CERTIFIED},
                    k[4]: {"status": OPEN}})
    d = compare_certificates(old, new)
    assert d.regressed
    reg = d.of_kind("regression")
    # violated now before open now; lost a certificate before an open that turned violated
    assert [(c.family, c.component) for c in reg] == [k[0], k[1], k[4]]
    assert {(c.family, c.component) for c in d.of_kind("improvement")} == {k[2], k[3]}
    assert d.changes[:3] == tuple(reg)
    back = compare_certificates(new, old)
    assert {(c.family, c.component) for c in back.of_kind("regression")} == {k[2], k[3]}
    with pytest.raises(ValueError, match="kind must be one of"):
        d.of_kind("worse")


def test_real_proxies_side_by_side(two_certs):
    a, b = two_certs
    d = compare_certificates(a, b)
    for ch in d.changes:
        assert ch.old.status == a.get(ch.family, ch.component).status
        assert ch.new.status == b.get(ch.family, ch.component).status
        assert ch.delta("upper_bound") == pytest.approx(ch.new.upper_bound - ch.old.upper_bound)
    fams = d.families()
    for fam, sides in fams.items():
        assert sides["old"] == a.families()[fam] and sides["new"] == b.families()[fam]
    assert sum(d.counts.values()) == len(a.constraints)
    json.dumps(d.to_dict(every=True), allow_nan=False)  # strict JSON


def test_added_removed_notes_and_other_cases(two_certs):
    a, b = two_certs
    fewer = dataclasses.replace(b, constraints=b.constraints[3:], method="alpha-crown",
                                region=box_region(_CASE, 0.95, 1.05))
    first = (a.constraints[0].family, a.constraints[0].component)
    fewer = _with(fewer, {(c.family, c.component): {"threshold": 0.5}
                          for c in fewer.constraints[:2]})
    d = compare_certificates(a, fewer)
    assert d.counts["removed"] == 3 and (d.of_kind("removed")[0].family,
                                         d.of_kind("removed")[0].component) == first
    assert compare_certificates(fewer, a).counts["added"] == 3
    notes = " | ".join(d.notes)
    assert "regions differ" in notes and "2 constraint(s) have other thresholds" in notes
    # one set of loads under another name (a training region read as a box) is one region
    renamed = dataclasses.replace(
        a, region=dataclasses.replace(a.region, kind="training", params=()))
    assert renamed.region.describe() != a.region.describe()
    assert not any("regions differ" in n for n in compare_certificates(a, renamed).notes)
    assert "methods differ (old: crown; new: alpha-crown)" in notes
    # other run options and a resumed run are said too
    opts = {**b.provenance["options"], "timeout": 15.0, "seed": 3}
    later = dataclasses.replace(b, provenance={**b.provenance, "options": opts},
                                warnings=("resumed from checkpoint c.ckpt: ...",))
    notes = " | ".join(compare_certificates(b, later).notes)
    assert "the run options differ (" in notes and "seed: 0 -> 3" in notes
    assert "timeout: " in notes and "-> 15.0" in notes
    assert "the new certificate was resumed from a checkpoint" in notes
    other = dataclasses.replace(b, case="pglib_opf_case14_ieee")
    with pytest.raises(SpecError, match="different cases"):
        compare_certificates(a, other)
    # the same name, other contents (an edited case file, two pandapower networks)
    assert isinstance(a.provenance.get("case_hash"), str)
    edited = dataclasses.replace(b, provenance={**b.provenance, "case_hash": "0" * 64})
    with pytest.raises(SpecError, match="different contents"):
        compare_certificates(a, edited)


def test_notebook_view(two_certs):
    import gridverify  # noqa: F401 - registers the views
    from gridverify.display import to_dataframe

    d = compare_certificates(*two_certs)
    html = d._repr_html_()
    assert "comparison" in html and "p_balance" in html
    df = to_dataframe(d)
    assert len(df) == len(d.changes) and set(df.kind) <= set(d.counts)
    assert {"old_status", "new_upper_bound", "old_attained"} <= set(df.columns)


def test_plot(two_certs):
    import gridverify  # noqa: F401 - registers the figure
    from gridverify.report.figures import _plt

    d = compare_certificates(*two_certs)
    fig = d.plot()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(lab.startswith("unchanged (") for lab in labels)
    n = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert n == sum(c.old is not None and c.new is not None for c in d.changes)
    _plt().close(fig)


def test_plot_draws_constraints_without_a_finite_bound(two_certs):
    """A regression from certified to no finite bound (``inf``) is drawn, at the edge of
    the axes with its own marker, and counted in the legend."""
    import gridverify  # noqa: F401 - registers the figure
    from gridverify.report.figures import _plt

    a, _ = two_certs
    c = next(c for c in a.constraints if c.status == CERTIFIED)
    new = Certificate.from_json(_with(a, {(c.family, c.component): {
        "upper_bound": np.inf, "status": OPEN}}).to_json())
    d = compare_certificates(a, new)
    assert d.counts["regression"] == 1
    fig = d.plot()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "regression (1)" in labels and "no finite bound, at the axis edge (1)" in labels
    edge = [col for col in ax.collections if len(col.get_offsets()) and
            np.isclose(np.asarray(col.get_offsets())[:, 1], ax.get_ylim()[1]).all()]
    assert len(edge) == 1 and len(edge[0].get_offsets()) == 1
    assert np.isfinite(np.asarray(edge[0].get_offsets())).all()
    x = np.asarray(edge[0].get_offsets())[0, 0]
    assert np.isclose(x, c.upper_bound - c.threshold)  # the old margin, as it was
    n = sum(len(col.get_offsets()) for col in ax.collections)
    assert n == len(a.constraints)  # every constraint is drawn
    _plt().close(fig)


def test_repr_is_one_short_line(two_certs):
    """Not the dataclass repr, which prints both certificates and every change (360 KB
    for case118): counts, as the certificate's own repr."""
    a, b = two_certs
    d = compare_certificates(a, b)
    text = repr(d)
    assert text == str(d) and "\n" not in text and len(text) < 400, text
    c = d.counts
    for part in (f"case={a.case!r}", f"old_model={a.model!r}", "method='crown'",
                 f"regression={c['regression']}", f"improvement={c['improvement']}",
                 f"unchanged={c['unchanged']}"):
        assert part in text, (part, text)
    assert "added" not in text and "lost" not in text  # only kinds that occur
    fewer = compare_certificates(a, dataclasses.replace(a, constraints=a.constraints[1:],
                                                        method="ibp"))
    assert "removed=1" in repr(fewer) and "method='crown -> ibp'" in repr(fewer)


def test_a_lost_certificate_counts_against_the_new_one(two_certs):
    """A constraint certified in the old certificate and absent from the new one (the new
    one certifies another ``--constraints`` selection) is lost: regressed, listed, and
    the notes say the selections differ; constraints only in the new one are not."""
    a, _ = two_certs
    keep = [c for c in a.constraints if c.family == "vm_max"]
    fewer = dataclasses.replace(a, constraints=tuple(keep))
    gone = [c for c in a.constraints if c.family != "vm_max"]
    certified_gone = [(c.family, c.component) for c in gone if c.status == CERTIFIED]
    assert certified_gone and len(certified_gone) < len(gone)  # some were not certified
    d = compare_certificates(a, fewer)
    assert d.regressed and d.counts["regression"] == 0
    assert d.counts["removed"] == len(gone)
    assert [(c.family, c.component) for c in d.lost] == sorted(certified_gone)
    assert all(c.kind == "removed" and c.lost for c in d.lost)
    removed = d.of_kind("removed")
    assert removed[:len(d.lost)] == d.lost  # lost certificates listed first
    notes = " | ".join(d.notes)
    assert (f"the constraint selections differ (old: {len(a.constraints)} constraints, new: "
            f"{len(keep)}; {len(gone)} only in the old, 0 only in the new)") in notes
    assert f"{len(certified_gone)} constraint(s) certified in the old certificate" in notes
    js = d.to_dict()
    assert js["regressed"] and js["lost"] == len(certified_gone)
    back = compare_certificates(fewer, a)  # constraints gained: no regression
    assert not back.regressed and not back.lost and back.counts["added"] == len(gone)
    assert "the constraint selections differ" in " | ".join(back.notes)
    # removed constraints that were open or violated are no lost certificate
    none_certified = dataclasses.replace(a, constraints=tuple(
        c for c in a.constraints if (c.family, c.component) not in certified_gone))
    rest = compare_certificates(none_certified, fewer)
    assert not rest.lost and not rest.regressed and rest.counts["removed"] > 0


def test_compare_cli_exit_status(two_certs, tmp_path, capsys):
    """``gridverify compare``: 2 and one line for a file that is no certificate or whose
    statuses contradict its numbers; 1 for a lost certificate, listed."""
    from gridverify.cli import main

    a, _ = two_certs
    old = a.write(tmp_path / "a.json")
    fewer = dataclasses.replace(a, constraints=tuple(c for c in a.constraints
                                                     if c.family == "vm_max"))
    new = fewer.write(tmp_path / "c.json")
    (tmp_path / "l.json").write_text("[]")
    forged = json.loads(old.read_text())
    row = next(c for c in forged["constraints"] if c["status"] == VIOLATED)
    row["status"] = CERTIFIED
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    for name, match in (("l.json", "l.json: expected a JSON object, got a list"),
                        ("forged.json", "status 'certified' but attained > threshold")):
        assert main(["compare", str(old), str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err and "Traceback" not in err, err
    assert main(["compare", str(old), str(new), "--all"]) == 1
    out = capsys.readouterr().out
    assert "note: the constraint selections differ" in out
    assert "lost certificates: certified in the old certificate, absent from the new" in out
    lost = compare_certificates(a, fewer).lost
    assert f"({len(lost)} of them certified before: lost certificates)" in out
    assert f"{lost[0].name:<16} certified -> absent" in out
    assert main(["compare", str(new), str(old), "--quiet"]) == 0


def test_certificates_certify_writes_read_back(tiny_mlp):
    """Every certificate the tool writes passes the reader's status checks: each method
    (branch-and-bound too), a region with violations, open constraints, timeouts."""
    from gridverify.bab.options import BabOptions

    net = tiny_mlp(_CASE, seed=0, out_scale=0.05)
    region = box_region(_CASE, 0.8, 1.2)
    runs = [("ibp", CertifyOptions(samples=64, radius=True)),
            ("crown", CertifyOptions(samples=64, radius=False)),
            ("alpha-crown", CertifyOptions(samples=64, radius=False)),
            ("bab", CertifyOptions(samples=64, radius=False, timeout=3.0,
                                   bab=BabOptions(timeout=0.5))),
            ("crown", CertifyOptions(samples=64, radius=False, timeout=0.02))]
    statuses, reasons = set(), set()
    for method, opts in runs:
        cert = certify(_CASE, net, region, method=method, options=opts)
        back = Certificate.from_json(cert.to_json())
        assert back == cert, method
        assert not compare_certificates(cert, back).regressed
        statuses |= {c.status for c in cert.constraints}
        reasons |= {(c.reason or "").split(" (")[0] for c in cert.constraints}
    assert statuses == {CERTIFIED, VIOLATED, OPEN}
    assert {"not reached: timeout", "bound above threshold"} <= reasons, reasons


def test_cli_tables_show_inf_where_there_is_no_finite_bound(two_certs, tmp_path, capsys,
                                                            monkeypatch):
    """The CLI's tables say ``inf`` as the notebook views do (not ``-``, which reads as
    'no value'), and ``-`` for a family absent from one certificate."""
    from rich.console import Console

    from gridverify.cli import main
    from gridverify.cli.certify import certify_table

    a, _ = two_certs
    c = next(c for c in a.constraints if c.status == CERTIFIED)
    new = Certificate.from_json(_with(a, {(c.family, c.component): {
        "upper_bound": np.inf, "status": OPEN}}).to_json())
    table, _, _ = certify_table(new, 160)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    row = next(line for line in console.export_text().splitlines()
               if line.split() and line.split()[0] == c.family)
    assert "inf" in row.split() and " - " not in row
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["compare", str(a.write(tmp_path / "a.json")),
                 str(new.write(tmp_path / "b.json"))]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.split() and line.split()[0] == c.family)
    assert "-> inf" in row


def test_certificates_as_dicts_and_wrong_types(two_certs):
    """A certificate's dict form compares as the certificate; another type is a
    SpecError naming the argument (a TypeError from deep inside before)."""
    a, b = two_certs
    want = compare_certificates(a, b)
    got = compare_certificates(a.to_dict(), b.to_dict())
    assert got.counts == want.counts and got.to_dict() == want.to_dict()
    for bad in ((None, b), (a, 5)):
        with pytest.raises(SpecError, match=r"compare: (old|new): expected a Certificate"):
            compare_certificates(*bad)
