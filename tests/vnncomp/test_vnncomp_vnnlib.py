"""The VNN-LIB 1.0 parser: syntax, DNF semantics, and errors naming the line."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.errors import VnnlibError
from gridverify.vnncomp.vnnlib import parse_vnnlib, parse_vnnlib_text

DECL = """; header comment
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
"""
BOX = """(assert (<= X_0 0.5))
(assert (>= X_0 -0.5))   ; trailing comment
(assert (<= X_1 1))
(assert (>= X_1 0))
"""


def _unsafe(prop, x: np.ndarray, y: np.ndarray) -> bool:
    """Direct semantics of the parsed property: x in some box and y in its polytope."""
    for case in prop.cases:
        if np.all(x >= case.lower) and np.all(x <= case.upper):
            for A, b in case.output:
                if np.all(A @ y <= b):
                    return True
    return False


def test_basic_box_and_disjunction() -> None:
    text = (
        DECL
        + BOX
        + (
            "(assert (or (and (>= Y_0 Y_1) (<= (+ (* 2.0 Y_0) (* -1 Y_1)) 3))\n"
            "            (and (<= Y_2 -1e-3))))\n"
        )
    )
    prop = parse_vnnlib_text(text)
    assert (prop.n_inputs, prop.n_outputs) == (2, 3)
    assert len(prop.cases) == 1
    ((lo, hi),) = prop.input_boxes
    np.testing.assert_array_equal(lo, [-0.5, 0.0])
    np.testing.assert_array_equal(hi, [0.5, 1.0])
    out = prop.output
    assert len(out) == 2
    A0, b0 = out[0]
    np.testing.assert_array_equal(A0, [[-1.0, 1.0, 0.0], [2.0, -1.0, 0.0]])
    np.testing.assert_array_equal(b0, [0.0, 3.0])
    A1, b1 = out[1]
    np.testing.assert_array_equal(A1, [[0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(b1, [-1e-3])


def test_terms_constants_both_sides_and_chains() -> None:
    text = (
        DECL
        + BOX
        + (
            "(assert (<= (- Y_0 Y_1) (+ 1.5 (* Y_2 0.5) (- 0.5))))\n"  # y0 - y1 - 0.5 y2 <= 1
            "(assert (>= 2 (/ Y_0 4)))\n"  # y0 / 4 <= 2
            "(assert (<= -1 Y_1 3))\n"  # chain: -1 <= y1 <= 3
            "(assert (> (- Y_2) 0))\n"  # strict read as non-strict: -y2 >= 0
            "(assert (= (* 3 (* 2 Y_0)) (- 6 1)))\n"  # 6 y0 = 5
        )
    )
    prop = parse_vnnlib_text(text)
    ((A, b),) = prop.output
    rows = {tuple(r) + (v,) for r, v in zip(A.tolist(), b.tolist())}
    assert rows == {
        (1.0, -1.0, -0.5, 1.0),
        (0.25, 0.0, 0.0, 2.0),
        (0.0, -1.0, 0.0, 1.0),
        (0.0, 1.0, 0.0, 3.0),
        (0.0, 0.0, 1.0, 0.0),
        (6.0, 0.0, 0.0, 5.0),
        (-6.0, 0.0, 0.0, -5.0),
    }


def test_input_disjunction_expands_into_boxes() -> None:
    text = DECL + (
        "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 1))\n"
        "            (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1) (<= Y_1 0))\n"
        "            (and (>= X_0 5) (<= X_0 4) (>= X_1 0) (<= X_1 1))))\n"  # empty box dropped
    )
    prop = parse_vnnlib_text(text)
    assert len(prop.cases) == 2
    np.testing.assert_array_equal(prop.cases[0].lower, [0, 0])
    np.testing.assert_array_equal(prop.cases[1].upper, [3, 1])
    np.testing.assert_array_equal(prop.cases[0].output[0][0], [[-1, 0, 0]])
    np.testing.assert_array_equal(prop.cases[1].output[0][0], [[0, 1, 0]])
    with pytest.raises(ValueError):
        prop.output  # noqa: B018  (different outputs per box)


def test_same_box_disjuncts_are_grouped() -> None:
    text = DECL + BOX + "(assert (or (<= Y_0 0) (and (<= Y_1 0) (<= Y_2 0))))\n"
    prop = parse_vnnlib_text(text)
    assert len(prop.cases) == 1 and len(prop.cases[0].output) == 2


def test_and_of_ors_is_distributed() -> None:
    text = DECL + BOX + "(assert (or (<= Y_0 0) (<= Y_1 0)))\n(assert (or (<= Y_2 0) (>= Y_2 5)))\n"
    prop = parse_vnnlib_text(text)
    assert len(prop.output) == 4
    assert all(A.shape == (2, 3) for A, _ in prop.output)


def test_no_output_constraint_means_whole_box_unsafe() -> None:
    prop = parse_vnnlib_text(DECL + BOX)
    ((A, b),) = prop.output
    assert A.shape == (0, 3) and b.shape == (0,)


def test_false_constant_atom_removes_disjunct() -> None:
    text = DECL + BOX + "(assert (or (and (<= 1 0) (<= Y_0 0)) (<= Y_1 0)))\n"
    prop = parse_vnnlib_text(text)
    ((A, _),) = prop.output
    np.testing.assert_array_equal(A, [[0, 1, 0]])
    assert parse_vnnlib_text(DECL + BOX + "(assert (>= 0 1))\n").cases == ()


def test_gzip_and_plain_files(tmp_path: Path) -> None:
    text = DECL + BOX + "(assert (<= Y_0 0))\n"
    plain = tmp_path / "p.vnnlib"
    plain.write_text(text)
    packed = tmp_path / "p.vnnlib.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = parse_vnnlib(plain), parse_vnnlib(packed)
    np.testing.assert_array_equal(a.cases[0].upper, b.cases[0].upper)
    assert a.source == str(plain)


def test_large_file_parses_correctly() -> None:
    """The benchmark generator's 20,000-assertion file (timing lives in benchmarks/)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from vnnlib_parse import box_property, output_property

    prop = parse_vnnlib_text(box_property(20000))
    assert prop.n_inputs == 10000
    lo, hi = prop.input_boxes[0]
    np.testing.assert_allclose(lo, -0.1 - np.arange(10000) * 1e-6, atol=1e-9)
    np.testing.assert_allclose(hi, 0.1 + np.arange(10000) * 1e-6, atol=1e-9)
    prop = parse_vnnlib_text(output_property(20000))
    assert len(prop.output) == 20000
    A, b = prop.output[12345]
    assert A[0, 12345 % 100] == -1.0 and b[0] == pytest.approx(-12.345)


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("(assert (<= X_0 0.5)\n(assert (>= X_0 0))\n", 7, "never closed"),
        ("(assert (<= X_0 0.5)))\n", 7, "without a matching"),
        ("(assert (<= X_0 0.5))\n(assert (<= X_7 1))\n", 8, "undeclared variable 'X_7'"),
        ("(assert (<= X_0 0.5))\n\n(assert (<= (* Y_0 Y_1) 1))\n", 9, "non-linear"),
        ("(assert (<= X_0 0.5))\n(assert (<= (/ 1 Y_1) 1))\n", 8, "non-linear"),
        ("(assert (<= X_0 0.5e))\n", 7, "bad number '0.5e'"),
        ("(assert (<= X_0 1..2))\n", 7, "bad number"),
        ("(assert (<= X_0 inf))\n", 7, "undeclared variable"),
        ("(assert (<= X_0 1e999))\n", 7, "not finite"),
        ("(assert (<= (* 1e300 1e300 Y_0) 1))\n", 7, "overflows"),
        ("(assert (<= Y_0 (- 1e308 -1e308)))\n", 7, "overflows"),
        ("(assert (<= (/ Y_0 1e-320) 1))\n", 7, "overflows"),
        ("(assert (<= (+ X_0 X_1) 1))\n", 7, "single inputs"),
        ("(assert (<= X_0 Y_0))\n", 7, "mixing inputs and outputs"),
        ("(assert (xor Y_0 Y_1))\n", 7, "unsupported operator 'xor'"),
        ("(assert (<= (exp Y_0) 1))\n", 7, "unsupported arithmetic operator 'exp'"),
        ("(declare-fun Z Real)\n", 7, "unknown command"),
        ("(declare-const Z_0 Real)\n", 7, "not named X_i or Y_j"),
        ("(declare-const Y_9 Int)\n", 7, "unsupported type 'Int'"),
        ("(declare-const X_0 Real)\n", 7, "declared twice"),
        ("junk\n", 7, "outside of a command"),
    ],
)
def test_malformed_names_the_line(body: str, line: int, fragment: str) -> None:
    with pytest.raises(VnnlibError) as info:
        parse_vnnlib_text(DECL + body, source="prop.vnnlib")
    msg = str(info.value)
    assert msg.startswith(f"prop.vnnlib:{line}: "), msg
    assert fragment in msg, msg


def test_input_without_bounds_names_its_declaration() -> None:
    text = DECL + "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 1))\n"
    with pytest.raises(VnnlibError, match=r"p:3: input X_1 has no lower bound"):
        parse_vnnlib_text(text, source="p")


def test_gap_in_variable_numbers() -> None:
    text = "(declare-const X_0 Real)\n(declare-const X_2 Real)\n"
    with pytest.raises(VnnlibError, match=r"p:2: X_1 is missing"):
        parse_vnnlib_text(text, source="p")


@settings(max_examples=60, deadline=None)
@given(
    coefs=st.lists(st.integers(-3, 3), min_size=3, max_size=3),
    const=st.integers(-5, 5),
    op=st.sampled_from(["<=", ">=", "<", ">"]),
    swap=st.booleans(),
    ys=st.lists(st.lists(st.integers(-4, 4), min_size=3, max_size=3), min_size=20, max_size=20),
)
def test_random_linear_atom_semantics(coefs, const, op, swap, ys) -> None:
    """The parsed polytope agrees with evaluating the written comparison directly."""
    terms = " ".join(f"(* {c} Y_{j})" for j, c in enumerate(coefs))
    lhs, rhs = f"(+ {terms})", str(const)
    if swap:
        lhs, rhs = rhs, lhs
    prop = parse_vnnlib_text(DECL + BOX + f"(assert ({op} {lhs} {rhs}))\n")
    x = np.array([0.0, 0.5])
    for y in ys:
        y = np.array(y, dtype=float)
        left = float(np.dot(coefs, y))
        a, c = (float(const), left) if swap else (left, float(const))
        expect = a <= c if op in ("<=", "<") else a >= c  # strict read as closure
        assert _unsafe(prop, x, y) == expect


def test_a_byte_order_mark_is_dropped(tmp_path) -> None:
    """Editors' "UTF-8 with BOM" (and Excel's CSV): the property reads as without it, and
    an instances CSV's first row keeps its file name (a U+FEFF went into the path)."""
    from gridverify.vnncomp.vnnlib import parse_vnnlib, read_text

    text = DECL + BOX + "(assert (<= Y_2 -1e-3))\n"
    plain, bom = tmp_path / "p.vnnlib", tmp_path / "b.vnnlib"
    plain.write_text(text)
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert parse_vnnlib(bom).input_boxes[0][1].tolist() == \
        parse_vnnlib(plain).input_boxes[0][1].tolist()
    csv = tmp_path / "instances.csv"
    csv.write_bytes(b"\xef\xbb\xbfonnx/a.onnx,vnnlib/a.vnnlib,60\n")
    assert read_text(csv).startswith("onnx/a.onnx,")
