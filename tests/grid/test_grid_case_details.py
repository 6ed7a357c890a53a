"""Empty files, non-convex quadratic costs, and what counts as a transformer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify.errors import CaseFormatError
from gridverify.grid import GridverifyWarning, load_case, load_compiled

CASE3 = """function mpc = c3
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
 1 3 0  0  0 0 1 1 0 230 1 1.1 0.9;
 2 2 50 10 0 0 1 1 0 230 1 1.1 0.9;
 3 1 80 30 0 0 1 1 0 230 1 1.1 0.9;
];
mpc.gen = [
 1 0 0 100 -100 1 100 1 200 0;
 2 0 0 100 -100 1 100 1 100 0;
];
mpc.branch = [
 1 2 0.01 0.05 0.04 100 0 0 0 0 1 -30 30;
 1 3 0.02 0.08 0.04 100 0 0 {ratio} {shift} 1 -30 30;
 2 3 0.02 0.08 0.04 100 0 0 {ratio2} 0 1 -30 30;
];
mpc.gencost = [
 2 0 0 3 {c2} 20 0;
 2 0 0 3 0.03 25 0;
];
"""


def _write(tmp_path: Path, text: str, name: str = "c3.m") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _case3(tmp_path: Path, ratio: str = "0", shift: str = "0", ratio2: str = "0",
           c2: str = "0.02") -> Path:
    return _write(tmp_path, CASE3.format(ratio=ratio, shift=shift, ratio2=ratio2, c2=c2))


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("\n  \n\t\n", "the file is empty"),
    ("% a comment\n%{\nblock\n%}\n", "the file has only comments, no case data"),
])
def test_empty_files_say_so(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text, "empty.m")
    with pytest.raises(CaseFormatError) as info:
        load_case(p)
    assert str(info.value) == f"{p}: {message}"


def test_concave_quadratic_cost_warns(tmp_path: Path) -> None:
    with pytest.warns(GridverifyWarning, match="non-convex cost: the OPF finds a local optimum"):
        load_compiled(_case3(tmp_path, c2="-0.02"))


@pytest.mark.parametrize(("ratio", "shift", "ratio2", "expect"), [
    ("0", "0", "0", [False, False, False]),
    ("1.0", "0", "0", [False, True, False]),  # MATPOWER: a non-zero ratio is a transformer
    ("0", "10", "0", [False, True, False]),  # a phase shifter with ratio 0
    ("1.0", "10", "1.05", [False, True, True]),
])
def test_transformers_are_counted_as_matpower_counts_them(tmp_path: Path, ratio: str,
                                                          shift: str, ratio2: str,
                                                          expect: list[bool]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = load_compiled(_case3(tmp_path, ratio, shift, ratio2))
    assert cc.transformer is not None and cc.transformer.tolist() == expect
    assert cc.n_transformers == sum(expect)
    assert not cc.transformer.flags.writeable
    np.testing.assert_array_equal(cc.tap, [1.0, float(ratio) or 1.0, float(ratio2) or 1.0])


def test_bundled_case_transformer_count() -> None:
    cc = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    assert cc.n_transformers == 3
