"""Import a torch ``nn.Module`` into the gridverify graph (IR) through ``torch.fx``.

The module is traced with :func:`torch.fx.symbolic_trace` (a public torch API);
every fx node is lowered with the tensor algebra of
:class:`gridverify.ir.onnx_import.Lowering`.  The module maps ``(B, n_in)`` to
``(B, n_out)``: while lowering, the batch axis is a real axis of size 1 (so
``x[:, 2:5]``, ``x.view(x.size(0), -1)`` or ``torch.cat(..., dim=1)`` mean what
they mean in torch); the IR's runtime batch replaces it.  The graph input is
named ``"x"``; outputs are named ``"y"`` (one output) or ``"y0"``, ``"y1"``...
(a tuple or list of outputs, in order).

:func:`from_exported` imports a program of :func:`torch.export.export` (or one
read back with :func:`torch.export.load`, a ``.pt2`` file: a proxy that needs no
Python class to load) the same way: its graph of ATen ops is already traced, and
each op is lowered by the handler of its ``torch.nn.functional`` counterpart.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gridverify.errors import GraphError, UnsupportedOpError
from gridverify.ir import Graph, GraphBuilder
from gridverify.ir.lowering import (
    COMPARE_HINT,
    Compare,
    Lowering,
    Value,
    Var,
    _Unsupported,
    einsum_keeps_batch,
    prune,
)
from gridverify.ir.ops import OPS
from gridverify.ir.pwl_merge import merge_pwl
from gridverify.ir.windows import same_pads

__all__ = ["from_exported", "from_torch"]

Handler = Callable[["_TorchImporter", list, dict], Any]


def _tensor_const(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.is_floating_point():
        return t.to(torch.float64).numpy()
    return t.numpy()


def _dim(d: Any, rank: int) -> int:
    return int(d) % rank if rank else 0


def _dims(ds: Any, rank: int) -> list[int]:
    if isinstance(ds, int | np.integer):
        return [_dim(ds, rank)]
    return [_dim(d, rank) for d in ds]


def _shape_args(args: list) -> list[int]:
    """``view(2, 3)`` / ``view((2, 3))`` / ``view(torch.Size)`` -> [2, 3]."""
    if len(args) == 1 and isinstance(args[0], tuple | list | np.ndarray):
        return [int(d) for d in args[0]]
    return [int(d) for d in args]


class _Batch(int):
    """The batch size (``x.size(0)``, ``x.shape[0]``) times the int's value (1 while
    lowering), marked so that a reshape to ``(x.size(0), ...)`` keeps the batch axis
    where a literal 1 would not, and ``(x.size(0) * k, ...)`` merges the batch with the
    next axes (of ``k`` entries per sample) as torch.export's decomposed products do."""


_BATCH_HINT = "mixes the samples of a batch or moves the batch axis (dim 0)"


def _refuse_batch(what: str) -> None:
    raise _Unsupported(f"{what} {_BATCH_HINT}: per sample it is not the function the model "
                       "computes on a batch")


def _vars(v: Any) -> list[Var]:
    if isinstance(v, Var):
        return [v]
    if isinstance(v, tuple | list):
        return [w for x in v for w in _vars(x)]
    if isinstance(v, dict):
        return [w for x in v.values() for w in _vars(x)]
    return []


def _same_rank(what: str, out: Any, *vals: Any) -> Any:
    """A broadcasting op: a variable operand of fewer axes than the result would have its
    batch axis moved off axis 0."""
    rank = len(out.shape) if isinstance(out, Var) else None
    if rank is not None and any(len(v.shape) != rank for v in vals if isinstance(v, Var)):
        _refuse_batch(f"{what} broadcasting a variable to {rank} axes")
    return out


def _matmul_batch(a: Any, c: Any, out: Any) -> Any:
    """``a @ c``: a variable left operand keeps its batch axis as a row (or batch) axis;
    a variable right operand must have it as a batch axis (never the contracted one)."""
    rank = len(out.shape) if isinstance(out, Var) else 0
    if isinstance(a, Var) and (len(a.shape) < 2 or len(a.shape) != rank):
        _refuse_batch("a matrix product that contracts or moves the batch axis")
    if isinstance(c, Var) and (len(c.shape) < 3 or len(c.shape) != rank):
        _refuse_batch("a matrix product that contracts over the batch axis")
    return out


class _TorchImporter:
    """One import: a value per fx node name."""

    def __init__(self, module: nn.Module, in_shape: tuple[int, ...],
                 exported_batch: int | None = None, traced: bool = False) -> None:
        self.module = module
        self.in_shape = in_shape
        # a program of torch.export: already an ATen graph; a batch size it was
        # exported with (static shapes) stands for the batch axis in shape arguments
        self.traced = traced
        self.exported_batch = exported_batch
        self.b = GraphBuilder()
        self.lw = Lowering(self.b)
        self.env: dict[str, Any] = {}
        # variables whose axis 0 is the batch merged with the next axes (x.size(0) * k)
        self.merged: set[Var] = set()

    # ------------------------------------------------------------- plumbing
    def _arg(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            value = self.env[a.name]
            if isinstance(value, _NoIndices):  # read by an op, not merely unpacked
                raise _Unsupported(value.reason())
            return value
        if isinstance(a, tuple | list):
            return type(a)(self._arg(x) for x in a)
        if isinstance(a, slice):
            return slice(self._arg(a.start), self._arg(a.stop), self._arg(a.step))
        if isinstance(a, dict):
            return {k: self._arg(v) for k, v in a.items()}
        if isinstance(a, torch.Tensor):
            return _tensor_const(a)
        return a

    def run(self, merge: bool = True) -> Graph:
        traced = self._trace()
        self._traced = traced
        self._by_name = {n.name: n for n in traced.graph.nodes}
        self._order = {n: k for k, n in enumerate(traced.graph.nodes)}
        placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
        if not placeholders:
            raise GraphError("from_torch: the module's forward takes no tensor input")
        for node in traced.graph.nodes:
            try:
                self._node(traced, node, node is placeholders[0])
            except _Unsupported as e:
                raise UnsupportedOpError(self._op_name(traced, node), node.name, str(e)) from None
            except (ValueError, IndexError, TypeError) as e:
                who = "from_exported" if self.traced else "from_torch"
                hint = ("; the program was exported with a static batch of "
                        f"{self.exported_batch}: export it with a dynamic batch axis"
                        if self.exported_batch not in (None, 1) else "")
                raise GraphError(f"{who}: node {node.name!r} "
                                 f"({self._op_name(traced, node)}): {e}{hint}") from e
        g = self.b.build()
        return prune(merge_pwl(g) if merge else g)

    def _trace(self) -> torch.fx.GraphModule:
        if self.traced:
            return self.module  # type: ignore[return-value]
        try:
            tracer = _GraphLeafTracer()
            return torch.fx.GraphModule(self.module, tracer.trace(self.module))
        except Exception as e:  # noqa: BLE001 - fx raises many types on untraceable code
            raise _Untraceable(f"from_torch: torch.fx cannot trace "
                               f"{type(self.module).__name__} ({type(e).__name__}: {e})") from None

    @staticmethod
    def _op_name(traced: torch.fx.GraphModule, node: torch.fx.Node) -> str:
        if node.op == "call_module":
            return type(traced.get_submodule(str(node.target))).__name__
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            return f"aten.{node.target.overloadpacket.__name__}"
        if node.op == "call_function":
            return getattr(node.target, "__name__", str(node.target))
        return str(node.target)

    def _node(self, traced: torch.fx.GraphModule, node: torch.fx.Node, first: bool) -> None:
        if node.op == "placeholder":
            if first:
                size = int(np.prod(self.in_shape, dtype=np.int64))
                self.env[node.name] = Var(self.b.input("x", size=size), self.in_shape)
            elif node.args:
                self.env[node.name] = self._arg(node.args[0])  # default value
            else:
                raise GraphError(f"from_torch: forward has a second input {node.target!r}; "
                                 "only one tensor input is supported")
            return
        if node.op == "get_attr":
            obj: Any = traced
            for part in str(node.target).split("."):
                obj = getattr(obj, part)
            self.env[node.name] = _tensor_const(obj) if isinstance(obj, torch.Tensor) else obj
            return
        if node.op == "output":
            out = self._arg(node.args[0])
            outs = list(out) if isinstance(out, tuple | list) else [out]
            for k, v in enumerate(outs):
                self.lw.output(v, "y" if len(outs) == 1 else f"y{k}")
            return
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload) \
                and node.target.overloadpacket.__name__ in _ATEN_SKIP:
            # an input check (dtype, shape, range) that computes nothing: skipped before
            # its arguments are read, so that the op really using a value it cannot
            # bound (the indices of a max/min...) is the one named
            self.env[node.name] = None
            return
        self._check_inplace(traced, node)
        args = [self._arg(a) for a in node.args]
        kwargs = {k: self._arg(v) for k, v in node.kwargs.items()}
        if node.op == "call_module" and self.traced and str(node.target).startswith("_guards"):
            self.env[node.name] = None  # the exported program's input checks
            return
        if node.op == "call_module":
            mod = traced.get_submodule(str(node.target))
            if _evaluates_graph(mod):
                self.env[node.name] = self._inline(mod.graph, args[0])
                return
            handler = _MODULES.get(type(mod))
            if handler is None:
                raise _Unsupported("module type not supported by gridverify")
            self.env[node.name] = handler(self, mod, args, kwargs)
            self._check_batch(self.env[node.name], args, kwargs)
            return
        if node.op in ("call_function", "call_method"):
            op = _call_name(node)
            if op in _COMPARISONS and _has_var(args):
                self.env[node.name] = self.lw.compare(
                    args[0], args[1] if len(args) > 1 else None, _COMPARISONS[op])
                return
            if any(isinstance(a, Compare) for a in [*args, *kwargs.values()]):
                if op != "where" or node.op != "call_function":
                    raise _Unsupported(COMPARE_HINT)
                self.env[node.name] = self._where(node)
                return
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            fn = _ATEN.get(node.target.overloadpacket.__name__)
        elif node.op == "call_function":
            fn = _FUNCTIONS.get(node.target)
        else:  # call_method
            fn = _METHODS.get(str(node.target))
        if fn is not None:
            self.env[node.name] = fn(self, args, kwargs)
            if isinstance(self.env[node.name], _ValuesIndices):
                self.env[node.name][1].node = node.name
            self._check_batch(self.env[node.name], args, kwargs)
        elif not _has_var(args) and not _has_var(kwargs):
            self.env[node.name] = _fold(node, args, kwargs)
        else:
            raise _Unsupported("not supported by gridverify")

    def _check_batch(self, value: Any, args: list, kwargs: dict) -> None:
        """Every variable keeps the batch as its axis 0 (of size 1 while lowering), or
        the batch merged with the next axes (:class:`_Batch`) as an input of it was."""
        if not _has_var(args) and not _has_var(kwargs):
            return
        rows = {v.shape[0] for v in _vars([args, kwargs]) if v in self.merged}
        for v in _vars(value):
            if v in self.merged:
                continue
            if v.shape and v.shape[0] in rows:
                self.merged.add(v)
            elif not v.shape or v.shape[0] != 1:
                _refuse_batch(f"a result of shape {list(v.shape)}")

    def _check_inplace(self, traced: torch.fx.GraphModule, node: torch.fx.Node) -> None:
        """An in-place op is imported as its out-of-place form: only sound when nothing
        that shares memory with what it writes into (the tensor, the tensor it is a view
        of, their other views) is read afterwards; fx would still name the old value."""
        written = _written(traced, node)
        if written is None:
            return
        base = written
        while (up := _view_of(traced, base)) is not None:
            base = up
        order, seen, stack = self._order, {base}, [base]
        while stack:  # every tensor sharing memory with base, but node's own result
            for u in stack.pop().users:
                if u is not node and u not in seen and _view_of(traced, u) in seen:
                    seen.add(u)
                    stack.append(u)
        for a in seen:
            for u in a.users:
                if u is not node and u not in seen and order[u] > order[node]:
                    what = "its input" if a is written else f"{a.name}, which shares its memory,"
                    raise _Unsupported(f"in-place op: {what} is read again later; write the "
                                       "model without in-place ops")

    def _inline(self, graph: Graph, x: Any) -> Var:
        """A submodule that evaluates a gridverify graph (a proxy read from a file):
        its graph, on ``x`` flattened per sample, outputs concatenated."""
        from gridverify.ir.builder import concat_outputs

        g = concat_outputs(graph)
        if len(g.inputs) != 1 or not isinstance(x, Var):
            raise _Unsupported("a graph module with other than one variable input")
        flat = self.lw.reshape(x, (1, x.size))
        if flat.size != g.nodes[g.inputs[0]].size:
            raise _Unsupported(f"a graph module of input size {g.nodes[g.inputs[0]].size} "
                               f"called on {x.size} entries")
        out = self.b.inline(g, {g.inputs[0]: flat.node})[g.outputs[0]]
        return Var(out, (1, g.nodes[g.outputs[0]].size))

    # --------------------------------------------------- where(x > t, a, b)
    def _where(self, node: torch.fx.Node) -> Any:
        """``where(x > t, a, b)`` (:meth:`Lowering.where_compare`)."""
        branches = node.args[1:3]

        def relower(x: Var, k: int, value: Any) -> Any:
            return self._relower(branches[k], self._name_of(x), value)

        return self.lw.where_compare(self.env[node.args[0].name], self._arg(branches[0]),
                                     self._arg(branches[1]), relower)

    def _name_of(self, x: Var) -> torch.fx.Node | None:
        """The first fx node whose value is ``x``."""
        for name, v in self.env.items():
            if isinstance(v, Var) and v.node == x.node and v.shape == x.shape:
                return self._by_name[name]
        return None

    def _relower(self, target: Any, z: torch.fx.Node | None, value: Any) -> Any:
        """``target`` (an fx argument) lowered again with ``z`` replaced by ``value``."""
        if not isinstance(target, torch.fx.Node) or z is None:
            return self._arg(target)
        order = self._order
        below, stack = {target}, [target]
        while stack:  # the target's ancestors, back to z
            for u in stack.pop().all_input_nodes:
                if u not in below and order[u] >= order[z]:
                    below.add(u)
                    stack.append(u)
        cone, stack = {z}, [z]
        while stack:  # those of them that read z
            for u in stack.pop().users:
                if u not in cone and u in below:
                    cone.add(u)
                    stack.append(u)
        saved = self.env
        self.env = dict(saved)
        self.env[z.name] = value
        try:
            for n in sorted(cone - {z}, key=order.__getitem__):
                self._node(self._traced, n, False)
            return self.env[target.name]
        finally:
            self.env = saved

    # -------------------------------------------------------------- helpers
    def linear(self, x: Value, w: np.ndarray, bias: np.ndarray | None) -> Value:
        """``x @ w.T + bias`` on the last axis."""
        s = self.lw.shape(x)
        if isinstance(x, Var) and int(np.prod(s[:-1], dtype=np.int64)) == 1:
            return self.lw.dense(x, w, bias, s[:-1] + (w.shape[0],))
        y = self.lw.matmul(x, np.asarray(w).T)
        return y if bias is None else self.lw.add(y, bias)


#: comparison ops (fx functions, methods and ATen packets by name): True for ``>``
_COMPARISONS = {"gt": True, "ge": True, "greater": True, "greater_equal": True,
                "lt": False, "le": False, "less": False, "less_equal": False}


#: fx-level functions and tensor methods whose result may share memory with an input
_VIEW_CALLS = frozenset({
    "getitem", "__getitem__", "view", "view_as", "reshape", "reshape_as", "flatten",
    "unflatten", "transpose", "t", "T", "mT", "permute", "unsqueeze", "squeeze", "expand",
    "expand_as", "narrow", "select", "chunk", "split", "tensor_split", "unbind", "movedim",
    "moveaxis", "swapaxes", "swapdims", "diagonal", "as_strided", "detach", "contiguous",
    "real", "imag", "view_as_real", "view_as_complex", "unfold", "alias", "hsplit", "vsplit",
    "dsplit", "ravel", "to", "type_as", "type", "float", "double", "dropout", "alpha_dropout",
    "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d"})
#: modules whose result may be their input itself or a view of it
_VIEW_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                 nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _written(traced: torch.fx.GraphModule, node: torch.fx.Node) -> torch.fx.Node | None:
    """The fx node whose tensor ``node`` writes into (``None``: it writes into none)."""
    if node.op not in ("call_function", "call_method", "call_module") or not node.args:
        return None
    first = node.args[0] if isinstance(node.args[0], torch.fx.Node) else None
    if node.op == "call_module":
        mod = traced.get_submodule(str(node.target))
        return first if bool(getattr(mod, "inplace", False)) else None
    if node.op == "call_method":
        name = str(node.target)
        inplace = name.endswith("_") and not name.endswith("__") or name == "__setitem__"
        return first if inplace else None
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        for k, a in enumerate(target._schema.arguments):
            if a.alias_info is not None and a.alias_info.is_write:
                v = node.args[k] if k < len(node.args) else node.kwargs.get(a.name)
                if isinstance(v, torch.fx.Node):
                    return v
        return None
    name = str(getattr(target, "__name__", ""))
    if name in ("setitem", "__setitem__") or bool(node.kwargs.get("inplace", False)) or (
            name.endswith("_") and not name.endswith("__")):
        return first
    return None


def _view_of(traced: torch.fx.GraphModule, node: torch.fx.Node) -> torch.fx.Node | None:
    """The fx node whose memory ``node``'s value may share (a view of it, or the tensor
    an in-place op wrote into), ``None`` for a fresh tensor."""
    written = _written(traced, node)
    if written is not None:
        return written
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    if first is None or node.op in ("placeholder", "get_attr", "output"):
        return None
    if node.op == "call_module":
        return first if isinstance(traced.get_submodule(str(node.target)), _VIEW_MODULES) \
            else None
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return first if any(r.alias_info is not None for r in target._schema.returns) else None
    return first if _call_name(node) in _VIEW_CALLS else None


def _call_name(node: torch.fx.Node) -> str:
    """The op name of a call node: ATen packet, function ``__name__`` or method name."""
    if isinstance(node.target, torch._ops.OpOverload):
        return node.target.overloadpacket.__name__
    return str(getattr(node.target, "__name__", node.target))


def _where_const(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``where(cond, a, b)`` with a constant condition."""
    return self.lw.where(args[0], args[1], args[2])


def _log1p(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.log1p(args[0])


def _log(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.log(args[0])


def _expm1(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.sub(self.lw.unary("exp", args[0]), 1.0)


def _log_sigmoid(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``log(sigmoid(x)) = -softplus(-x)``."""
    return self.lw.neg(self.lw.softplus(self.lw.neg(args[0])))


def _has_var(v: Any) -> bool:
    if isinstance(v, Var):
        return True
    if isinstance(v, tuple | list):
        return any(_has_var(x) for x in v)
    if isinstance(v, dict):
        return any(_has_var(x) for x in v.values())
    if isinstance(v, slice):
        return _has_var([v.start, v.stop, v.step])
    return False


def _to_torch(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    if isinstance(v, tuple | list):
        return type(v)(_to_torch(x) for x in v)
    if isinstance(v, dict):
        return {k: _to_torch(x) for k, x in v.items()}
    return v


def _from_torch(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return _tensor_const(v)
    if isinstance(v, tuple | list):
        return type(v)(_from_torch(x) for x in v)
    return v


def _fold(node: torch.fx.Node, args: list, kwargs: dict) -> Any:
    """Evaluate a call whose arguments are all constants (shape arithmetic, torch.zeros...)."""
    name = str(getattr(node.target, "__name__", node.target))
    if any(w in name for w in ("rand", "normal", "bernoulli", "dropout", "multinomial")):
        raise _Unsupported("random op")
    a, kw = _to_torch(args), _to_torch(kwargs)
    try:
        if node.op == "call_method":
            return _from_torch(getattr(a[0], str(node.target))(*a[1:], **kw))
        return _from_torch(node.target(*a, **kw))  # type: ignore[operator]
    except Exception as e:  # noqa: BLE001 - any failure means we cannot fold it
        raise _Unsupported(f"cannot evaluate on constants ({type(e).__name__}: {e})") from None


def _like(fill: float | None) -> Handler:
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        value = fill if fill is not None else (args[1] if len(args) > 1 else kw["fill_value"])
        return np.full(self.lw.shape(args[0]), float(value))

    return h


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _binary(name: str) -> Handler:
    py = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
          "div": operator.truediv}[name]

    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        a = args[0] if args else kw["input"]
        c = args[1] if len(args) > 1 else kw["other"]
        if _is_num(a) and _is_num(c):
            if name == "mul" and isinstance(a, _Batch) != isinstance(c, _Batch) and \
                    isinstance(a, int) and isinstance(c, int):
                return _Batch(int(a) * int(c))  # batch * k
            return py(a, c)
        if name in ("add", "sub") and kw.get("alpha", 1) != 1:
            c = self.lw.mul(c, kw["alpha"])
        if name == "div" and kw.get("rounding_mode") is not None:
            raise _Unsupported("division with rounding_mode")
        return _same_rank(name, getattr(self.lw, name)(a, c), a, c)

    return h


def _unary(op: str) -> Handler:
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        return self.lw.unary(op, args[0] if args else kw["input"])

    return h


def _identity(self: _TorchImporter, args: list, kw: dict) -> Any:
    return args[0]


def _cast(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``x.to(...)``, ``x.type_as(t)``, ``_to_copy(x, dtype=...)``: the identity on a
    float dtype (values are float64 here); a variable cast to an integer or bool
    dtype (a rounding) is refused, as ONNX's ``Cast`` is."""
    if not isinstance(args[0], Var):
        return _fold_cast(args, kw)
    for v in [*args[1:], *kw.values()]:
        if isinstance(v, torch.dtype) and not v.is_floating_point:
            raise _Unsupported(f"cast of a variable to {v}")
        if isinstance(v, np.ndarray) and v.dtype.kind != "f":
            raise _Unsupported(f"cast of a variable to {v.dtype}")
    return args[0]


def _fold_cast(args: list, kw: dict) -> Any:
    """A cast of a constant, evaluated."""
    t = _to_torch(args[0])
    if not isinstance(t, torch.Tensor):
        return args[0]
    for v in [*args[1:], *kw.values()]:
        if isinstance(v, torch.dtype):
            return _from_torch(t.to(v))
    return args[0]


def _f_dropout(self: _TorchImporter, args: list, kw: dict) -> Any:
    if bool(args[2] if len(args) > 2 else kw.get("training", True)):
        raise _Unsupported("dropout in training mode (pass training=False)")
    return args[0]


def _neg(self: _TorchImporter, args: list, kw: dict) -> Any:
    return -args[0] if _is_num(args[0]) else self.lw.neg(args[0])


def _pow(self: _TorchImporter, args: list, kw: dict) -> Any:
    a = args[0]
    e = args[1] if len(args) > 1 else kw.get("exponent")
    if _is_num(a) and _is_num(e):
        return a**e
    if isinstance(e, Var):
        raise _Unsupported("variable exponent")
    if not isinstance(a, Var):
        raise _Unsupported("constant base with a variable exponent")
    return self.lw.power(a, np.asarray(e, dtype=np.float64))


def _getitem(self: _TorchImporter, args: list, kw: dict) -> Any:
    obj, key = args
    if not isinstance(obj, Var) and not isinstance(obj, np.ndarray):
        return obj[key]  # python tuple / list / shape
    keys = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, Var) for k in keys):
        raise _Unsupported("indexing with a variable tensor")
    if isinstance(obj, Var) and not _full_first(keys, len(obj.shape)):
        _refuse_batch("indexing that does not take the whole of dim 0")
    return self.lw.index(obj, lambda t: t[key])


def _full_slice(k: Any) -> bool:
    """``k`` is ``:`` (a slice that takes an axis whole, whatever its length)."""
    return isinstance(k, slice) and k.start in (None, 0) and k.step in (None, 1) and \
        (k.stop is None or (isinstance(k.stop, int) and k.stop >= (1 << 31) - 1))


def _full_first(keys: tuple, rank: int) -> bool:
    """An index ``x[keys]`` keeps dim 0 whole and in place."""
    if not keys:
        return True
    if keys[0] is Ellipsis:
        real = [k for k in keys if k is not None and k is not Ellipsis]
        return len(real) < rank
    return _full_slice(keys[0])


def _batch_first(self: _TorchImporter, shape: list[int]) -> list[int]:
    """A shape argument of an exported program: its leading size, when it is the
    batch size the program was exported with, is the batch axis (size 1 here)."""
    if self.exported_batch is not None and shape and shape[0] == self.exported_batch:
        return [1, *shape[1:]]
    return shape


def _reshape(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    raw = list(args[1:]) if len(args) > 1 else [kw["shape"]]
    if len(raw) == 1 and isinstance(raw[0], tuple | list | np.ndarray):
        raw = list(raw[0])
    shape = _shape_args(args[1:]) if len(args) > 1 else _shape_args([kw["shape"]])
    shape = _batch_first(self, shape)
    if shape.count(-1) == 1:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        total = int(np.prod(self.lw.shape(x), dtype=np.int64))
        if known == 0 or total % known:
            raise ValueError(f"cannot view {self.lw.shape(x)} as {shape}")
        shape[shape.index(-1)] = total // known
    if not isinstance(x, Var) or not raw:
        return self.lw.reshape(x, shape)
    first = raw[0]
    if isinstance(first, _Batch) and int(first) != 1:
        # (x.size(0) * k, ...): the batch merged with the leading axes of k entries
        s = self.lw.shape(x)
        if not any(int(np.prod(s[:j], dtype=np.int64)) == int(first)
                   for j in range(1, len(s) + 1)):
            _refuse_batch(f"a reshape to {[int(d) for d in raw]}")
        out = self.lw.reshape(x, shape)
        self.merged.add(out)
        return out
    exported = self.exported_batch is not None and int(first) == self.exported_batch
    if not isinstance(first, _Batch) and not exported and int(first) == 1 and \
            -1 in [int(d) for d in raw[1:]]:
        _refuse_batch(f"a reshape to {[int(d) for d in raw]} (a literal 1 first, not "
                      "x.size(0))")
    return self.lw.reshape(x, shape)


def _flatten_with(start_default: int) -> Handler:
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        x = args[0]
        s = self.lw.shape(x)
        start = args[1] if len(args) > 1 else kw.get("start_dim", start_default)
        end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
        if not s:
            return self.lw.reshape(x, (1,))
        start, end = _dim(start, len(s)), _dim(end, len(s))
        if isinstance(x, Var) and start == 0 and end > 0:
            _refuse_batch("a flatten from dim 0")
        mid = int(np.prod(s[start:end + 1], dtype=np.int64))
        return self.lw.reshape(x, s[:start] + (mid,) + s[end + 1:])

    return h


def _reduce(mean: bool) -> Handler:
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        x = args[0]
        s = self.lw.shape(x)
        dim = args[1] if len(args) > 1 else kw.get("dim")
        keep = bool(args[2] if len(args) > 2 else kw.get("keepdim", False))
        axes = None if dim is None else _dims(dim, len(s))
        _per_sample(x, axes, "mean" if mean else "sum")
        out = self.lw.reduce_sum(x, axes, keep)
        if mean:
            count = math.prod(s) if axes is None else math.prod(s[a] for a in axes)
            out = self.lw.mul(out, 1.0 / count)
        return out

    return h


def _clamp(self: _TorchImporter, args: list, kw: dict) -> Any:
    lo = args[1] if len(args) > 1 else kw.get("min")
    hi = args[2] if len(args) > 2 else kw.get("max")
    return self.lw.clamp(args[0], lo, hi)


def _minmax(op: str) -> Handler:
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        other = args[1] if len(args) > 1 else kw["other"]
        return _same_rank(op, self.lw.minmax(op, args[0], other), args[0], other)

    return h


def _cat(self: _TorchImporter, args: list, kw: dict) -> Any:
    tensors = args[0] if args else kw["tensors"]
    dim = args[1] if len(args) > 1 else kw.get("dim", 0)
    rank = len(self.lw.shape(tensors[0]))
    if _has_var(list(tensors)) and _dim(dim, rank) == 0:
        _refuse_batch("a concatenation along dim 0")
    return self.lw.concat(list(tensors), _dim(dim, rank))


def _stack(self: _TorchImporter, args: list, kw: dict) -> Any:
    tensors = args[0] if args else kw["tensors"]
    dim = args[1] if len(args) > 1 else kw.get("dim", 0)
    rank = len(self.lw.shape(tensors[0])) + 1
    d = _dim(dim, rank)
    if _has_var(list(tensors)) and d == 0:
        _refuse_batch("a stack along dim 0")
    parts = []
    for t in tensors:
        s = list(self.lw.shape(t))
        s.insert(d, 1)
        parts.append(self.lw.reshape(t, s))
    return self.lw.concat(parts, d)


def _size(self: _TorchImporter, args: list, kw: dict) -> Any:
    s = _marked_shape(args[0], self.lw.shape(args[0]))
    dim = args[1] if len(args) > 1 else kw.get("dim")
    return tuple(s) if dim is None else s[_dim(dim, len(s))]


def _marked_shape(x: Any, s: Sequence[int]) -> tuple[int, ...]:
    """The shape of ``x``, its batch size marked (:class:`_Batch`) for a variable."""
    s = tuple(s)
    return (_Batch(s[0]), *s[1:]) if isinstance(x, Var) and s else s


def _getattr(self: _TorchImporter, args: list, kw: dict) -> Any:
    obj, attr = args
    if isinstance(obj, _ValuesIndices) and attr in ("values", "indices"):
        return _getitem(self, [obj, 0 if attr == "values" else 1], {})
    if attr == "shape":
        return _marked_shape(obj, self.lw.shape(obj))
    if attr in ("T", "mT") and len(self.lw.shape(obj)) == 2:
        if isinstance(obj, Var):
            _refuse_batch(f"x.{attr} (a transpose of dim 0)")
        return self.lw.index(obj, lambda t: t.T)
    if attr in ("dtype", "device"):
        return None
    raise _Unsupported(f"tensor attribute {attr!r}")


def _transpose(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    rank = len(self.lw.shape(x))
    if len(args) == 1:  # .t()
        if isinstance(x, Var) and rank == 2:
            _refuse_batch("x.t() (a transpose of dim 0)")
        return self.lw.index(x, lambda t: t.T)
    d0, d1 = _dim(args[1], rank), _dim(args[2], rank)
    if isinstance(x, Var) and d0 != d1 and 0 in (d0, d1):
        _refuse_batch("a transpose of dim 0")
    return self.lw.index(x, lambda t: np.swapaxes(t, d0, d1))


def _permute(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    perm = _dims(_shape_args(args[1:]) if len(args) > 1 else kw["dims"], len(self.lw.shape(x)))
    if isinstance(x, Var) and perm and perm[0] != 0:
        _refuse_batch("a permute that moves dim 0")
    return self.lw.index(x, lambda t: np.transpose(t, perm))


def _unsqueeze(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    s = list(self.lw.shape(x))
    d = _dim(args[1] if len(args) > 1 else kw["dim"], len(s) + 1)
    if isinstance(x, Var) and d == 0:
        _refuse_batch("an unsqueeze at dim 0")
    s.insert(d, 1)
    return self.lw.reshape(x, s)


def _squeeze(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    s = self.lw.shape(x)
    dim = args[1] if len(args) > 1 else kw.get("dim")
    drop = set(range(len(s))) if dim is None else set(_dims(dim, len(s)))
    if isinstance(x, Var):
        if dim is not None and 0 in drop:
            _refuse_batch("a squeeze of dim 0")
        drop.discard(0)  # the batch axis: of any size at run time
    return self.lw.reshape(x, [d for i, d in enumerate(s) if not (i in drop and d == 1)])


def _expand(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    target = _batch_first(self, _shape_args(args[1:]))
    s = self.lw.shape(x)
    pad = len(target) - len(s)
    if isinstance(x, Var) and pad > 0:
        _refuse_batch(f"an expand to {len(target)} axes")
    shape = [s[i - pad] if d == -1 else d for i, d in enumerate(target)]
    return self.lw.broadcast(x, shape)


def _matmul(self: _TorchImporter, args: list, kw: dict) -> Any:
    return _matmul_batch(args[0], args[1], self.lw.matmul(args[0], args[1]))


def _f_linear(self: _TorchImporter, args: list, kw: dict) -> Any:
    w = args[1] if len(args) > 1 else kw["weight"]
    bias = args[2] if len(args) > 2 else kw.get("bias")
    if isinstance(w, Var) or isinstance(bias, Var):
        raise _Unsupported("linear with a variable weight")
    return self.linear(args[0], np.asarray(w, dtype=np.float64), bias)


def _f_layer_norm(self: _TorchImporter, args: list, kw: dict) -> Any:
    shape = args[1] if len(args) > 1 else kw["normalized_shape"]
    w = args[2] if len(args) > 2 else kw.get("weight")
    bias = args[3] if len(args) > 3 else kw.get("bias")
    if isinstance(w, Var) or isinstance(bias, Var):
        raise _Unsupported("layer norm with a variable weight")
    n_axes = 1 if isinstance(shape, int) else len(shape)
    if isinstance(args[0], Var) and n_axes >= len(args[0].shape):
        _refuse_batch("a layer norm over every axis")
    return self.lw.layer_norm(args[0], n_axes, float(args[4] if len(args) > 4
                                                    else kw.get("eps", 1e-5)), w, bias)


def _leaky(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.prelu(args[0], float(args[1] if len(args) > 1
                                        else kw.get("negative_slope", 0.01)))


def _arg(args: list, kw: dict, k: int, name: str, default: Any) -> Any:
    return args[k] if len(args) > k else kw.get(name, default)


def _f_elu(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.elu(args[0], float(_arg(args, kw, 1, "alpha", 1.0)))


def _f_celu(self: _TorchImporter, args: list, kw: dict) -> Any:
    alpha = float(_arg(args, kw, 1, "alpha", 1.0))
    return self.lw.elu(args[0], alpha, width=alpha)


def _f_selu(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.elu(args[0], _SELU_ALPHA, _SELU_SCALE)


def _f_prelu(self: _TorchImporter, args: list, kw: dict) -> Any:
    w = _arg(args, kw, 1, "weight", None)
    if isinstance(w, Var) or w is None:
        raise _Unsupported("prelu with a variable weight")
    return _prelu_channels(self, args[0], np.asarray(w, dtype=np.float64))


def _prelu_channels(self: _TorchImporter, x: Any, w: np.ndarray) -> Any:
    """PReLU's weight: one slope, or one per channel (axis 1)."""
    w = w.reshape(-1)
    if w.size > 1:
        w = w.reshape(-1, *(1,) * max(len(self.lw.shape(x)) - 2, 0))
    return self.lw.prelu(x, w)


def _softplus(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``F.softplus(x, beta=1, threshold=20)``: the identity where ``beta * x`` is
    above the threshold, as torch computes it."""
    beta = args[1] if len(args) > 1 else kw.get("beta", 1.0)
    threshold = args[2] if len(args) > 2 else kw.get("threshold", 20.0)
    return self.lw.softplus(args[0], float(beta), float(threshold))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _gelu(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.gelu(args[0], str(args[1] if len(args) > 1 else kw.get("approximate", "none")))


def _hardtanh(self: _TorchImporter, args: list, kw: dict) -> Any:
    lo = args[1] if len(args) > 1 else kw.get("min_val", -1.0)
    hi = args[2] if len(args) > 2 else kw.get("max_val", 1.0)
    return self.lw.clamp(args[0], lo, hi)


def _abs(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.abs(args[0])


def _square(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.power(args[0], np.asarray(2.0))


def _split(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``split(x, size_or_sizes, dim=0)`` / ``split_with_sizes``: pieces of one size
    (the last one shorter) or of the sizes given."""
    x, k = args[0], _arg(args, kw, 1, "split_size_or_sections", None)
    if k is None:
        k = kw.get("split_sizes", kw.get("split_size"))
    shape = self.lw.shape(x)
    dim = _dim(_arg(args, kw, 2, "dim", 0), len(shape))
    _per_sample(x, [dim], "split")
    if isinstance(k, (int, np.integer)):
        n = shape[dim]
        k = [min(int(k), n - a) for a in range(0, n, int(k))] if k > 0 else []
    return tuple(self.lw.split(x, [int(v) for v in k], dim))


def _chunk(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``chunk(x, chunks, dim=0)``: pieces of ``ceil(n / chunks)`` (fewer when it divides)."""
    x, chunks = args[0], int(_arg(args, kw, 1, "chunks", 1))
    n = self.lw.shape(x)[_dim(_arg(args, kw, 2, "dim", 0), len(self.lw.shape(x)))]
    size = -(-n // max(chunks, 1))
    return _split(self, [x, size, _arg(args, kw, 2, "dim", 0)], {})


def _per_axis(v: Any, d: int, what: str) -> list[int]:
    """An int-or-sequence argument of a convolution or pooling, one int per axis."""
    if isinstance(v, (int, np.integer)):
        return [int(v)] * d
    out = [int(u) for u in v]
    if len(out) == 1:
        return out * d
    if len(out) != d:
        raise ValueError(f"{what} {out} for {d} spatial axes")
    return out


def _conv_pads(padding: Any, kernel: list[int], strides: list[int], dilations: list[int]
               ) -> tuple[list[int], list[int]]:
    """Begin and end pads of torch's ``padding`` (ints, ``"valid"`` or ``"same"``)."""
    d = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * d, [0] * d
        if padding == "same":  # stride 1 only (torch's rule): the odd pad at the end
            return same_pads([1] * d, kernel, [1] * d, dilations, upper=True)
        raise ValueError(f"unknown padding {padding!r}")
    pads = _per_axis(padding, d, "padding")
    return pads, pads


def _conv(self: _TorchImporter, x: Any, w: Any, bias: Any, stride: Any, padding: Any,
          dilation: Any, groups: Any) -> Any:
    if isinstance(w, Var) or isinstance(bias, Var):
        raise _Unsupported("convolution with a variable weight")
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    kernel = list(w.shape[2:])
    strides = _per_axis(stride, d, "stride")
    dilations = _per_axis(dilation, d, "dilation")
    begin, end = _conv_pads(padding, kernel, strides, dilations)
    return self.lw.conv(x, w, None if bias is None else np.asarray(bias, dtype=np.float64),
                        strides, begin, end, dilations, int(groups))


def _f_conv(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``F.convNd(input, weight, bias, stride, padding, dilation, groups)`` (and ATen's
    ``convNd``)."""
    return _conv(self, args[0], _arg(args, kw, 1, "weight", None), _arg(args, kw, 2, "bias", None),
                 _arg(args, kw, 3, "stride", 1), _arg(args, kw, 4, "padding", 0),
                 _arg(args, kw, 5, "dilation", 1), _arg(args, kw, 6, "groups", 1))


def _aten_convolution(self: _TorchImporter, args: list, kw: dict) -> Any:
    """ATen ``convolution(input, weight, bias, stride, padding, dilation, transposed,
    output_padding, groups)``."""
    if _arg(args, kw, 6, "transposed", False):
        raise _Unsupported("transposed convolution")
    return _conv(self, args[0], args[1], _arg(args, kw, 2, "bias", None), args[3], args[4],
                 args[5], _arg(args, kw, 8, "groups", 1))


def _pool(self: _TorchImporter, x: Any, kind: str, kernel: Any, stride: Any, padding: Any,
          dilation: Any = 1, ceil_mode: Any = False, count_include_pad: Any = True,
          divisor_override: Any = None) -> Any:
    d = len(self.lw.shape(x)) - 2
    k = _per_axis(kernel, d, "kernel_size")
    st = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _per_axis(stride, d, "stride")
    pads = _per_axis(padding, d, "padding")
    if divisor_override is not None:
        raise _Unsupported("avg_pool with divisor_override")
    return self.lw.pool(x, kind, k, st, pads, pads, _per_axis(dilation, d, "dilation"),
                        bool(ceil_mode), bool(count_include_pad))


def _f_max_pool(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``F.max_poolNd(input, kernel_size, stride, padding, dilation, ceil_mode)``."""
    if _arg(args, kw, 6, "return_indices", False):
        raise _Unsupported("max_pool with return_indices")
    return _pool(self, args[0], "max", _arg(args, kw, 1, "kernel_size", None),
                 _arg(args, kw, 2, "stride", None), _arg(args, kw, 3, "padding", 0),
                 _arg(args, kw, 4, "dilation", 1), _arg(args, kw, 5, "ceil_mode", False))


def _f_avg_pool(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``F.avg_poolNd(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override)``."""
    return _pool(self, args[0], "average", _arg(args, kw, 1, "kernel_size", None),
                 _arg(args, kw, 2, "stride", None), _arg(args, kw, 3, "padding", 0), 1,
                 _arg(args, kw, 4, "ceil_mode", False),
                 _arg(args, kw, 5, "count_include_pad", True),
                 _arg(args, kw, 6, "divisor_override", None))


def _adaptive(self: _TorchImporter, x: Any, kind: str, size: Any) -> Any:
    """Adaptive pooling to ``size`` where it divides the input evenly (kernel = stride)."""
    spatial = list(self.lw.shape(x)[2:])
    want = [s if o is None else int(o) for s, o in
            zip(spatial, [size] * len(spatial) if isinstance(size, (int, type(None)))
                else list(size))]
    if any(o <= 0 or s % o for s, o in zip(spatial, want)):
        raise _Unsupported(f"adaptive pooling of {spatial} to {want} (only even divisions)")
    k = [s // o for s, o in zip(spatial, want)]
    zeros = [0] * len(k)
    return self.lw.pool(x, kind, k, k, zeros, zeros)


def _f_adaptive(kind: str) -> Handler:
    return lambda self, args, kw: _adaptive(self, args[0], kind,
                                            _arg(args, kw, 1, "output_size", None))


def _mod_conv(self: _TorchImporter, m: nn.modules.conv._ConvNd, args: list, kw: dict) -> Any:
    if m.padding_mode != "zeros":
        raise _Unsupported(f"padding_mode={m.padding_mode!r}")
    return _conv(self, args[0], _tensor_const(m.weight),
                 None if m.bias is None else _tensor_const(m.bias), m.stride, m.padding,
                 m.dilation, m.groups)


def _mod_max_pool(self: _TorchImporter, m: Any, args: list, kw: dict) -> Any:
    if m.return_indices:
        raise _Unsupported("MaxPool with return_indices")
    return _pool(self, args[0], "max", m.kernel_size, m.stride, m.padding, m.dilation,
                 m.ceil_mode)


def _mod_avg_pool(self: _TorchImporter, m: Any, args: list, kw: dict) -> Any:
    return _pool(self, args[0], "average", m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,
                 m.count_include_pad, getattr(m, "divisor_override", None))


def _new_full(fill: float | None) -> Handler:
    """``x.new_zeros(size)`` / ``new_ones`` / ``new_full(size, value)``: a constant."""
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        if fill is None:  # new_full(size, fill_value)
            size, value = _arg(args, kw, 1, "size", None), _arg(args, kw, 2, "fill_value", None)
        else:  # new_zeros(*size) / new_zeros(size)
            size, value = (args[1:] if len(args) > 2 else _arg(args, kw, 1, "size", None)), fill
        return np.full(_batch_first(self, _shape_args([size])), float(value))

    return h


def _expand_as(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.broadcast(args[0], self.lw.shape(_arg(args, kw, 1, "other", None)))


def _per_sample(x: Any, axes: Sequence[int] | None, what: str) -> None:
    """Refuse ``what`` over ``axes`` (all when None) of a variable when they include
    the batch axis (dim 0): it would mix the samples of a batch, so per sample it is
    not the function the model computes on a batch."""
    if isinstance(x, Var) and (axes is None or 0 in axes):
        raise _Unsupported(f"{what} over the batch axis (dim 0) mixes the samples of a "
                           "batch; use feature axes only")


def _take(self: _TorchImporter, x: Any, dim: int, fn: Callable[[np.ndarray, int], np.ndarray]
          ) -> Any:
    """``x`` re-indexed along ``dim`` by ``fn(index_array, axis)`` (a gather)."""
    d = _dim(dim, len(self.lw.shape(x)))
    _per_sample(x, [d], "indexing")
    return self.lw.index(x, lambda t: fn(t, d))


def _const_index(v: Any, what: str) -> np.ndarray:
    if isinstance(v, Var):
        raise _Unsupported(f"{what} with a variable index")
    return np.asarray(v, dtype=np.int64)


def _index_select(self: _TorchImporter, args: list, kw: dict) -> Any:
    idx = _const_index(_arg(args, kw, 2, "index", None), "index_select").reshape(-1)
    return _take(self, args[0], _arg(args, kw, 1, "dim", None),
                 lambda t, d: np.take(t, idx, axis=d))


def _narrow(self: _TorchImporter, args: list, kw: dict) -> Any:
    start, length = int(_arg(args, kw, 2, "start", 0)), int(_arg(args, kw, 3, "length", 0))
    return _take(self, args[0], _arg(args, kw, 1, "dim", 0),
                 lambda t, d: np.take(t, np.arange(start, start + length) % t.shape[d], axis=d))


def _flip(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    dims = _dims(_arg(args, kw, 1, "dims", None), len(self.lw.shape(x)))
    _per_sample(x, dims, "flip")
    return self.lw.index(x, lambda t: np.flip(t, axis=tuple(dims)))


def _roll(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    shifts, dims = _arg(args, kw, 1, "shifts", None), _arg(args, kw, 2, "dims", None)
    if dims is None or (not isinstance(dims, int) and len(dims) == 0):
        raise _Unsupported("roll without dims (it rolls across the batch)")
    dims = _dims(dims, len(self.lw.shape(x)))
    shifts = [int(shifts)] if isinstance(shifts, int | np.integer) else [int(v) for v in shifts]
    _per_sample(x, dims, "roll")
    return self.lw.index(x, lambda t: np.roll(t, shifts, axis=tuple(dims)))


def _unbind(self: _TorchImporter, args: list, kw: dict) -> Any:
    x = args[0]
    d = _dim(_arg(args, kw, 1, "dim", 0), len(self.lw.shape(x)))
    _per_sample(x, [d], "unbind")
    n = self.lw.shape(x)[d]
    return tuple(self.lw.index(x, lambda t, k=k: np.take(t, k, axis=d)) for k in range(n))


def _gather(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``torch.gather(x, dim, index)`` with a constant index (the same for every sample)."""
    x = args[0]
    idx = _const_index(_arg(args, kw, 2, "index", None), "gather")
    rank = len(self.lw.shape(x))
    d = _dim(_arg(args, kw, 1, "dim", None), rank)
    _per_sample(x, [d], "gather")
    if idx.ndim != rank:
        raise ValueError(f"gather: an index of {idx.ndim} axes for a tensor of {rank}")
    if idx.shape[0] != 1:
        if np.any(idx != idx[:1]):
            raise _Unsupported("gather with an index that differs between samples")
        idx = idx[:1]
    part = tuple(slice(None) if k == d else slice(0, idx.shape[k]) for k in range(rank))
    return self.lw.index(x, lambda t: np.take_along_axis(t[part], idx, axis=d))


def _masked_fill(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``x.masked_fill(mask, value)`` with a constant mask: ``where(mask, value, x)``."""
    mask = _arg(args, kw, 1, "mask", None)
    if isinstance(mask, Var):
        raise _Unsupported("masked_fill with a variable mask")
    value = _arg(args, kw, 2, "value", None)
    return self.lw.where(np.asarray(mask, dtype=bool), value, args[0])


def _extreme(self: _TorchImporter, x: Any, op: str, dim: Any, keep: bool) -> Any:
    """``amax`` / ``amin`` over ``dim`` (all axes when None), never the batch axis."""
    axes = None if dim is None or (not isinstance(dim, int) and len(dim) == 0) \
        else _dims(dim, len(self.lw.shape(x)))
    _per_sample(x, axes, op)
    return self.lw.reduce_extreme(x, op, axes, keep)


def _amax_or_amin(op: str) -> Handler:
    """``amax(x, dim=(), keepdim=False)`` / ``amin``."""
    return lambda self, args, kw: _extreme(self, args[0], op, _arg(args, kw, 1, "dim", None),
                                           bool(_arg(args, kw, 2, "keepdim", False)))


def _max_or_min(op: str) -> Handler:
    """``torch.max(a, b)`` / ``torch.min(a, b)`` of two tensors (elementwise), and
    ``torch.max(x, dim)`` (the values; the indices are refused when read)."""
    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        other = _arg(args, kw, 1, "other", None)
        dim = kw.get("dim", other if isinstance(other, int | np.integer) else None)
        if dim is not None:
            keep = bool(_arg(args, kw, 2, "keepdim", False))
            return _ValuesIndices(_extreme(self, args[0], op, dim, keep), op[:3])
        if other is None:
            return _extreme(self, args[0], op, None, False)
        return self.lw.minmax(op, args[0], other)

    return h


class _ValuesIndices(tuple):
    """``torch.max(x, dim)``'s ``(values, indices)``; reading the indices is refused."""

    def __new__(cls, values: Any, kind: str = "max") -> _ValuesIndices:
        return super().__new__(cls, (values, _NoIndices(kind)))

    @property
    def values(self) -> Any:
        return self[0]


class _NoIndices:
    """Stands for the indices of ``torch.max(x, dim)``: never a graph value.

    ``kind``: ``"max"`` or ``"min"``; ``node``: the fx node of the max/min (set by
    the importer), both named when an op reads the indices."""

    def __init__(self, kind: str = "max") -> None:
        self.kind = kind
        self.node: str | None = None

    def reason(self) -> str:
        """Why the op reading these indices is refused (one line)."""
        at = f" at node {self.node!r}" if self.node else ""
        return (f"it reads the indices of a max/min over an axis (an arg{self.kind}: "
                f"torch.{self.kind}(x, dim).indices{at}), which gridverify does not "
                "bound; only the values are supported")


def _einsum(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``torch.einsum(eq, *operands)`` (operands also as one list)."""
    ops = list(args[1]) if len(args) == 2 and isinstance(args[1], list | tuple) else list(args[1:])
    eq = str(args[0]).replace(" ", "")
    if not einsum_keeps_batch(eq, [isinstance(v, Var) for v in ops]):
        _refuse_batch(f"einsum {eq!r} (dim 0 of a variable operand must be the output's "
                      "first axis, not read from a constant)")
    return self.lw.einsum(str(args[0]), ops)


def _bmm(self: _TorchImporter, args: list, kw: dict) -> Any:
    c = _arg(args, kw, 1, "mat2", None)
    return _matmul_batch(args[0], c, self.lw.matmul(args[0], c))


def _aten_dim(self: _TorchImporter, args: list, kw: dict) -> Any:
    return len(self.lw.shape(args[0]))


def _clamp_min(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.clamp(args[0], _arg(args, kw, 1, "min", None), None)


def _clamp_max(self: _TorchImporter, args: list, kw: dict) -> Any:
    return self.lw.clamp(args[0], None, _arg(args, kw, 1, "max", None))


_ARITH = {name: _binary(name) for name in ("add", "sub", "mul", "div")}
#: unary ops spelled torch.<name> / Tensor.<name> / F.<name>, from the op table
_UNARY = {name: _unary(name) for name, info in OPS.items() if info.torch}

_FUNCTIONS: dict[Any, Handler] = {
    operator.add: _ARITH["add"], torch.add: _ARITH["add"],
    operator.sub: _ARITH["sub"], torch.sub: _ARITH["sub"],
    operator.mul: _ARITH["mul"], torch.mul: _ARITH["mul"],
    operator.truediv: _ARITH["div"], torch.div: _ARITH["div"], torch.true_divide: _ARITH["div"],
    operator.neg: _neg, torch.neg: _neg, operator.pow: _pow, torch.pow: _pow,
    operator.getitem: _getitem, operator.matmul: _matmul, torch.matmul: _matmul,
    torch.reshape: _reshape, torch.flatten: _flatten_with(0),
    torch.sum: _reduce(False), torch.mean: _reduce(True),
    torch.clamp: _clamp, torch.clip: _clamp, torch.minimum: _minmax("minimum"),
    torch.maximum: _minmax("maximum"), torch.cat: _cat, torch.concat: _cat, torch.stack: _stack,
    torch.transpose: _transpose, torch.permute: _permute, torch.unsqueeze: _unsqueeze,
    torch.squeeze: _squeeze, torch.abs: _abs, torch.square: _square, getattr: _getattr,
    F.linear: _f_linear, F.gelu: _gelu, F.leaky_relu: _leaky, F.hardtanh: _hardtanh,
    F.relu6: lambda self, args, kw: self.lw.clamp(args[0], 0.0, 6.0),
    F.dropout: _f_dropout, F.elu: _f_elu, F.celu: _f_celu, F.selu: _f_selu, F.prelu: _f_prelu,
    F.silu: lambda self, args, kw: self.lw.silu(args[0]),
    F.hardsigmoid: lambda self, args, kw: self.lw.hardsigmoid(args[0]),
    F.hardswish: lambda self, args, kw: self.lw.hardswish(args[0]),
    F.softsign: lambda self, args, kw: self.lw.softsign(args[0]),
    F.layer_norm: _f_layer_norm,
    F.softplus: _softplus, F.mish: lambda self, args, kw: self.lw.mish(args[0]),
    torch.where: _where_const, torch.log1p: _log1p, torch.expm1: _expm1, torch.log: _log,
    torch.split: _split, torch.chunk: _chunk,
    F.logsigmoid: _log_sigmoid,
    torch.mm: _matmul, torch.bmm: _bmm, torch.clamp_min: _clamp_min,
    torch.clamp_max: _clamp_max, torch.einsum: _einsum, torch.index_select: _index_select,
    torch.narrow: _narrow, torch.flip: _flip, torch.roll: _roll, torch.unbind: _unbind,
    torch.gather: _gather, torch.masked_fill: _masked_fill,
    torch.max: _max_or_min("maximum"), torch.min: _max_or_min("minimum"),
    torch.amax: _amax_or_amin("maximum"), torch.amin: _amax_or_amin("minimum"),
    F.conv1d: _f_conv, F.conv2d: _f_conv, F.conv3d: _f_conv,
    F.max_pool1d: _f_max_pool, F.max_pool2d: _f_max_pool, F.max_pool3d: _f_max_pool,
    F.avg_pool1d: _f_avg_pool, F.avg_pool2d: _f_avg_pool, F.avg_pool3d: _f_avg_pool,
    **{getattr(F, f"adaptive_{k}_pool{n}d"): _f_adaptive(kind)
       for k, kind in (("avg", "average"), ("max", "max")) for n in (1, 2, 3)},
    torch.zeros_like: _like(0.0), torch.ones_like: _like(1.0), torch.full_like: _like(None),
    **{getattr(torch, n): h for n, h in _UNARY.items()},
    **{getattr(F, n): h for n, h in _UNARY.items() if hasattr(F, n)},
}

_METHODS: dict[str, Handler] = {
    **_ARITH, **_UNARY, "neg": _neg, "pow": _pow, "view": _reshape, "reshape": _reshape,
    "flatten": _flatten_with(0), "sum": _reduce(False), "mean": _reduce(True), "clamp": _clamp,
    "clip": _clamp, "size": _size, "transpose": _transpose, "t": _transpose,
    "permute": _permute, "unsqueeze": _unsqueeze, "squeeze": _squeeze, "expand": _expand,
    "matmul": _matmul, "abs": _abs, "square": _square, "__getitem__": _getitem,
    "truediv": _ARITH["div"], "float": _identity, "double": _identity, "to": _cast,
    "contiguous": _identity, "clone": _identity, "detach": _identity, "type_as": _cast,
    "log1p": _log1p, "expm1": _expm1, "log": _log, "split": _split, "chunk": _chunk,
    "new_zeros": _new_full(0.0), "new_ones": _new_full(1.0), "new_full": _new_full(None),
    "expand_as": _expand_as, "index_select": _index_select, "narrow": _narrow, "flip": _flip,
    "roll": _roll, "unbind": _unbind, "gather": _gather, "masked_fill": _masked_fill,
    "max": _max_or_min("maximum"), "min": _max_or_min("minimum"), "mm": _matmul,
    "amax": _amax_or_amin("maximum"), "amin": _amax_or_amin("minimum"),
    "bmm": _bmm, "clamp_min": _clamp_min, "clamp_max": _clamp_max, "dim": _aten_dim,
    "maximum": _minmax("maximum"), "minimum": _minmax("minimum"),
}
_METHODS.update({name + "_": _METHODS[name] for name in
                 ("add", "sub", "mul", "div", "neg", "pow", "clamp", "abs", "square", *_UNARY)})


def _mod_linear(self: _TorchImporter, m: nn.Linear, args: list, kw: dict) -> Any:
    bias = None if m.bias is None else _tensor_const(m.bias)
    return self.linear(args[0], _tensor_const(m.weight), bias)


def _mod_unary(op: str) -> Callable[..., Any]:
    return lambda self, m, args, kw: self.lw.unary(op, args[0])


def _mod_flatten(self: _TorchImporter, m: nn.Flatten, args: list, kw: dict) -> Any:
    return _flatten_with(1)(self, [args[0], m.start_dim, m.end_dim], {})


def _mod_unflatten(self: _TorchImporter, m: nn.Unflatten, args: list, kw: dict) -> Any:
    s = list(self.lw.shape(args[0]))
    d = _dim(m.dim, len(s))
    return self.lw.reshape(args[0], s[:d] + list(m.unflattened_size) + s[d + 1:])


def _mod_batchnorm(self: _TorchImporter, m: nn.modules.batchnorm._BatchNorm, args: list,
                   kw: dict) -> Any:
    if m.training or m.running_mean is None or m.running_var is None:
        raise _Unsupported("batch norm in training mode or without running statistics")
    mean, var = _tensor_const(m.running_mean), _tensor_const(m.running_var)
    s = 1.0 / np.sqrt(var + m.eps)
    if m.affine:
        s = s * _tensor_const(m.weight)
    return self.lw.channel_affine(args[0], s,
                                  -mean * s + (_tensor_const(m.bias) if m.affine else 0.0))


_MODULES: dict[type, Callable[..., Any]] = {
    nn.Linear: _mod_linear,
    **{getattr(nn, info.module): _mod_unary(name) for name, info in OPS.items() if info.module},
    nn.GELU: lambda self, m, args, kw: self.lw.gelu(args[0], m.approximate),
    nn.Identity: lambda self, m, args, kw: args[0],
    nn.Dropout: lambda self, m, args, kw: args[0],
    nn.Flatten: _mod_flatten,
    nn.Unflatten: _mod_unflatten,
    nn.LeakyReLU: lambda self, m, args, kw: _leaky(self, [args[0], m.negative_slope], {}),
    nn.Hardtanh: lambda self, m, args, kw: self.lw.clamp(args[0], m.min_val, m.max_val),
    nn.ReLU6: lambda self, m, args, kw: self.lw.clamp(args[0], 0.0, 6.0),
    nn.BatchNorm1d: _mod_batchnorm,
    nn.BatchNorm2d: _mod_batchnorm,
    nn.BatchNorm3d: _mod_batchnorm,
    nn.LayerNorm: lambda self, m, args, kw: self.lw.layer_norm(
        args[0], len(m.normalized_shape), m.eps,
        None if m.weight is None else _tensor_const(m.weight),
        None if m.bias is None else _tensor_const(m.bias)),
    nn.ELU: lambda self, m, args, kw: self.lw.elu(args[0], m.alpha),
    nn.CELU: lambda self, m, args, kw: self.lw.elu(args[0], m.alpha, width=m.alpha),
    nn.SELU: lambda self, m, args, kw: self.lw.elu(args[0], _SELU_ALPHA, _SELU_SCALE),
    nn.SiLU: lambda self, m, args, kw: self.lw.silu(args[0]),
    nn.Hardsigmoid: lambda self, m, args, kw: self.lw.hardsigmoid(args[0]),
    nn.Hardswish: lambda self, m, args, kw: self.lw.hardswish(args[0]),
    nn.Softsign: lambda self, m, args, kw: self.lw.softsign(args[0]),
    nn.PReLU: lambda self, m, args, kw: _prelu_channels(self, args[0], _tensor_const(m.weight)),
    nn.Softplus: lambda self, m, args, kw: self.lw.softplus(args[0], float(m.beta),
                                                         float(m.threshold)),
    nn.Mish: lambda self, m, args, kw: self.lw.mish(args[0]),  # torch's mish: no threshold
    nn.LogSigmoid: lambda self, m, args, kw: _log_sigmoid(self, args, kw),
    **{getattr(nn, f"Conv{n}d"): _mod_conv for n in (1, 2, 3)},
    **{getattr(nn, f"MaxPool{n}d"): _mod_max_pool for n in (1, 2, 3)},
    **{getattr(nn, f"AvgPool{n}d"): _mod_avg_pool for n in (1, 2, 3)},
    **{getattr(nn, f"Adaptive{k}Pool{n}d"): (
        lambda self, m, args, kw, kind=kind: _adaptive(self, args[0], kind, m.output_size))
       for k, kind in (("Avg", "average"), ("Max", "max")) for n in (1, 2, 3)},
}


# ---------------------------------------------------------------- ATen (torch.export)
def _aten_addmm(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``beta * bias + alpha * (a @ b)``."""
    beta, alpha = float(kw.get("beta", 1.0)), float(kw.get("alpha", 1.0))
    prod = _matmul_batch(args[1], args[2], self.lw.matmul(args[1], args[2]))
    if alpha != 1.0:
        prod = self.lw.mul(prod, alpha)
    return self.lw.add(prod, args[0] if beta == 1.0 else self.lw.mul(args[0], beta))


_FUNCTIONS[torch.addmm] = _aten_addmm


def _f_batch_norm(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
    eps)`` in evaluation mode (the running statistics, constants)."""
    if bool(_arg(args, kw, 5, "training", False)):
        raise _Unsupported("batch norm in training mode (training=True uses the statistics "
                           "of the batch)")
    mean, var = _arg(args, kw, 1, "running_mean", None), _arg(args, kw, 2, "running_var", None)
    w, b = _arg(args, kw, 3, "weight", None), _arg(args, kw, 4, "bias", None)
    eps = _arg(args, kw, 7, "eps", 1e-5)
    return _BATCH_NORM_EVAL(self, [args[0], w, b, mean, var, False, 0.1, eps], {})


_FUNCTIONS[F.batch_norm] = _f_batch_norm
_METHODS["addmm"] = _aten_addmm


def _aten_slice(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``slice.Tensor(x, dim=0, start=None, end=None, step=1)``."""
    x = args[0]
    dim = _dim(_arg(args, kw, 1, "dim", 0), len(self.lw.shape(x)))
    key = (slice(None),) * dim + (slice(_arg(args, kw, 2, "start", None),
                                        _arg(args, kw, 3, "end", None),
                                        _arg(args, kw, 4, "step", 1)),)
    if isinstance(x, Var) and dim == 0 and not _full_slice(key[0]):
        _refuse_batch("a slice of dim 0")
    return self.lw.index(x, lambda t: t[key])


def _aten_select(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``select.int(x, dim, index)``: the axis is dropped."""
    x = args[0]
    dim = _dim(args[1], len(self.lw.shape(x)))
    _per_sample(x, [dim], "select")
    key = (slice(None),) * dim + (int(args[2]),)
    return self.lw.index(x, lambda t: t[key])


def _aten_index(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``index.Tensor(x, indices)``: ``x[i0, i1, ...]`` with constant index tensors
    (``None`` for a whole axis), numpy's advanced indexing."""
    indices = args[1]
    if any(isinstance(i, Var) for i in indices):
        raise _Unsupported("indexing with a variable tensor")
    if isinstance(args[0], Var) and indices and indices[0] is not None:
        _refuse_batch("indexing dim 0")
    key = tuple(slice(None) if i is None else np.asarray(i) for i in indices)
    return self.lw.index(args[0], lambda t: t[key])


def _aten_rsub(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``rsub(x, other, alpha=1) = other - alpha * x``."""
    alpha = float(_arg(args, kw, 2, "alpha", 1.0))
    return self.lw.sub(args[1], args[0] if alpha == 1.0 else self.lw.mul(args[0], alpha))


def _aten_elu(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``elu(x, alpha=1, scale=1, input_scale=1)`` (ELU, SELU and CELU)."""
    alpha = float(_arg(args, kw, 1, "alpha", 1.0))
    scale = float(_arg(args, kw, 2, "scale", 1.0))
    input_scale = float(_arg(args, kw, 3, "input_scale", 1.0))
    if input_scale <= 0.0:
        raise _Unsupported(f"elu with input_scale {input_scale}")
    return self.lw.elu(args[0], alpha, scale, width=1.0 / input_scale)


def _aten_batch_norm(order: tuple[int, int, int, int, int]) -> Handler:
    """Batch norm in evaluation mode; ``order``: the argument positions of weight,
    bias, running mean, running variance and eps."""

    def h(self: _TorchImporter, args: list, kw: dict) -> Any:
        w, b, mean, var, eps = (args[k] for k in order)
        if any(isinstance(v, Var) for v in (w, b, mean, var)) or mean is None or var is None:
            raise _Unsupported("batch norm without constant running statistics")
        scale = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + float(eps))
        if w is not None:
            scale = scale * np.asarray(w, dtype=np.float64)
        shift = -np.asarray(mean, dtype=np.float64) * scale + (0.0 if b is None else b)
        return self.lw.channel_affine(args[0], scale, shift)

    return h


_BATCH_NORM_EVAL = _aten_batch_norm((1, 2, 3, 4, 7))


def _aten_batch_norm_train_flag(self: _TorchImporter, args: list, kw: dict) -> Any:
    """``batch_norm(x, w, b, mean, var, training, momentum, eps, cudnn)``."""
    if bool(args[5]):
        raise _Unsupported("batch norm in training mode")
    return _BATCH_NORM_EVAL(self, args, kw)


def _aten_tuple(handler: Handler, n: int) -> Handler:
    """An op returning ``n`` tensors of which models read the first (native norms)."""
    return lambda self, args, kw: (handler(self, args, kw),) + (None,) * (n - 1)


#: ATen ops (by overload packet name) of a torch.export program and their lowering;
#: most share their ``torch.nn.functional`` / ``torch`` counterpart's arguments
_ATEN: dict[str, Handler] = {
    **_UNARY, **_ARITH,
    "linear": _f_linear, "addmm": _aten_addmm, "mm": _matmul, "matmul": _matmul,
    "t": _transpose, "transpose": _transpose, "permute": _permute,
    "view": _reshape, "reshape": _reshape, "_unsafe_view": _reshape, "expand": _expand,
    "flatten": _flatten_with(0), "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "cat": _cat, "concat": _cat, "stack": _stack, "slice": _aten_slice, "select": _aten_select,
    "index": _aten_index, "rsub": _aten_rsub,
    "sym_size": _size, "neg": _neg, "pow": _pow, "abs": _abs, "square": _square,
    "sum": _reduce(False), "mean": _reduce(True), "clamp": _clamp, "clip": _clamp,
    "clamp_min": lambda self, args, kw: self.lw.clamp(args[0], args[1], None),
    "clamp_max": lambda self, args, kw: self.lw.clamp(args[0], None, args[1]),
    "minimum": _minmax("minimum"), "maximum": _minmax("maximum"),
    "hardtanh": _hardtanh, "relu6": lambda self, args, kw: self.lw.clamp(args[0], 0.0, 6.0),
    "leaky_relu": _leaky, "elu": _aten_elu, "celu": _f_celu, "selu": _f_selu,
    "prelu": _f_prelu, "_prelu_kernel": _f_prelu, "gelu": _gelu,
    "silu": lambda self, args, kw: self.lw.silu(args[0]),
    "hardsigmoid": lambda self, args, kw: self.lw.hardsigmoid(args[0]),
    "hardswish": lambda self, args, kw: self.lw.hardswish(args[0]),
    "softplus": _softplus, "mish": lambda self, args, kw: self.lw.mish(args[0]),
    "layer_norm": _f_layer_norm, "native_layer_norm": _aten_tuple(_f_layer_norm, 3),
    "batch_norm": _aten_batch_norm_train_flag,
    "_native_batch_norm_legit_no_training": _aten_tuple(_aten_batch_norm((1, 2, 3, 4, 6)), 3),
    "dropout": _f_dropout, "clone": _identity, "contiguous": _identity, "alias": _identity,
    "detach": _identity, "_to_copy": _cast, "to": _cast, "type_as": _cast,
    "lift_fresh_copy": _identity,
    "where": _where_const, "log1p": _log1p, "expm1": _expm1, "log": _log,
    "log_sigmoid": _log_sigmoid,
    "split": _split, "split_with_sizes": _split, "chunk": _chunk,
    "log_sigmoid_forward": _aten_tuple(_log_sigmoid, 2),
    "zeros_like": _like(0.0), "ones_like": _like(1.0), "full_like": _like(None),
    "new_zeros": _new_full(0.0), "new_ones": _new_full(1.0), "new_full": _new_full(None),
    "expand_as": _expand_as, "index_select": _index_select, "narrow": _narrow, "flip": _flip,
    "roll": _roll, "unbind": _unbind, "gather": _gather, "masked_fill": _masked_fill,
    "bmm": _bmm, "einsum": _einsum, "dim": _aten_dim,
    "max": _max_or_min("maximum"), "min": _max_or_min("minimum"),
    "amax": _amax_or_amin("maximum"), "amin": _amax_or_amin("minimum"),
    "conv1d": _f_conv, "conv2d": _f_conv, "conv3d": _f_conv, "convolution": _aten_convolution,
    "max_pool1d": _f_max_pool, "max_pool2d": _f_max_pool, "max_pool3d": _f_max_pool,
    "max_pool2d_with_indices": _aten_tuple(_f_max_pool, 2),
    "max_pool3d_with_indices": _aten_tuple(_f_max_pool, 2),
    "avg_pool1d": _f_avg_pool, "avg_pool2d": _f_avg_pool, "avg_pool3d": _f_avg_pool,
    "adaptive_avg_pool1d": _f_adaptive("average"), "adaptive_avg_pool2d": _f_adaptive("average"),
    "_adaptive_avg_pool2d": _f_adaptive("average"), "adaptive_avg_pool3d": _f_adaptive("average"),
    "_adaptive_avg_pool3d": _f_adaptive("average"),
    **{f"adaptive_max_pool{n}d": _aten_tuple(_f_adaptive("max"), 2) for n in (1, 2, 3)},
}
# in-place ATen ops (relu_, add_, ...) as their out-of-place forms: same arguments, and
# _check_inplace refuses them where the tensor written into is read again
_ATEN.update({name + "_": _ATEN[name] for name in (
    *_ARITH, *_UNARY, "neg", "pow", "abs", "square", "clamp", "clip", "clamp_min",
    "clamp_max", "hardtanh", "leaky_relu", "elu", "celu", "selu", "silu", "hardsigmoid",
    "hardswish", "mish", "relu6", "log1p", "expm1", "log") if name in _ATEN})
#: ATen ops of an exported program that check its inputs and compute nothing
_ATEN_SKIP = frozenset({"_assert_tensor_metadata", "_assert_scalar", "_assert_async",
                        "sym_constrain_range", "sym_constrain_range_for_size"})


def from_exported(program: Any, merge_pwl: bool = True, input_size: int | None = None) -> Graph:
    """Import a :func:`torch.export.export` program mapping ``(B, n_in) -> (B, n_out)``.

    ``program``: a ``torch.export.ExportedProgram`` (as :func:`torch.export.load`
    returns it) or the ``torch.fx.GraphModule`` of its ``.module()``.  The input's
    trailing shape is read from the program; export it with a dynamic batch axis
    (``dynamic_shapes``), or with a batch size that no other axis of its reshapes
    shares.  ``input_size``: the width of the input where the program leaves
    it symbolic (a program converted from TorchScript).  Raises
    :class:`UnsupportedOpError` (naming the ATen op and the node) or
    :class:`GraphError` as :func:`from_torch` does.
    """
    gm = program.module() if hasattr(program, "graph_signature") else program
    if not isinstance(gm, torch.fx.GraphModule):
        raise GraphError("from_exported: expected a torch.export program, got "
                         f"{type(program).__name__}")
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    val = inputs[0].meta.get("val") if inputs else None
    if val is None or not hasattr(val, "shape") or len(val.shape) < 2:
        raise GraphError("from_exported: the program's first input is not a tensor of shape "
                         "(batch, ...)")
    if len(inputs) > 1:
        raise GraphError(f"from_exported: the program takes {len(inputs)} inputs; only one "
                         "tensor input is supported")
    batch, *rest = val.shape
    if input_size is not None and len(rest) == 1 and not isinstance(rest[0], int):
        rest = [int(input_size)]
    if not all(isinstance(d, int) for d in rest):
        raise GraphError("from_exported: only the batch axis of the input may be dynamic")
    exported_batch = int(batch) if isinstance(batch, int) else None
    return _TorchImporter(gm, (1, *rest), exported_batch=exported_batch, traced=True).run(
        merge_pwl)


def _input_shape(module: nn.Module, input_size: int | None,
                 example: torch.Tensor | None) -> tuple[int, ...]:
    if example is not None:
        ex = torch.as_tensor(example)
        if ex.dim() <= 1:
            return (1, max(int(ex.numel()), 1))
        return (1, *(int(d) for d in ex.shape[1:]))
    if input_size is not None:
        if int(input_size) <= 0:
            raise GraphError(f"from_torch: input_size must be positive, got {input_size}")
        return (1, int(input_size))
    for m in module.modules():  # the first dense layer's (or graph module's) input size
        if isinstance(m, nn.Linear):
            return (1, int(m.in_features))
        if _evaluates_graph(m):
            return (1, int(m.graph.input_size))
    raise GraphError("from_torch: give input_size or example (the module has no nn.Linear "
                     "to infer the input size from)")


def from_torch(
    module: nn.Module,
    input_size: int | None = None,
    example: torch.Tensor | None = None,
    merge_pwl: bool = True,
) -> Graph:
    """Import ``module`` (mapping ``(B, n_in) -> (B, n_out)``) as an IR graph.

    The input size comes from ``example`` (a batch ``(B, ...)``; its trailing
    shape is used), else ``input_size``, else the first ``nn.Linear``.  Weights
    are copied as float64.  ``Dropout`` is the identity (evaluation semantics).
    An op that cannot be bounded (GELU, softmax, ...) raises
    :class:`UnsupportedOpError` naming the op and the fx node.  A module torch.fx
    cannot trace (Python logic on shapes, ...) is exported with
    :func:`torch.export.export` (dynamic batch axis) and imported by
    :func:`from_exported`; one neither can trace raises :class:`GraphError`.  A
    module that evaluates a gridverify graph (``module.graph``, with
    ``module.evaluates_graph`` true: the proxies read from files) is that graph,
    its outputs concatenated as the module returns them.
    ``merge_pwl``: rewrite weighted sums of shifted relus of one scalar as ``pwl``
    nodes (:mod:`gridverify.ir.pwl_merge`).
    """
    if not isinstance(module, nn.Module):
        raise GraphError(f"from_torch: expected an nn.Module, got {type(module).__name__}")
    if _evaluates_graph(module):
        from gridverify.ir.builder import concat_outputs

        return concat_outputs(module.graph)  # a module that evaluates a graph (a proxy file's)
    shape = _input_shape(module, input_size, example)
    try:
        return _TorchImporter(module, shape).run(merge_pwl)
    except _Untraceable as fx_error:
        dtype = torch.as_tensor(example).dtype if example is not None else None
        program = _export_or_none(module, shape, dtype)
        if program is None:
            raise GraphError(f"{fx_error} and torch.export cannot export it either") from None
        return from_exported(program, merge_pwl)


def _evaluates_graph(module: Any) -> bool:
    """Whether ``module`` evaluates a gridverify graph (``module.graph``)."""
    return bool(getattr(module, "evaluates_graph", False)) and isinstance(
        getattr(module, "graph", None), Graph)


class _GraphLeafTracer(torch.fx.Tracer):
    """torch.fx's tracer, with the modules that evaluate a gridverify graph kept whole
    (the importer inlines their graph)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _evaluates_graph(m) or super().is_leaf_module(m, module_qualified_name)


class _Untraceable(GraphError):
    """torch.fx cannot trace the module (torch.export may: see :func:`from_torch`)."""


def _export_or_none(module: nn.Module, shape: tuple[int, ...],
                    dtype: torch.dtype | None = None) -> Any:
    """``module`` exported by :func:`torch.export.export` on a batch of 2 with a
    dynamic batch axis (``None`` when it cannot be): the fallback for modules
    torch.fx cannot trace but torch can run (Python logic on shapes, ...).  ``dtype``:
    the example's (else the module's parameters', else float32)."""
    if dtype is None or not dtype.is_floating_point:
        dtype = next((t.dtype for t in list(module.parameters()) + list(module.buffers())
                      if t.is_floating_point()), torch.float32)
    example = (torch.zeros(2, *shape[1:], dtype=dtype),)
    try:
        with _quiet_torch_logs():
            # in its own mode: a module in training mode exports training ops (batch
            # norm on batch statistics, dropout), which the importer refuses
            return torch.export.export(copy.deepcopy(module), example,
                                       dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception:  # noqa: BLE001 - export raises many types on what it cannot trace
        return None


@contextlib.contextmanager
def _quiet_torch_logs() -> Any:
    """torch's loggers silenced below CRITICAL (a failed export logs its traceback; the
    importer reports the failure itself, in one line)."""
    names = ("torch", "torch._dynamo", "torch.export", "torch._export", "torch._guards",
             "torch.fx.experimental.symbolic_shapes", "torch._subclasses")
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)
