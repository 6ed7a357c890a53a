"""The graph-against-onnxruntime comparison that guards every ``unsat`` claim."""

from __future__ import annotations

import numpy as np

from gridverify.ir.onnx_check import first_disagreement


def test_close_values_agree() -> None:
    y = np.array([1.0, -2.0, 3e6])
    assert first_disagreement(y, y * (1 + 1e-9)) is None


def test_far_values_disagree() -> None:
    assert first_disagreement(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == 1


def test_an_infinity_agrees_only_with_itself() -> None:
    """A finite graph value against an infinite reference is a disagreement (the
    runtime's float32 saturates where the graph's float64 does not)."""
    assert first_disagreement(np.array([-25.0]), np.array([-np.inf])) == 0
    assert first_disagreement(np.array([1e300]), np.array([np.inf])) == 0
    assert first_disagreement(np.array([np.inf]), np.array([-np.inf])) == 0
    assert first_disagreement(np.array([3.0, -np.inf]), np.array([3.0, -np.inf])) is None


def test_nan_agrees_only_with_nan() -> None:
    assert first_disagreement(np.array([np.nan]), np.array([np.nan])) is None
    assert first_disagreement(np.array([0.0]), np.array([np.nan])) == 0
    assert first_disagreement(np.array([np.nan]), np.array([0.0])) == 0
