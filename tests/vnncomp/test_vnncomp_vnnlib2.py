"""VNN-LIB 2.0 through the optional ``vnnlib`` package: same Property as the 1.0 parser."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vnnlib")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vnncomp_fixtures import mlp_onnx, tiny_relu_weights  # noqa: E402

from gridverify.errors import VnnlibError  # noqa: E402
from gridverify.vnncomp.runner import RunOptions, run_instance  # noqa: E402
from gridverify.vnncomp.vnnlib import parse_vnnlib, parse_vnnlib_text  # noqa: E402

HEAD2 = """(vnnlib-version <2.0>)
(declare-network net
    (declare-input X float32 [2])
    (declare-output Y float32 [2])
)
"""
BODY2 = """(assert (<= X[0] 1.0))
(assert (>= X[0] 0.0))
(assert (<= X[1] 1.0))
(assert (>= X[1] 0.0))
(assert (or (and (>= Y[0] 1.9) (<= Y[1] 0.1)) (>= (- Y[1] Y[0]) 5.0)))
"""
V1 = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (<= X_0 1.0))
(assert (>= X_0 0.0))
(assert (<= X_1 1.0))
(assert (>= X_1 0.0))
(assert (or (and (>= Y_0 1.9) (<= Y_1 0.1)) (>= (- Y_1 Y_0) 5.0)))
"""


def _polys(prop):
    out = set()
    for case in prop.cases:
        for A, b in case.output:
            rows = tuple(sorted(tuple(r) + (v,) for r, v in zip(A.tolist(), b.tolist())))
            out.add((tuple(case.lower), tuple(case.upper), rows))
    return out


def test_version2_matches_version1(tmp_path: Path) -> None:
    p = tmp_path / "v2.vnnlib"
    p.write_text(HEAD2 + BODY2)
    v2 = parse_vnnlib(p)  # detected by its header
    v1 = parse_vnnlib_text(V1)
    assert (v2.n_inputs, v2.n_outputs) == (2, 2)
    assert _polys(v2) == _polys(v1)


def test_version2_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.vnnlib"
    p.write_text(HEAD2 + "(assert (<= Z[0] 1.0))\n")
    with pytest.raises(VnnlibError, match=r"bad.vnnlib:6: Undeclared variable 'Z'"):
        parse_vnnlib(p)
    p.write_text(HEAD2 + "(assert (<= X[0] 1.0)\n")
    with pytest.raises(VnnlibError, match=r"bad.vnnlib:6: .*syntax error"):
        parse_vnnlib(p)
    p.write_text(HEAD2 + BODY2 + "(assert (<= (* Y[0] Y[1]) 1.0))\n")
    with pytest.raises(VnnlibError, match=r"[Nn]on-linear"):
        parse_vnnlib(p)


def test_version2_instance_runs(tmp_path: Path) -> None:
    model = mlp_onnx(tmp_path / "tiny.onnx", tiny_relu_weights())
    p = tmp_path / "v2.vnnlib"
    p.write_text(HEAD2 + BODY2)
    out = run_instance(model, p, RunOptions(timeout=10, extend_attack=False))
    assert out.result == "sat" and out.y[0] >= 1.9 and out.y[1] <= 0.1
    assert np.all(out.x >= 0) and np.all(out.x <= 1)


V1_AND = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (and (<= X_0 1.0) (>= X_0 0.0) (<= X_1 1.0) (>= X_1 0.0)))
(assert (or (>= Y_0 100.0) (<= Y_1 -3.0)))
(assert (<= Y_0 200.0))
"""


def test_version2_separate_compound_asserts_are_a_conjunction(tmp_path: Path) -> None:
    """The box in one ``(and ...)`` assert, the outputs in others: the property is
    their conjunction (the ``vnnlib`` package alone reads them as alternatives)."""
    p = tmp_path / "v2.vnnlib"
    p.write_text(HEAD2 + "; box first\n"
                 "(assert (and (<= X[0] 1.0) (>= X[0] 0.0) (<= X[1] 1.0) (>= X[1] 0.0)))\n"
                 "(assert (or (>= Y[0] 100.0) (<= Y[1] -3.0)))  ; (assert (<= Y[0] 0))\n"
                 "(assert (<= Y[0] 200.0))\n")
    v2 = parse_vnnlib(p)
    assert _polys(v2) == _polys(parse_vnnlib_text(V1_AND))
    assert all(len(A) == 2 for case in v2.cases for A, _ in case.output)
    # a model whose outputs stay in [0, 1] meets no disjunct: unsat
    model = mlp_onnx(tmp_path / "tiny.onnx", tiny_relu_weights())
    q = tmp_path / "two.vnnlib"
    q.write_text(HEAD2 + "(assert (and (<= X[0] 1.0) (>= X[0] 0.0) (<= X[1] 1.0) "
                 "(>= X[1] 0.0)))\n(assert (>= Y[0] 100.0))\n")
    out = run_instance(model, q, RunOptions(timeout=10, extend_attack=False))
    assert out.result == "unsat", out


def test_version2_comment_inside_an_assert_reads(tmp_path: Path) -> None:
    """A ``;`` comment at the end of an assert's body (its closing parenthesis on the
    next line) comments out nothing of the asserts joined after it."""
    p = tmp_path / "v2.vnnlib"
    text = BODY2.replace("(assert (<= X[1] 1.0))", "(assert (<= X[1] 1.0) ; the upper end\n)")
    assert text != BODY2
    p.write_text(HEAD2 + text)
    assert _polys(parse_vnnlib(p)) == _polys(parse_vnnlib_text(V1))


@pytest.mark.parametrize("v2, v1", [
    ("(== Y[0] 5.0)", "(= Y_0 5.0)"),
    ("(== 5.0 ; five\n Y[0])", "(= 5.0 Y_0)"),
    ("(or (== (+ Y[0] Y[1]) 1.0) (<= Y[1] -2.0))", "(or (= (+ Y_0 Y_1) 1.0) (<= Y_1 -2.0))"),
    ("(and (==  X[0]  0.5) (>= Y[1] 1.0))", "(and (= X_0 0.5) (>= Y_1 1.0))"),
])
def test_version2_equality_is_both_inequalities(tmp_path: Path, v2: str, v1: str) -> None:
    """``(== A B)`` holds A <= B and A >= B: the ``vnnlib`` package's transform alone
    kept only the first (an impossible ``Y[0] == 5`` read ``Y[0] <= 5`` gave sat)."""
    p = tmp_path / "v2.vnnlib"
    p.write_text(HEAD2 + BODY2.splitlines(keepends=True)[0] + "".join(
        BODY2.splitlines(keepends=True)[1:4]) + f"(assert {v2})\n")
    head1 = "".join(V1.splitlines(keepends=True)[:8])
    assert _polys(parse_vnnlib(p)) == _polys(parse_vnnlib_text(head1 + f"(assert {v1})\n"))


def test_version2_impossible_equality_is_unsat(tmp_path: Path) -> None:
    model = mlp_onnx(tmp_path / "tiny.onnx", tiny_relu_weights())  # outputs in [0, 1]
    p = tmp_path / "eq.vnnlib"
    p.write_text(HEAD2 + "".join(BODY2.splitlines(keepends=True)[:4])
                 + "(assert (== Y[0] 5.0))\n")
    out = run_instance(model, p, RunOptions(timeout=10, extend_attack=False))
    assert out.result == "unsat", out


def test_scaled_input_bounds_divide_by_the_coefficient() -> None:
    """``2 X_0 <= 1`` and ``4 X_0 >= -1``: the input box is ``[-0.25, 0.5]``."""
    p = parse_vnnlib_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                          "(assert (<= (* 2.0 X_0) 1.0))\n(assert (>= (* 4.0 X_0) -1.0))\n"
                          "(assert (>= Y_0 0.0))\n")
    assert p.cases[0].lower.tolist() == [-0.25] and p.cases[0].upper.tolist() == [0.5]


def test_historical_result_words_read_as_their_verdicts(tmp_path: Path) -> None:
    """``holds`` is the old word for ``unsat`` (verified), ``violated`` for ``sat``."""
    from gridverify.vnncomp.result import read_result

    for word, verdict in (("holds", "unsat"), ("violated", "sat")):
        (tmp_path / word).write_text(word + "\n")
        assert read_result(tmp_path / word)[0] == verdict
