"""Package data: bundled cases and proxies found through importlib.resources."""

from __future__ import annotations

from pathlib import Path

from gridverify.grid.case import bundled_cases_dir, list_bundled_cases, resolve_case_path
from gridverify.proxy.load import load_proxy
from gridverify.resources import bundled_model, bundled_models_dir, list_bundled_models

REPO = Path(__file__).resolve().parents[1]


def test_bundled_cases_come_with_their_license() -> None:
    d = bundled_cases_dir()
    assert d.parent.name == "data" and d.parent.parent.name == "gridverify"
    assert (d / "LICENSE").is_file() and (d / "PGLIB_README.md").is_file()
    assert {"pglib_opf_case14_ieee", "pglib_opf_case57_ieee"} <= set(list_bundled_cases())
    # the checkout's cases/ folder is the same data
    assert (d / "pglib_opf_case14_ieee.m").read_bytes() == (
        REPO / "cases" / "pglib_opf_case14_ieee.m").read_bytes()
    assert resolve_case_path("case14_ieee").name == "pglib_opf_case14_ieee.m"


def test_bundled_models_by_name() -> None:
    names = list_bundled_models()
    assert {"case14_relu", "case57_relu"} <= set(names)
    assert bundled_model("case14_relu") == bundled_models_dir() / "case14_relu"
    assert bundled_model("models/case57_relu") == bundled_models_dir() / "case57_relu"
    for bad in ("nosuch", "../cases", "a/b/c", ".."):
        assert bundled_model(bad) is None
    proxy = load_proxy("case14_relu")
    assert proxy.case_name == "pglib_opf_case14_ieee"
