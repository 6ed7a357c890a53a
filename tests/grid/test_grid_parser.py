"""The MATPOWER reader: tokenizing without executing, numbers, comments, row lines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.errors import CaseFormatError
from gridverify.grid.matpower import parse_matpower


def test_numbers_comments_and_row_lines():
    text = """function mpc = tiny
% a comment line
mpc.version = '2';
mpc.baseMVA = 1e2;   % trailing comment
%{
mpc.bus = [ this is a block comment ];
%}
mpc.bus = [
  1, 3, -2.5, +3 ;  2 1 .5 1E-3   % two rows on one line
  3 2 2.5e+2 ...
      7
  4 1 Inf -Inf;

];
mpc.names = { 'a b'; 'it''s' ; "dq" };
end
"""
    mf = parse_matpower(text, "tiny.m")
    assert mf.function_name == "tiny"
    assert mf.strings["version"] == "2"
    assert mf.scalars["baseMVA"] == 100.0
    bus = mf.tables["bus"]
    np.testing.assert_array_equal(
        bus.values[:3], [[1, 3, -2.5, 3], [2, 1, 0.5, 1e-3], [3, 2, 250.0, 7]]
    )
    assert bus.values[3, 2] == math.inf and bus.values[3, 3] == -math.inf
    assert bus.row_lines.tolist() == [9, 9, 10, 12]
    assert bus.line == 8
    assert mf.cells["names"][0] == ("a b", "it's", "dq")
    assert mf.lines["baseMVA"] == 4


def test_nan_is_read_as_float():
    mf = parse_matpower("mpc.x = [1 NaN nan];")
    assert np.isnan(mf.tables["x"].values[0, 1:]).all()


@pytest.mark.parametrize(
    "text, fragment, line",
    [
        ("mpc.baseMVA = 100;\nsystem('rm -rf /');", "unsupported statement starting with 'system'",
         2),
        ("mpc.bus = [1 2]';", "transpose", 1),
        ("mpc.bus = [1 2; 3 4] * 2;", "unexpected '*' after the value of mpc.bus", 1),
        ("mpc.a = 'abc;", "unterminated string", 1),
        ("mpc.bus = [1 2\n3 4\n", "unterminated matrix bus", 1),
        ("mpc.bus = [1 2\n3 4 5];", "has 3 columns, expected 2", 2),
        ("mpc.bus = [1 2\n3 zeros(2)];", "unexpected 'zeros' inside bus", 2),
        ("mpc.bus = [1 - 2];", "arithmetic is not supported", 1),
        ("mpc.bus = [1 2];\nmpc.bus = [1 2];", "assigned twice", 2),
        ("mpc.baseMVA = ;", "unsupported value", 1),
        ("mpc.bus = [1 2x];", "malformed number", 1),
        ("eval('x')", "unsupported statement starting with 'eval'", 1),
        ("x = 3", "unsupported statement starting with 'x'", 1),
        # lines end at \n, \r\n and \r only: a form feed, \x85 (a cp1252 ellipsis read
        # as latin-1) or U+2028 in a line or a comment does not start another
        ("mpc.a = 1;\fmpc.b = 2;\r\nmpc.bus = [1 2];\rmpc.bus = 3;", "assigned twice", 3),
        ("% note\x85 more\u2028 and more\nmpc.bus = [1 2];\nmpc.bus = 3;", "assigned twice",
         3),
    ],
)
def test_rejected_constructs(text, fragment, line):
    with pytest.raises(CaseFormatError) as info:
        parse_matpower(text, "bad.m")
    assert fragment in str(info.value)
    assert info.value.line == line
    assert f"bad.m:{line}" in str(info.value)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda c: st.lists(st.lists(finite, min_size=c, max_size=c), min_size=1, max_size=8)
    ),
    st.sampled_from([" ", "\t", ", ", " ,\t"]),
    st.sampled_from([";\n", "\n", ";", " ; % note\n"]),
)
def test_matrix_roundtrip_exact(rows, sep, rowsep):
    body = rowsep.join(sep.join(repr(v) for v in row) for row in rows)
    mf = parse_matpower(f"mpc.t = [\n{body}\n];\n")
    np.testing.assert_array_equal(mf.tables["t"].values, np.array(rows, dtype=np.float64))


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, width=64))
def test_scalar_roundtrip(v):
    text = repr(v).replace("inf", "Inf")
    assert parse_matpower(f"mpc.s = {text};").scalars["s"] == v


def test_a_compressed_case_file_says_to_extract_it(tmp_path) -> None:
    """A .m.gz (as some archives ship cases) was "unexpected character '\\x1f'"."""
    import gzip
    import zipfile

    from gridverify.errors import CaseFormatError
    from gridverify.grid.matpower import read_matpower
    from gridverify.resources import data_dir

    text = (data_dir() / "cases" / "pglib_opf_case14_ieee.m").read_bytes()
    gz = tmp_path / "c.m.gz"
    gz.write_bytes(gzip.compress(text))
    zp = tmp_path / "c.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("c.m", text)
    for path, kind in ((gz, "gzip-compressed"), (zp, "zip")):
        with pytest.raises(CaseFormatError, match=f"a {kind} file, not a MATPOWER text file"):
            read_matpower(path)
