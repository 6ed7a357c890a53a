"""Tensor lowering shared by the ONNX and torch importers.

A :class:`Lowering` keeps, for every framework tensor, either a numpy constant
or a :class:`Var` (an IR node plus the tensor's per-sample shape), and lowers
tensor algebra (broadcasting, transposes, slicing, matmul) onto the flat-vector
IR: every structural op becomes one ``gather`` (or nothing when it is the
identity) and every constant matrix product one ``linear``/``sparse_linear``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gridverify.ir import Graph, GraphBuilder, Node
from gridverify.ir.ops import OPS, np_softplus
from gridverify.ir.windows import windows

__all__ = ["COMPARE_HINT", "Compare", "Lowering", "Value", "Var", "einsum_keeps_batch", "prune"]

# A sparse map with at least this density (and at most this many entries) is
# emitted as a dense ``linear``; sparser maps become ``sparse_linear``.
_DENSE_MIN_DENSITY = 0.25
_DENSE_MAX_ENTRIES = 50_000_000
# A constant dense matrix of at least this many entries and less than the
# density above is imported as ``sparse_linear``.
_SPARSE_MIN_ENTRIES = 1 << 16



def einsum_keeps_batch(equation: str, variables: Sequence[bool]) -> bool:
    """Whether an einsum keeps the batch axis: every variable operand's first axis
    (or its leading ``...``) is the output's first axis, and no constant operand reads
    that axis.  ``variables[k]``: whether operand ``k`` is a variable.  An equation
    without an explicit output (``->``) counts as not keeping it."""
    eq = equation.replace(" ", "")
    terms, arrow, out = eq.partition("->")
    names = terms.split(",")
    for t, is_var in zip(names, variables):
        if not is_var:
            continue
        lead = "..." if t.startswith("...") else t[:1]
        if not arrow or not out.startswith(lead) or any(
                lead in u for u, w in zip(names, variables) if not w):
            return False
    return True

@dataclass(frozen=True)
class Var:
    """A batch-dependent tensor: IR node ``node`` holding ``shape`` per sample."""

    node: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of entries per sample."""
        return int(np.prod(self.shape, dtype=np.int64))


Value = Var | np.ndarray


@dataclass(frozen=True)
class Compare:
    """``z > t`` (``above``) or ``z < t`` of a variable ``z`` and a constant scalar ``t``
    (``>=`` and ``<=`` read the same: only continuous ``where`` branches use it).  An
    importer keeps it as the value of the comparison; only a ``where`` may read it
    (:meth:`Lowering.where_compare`)."""

    z: Var
    t: float
    above: bool


#: how far (relative) the branches of a ``where`` may differ at its threshold and still
#: be one continuous function: the rounding of constants written to agree there
_WHERE_ROUNDING = 1e-12

#: the one-line reason an importer gives for a comparison it cannot use
COMPARE_HINT = ("a comparison of a variable with a constant scalar (one threshold for "
                "every entry) is supported only as the condition of a where whose branches "
                "agree at the threshold (or torch's softplus pattern)")


def _f64(a: Any) -> torch.Tensor:
    """A contiguous float64 torch tensor (shape kept as given)."""
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def _i64(a: Any) -> torch.Tensor:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.int64).ravel())
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


class Lowering:
    """Tensor algebra over numpy constants and IR variables, emitting IR nodes.

    Every method takes and returns values (``np.ndarray`` or :class:`Var`);
    when all operands are constants the result is computed with numpy.
    """

    def __init__(self, builder: GraphBuilder) -> None:
        self.b = builder

    # ---------------------------------------------------------------- basics
    @staticmethod
    def shape(v: Value) -> tuple[int, ...]:
        """Per-sample shape of a value."""
        return v.shape if isinstance(v, Var) else tuple(np.shape(v))

    @staticmethod
    def iota(v: Var) -> np.ndarray:
        """Array of flat element positions of ``v`` in its shape."""
        return np.arange(v.size, dtype=np.int64).reshape(v.shape)

    def node(self, v: Value) -> int:
        """The IR node of a value (a constant becomes a ``constant`` node)."""
        if isinstance(v, Var):
            return v.node
        return self.b.constant(_f64(np.asarray(v, dtype=np.float64).ravel()))

    def select(self, node: int, size: int, idx: np.ndarray) -> Var:
        """``out = node[idx]`` (flat positions, result shaped like ``idx``)."""
        flat = np.asarray(idx, dtype=np.int64).ravel()
        shape = tuple(int(d) for d in np.shape(idx))
        if flat.size == size and np.array_equal(flat, np.arange(size)):
            return Var(node, shape)
        merged = self._select_rows(node, flat)
        if merged is not None:
            return Var(merged, shape)
        return Var(self.b.gather(node, _i64(flat)), shape)

    def _select_rows(self, node: int, flat: np.ndarray) -> int | None:
        """Rows ``flat`` of a concat of bias-free ``sparse_linear`` maps of one input, as one
        ``sparse_linear`` (how an exported sparse map in row groups re-imports); else None."""
        nd = self.b.node(node)
        if nd.op != "concat":
            return None
        parts = [self.b.node(i) for i in nd.inputs]
        if any(p.op != "sparse_linear" or p.attrs.get("bias") is not None for p in parts) \
                or len({p.inputs[0] for p in parts}) != 1:
            return None
        offsets = np.cumsum([0] + [p.size for p in parts])
        rows = np.concatenate([p.attrs["rows"].numpy() + o for p, o in zip(parts, offsets)])
        cols = np.concatenate([p.attrs["cols"].numpy() for p in parts])
        vals = np.concatenate([p.attrs["vals"].numpy() for p in parts])
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=int(offsets[-1]))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n = counts[flat]
        at = np.repeat(starts[flat] - np.concatenate([[0], np.cumsum(n)[:-1]]), n) \
            + np.arange(int(n.sum()))
        new_rows = np.repeat(np.arange(flat.size), n)
        return self.b.sparse_linear(parts[0].inputs[0], _i64(new_rows), _i64(cols[order][at]),
                                    _f64(vals[order][at]), int(flat.size))

    def index(self, v: Value, fn: Callable[[np.ndarray], np.ndarray]) -> Value:
        """Apply a pure indexing function (transpose, slice, take...) to ``v``."""
        if not isinstance(v, Var):
            return np.asarray(fn(np.asarray(v)))
        return self.select(v.node, v.size, np.asarray(fn(self.iota(v))))

    def split(self, v: Value, sizes: Sequence[int], axis: int) -> list[Value]:
        """``v`` cut along ``axis`` into consecutive pieces of ``sizes`` (which add up
        to the axis' length)."""
        s = self.shape(v)
        axis = int(axis) % max(len(s), 1)
        if any(int(k) < 0 for k in sizes) or sum(int(k) for k in sizes) != s[axis]:
            raise ValueError(f"split: sizes {list(sizes)} do not add up to {s[axis]}")
        ends = np.cumsum([0, *[int(k) for k in sizes]])
        return [self.index(v, lambda t, a=int(a), c=int(c): np.take(t, np.arange(a, c),
                                                                      axis=axis))
                for a, c in zip(ends[:-1], ends[1:])]

    def reshape(self, v: Value, shape: Sequence[int]) -> Value:
        """Reshape (metadata only for variables)."""
        shape = tuple(int(d) for d in shape)
        if not isinstance(v, Var):
            return np.reshape(v, shape)
        if int(np.prod(shape, dtype=np.int64)) != v.size:
            raise ValueError(f"cannot reshape {v.shape} to {shape}")
        return Var(v.node, shape)

    def broadcast(self, v: Value, shape: Sequence[int]) -> Value:
        """Broadcast ``v`` to ``shape`` (numpy rules)."""
        shape = tuple(int(d) for d in shape)
        if self.shape(v) == shape:
            return v
        return self.index(v, lambda a: np.broadcast_to(a, shape))

    def linear_map(
        self,
        v: Var,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        out_shape: Sequence[int],
    ) -> Var:
        """``out[rows[k]] += vals[k] * v[cols[k]]``: dense or sparse linear node.

        Gathers and constant scalings feeding ``v`` are folded into the map and
        zero weights dropped (so an exported ``Gather * vals -> ScatterElements``
        or ``Gather * vals -> Reshape -> ReduceSum`` re-imports as one node).
        """
        out_shape = tuple(int(d) for d in out_shape)
        n_out = int(np.prod(out_shape, dtype=np.int64))
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        vals = np.asarray(vals, dtype=np.float64).ravel()
        src = v.node
        while (nd := self.b.node(src)).op in ("gather", "scale", "reshape"):
            if nd.op == "gather":
                cols = nd.attrs["index"].numpy()[cols]
            elif nd.op == "scale":
                vals = vals * nd.attrs["coef"].numpy()[cols]
            src = nd.inputs[0]
        if not np.all(keep := vals != 0):  # padding slots of an exported sparse map
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        v = Var(src, (self.b.node(src).size,))
        n_in = v.size
        dense_entries = n_out * n_in
        if dense_entries <= _DENSE_MAX_ENTRIES and rows.size >= _DENSE_MIN_DENSITY * dense_entries:
            w = np.bincount(rows * n_in + cols, weights=vals, minlength=dense_entries)
            node = self.b.linear(v.node, _f64(w.reshape(n_out, n_in)), None)
        else:
            node = self.b.sparse_linear(v.node, _i64(rows), _i64(cols), _f64(vals), n_out)
        return Var(node, out_shape)

    def dense(
        self, v: Var, w: np.ndarray, bias: np.ndarray | None, out_shape: Sequence[int]
    ) -> Var:
        """``out = v_flat @ w.T + bias`` with ``w`` of shape (out, in).

        A large, mostly-zero ``w`` (a physics incidence matrix stored densely)
        becomes a ``sparse_linear``.
        """
        b = None if bias is None else _f64(np.asarray(bias, dtype=np.float64).ravel())
        w = np.asarray(w)
        if w.size >= _SPARSE_MIN_ENTRIES:
            nnz = np.count_nonzero(w)
            if nnz < _DENSE_MIN_DENSITY * w.size:
                rows, cols = np.nonzero(w)
                node = self.b.sparse_linear(v.node, _i64(rows), _i64(cols), _f64(w[rows, cols]),
                                            w.shape[0], bias=b)
                return Var(node, tuple(int(d) for d in out_shape))
        return Var(self.b.linear(v.node, _f64(w), b), tuple(int(d) for d in out_shape))

    # ----------------------------------------------------------- elementwise
    def unary(self, op: str, v: Value) -> Value:
        """Elementwise unary ``op`` of the op table (relu, sin, exp, neg, square...)."""
        if isinstance(v, Var):
            return Var(self.b.unary(op, v.node), v.shape)
        x = np.asarray(v, dtype=np.float64)
        return _NUMPY_UNARY[op](x)

    def _binary_shapes(self, a: Value, c: Value) -> tuple[int, ...]:
        return tuple(np.broadcast_shapes(self.shape(a), self.shape(c)))

    def _commutative(
        self,
        a: Value,
        c: Value,
        numpy_op: Callable[[Any, Any], Any],
        var_op: Callable[[int, int], int],
        const_op: Callable[[int, np.ndarray], int],
        neutral: float,
    ) -> Value:
        """``a op c`` with broadcasting for a commutative elementwise ``op``.

        Two constants: ``numpy_op``.  Two variables: ``var_op`` on the nodes.  A
        variable and a constant: ``const_op(node, constant)``, or the variable
        itself when the constant is ``neutral`` everywhere.
        """
        if not isinstance(a, Var) and not isinstance(c, Var):
            return numpy_op(a, c)
        shape = self._binary_shapes(a, c)
        if not isinstance(a, Var):
            a, c = c, a
        a = self.broadcast(a, shape)
        if isinstance(c, Var):
            return Var(var_op(a.node, self.broadcast(c, shape).node), shape)
        cf = np.broadcast_to(np.asarray(c, dtype=np.float64), shape)
        if np.all(cf == neutral):
            return a
        return Var(const_op(a.node, _f64(cf.ravel())), shape)

    def add(self, a: Value, c: Value) -> Value:
        """``a + c`` with broadcasting."""
        return self._commutative(a, c, np.add, self.b.add, self.b.add_const, 0.0)

    def neg(self, a: Value) -> Value:
        """``-a``."""
        if not isinstance(a, Var):
            return np.negative(a)
        return Var(self.b.neg(a.node), a.shape)

    def sub(self, a: Value, c: Value) -> Value:
        """``a - c`` with broadcasting."""
        if not isinstance(a, Var) and not isinstance(c, Var):
            return np.subtract(a, c)
        if isinstance(a, Var) and isinstance(c, Var):
            shape = self._binary_shapes(a, c)
            a, c = self.broadcast(a, shape), self.broadcast(c, shape)
            return Var(self.b.sub(a.node, c.node), shape)
        if isinstance(a, Var):
            return self.add(a, np.negative(np.asarray(c, dtype=np.float64)))
        return self.add(self.neg(c), a)

    def mul(self, a: Value, c: Value) -> Value:
        """``a * c`` with broadcasting."""
        return self._commutative(a, c, np.multiply, self.b.mul, self.b.scale, 1.0)

    def div(self, a: Value, c: Value) -> Value:
        """``a / c``; a variable divisor goes through ``reciprocal``."""
        if not isinstance(a, Var) and not isinstance(c, Var):
            a_, c_ = np.asarray(a), np.asarray(c)
            if a_.dtype.kind in "iu" and c_.dtype.kind in "iu":
                return np.trunc(a_ / c_).astype(np.result_type(a_, c_))
            return np.divide(a_, c_)
        if isinstance(c, Var):
            return self.mul(a, self.unary("reciprocal", c))
        return self.mul(a, 1.0 / np.asarray(c, dtype=np.float64))

    def power(self, a: Value, e: Value) -> Value:
        """``a ** e`` for a constant exponent that is an integer or +-1/2."""
        if not isinstance(a, Var) and not isinstance(e, Var):
            return np.power(np.asarray(a, dtype=np.float64), e)
        if isinstance(e, Var):
            raise _Unsupported("variable exponent")
        ev = np.unique(np.asarray(e, dtype=np.float64))
        if ev.size != 1:
            raise _Unsupported("exponent must be one constant")
        k = float(ev[0])
        shape = self._binary_shapes(a, e)
        a = self.broadcast(a, shape)
        if k == 0.5:
            return self.unary("sqrt", a)
        if k == -0.5:
            return self.unary("reciprocal", self.unary("sqrt", a))
        if k != round(k):
            raise _Unsupported(f"non-integer exponent {k}")
        n = int(round(k))
        if n == 0:
            return np.ones(shape)
        base = a if n > 0 else self.unary("reciprocal", a)
        n = abs(n)
        if n == 1:
            return base
        if n == 2:
            return Var(self.b.square(base.node), shape)
        return Var(self.b.pow(base.node, n), shape)

    def gelu(self, x: Value, approximate: str = "none") -> Value:
        """GELU ``x * Phi(x)`` as ``x * (1 + erf(x / sqrt 2)) / 2`` (``"tanh"``: its tanh form).

        The product of ``x`` and a function of ``x`` is relaxed as a product of
        two variables: sound, looser than a dedicated GELU relaxation would be
        on wide intervals (branch-and-bound splits the shared operand).
        """
        if approximate == "tanh":
            inner = self.mul(self.add(x, self.mul(self.power(x, np.asarray(3.0)), 0.044715)),
                             math.sqrt(2.0 / math.pi))
            s = self.unary("tanh", inner)
        elif approximate == "none":
            s = self.unary("erf", self.mul(x, 1.0 / math.sqrt(2.0)))
        else:
            raise _Unsupported(f"GELU approximation {approximate!r}")
        return self.mul(x, self.add(self.mul(s, 0.5), 0.5))

    # Activations built from the op table, written once for both importers.  A
    # constant argument is evaluated in float64 numpy by the same expressions.
    def abs(self, x: Value) -> Value:
        """``|x| = relu(x) + relu(-x)``."""
        if not isinstance(x, Var):
            return np.abs(x)
        return self.add(self.unary("relu", x), self.unary("relu", self.neg(x)))

    def prelu(self, x: Value, slope: Any) -> Value:
        """``x`` above 0, ``slope * x`` below (leaky relu; ``slope`` broadcasts per entry),
        as ``slope * x + (1 - slope) * relu(x)``."""
        slope = np.asarray(slope, dtype=np.float64)
        return self.add(self.mul(x, slope), self.mul(self.unary("relu", x), 1.0 - slope))

    def hardsigmoid(self, x: Value, alpha: float = 1.0 / 6.0, beta: float = 0.5) -> Value:
        """``clamp(alpha * x + beta, 0, 1)`` (ONNX's default alpha is 0.2)."""
        return self.clamp(self.add(self.mul(x, float(alpha)), float(beta)), 0.0, 1.0)

    def hardswish(self, x: Value) -> Value:
        """``x * hardsigmoid(x)`` with alpha 1/6, beta 1/2 (a product of two variables)."""
        return self.mul(x, self.hardsigmoid(x, 1.0 / 6.0, 0.5))

    def elu(self, x: Value, alpha: float = 1.0, scale: float = 1.0, width: float = 1.0) -> Value:
        """``scale * (relu(x) + alpha * (exp(min(x, 0) / width) - 1))``: ELU (width 1),
        SELU (its alpha and scale) and CELU (width = alpha)."""
        neg = self.neg(self.unary("relu", self.neg(x)))  # min(x, 0)
        e = self.add(self.unary("exp", self.mul(neg, 1.0 / float(width))), -1.0)
        return self.mul(self.add(self.unary("relu", x), self.mul(e, float(alpha))), float(scale))

    def silu(self, x: Value) -> Value:
        """``x * sigmoid(x)`` (SiLU, swish; a product of two variables)."""
        return self.mul(x, self.unary("sigmoid", x))

    def softplus(self, x: Value, beta: float = 1.0, threshold: float | None = None) -> Value:
        """``log(1 + exp(beta * x)) / beta``; with a ``threshold``, ``x`` where
        ``beta * x > threshold`` (torch's ``softplus(x, beta, threshold)``)."""
        beta = float(beta)
        if not (math.isfinite(beta) and beta > 0.0):
            raise _Unsupported(f"softplus needs a positive finite beta, got {beta!r}")
        y = x if beta == 1.0 else self.mul(x, beta)
        if isinstance(y, Var):
            out: Value = Var(self.b.softplus(y.node, threshold), y.shape)
        else:
            out = np_softplus(np.asarray(y, dtype=np.float64), threshold)
        return out if beta == 1.0 else self.mul(out, 1.0 / beta)

    def mish(self, x: Value) -> Value:
        """``x * tanh(softplus(x))`` (a product of two variables)."""
        return self.mul(x, self.unary("tanh", self.unary("softplus", x)))

    def softsign(self, x: Value) -> Value:
        """``x / (1 + |x|)``."""
        return self.mul(x, self.unary("reciprocal", self.add(self.abs(x), 1.0)))

    def channel_affine(self, x: Value, scale: np.ndarray, shift: np.ndarray) -> Value:
        """``scale[c] * x + shift[c]`` over the channel axis 1 (inference batch norm)."""
        tail = (1,) * max(len(self.shape(x)) - 2, 0)
        scale = np.asarray(scale, dtype=np.float64).reshape(-1, *tail)
        shift = np.asarray(shift, dtype=np.float64).reshape(-1, *tail)
        return self.add(self.mul(x, scale), shift)

    def layer_norm(self, x: Value, n_axes: int, eps: float, scale: Any = None,
                   bias: Any = None) -> Value:
        """Layer normalization over the last ``n_axes`` axes: ``(x - mean) /
        sqrt(var + eps) * scale + bias``, mean and (biased) variance per sample,
        written with ``square``, ``sqrt`` and ``reciprocal`` (their relaxations bound
        it; the variance's interval is at least ``eps``, so the reciprocal is
        defined).  A normalized entry lies within ``sqrt(n - 1)`` of 0 (``n`` entries
        normalized together; ``c_i^2 <= (n - 1) var`` when the ``c`` sum to 0): a
        clamp that never acts on the true value bounds it where the product's
        relaxation cannot (a small variance)."""
        shape = self.shape(x)
        if not 1 <= n_axes <= len(shape):
            raise _Unsupported(f"layer norm over {n_axes} axes of a {len(shape)}-axis tensor")
        axes = list(range(len(shape) - n_axes, len(shape)))
        n = int(np.prod([shape[a] for a in axes]))
        centred = self.sub(x, self.mul(self.reduce_sum(x, axes, True), 1.0 / n))
        var = self.mul(self.reduce_sum(self.unary("square", centred), axes, True), 1.0 / n)
        inv_std = self.unary("reciprocal", self.unary("sqrt", self.add(var, float(eps))))
        reach = math.sqrt(max(n - 1, 0)) * (1.0 + 1e-12)
        y = self.clamp(self.mul(centred, inv_std), -reach, reach)
        if scale is not None:
            y = self.mul(y, np.asarray(scale, dtype=np.float64))
        return y if bias is None else self.add(y, np.asarray(bias, dtype=np.float64))

    def _scaled(self, v: Value | None) -> tuple[int, float] | None:
        """``(node, b)`` with ``v`` = ``b * node`` (``b`` one scalar), else ``None``."""
        if not isinstance(v, Var):
            return None
        nd = self.b.node(v.node)
        if nd.op != "scale":
            return v.node, 1.0
        coef = np.unique(nd.attrs["coef"].numpy())
        return (nd.inputs[0], float(coef[0])) if coef.size == 1 else None

    def softplus_where(self, z: Var, t: float, x: Value | None, y: Value | None) -> Value | None:
        """``where(z > t, x, y)`` when it spells torch's thresholded softplus, else ``None``:
        ``z = b * x`` (``b > 0``) and ``y = softplus(z) / b``, i.e. ``softplus(x, b, t)``
        (torch's ONNX exporter and its ATen decomposition both write it so; the two
        branches differ at the threshold by :func:`gridverify.ir.ops.softplus_drop`,
        which the softplus op's relaxation accounts for)."""
        if not isinstance(x, Var) or not isinstance(y, Var):
            return None
        bx = (x.node, 1.0) if z.node == x.node else self._scaled(z)
        sy = self._scaled(y)
        if bx is None or sy is None or bx[0] != x.node or not bx[1] > 0.0 \
                or z.shape != x.shape or y.shape != x.shape:
            return None
        sp = self.b.node(sy[0])
        if sp.op != "softplus" or sp.attrs.get("threshold") is not None \
                or abs(sy[1] * bx[1] - 1.0) > 1e-6:
            return None
        arg = bx if sp.inputs[0] == z.node else self._scaled(Var(sp.inputs[0], z.shape))
        if arg is None or arg[0] != x.node or abs(arg[1] - bx[1]) > 1e-12 * bx[1]:
            return None  # softplus of another value than z (or of z computed again)
        return self.softplus(x, bx[1], t)

    def log(self, v: Value) -> Value:
        """``log`` of a constant, or of a variable in the forms that are softplus:
        ``log(1 + exp(z)) = softplus(z)``, ``log(sigmoid(z)) = -softplus(-z)`` (a
        logsigmoid as exporters write it), ``log(exp(z)) = z``; any other is refused."""
        if not isinstance(v, Var):
            return np.log(np.asarray(v, dtype=np.float64))
        nd = self.b.node(v.node)
        if nd.op == "sigmoid":
            return self.neg(self.softplus(self.neg(Var(nd.inputs[0], v.shape))))
        if nd.op == "exp":
            return Var(nd.inputs[0], v.shape)
        if nd.op == "add_const" and np.all(nd.attrs["const"].numpy() == 1.0) \
                and self.b.node(nd.inputs[0]).op == "exp":
            return self.softplus(Var(self.b.node(nd.inputs[0]).inputs[0], v.shape))
        raise _Unsupported("log of a variable is supported only as log(1 + exp(z)), "
                           "log(sigmoid(z)) or log(exp(z))")

    def log1p(self, v: Value) -> Value:
        """``log1p`` of a constant, or ``log1p(exp(z)) = softplus(z)`` (torch's
        decomposition of softplus and mish); any other variable is refused."""
        if not isinstance(v, Var):
            return np.log1p(np.asarray(v, dtype=np.float64))
        nd = self.b.node(v.node)
        if nd.op != "exp":
            raise _Unsupported("log1p of a variable is supported only as log1p(exp(z)), a "
                               "softplus")
        return self.softplus(Var(nd.inputs[0], v.shape))

    def compare(self, a: Value | None, b: Value | None, above: bool) -> Compare:
        """``a > b`` (``above``; else ``a < b``, and ``>=``/``<=`` alike) of a variable and
        a constant scalar (a number, or an array of one repeated value), either way
        round; anything else is refused (:data:`COMPARE_HINT`)."""
        if not isinstance(a, Var):  # t < x: x > t
            a, b, above = b, a, not above
        if not isinstance(a, Var) or isinstance(b, Var) or b is None or isinstance(b, bool):
            raise _Unsupported(COMPARE_HINT)
        try:
            t = np.unique(np.asarray(b, dtype=np.float64))
        except (TypeError, ValueError):
            raise _Unsupported(COMPARE_HINT) from None
        if t.size != 1 or not math.isfinite(t[0]):
            raise _Unsupported(COMPARE_HINT)
        return Compare(a, float(t[0]), above)

    def compare_root(self, c: Compare) -> Compare:
        """The same comparison of the variable ``c.z`` is a scalar affine image of
        (followed back through ``neg`` and scalar ``scale`` and ``add_const`` nodes)."""
        z, t, above = c.z, float(c.t), c.above
        while True:
            nd = self.b.node(z.node)
            if nd.op == "neg":
                t, above = -t, not above
            elif nd.op in ("scale", "add_const"):
                k = np.unique(nd.attrs["coef" if nd.op == "scale" else "const"].numpy())
                if k.size != 1 or (nd.op == "scale" and k[0] == 0.0):
                    break
                if nd.op == "add_const":
                    t -= float(k[0])
                else:
                    t, above = t / float(k[0]), above if k[0] > 0 else not above
            else:
                break
            z = Var(nd.inputs[0], z.shape)
        if not math.isfinite(t):
            raise _Unsupported(COMPARE_HINT)
        return Compare(z, t, above)

    def where_compare(self, cond: Compare, a: Value | None, b: Value | None,
                      relower: Callable[[Var, int, Value], Value]) -> Value:
        """``where(cond, a, b)`` for a comparison of a variable: torch's thresholded
        softplus (:meth:`softplus_where`), or branches that are elementwise functions of
        the compared variable ``x`` alone and agree at the threshold ``t`` (up to a
        relative 1e-12: constants rounded to agree there), as the same function
        ``hi(max(x, t)) + lo(min(x, t)) - c`` (``hi`` the branch taken above ``t``, ``c``
        the mean of the branches at ``t``: within half their rounding gap of the model).
        ``relower(x, k, v)``: branch ``k`` (0 = ``a``, 1 = ``b``) lowered again with ``x``
        replaced by ``v`` (the importer's part: it knows the graph)."""
        if cond.above:
            sp = self.softplus_where(cond.z, cond.t, a, b)
            if sp is not None:
                return sp
        # the variable the comparison is an affine image of, else the one it names (an
        # affine image the importer cannot substitute into the branches: log(sigmoid(x))
        # is -softplus(-x), whose softplus no node of the model computes)
        for root in dict.fromkeys((self.compare_root(cond), cond)):
            x, t = root.z, root.t
            k_hi = 0 if root.above else 1
            at_t = [relower(x, k, np.full(x.shape, t)) for k in (k_hi, 1 - k_hi)]
            if not any(isinstance(v, Var) for v in at_t):
                break
        else:
            raise _Unsupported("where(x > t, a, b): the branches read variables other than "
                               "the compared x")
        try:
            hi_t, lo_t = (np.broadcast_to(np.asarray(v, dtype=np.float64), x.shape)
                          for v in at_t)
        except ValueError:
            raise _Unsupported("where(x > t, a, b): the branches broadcast x to another "
                               "shape") from None
        jump = float(np.max(np.abs(hi_t - lo_t), initial=0.0))
        if jump > _WHERE_ROUNDING * (1.0 + float(np.max(np.abs(hi_t), initial=0.0))):
            raise _Unsupported(f"where(x > t, a, b): the branches differ at x = t by {jump:.3g} "
                               "(a step function, which gridverify does not bound)")
        subs = (self.clamp(x, t, None), self.clamp(x, None, t))
        parts = [relower(x, k, v) for k, v in zip((k_hi, 1 - k_hi), subs)]
        for p, sub in zip(parts, subs):
            if isinstance(p, Var) and not self._elementwise_of(p, sub):
                raise _Unsupported("where(x > t, a, b): a branch is not elementwise in x")
        # the branches' common value at t: their mean, where rounding leaves them apart
        out = self.add(self.sub(parts[0], 0.5 * (hi_t + lo_t)), parts[1])
        if self.shape(out) != x.shape:
            raise _Unsupported("where(x > t, a, b): the branches broadcast x to another shape")
        return out

    def _elementwise_of(self, v: Var, sub: Var) -> bool:
        """Whether ``v`` depends on variables through ``sub`` only, entry by entry."""
        stack, seen = [v.node], set()
        while stack:
            h = stack.pop()
            if h in seen or h == sub.node:
                continue
            seen.add(h)
            nd = self.b.node(h)
            if nd.op == "constant":
                continue
            if not OPS[nd.op].elementwise or nd.size != sub.size:
                return False
            stack.extend(nd.inputs)
        return True

    def minmax(self, op: str, a: Value, c: Value) -> Value:
        """Elementwise ``minimum`` / ``maximum``."""
        if not isinstance(a, Var) and not isinstance(c, Var):
            return np.minimum(a, c) if op == "minimum" else np.maximum(a, c)
        shape = self._binary_shapes(a, c)
        if isinstance(a, Var) and isinstance(c, Var):
            a, c = self.broadcast(a, shape), self.broadcast(c, shape)
            return Var(getattr(self.b, op)(a.node, c.node), shape)
        if not isinstance(a, Var):
            a, c = c, a
        return self.clamp(a, c if op == "maximum" else None, c if op == "minimum" else None)

    def clamp(self, a: Value, lo: Any, hi: Any) -> Value:
        """``clamp(a, lo, hi)`` with constant bounds (None = open)."""
        if not isinstance(a, Var):
            x = np.asarray(a, dtype=np.float64)
            return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        shape = a.shape
        for bound in (lo, hi):
            if isinstance(bound, Var):
                raise _Unsupported("variable clamp bound")
            if bound is not None:
                shape = tuple(np.broadcast_shapes(shape, np.shape(bound)))
        a = self.broadcast(a, shape)

        def flat(bound: Any) -> torch.Tensor | None:
            if bound is None:
                return None
            arr = np.asarray(bound, dtype=np.float64)
            if arr.size == 1:
                return _f64(arr.reshape(()))
            return _f64(np.broadcast_to(arr, shape).ravel())

        return Var(self.b.clamp(a.node, flat(lo), flat(hi)), shape)

    # ------------------------------------------------------------ structural
    def concat(self, values: Sequence[Value], axis: int) -> Value:
        """Concatenate along ``axis`` (numpy rules)."""
        if not any(isinstance(v, Var) for v in values):
            return np.concatenate([np.asarray(v) for v in values], axis=axis)
        parts = [v for v in values if int(np.prod(self.shape(v), dtype=np.int64)) > 0]
        nodes, idx, offset = [], [], 0
        for v in parts:
            nodes.append(self.node(v))
            n = int(np.prod(self.shape(v), dtype=np.int64))
            idx.append(np.arange(offset, offset + n, dtype=np.int64).reshape(self.shape(v)))
            offset += n
        positions = np.concatenate(idx, axis=axis)
        node = nodes[0] if len(nodes) == 1 else self.b.concat(nodes)
        return self.select(node, offset, positions)

    def where(self, cond: Value, a: Value, c: Value) -> Value:
        """``where(cond, a, c)`` for a constant condition."""
        if isinstance(cond, Var):
            raise _Unsupported("variable condition")
        cond = np.asarray(cond, dtype=bool)
        if not isinstance(a, Var) and not isinstance(c, Var):
            return np.where(cond, a, c)
        shape = tuple(np.broadcast_shapes(cond.shape, self.shape(a), self.shape(c)))
        cb = np.broadcast_to(cond, shape)
        if cb.all():
            return self.broadcast(a, shape)
        if not cb.any():
            return self.broadcast(c, shape)
        n = int(np.prod(shape, dtype=np.int64))
        flat_a = self.reshape(self.broadcast(a, shape), (n,))
        flat_c = self.reshape(self.broadcast(c, shape), (n,))
        both = self.concat([flat_a, flat_c], 0)
        pos = np.where(cb, np.arange(n).reshape(shape), n + np.arange(n).reshape(shape))
        return self.index(both, lambda arr: arr[pos])

    def reduce_sum(self, v: Value, axes: Sequence[int] | None, keepdims: bool) -> Value:
        """Sum over ``axes`` (all axes when None)."""
        shape = self.shape(v)
        ax = tuple(range(len(shape))) if axes is None else tuple(a % len(shape) for a in axes)
        if not isinstance(v, Var):
            return np.sum(v, axis=ax, keepdims=keepdims)
        kept = tuple(1 if i in ax else d for i, d in enumerate(shape))
        out_shape = kept if keepdims else tuple(d for i, d in enumerate(shape) if i not in ax)
        if int(np.prod(kept, dtype=np.int64)) == 1:
            return Var(self.b.sum(v.node), out_shape)
        rows = np.broadcast_to(np.arange(int(np.prod(kept))).reshape(kept), shape)
        return self.linear_map(v, rows, np.arange(v.size), np.ones(v.size), out_shape)

    def matmul(self, a: Value, c: Value) -> Value:
        """numpy ``matmul`` semantics, including 1-D operands."""
        if not isinstance(a, Var) and not isinstance(c, Var):
            return np.matmul(np.asarray(a), np.asarray(c))
        sa, sc = self.shape(a), self.shape(c)
        if len(sa) == 0 or len(sc) == 0:
            raise ValueError("matmul of a scalar")
        a1, c1 = len(sa) == 1, len(sc) == 1
        if a1:
            a, sa = self.reshape(a, (1, sa[0])), (1, sa[0])
        if c1:
            c, sc = self.reshape(c, (sc[0], 1)), (sc[0], 1)
        m, k, n = sa[-2], sa[-1], sc[-1]
        if sc[-2] != k:
            raise ValueError(f"matmul shapes {sa} and {sc} do not match")
        bo = tuple(np.broadcast_shapes(sa[:-2], sc[:-2]))
        out_shape = bo + (m, n)
        final = bo + ((m,) if not a1 else ()) + ((n,) if not c1 else ())
        ra = int(np.prod(sa[:-1], dtype=np.int64))
        if isinstance(a, Var) and not isinstance(c, Var) and len(sc) == 2 and ra == 1:
            out = self.dense(a, np.asarray(c, dtype=np.float64).T, None, out_shape)
            return self.reshape(out, final)
        if isinstance(c, Var) and not isinstance(a, Var) and len(sa) == 2 and len(sc) == 2 \
                and n == 1:
            out = self.dense(c, np.asarray(a, dtype=np.float64), None, out_shape)
            return self.reshape(out, final)
        full = bo + (m, k, n)
        out_idx = np.broadcast_to(
            np.arange(int(np.prod(out_shape))).reshape(out_shape)[..., :, None, :], full)
        if isinstance(a, Var) and isinstance(c, Var):
            ga = self.index(a, lambda t: np.broadcast_to(t[..., :, :, None], full))
            gc = self.index(c, lambda t: np.broadcast_to(t[..., None, :, :], full))
            prod = self.mul(ga, gc)
            out = self.linear_map(prod, out_idx, np.arange(prod.size), np.ones(prod.size),
                                  out_shape)
        elif isinstance(a, Var):
            cols = np.broadcast_to(self.iota(a)[..., :, :, None], full)
            vals = np.broadcast_to(np.asarray(c, dtype=np.float64)[..., None, :, :], full)
            out = self.linear_map(a, out_idx, cols, vals, out_shape)
        else:
            cols = np.broadcast_to(self.iota(c)[..., None, :, :], full)
            vals = np.broadcast_to(np.asarray(a, dtype=np.float64)[..., :, :, None], full)
            out = self.linear_map(c, out_idx, cols, vals, out_shape)
        return self.reshape(out, final)

    def einsum(self, equation: str, operands: Sequence[Value]) -> Value:
        """``einsum(equation, *operands)`` with at most one variable operand: its linear
        map, read off numpy's einsum of the constant operands with the identity."""
        var = [k for k, o in enumerate(operands) if isinstance(o, Var)]
        if not var:
            return np.einsum(equation, *[np.asarray(o) for o in operands])
        if len(var) > 1:
            raise _Unsupported("einsum of more than one variable operand")
        eq = equation.replace(" ", "")
        if "..." in eq or "->" not in eq:
            raise _Unsupported("einsum with an ellipsis or an implicit output")
        terms = eq.split("->")[0].split(",")
        if len(terms) != len(operands):
            raise ValueError(f"einsum {equation!r} names {len(terms)} operands, "
                             f"got {len(operands)}")
        k = var[0]
        x = operands[k]
        spare = next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq)
        terms[k] = spare + terms[k]
        basis = np.eye(x.size).reshape((x.size, *x.shape))
        m = np.einsum(",".join(terms) + "->" + spare + eq.split("->")[1],
                      *[basis if j == k else np.asarray(o, dtype=np.float64)
                        for j, o in enumerate(operands)])  # (inputs, *out)
        w = m.reshape(x.size, -1).T
        rows, cols = np.nonzero(w)
        return self.linear_map(x, rows, cols, w[rows, cols], m.shape[1:])

    # ------------------------------------------------------ sliding windows
    def _windowed(self, x: Value, d: int, what: str) -> tuple[Var, int, int, tuple[int, ...]]:
        """``x`` as a Var of shape (batch, channels, *spatial) with ``d`` spatial axes."""
        if not isinstance(x, Var):
            raise _Unsupported(f"{what} of a constant (fold it before export)")
        shape = self.shape(x)
        if len(shape) != d + 2:
            raise ValueError(f"a {d}-d {what} needs (batch, channels, {d} spatial axes), "
                             f"got shape {shape}")
        return x, shape[0], shape[1], shape[2:]

    def conv(self, x: Value, w: np.ndarray, bias: np.ndarray | None, strides: Sequence[int],
             pads_begin: Sequence[int], pads_end: Sequence[int], dilations: Sequence[int],
             groups: int = 1) -> Value:
        """N-d convolution (cross-correlation, as ONNX ``Conv`` and torch ``convNd``) of
        ``x`` (batch, channels, *spatial) with the constant kernel ``w`` (out channels,
        in channels / groups, *kernel): one sparse linear map over its windows
        (:func:`gridverify.ir.windows.windows`), plus ``bias`` per output channel."""
        w = np.asarray(w, dtype=np.float64)
        d = w.ndim - 2
        x, n, c, spatial = self._windowed(x, d, "convolution")
        m, cg = w.shape[:2]
        if groups < 1 or c != cg * groups or m % groups:
            raise ValueError(f"{c} input channels do not match a kernel of shape {w.shape} "
                             f"in {groups} group(s)")
        win = windows(spatial, w.shape[2:], strides, pads_begin, pads_end, dilations)
        n_out, n_in = win.n_out, int(np.prod(spatial, dtype=np.int64))
        oc = np.arange(m)[:, None, None]
        ic = (oc // (m // groups)) * cg + np.arange(cg)[None, :, None]
        full = (m, cg, win.p.size)
        rows = np.broadcast_to(oc * n_out + win.p, full)
        cols = np.broadcast_to(ic * n_in + win.at, full)
        vals = w.reshape(m, cg, -1)[:, :, win.q]
        batch = np.arange(n)[:, None, None, None]
        y = self.linear_map(x, (rows + batch * m * n_out), (cols + batch * c * n_in),
                            np.broadcast_to(vals, (n,) + full), (n, m) + win.out)
        if bias is None:
            return y
        return self.add(y, np.asarray(bias, dtype=np.float64).reshape((1, m) + (1,) * d))

    def pool(self, x: Value, kind: str, kernel: Sequence[int], strides: Sequence[int],
             pads_begin: Sequence[int], pads_end: Sequence[int],
             dilations: Sequence[int] | None = None, ceil_mode: bool = False,
             count_include_pad: bool = False) -> Value:
        """Average (``kind="average"``: a linear map) or max (``"max"``: a tree of
        elementwise maxima over the kernel offsets) pooling of ``x`` (batch, channels,
        *spatial).  A max window's offsets in the padding repeat one of its offsets
        inside the input (padding never wins a maximum)."""
        d = len(kernel)
        x, n, c, spatial = self._windowed(x, d, f"{kind} pooling")
        win = windows(spatial, kernel, strides, pads_begin, pads_end,
                      dilations or [1] * d, ceil_mode)
        n_out, n_in = win.n_out, int(np.prod(spatial, dtype=np.int64))
        if np.any(np.bincount(win.p, minlength=n_out) == 0):
            raise ValueError("a pooling window lies wholly in the padding")
        out_shape = (n, c) + win.out
        planes = np.arange(n * c)[:, None]
        if kind == "average":
            count = win.padded if count_include_pad else np.bincount(win.p, minlength=n_out)
            size = (n * c, win.p.size)
            return self.linear_map(
                x, np.broadcast_to(planes * n_out + win.p, size),
                np.broadcast_to(planes * n_in + win.at, size),
                np.broadcast_to(1.0 / count[win.p], size), out_shape)
        if kind != "max":
            raise ValueError(f"unknown pooling {kind!r}")
        n_k = int(np.prod(kernel, dtype=np.int64))
        table = np.full((n_out, n_k), -1, dtype=np.int64)
        table[win.p, win.q] = win.at
        first = table[np.arange(n_out), np.argmax(table >= 0, axis=1)]
        table = np.where(table >= 0, table, first[:, None])
        cols = np.unique(table, axis=1)  # offsets that read the same positions everywhere
        terms = [
            self.index(x, lambda t, k=k: t.reshape(n * c, n_in)[:, cols[:, k]].reshape(out_shape))
            for k in range(cols.shape[1])
        ]
        return Var(self.b.extreme("maximum", [t.node for t in terms]), out_shape)

    def reduce_extreme(self, v: Value, op: str, axes: Sequence[int] | None,
                       keepdims: bool) -> Value:
        """Maximum (``op="maximum"``) or minimum over ``axes`` (all when None): a tree of
        elementwise extremes of the slices along them (:meth:`GraphBuilder.extreme`)."""
        shape = self.shape(v)
        ax = tuple(range(len(shape))) if axes is None else tuple(sorted({a % len(shape)
                                                                         for a in axes}))
        if not isinstance(v, Var):
            f = np.max if op == "maximum" else np.min
            return f(np.asarray(v), axis=ax, keepdims=keepdims)
        kept = tuple(d for i, d in enumerate(shape) if i not in ax)
        out_shape = tuple(1 if i in ax else d for i, d in enumerate(shape)) if keepdims else kept
        n = int(np.prod([shape[a] for a in ax], dtype=np.int64))

        def moved(t: np.ndarray) -> np.ndarray:
            return np.moveaxis(t, ax, range(-len(ax), 0)).reshape(kept + (n,))

        terms = [self.node(self.index(v, lambda t, r=r: moved(t)[..., r].reshape(out_shape)))
                 for r in range(n)]
        return Var(self.b.extreme(op, terms), out_shape)

    def output(self, v: Value, name: str) -> None:
        """Mark ``v`` as a graph output."""
        self.b.output(self.node(v), name=name)


def prune(graph: Graph) -> Graph:
    """``graph`` without the nodes no output depends on (inputs are always kept)."""
    live = graph.ancestors(graph.outputs) | set(graph.inputs)
    if len(live) == len(graph.nodes):
        return graph
    remap: dict[int, int] = {}
    nodes: list[Node] = []
    for nd in graph.nodes:
        if nd.id in live:
            remap[nd.id] = len(nodes)
            nodes.append(Node(len(nodes), nd.op, tuple(remap[i] for i in nd.inputs), nd.attrs,
                              nd.size, nd.shape, nd.name))
    return Graph(tuple(nodes), tuple(remap[o] for o in graph.outputs), graph.output_names)


class _Unsupported(Exception):
    """Raised inside a lowering; the importer turns it into UnsupportedOpError."""


#: float64 numpy evaluation of the unary ops, from the op table (constant folding)
_NUMPY_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    name: info.numpy for name, info in OPS.items() if info.numpy is not None and info.arity == 1
}
