"""Empty files, non-convex quadratic costs, and what counts as a transformer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify.errors import CaseFormatError
from gridverify.grid import GridverifyWarning, load_case, load_compiled


def _write(tmp_path: Path, text: str, name: str = "c3.m") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _case3(mpc3, ratio: str = "0", shift: str = "0", ratio2: str = "0",  # noqa: ANN001
           c2: str = "0.02") -> Path:
    """The shared 3-bus case, lines 1-3 and 2-3 with these ratios (and shift), the
    first generator's quadratic cost ``c2``."""
    return mpc3(branch={1: f"1 3 0.02 0.08 0.04 100 0 0 {ratio} {shift} 1 -30 30",
                        2: f"2 3 0.02 0.08 0.04 100 0 0 {ratio2} 0 1 -30 30"},
                gencost={0: f"2 0 0 3 {c2} 20 0"})


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


def test_concave_quadratic_cost_warns(mpc3) -> None:  # noqa: ANN001
    with pytest.warns(GridverifyWarning, match="non-convex cost: the OPF finds a local optimum"):
        load_compiled(_case3(mpc3, c2="-0.02"))


@pytest.mark.parametrize(("ratio", "shift", "ratio2", "expect"), [
    ("0", "0", "0", [False, False, False]),
    ("1.0", "0", "0", [False, True, False]),  # MATPOWER: a non-zero ratio is a transformer
    ("0", "10", "0", [False, True, False]),  # a phase shifter with ratio 0
    ("1.0", "10", "1.05", [False, True, True]),
])
def test_transformers_are_counted_as_matpower_counts_them(mpc3, ratio: str,  # noqa: ANN001
                                                          shift: str, ratio2: str,
                                                          expect: list[bool]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = load_compiled(_case3(mpc3, ratio, shift, ratio2))
    assert cc.transformer is not None and cc.transformer.tolist() == expect
    assert cc.n_transformers == sum(expect)
    assert not cc.transformer.flags.writeable
    np.testing.assert_array_equal(cc.tap, [1.0, float(ratio) or 1.0, float(ratio2) or 1.0])


def test_bundled_case_transformer_count() -> None:
    cc = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    assert cc.n_transformers == 3
