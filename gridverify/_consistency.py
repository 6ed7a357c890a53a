"""The one test of a bound against a value attained under it.

A sound upper bound of a function over a box is never below the function's value
at a point of the box.  Where it is (by more than float64 evaluation can explain),
something is wrong in the bounds: branch-and-bound and certify then report the
constraint open (or violated), never certified, and a certificate file that says
otherwise is refused.  Shared by the layers that check it, which do not import
each other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INCONSISTENT", "INCONSISTENT_TOL", "below_attained"]

#: how far (relative to ``1 + |value|``) a bound may lie below a value attained
#: before it counts as inconsistent: far above the rounding of evaluating either
INCONSISTENT_TOL = 1e-6

#: how the reason of such a constraint or search begins
INCONSISTENT = "inconsistent"


def below_attained(bound: float | np.ndarray, value: float | np.ndarray) -> bool | np.ndarray:
    """Whether ``bound`` lies below ``value`` by more than :data:`INCONSISTENT_TOL`
    (elementwise for arrays; an infinite or NaN bound is never below, and every finite
    bound is below an infinite value)."""
    v = np.asarray(value, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        scale = 1.0 + np.where(np.isfinite(v), np.abs(v), 0.0)
        out = v > np.asarray(bound) + INCONSISTENT_TOL * scale
    return bool(out) if np.ndim(out) == 0 else out
