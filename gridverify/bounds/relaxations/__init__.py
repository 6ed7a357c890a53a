"""The relaxation table of the bound engine.

One entry per unary nonlinear op (:class:`UnaryRelaxation`: interval, linear
relaxation with optional parameters, true function) plus the product of two
variables (:func:`interval_mul`, :func:`relax_mul`).  IBP, CROWN and
alpha-CROWN are different walks over this one table.  See
:mod:`gridverify.bounds.relaxations.base` for the conventions (shapes, alpha,
infinities, rounding) and each family module for why its relaxation is sound:

* :mod:`.piecewise` -- relu, floor
* :mod:`.pwl` -- ``pwl`` (a sum of shifted relus of one scalar; per-node
  attributes, so its entry comes from ``pwl_entry(breaks, weights, slope, bias)``)
* :mod:`.sshaped` -- sigmoid, tanh, erf, odd powers ``x^3, x^5, ...``
* :mod:`.convex` -- exp, softplus, reciprocal, sqrt, square and even powers
* :mod:`.trig` -- sin, cos
* :mod:`.bilinear` -- ``x * y`` (McCormick with a mixing parameter)
* :mod:`.smooth` -- the generic exact-offset engine of sshaped and trig

Use ``unary("sin")``, ``unary("pow", 3)`` or ``RELAXATIONS["tanh"]``.  The table
is built from the op table: each op's ``relaxation`` field (``"module:NAME"``,
see :mod:`gridverify.ir.ops`) names where its entry lives.
"""

from __future__ import annotations

import importlib
from functools import cache

from gridverify.bounds.relaxations.base import (
    BilinearRelaxation,
    Relaxation,
    RelaxationError,
    UnaryRelaxation,
)
from gridverify.bounds.relaxations.bilinear import interval_mul, relax_mul
from gridverify.bounds.relaxations.pwl import pwl_entry
from gridverify.bounds.relaxations.sshaped import odd_power
from gridverify.ir.ops import OPS

__all__ = [
    "BilinearRelaxation",
    "RELAXATIONS",
    "Relaxation",
    "RelaxationError",
    "UnaryRelaxation",
    "interval_mul",
    "pwl_entry",
    "relax_mul",
    "unary",
]

MAX_POWER = 64


@cache
def _power(p: int) -> UnaryRelaxation:
    if p % 2:
        return odd_power(p)
    from gridverify.bounds.relaxations.convex import even_power

    return even_power(p)


def _entry(path: str) -> UnaryRelaxation:
    """The relaxation ``"module:NAME"`` of this package."""
    module, name = path.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def _build_table() -> dict[str, UnaryRelaxation]:
    table = {op: _entry(info.relaxation) for op, info in OPS.items()
             if info.relaxation is not None}
    table["pow2"] = table["square"]
    for p in range(3, 9):
        table[f"pow{p}"] = _power(p)
    return table


RELAXATIONS: dict[str, UnaryRelaxation] = _build_table()


def unary(op: str, k: int | None = None) -> UnaryRelaxation:
    """The table entry of a unary op; ``unary("pow", k)`` for ``x^k`` (integer ``k >= 2``).

    Raises :class:`RelaxationError` for an unknown op or an invalid exponent.
    """
    if op == "pow":
        if k is None or int(k) != k or not 2 <= int(k) <= MAX_POWER:
            raise RelaxationError(
                f"op 'pow' needs an integer exponent in [2, {MAX_POWER}], got {k!r}"
            )
        return RELAXATIONS["square"] if int(k) == 2 and "square" in RELAXATIONS else _power(int(k))
    if op == "pwl":
        raise RelaxationError("op 'pwl' has per-node attributes: use pwl_entry(...)")
    if k is not None:
        raise RelaxationError(f"op {op!r} takes no exponent (got k={k!r})")
    try:
        return RELAXATIONS[op]
    except KeyError:
        raise RelaxationError(
            f"no relaxation for op {op!r}; known: {', '.join(sorted(RELAXATIONS))}, pow"
        ) from None
