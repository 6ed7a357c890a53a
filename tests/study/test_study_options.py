"""StudyOptions embeds CertifyOptions; jobs carry the study keys as plain data."""

from __future__ import annotations

from dataclasses import replace

from gridverify.certify import CertifyOptions
from gridverify.study.spec import StudyOptions


def test_defaults_come_from_certify_options() -> None:
    d = StudyOptions().to_dict()
    assert d["samples"] == CertifyOptions().samples
    assert d["attack"] == CertifyOptions().attack
    assert not {"bab_timeout", "refine", "radius", "radius_steps"} & set(d)  # certify's defaults
    assert StudyOptions.from_dict({}).certify == CertifyOptions()


def test_round_trip_with_bab_timeout() -> None:
    c = CertifyOptions(timeout=12.0, samples=64, attack="all", seed=3)
    c = replace(c, bab=replace(c.bab, timeout=5.0))
    so = StudyOptions(certify=replace(c, threads=2))
    d = so.to_dict()
    assert d["bab_timeout"] == 5.0 and d["threads"] == 2
    assert StudyOptions.from_dict(d) == so


def test_round_trip_with_refine() -> None:
    so = StudyOptions(certify=CertifyOptions(refine="all"))
    d = so.to_dict()
    assert d["refine"] == "all"
    assert StudyOptions.from_dict(d) == so


def test_round_trip_with_radius() -> None:
    for c in (CertifyOptions(radius=False), CertifyOptions(radius_steps=0),
              CertifyOptions(radius_steps=5)):
        so = StudyOptions(certify=c)
        d = so.to_dict()
        assert d.get("radius", True) == c.radius and d.get("radius_steps", 2) == c.radius_steps
        assert StudyOptions.from_dict(d) == so
