"""Types of the relaxation table (the contract between relaxations and the bound walks).

A *relaxation* of a unary function ``f`` on an interval ``[l, u]`` is a pair of
lines ``lw*x + lb <= f(x) <= uw*x + ub`` that hold for every ``x`` in ``[l, u]``.
Every function here is batched and elementwise: ``l`` and ``u`` are tensors of
one shape (any float dtype, any device) with ``l <= u``, and the results have
that shape, dtype and device.

Conventions shared by every entry of the table:

* ``alpha`` (optional) has shape ``(n_alpha, *l.shape)`` with values in
  ``[0, 1]``; *every* value in ``[0, 1]`` gives a sound relaxation, so an
  optimizer may move alpha freely and clamp it back to ``[0, 1]``.  Where an op
  has two parameters, ``alpha[0]`` shapes the lower line and ``alpha[1]`` the
  upper line; with one parameter it shapes the one line that is not fixed
  (relu: the lower slope; convex ops: the lower tangent; concave ops: the upper
  tangent).  ``alpha=None`` gives the default (CROWN) relaxation, and
  ``init_alpha(l, u)`` returns the alpha that reproduces it.
* Slopes are always finite.  An offset is infinite only when the function
  itself leaves the range of the dtype on the interval (``exp`` of large
  inputs, powers of huge inputs) or the interval leaves the op's domain
  (``reciprocal`` of an interval that contains 0): then the line is the
  constant ``-inf`` (lower) or ``+inf`` (upper), meaning "no bound".  No result
  is ever NaN for finite ``l <= u``.
* Results are computed in float64 and rounded outward, so they are sound in
  floating point for float64 and for lower-precision inputs alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

from gridverify.errors import GraphError


class RelaxationError(GraphError):
    """The relaxation table has no entry for an op (or its parameters are invalid)."""


class Relaxation(NamedTuple):
    """Linear bounds ``lw*x + lb <= f(x) <= uw*x + ub`` for all ``x`` in ``[l, u]``."""

    lw: Tensor
    lb: Tensor
    uw: Tensor
    ub: Tensor


class BilinearRelaxation(NamedTuple):
    """Planes ``lwx*x + lwy*y + lb <= x*y <= uwx*x + uwy*y + ub`` on a box."""

    lwx: Tensor
    lwy: Tensor
    lb: Tensor
    uwx: Tensor
    uwy: Tensor
    ub: Tensor


@dataclass(frozen=True)
class UnaryRelaxation:
    """One entry of the relaxation table: everything the bound walks need about an op.

    ``interval(l, u)`` is a sound (outward-rounded) and tight enclosure of
    ``f([l, u])``; ``relax(l, u, alpha)`` the linear relaxation (see the module
    docstring for alpha); ``func`` the true function (for tests and attacks);
    ``domain(l, u)`` (optional) the mask of elements whose interval lies inside
    the op's domain (``None``: defined everywhere).
    """

    op: str
    interval: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    relax: Callable[[Tensor, Tensor, Tensor | None], Relaxation]
    n_alpha: int
    init_alpha: Callable[[Tensor, Tensor], Tensor] | None
    func: Callable[[Tensor], Tensor]
    domain: Callable[[Tensor, Tensor], Tensor] | None = None
