"""Robustness: any small corruption of a case gives a valid compiled case or a
CaseFormatError, never another exception."""

from __future__ import annotations

import re
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridverify.errors import CaseFormatError
from gridverify.grid import GridverifyWarning, compile_case
from gridverify.grid.case import bundled_cases_dir, raw_from_matpower
from gridverify.grid.matpower import parse_matpower

BASES = {n: (bundled_cases_dir() / f"pglib_opf_{n}.m").read_text()
         for n in ("case5_pjm", "case3_lmbd", "case14_ieee")}
NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
REPLACEMENTS = ["NaN", "Inf", "-Inf", "0", "-1", "1e300", "2.5", "7", "x", "", "[", "];", ";",
                "'", "...", "%", "1 2", "0.0", "-0.0", "99999", "4"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(BASES)), st.data())
def test_corrupted_case_is_valid_or_named_error(base, data):
    text = BASES[base]
    lines = text.splitlines()
    op = data.draw(st.sampled_from(["number", "number", "number", "drop_line"]))
    if op == "drop_line":
        i = data.draw(st.integers(0, len(lines) - 1))
        del lines[i]
        text = "\n".join(lines)
    else:
        spans = [m.span() for m in NUM.finditer(text)]
        k = data.draw(st.integers(0, len(spans) - 1))
        a, b = spans[k]
        text = text[:a] + data.draw(st.sampled_from(REPLACEMENTS)) + text[b:]
    try:
        raw = raw_from_matpower(parse_matpower(text, "fuzz.m"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GridverifyWarning)
            cc = compile_case(raw)
    except CaseFormatError as exc:
        assert str(exc).startswith("fuzz.m")
        return
    assert cc.n_bus >= 1 and cc.n_gen >= 1
