"""The op table of the gridverify graph: arity, shape rule and traits of every op.

Generic code (the bound engine, the branch-and-bound, attacks) reads the traits
here instead of testing op names.  Only *primitive* ops appear in built graphs:
the builder lowers ``min``/``max``/``clamp`` to ``relu`` algebra, ``slice`` to
``gather``, ``sum`` to ``sparse_linear`` and division to ``mul`` by
``reciprocal``.

Traits
------
``arity``          number of variable inputs (``-1``: any number >= 1, ``concat``)
``elementwise``    output ``k`` depends only on input entry ``k`` (same size)
``linear``         affine in its inputs (bounded exactly by linear propagation)
``nonlinear``      needs a relaxation (its inputs need bounds)
``interval_exact`` interval arithmetic gives the exact range of every output entry
                   from input boxes (gather, scale, unary monotone-or-not ops...)
``monotone``       ``"increasing"``, ``"decreasing"`` or ``None``
``convex``/``concave``  intervals (lo, hi) of the real line where the function is
                   convex / concave (``None`` when not a unary function)
``period``         period of a periodic function, else ``None``
``inflections``    inflection points (for periodic ops, those in one period
                   starting at 0)
``domain``         open interval where the op is defined (reciprocal/sqrt: (0, inf))
``kinks``          name of the attribute holding per-entry kink positions (``pwl``:
                   ``"breaks"``), where branch-and-bound splits the op's input

Spellings and homes (read by the importers, the exporter, lowering and the bound
engine, so that an op is declared here once)
------------------------------------------------------------------------------
``func``           torch evaluation of a unary op (graph evaluation)
``numpy``          float64 numpy evaluation (constant folding while importing)
``onnx``           the ONNX op type that spells it (import of unary ops; export)
``torch``          spelled ``torch.<name>``, ``Tensor.<name>`` (and in place
                   ``<name>_``) and ``torch.nn.functional.<name>`` where it exists
``module``         the ``torch.nn`` module class that applies it (``"ReLU"``)
``relaxation``     ``"module:NAME"``: the :class:`UnaryRelaxation` of the op in
                   ``gridverify.bounds.relaxations.<module>`` (the bound engine's
                   table is built from these)

Adding a smooth unary op is one entry here plus, when no family fits, its
relaxation (see ``docs/ir.md``, "Adding an op").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

INF = math.inf


@dataclass(frozen=True)
class OpInfo:
    """Traits of one primitive op (see module docstring)."""

    name: str
    arity: int
    elementwise: bool = False
    linear: bool = False
    nonlinear: bool = False
    interval_exact: bool = False
    monotone: str | None = None
    convex: tuple[tuple[float, float], ...] | None = None
    concave: tuple[tuple[float, float], ...] | None = None
    period: float | None = None
    inflections: tuple[float, ...] = ()
    domain: tuple[float, float] = (-INF, INF)
    kinks: str | None = None
    func: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    numpy: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    onnx: str | None = None
    torch: bool = False
    module: str | None = None
    relaxation: str | None = None


def _floor(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x)


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _np_erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def softplus(x: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """``log(1 + exp(x))``; with a ``threshold`` (the ``softplus`` node's attribute),
    ``x`` where ``x > threshold``, as torch's ``softplus`` (and the graph its ONNX
    exporter writes: ``Where(Greater(x, t), x, Softplus(x))``) computes it."""
    sp = torch.logaddexp(x, torch.zeros_like(x))
    return sp if threshold is None else torch.where(x > threshold, x, sp)


def np_softplus(x: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """:func:`softplus` in float64 numpy (constant folding)."""
    sp = np.logaddexp(x, 0.0)
    return sp if threshold is None else np.where(x > threshold, x, sp)


def softplus_drop(threshold: float) -> float:
    """How far the thresholded :func:`softplus` lies below ``log(1 + exp(x))`` at
    most: ``log(1 + exp(-t))``, reached just above ``t`` (below ``t`` they agree)."""
    t = float(threshold)
    return max(-t, 0.0) + math.log1p(math.exp(-abs(t)))


_TWO_PI = 2.0 * math.pi

OPS: dict[str, OpInfo] = {
    info.name: info
    for info in (
        # sources
        OpInfo("input", 0, interval_exact=True),
        OpInfo("constant", 0, interval_exact=True),
        # affine ops
        OpInfo("linear", 1, linear=True),
        OpInfo("sparse_linear", 1, linear=True),
        OpInfo("add", 2, elementwise=True, linear=True, onnx="Add"),
        OpInfo("sub", 2, elementwise=True, linear=True, onnx="Sub"),
        OpInfo("neg", 1, elementwise=True, linear=True, interval_exact=True, monotone="decreasing",
               numpy=np.negative, onnx="Neg"),
        OpInfo("scale", 1, elementwise=True, linear=True, interval_exact=True),
        OpInfo(
            "add_const", 1, elementwise=True, linear=True, interval_exact=True,
            monotone="increasing",
        ),
        OpInfo("gather", 1, linear=True, interval_exact=True),
        OpInfo("concat", -1, linear=True, interval_exact=True),
        OpInfo("reshape", 1, linear=True, interval_exact=True, monotone="increasing"),
        # product of two variables
        OpInfo("mul", 2, elementwise=True, nonlinear=True, onnx="Mul"),
        # unary nonlinear ops
        OpInfo(
            "relu", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, INF),), concave=((-INF, 0.0), (0.0, INF)),
            func=torch.relu, numpy=lambda x: np.maximum(x, 0.0), onnx="Relu", torch=True,
            module="ReLU", relaxation="piecewise:RELU",
        ),
        OpInfo(
            "floor", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", func=_floor, numpy=np.floor, onnx="Floor", torch=True,
            relaxation="piecewise:FLOOR",
        ),
        OpInfo(
            "sigmoid", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, 0.0),), concave=((0.0, INF),),
            inflections=(0.0,), func=torch.sigmoid, numpy=_np_sigmoid, onnx="Sigmoid",
            torch=True, module="Sigmoid", relaxation="sshaped:SIGMOID",
        ),
        OpInfo(
            "tanh", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, 0.0),), concave=((0.0, INF),),
            inflections=(0.0,), func=torch.tanh, numpy=np.tanh, onnx="Tanh", torch=True,
            module="Tanh", relaxation="sshaped:TANH",
        ),
        OpInfo(
            "erf", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, 0.0),), concave=((0.0, INF),),
            inflections=(0.0,), func=torch.erf, numpy=_np_erf, onnx="Erf", torch=True,
            relaxation="sshaped:ERF",
        ),
        OpInfo(
            "atan", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, 0.0),), concave=((0.0, INF),),
            inflections=(0.0,), func=torch.atan, numpy=np.arctan, onnx="Atan", torch=True,
            relaxation="sshaped:ATAN",
        ),
        OpInfo(
            "sin", 1, elementwise=True, nonlinear=True, interval_exact=True,
            convex=((math.pi, _TWO_PI),), concave=((0.0, math.pi),), period=_TWO_PI,
            inflections=(0.0, math.pi), func=torch.sin, numpy=np.sin, onnx="Sin", torch=True,
            relaxation="trig:SIN",
        ),
        OpInfo(
            "cos", 1, elementwise=True, nonlinear=True, interval_exact=True,
            convex=((math.pi / 2, 3 * math.pi / 2),),
            concave=((-math.pi / 2, math.pi / 2),), period=_TWO_PI,
            inflections=(math.pi / 2, 3 * math.pi / 2), func=torch.cos, numpy=np.cos,
            onnx="Cos", torch=True, relaxation="trig:COS",
        ),
        OpInfo(
            "exp", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, INF),), func=torch.exp, numpy=np.exp,
            onnx="Exp", torch=True, relaxation="convex:EXP",
        ),
        OpInfo(
            "softplus", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", convex=((-INF, INF),), func=softplus,
            numpy=np_softplus, onnx="Softplus", relaxation="convex:SOFTPLUS",
        ),
        OpInfo(
            "reciprocal", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="decreasing", convex=((0.0, INF),), domain=(0.0, INF),
            func=torch.reciprocal, numpy=lambda x: 1.0 / x, onnx="Reciprocal", torch=True,
            relaxation="convex:RECIPROCAL",
        ),
        OpInfo(
            "sqrt", 1, elementwise=True, nonlinear=True, interval_exact=True,
            monotone="increasing", concave=((0.0, INF),), domain=(0.0, INF), func=torch.sqrt,
            numpy=np.sqrt, onnx="Sqrt", torch=True, relaxation="convex:SQRT",
        ),
        OpInfo(
            "square", 1, elementwise=True, nonlinear=True, interval_exact=True,
            convex=((-INF, INF),), func=torch.square, numpy=np.square,
            relaxation="convex:SQUARE",
        ),
        # piecewise-linear function of one scalar per entry (attrs breaks, weights,
        # slope, bias; see ``pwl_forward``); evaluated from its attributes
        OpInfo("pwl", 1, elementwise=True, nonlinear=True, interval_exact=True, kinks="breaks"),
        # integer power k >= 2 (attrs["k"]); traits depend on the parity of k and
        # are given for the odd case in ``pow_info``.
        OpInfo("pow", 1, elementwise=True, nonlinear=True, interval_exact=True),
    )
}

#: ops that are unary nonlinear functions with a relaxation in the table
UNARY_NONLINEAR = frozenset(
    n for n, i in OPS.items() if i.nonlinear and i.arity == 1
)


def pwl_forward(
    x: torch.Tensor,
    breaks: torch.Tensor,
    weights: torch.Tensor,
    slope: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """``bias + slope * x + sum_k weights[:, k] * relu(x - breaks[:, k])``, elementwise.

    ``x`` is ``(..., n)``; ``breaks`` and ``weights`` are ``(n, K)`` (entry ``i``'s
    kinks and slope changes), ``slope`` and ``bias`` ``(n,)``.  This is the ``pwl``
    op: a continuous piecewise-linear function of each entry, of slope ``slope``
    left of its first kink.
    """
    terms = torch.relu(x.unsqueeze(-1) - breaks) * weights
    return bias + slope * x + terms.sum(-1)


def pow_info(k: int) -> OpInfo:
    """Traits of ``x ** k`` for an integer ``k >= 2``."""
    if k % 2 == 0:
        return OpInfo(
            "pow", 1, elementwise=True, nonlinear=True, interval_exact=True,
            convex=((-INF, INF),), func=lambda x: x**k,
        )
    return OpInfo(
        "pow", 1, elementwise=True, nonlinear=True, interval_exact=True,
        monotone="increasing", convex=((0.0, INF),), concave=((-INF, 0.0),),
        inflections=(0.0,), func=lambda x: x**k,
    )


def softplus_info(threshold: float) -> OpInfo:
    """Traits of the thresholded :func:`softplus` (it drops by at most
    :func:`softplus_drop` just above ``threshold``: neither monotone nor convex)."""
    t = float(threshold)
    return OpInfo(
        "softplus", 1, elementwise=True, nonlinear=True, interval_exact=True,
        func=lambda x: softplus(x, t), numpy=lambda x: np_softplus(x, t), onnx="Softplus",
    )


def op_info(op: str, attrs: dict | None = None) -> OpInfo:
    """Traits of ``op`` (with its attributes, for ``pow`` and a thresholded ``softplus``)."""
    if op == "pow" and attrs is not None and "k" in attrs:
        return pow_info(int(attrs["k"]))
    if op == "softplus" and attrs is not None and attrs.get("threshold") is not None:
        return softplus_info(float(attrs["threshold"]))
    return OPS[op]
