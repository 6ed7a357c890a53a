"""from_torch: torch.fx import against the torch module itself (float64), and errors."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gridverify.errors import GraphError, UnsupportedOpError
from gridverify.ir.onnx_import import from_onnx
from gridverify.ir.torch_import import from_torch


class AcopfLike(nn.Module):
    """An MLP with a sigmoid head feeding products, trig of differences, squares, sums."""

    def __init__(self, n_in: int = 6, hidden: int = 16, n_out: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_out), nn.Sigmoid())
        self.register_buffer("lo", torch.linspace(0.1, 0.5, n_out))
        self.half = n_out // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x) * 2.0 + self.lo
        a, b = y[:, : self.half], y[:, self.half:]
        d = a - b
        s = torch.sin(d) * a * b + torch.cos(d) ** 2
        e = torch.exp(-a) / (b + 1.0) + torch.sqrt(b + 0.5) - a.pow(3)
        z = torch.cat([s, e, y.sum(dim=1, keepdim=True), torch.clamp(d, -0.1, 0.2),
                       y.view(y.size(0), 2, -1).flatten(1)[:, 1:3], -x[:, [0, 3]]], dim=1)
        return z.reshape(-1, z.shape[1]) + torch.relu(x).mean(1, keepdim=True)


class Structural(nn.Module):
    """Indexing, transposes, stacks, reductions and the less common functionals."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 12)
        self.w = nn.Parameter(torch.randn(3, 4))
        self.bn = nn.BatchNorm1d(12)
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.lin(x))                      # (B, 12)
        m = h.view(-1, 3, 4)                          # (B, 3, 4)
        t = m.transpose(1, 2)                         # (B, 4, 3)
        p = m.permute(0, 2, 1).contiguous()           # same as t
        q = torch.matmul(t, self.w)                   # (B, 4, 4) variable @ parameter
        r = F.linear(h, self.w.reshape(12, 1).t())    # (B, 1)
        st = torch.stack([h[:, 0], h[:, 5], h[..., -1]], dim=1)   # (B, 3)
        sq = t.unsqueeze(1).squeeze(1)
        e = st[:, :1].expand(-1, 3)
        mm = torch.maximum(st, e) + torch.minimum(st, 0.5 * e)
        ab = torch.abs(h[:, ::3]) + F.leaky_relu(h[:, 1::3], 0.2) + F.hardtanh(h[:, 2::3])
        quot = st / (1.5 + torch.sigmoid(e))          # variable / variable
        sm = (t * p).sum(dim=(1, 2)).unsqueeze(1)     # products of variables, reduced
        return torch.cat([self.flat(q), r, mm, ab, quot, sm, torch.square(sq).mean(-1),
                          1.0 - st, 2 ** 0.5 * st], dim=1)


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 3)
        self.b = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self.a(x)), torch.tanh(self.b(x)) * x[:, 1:3]


def _check(module: nn.Module, n_in: int, **kw) -> torch.Tensor:
    module = module.double().eval()
    g = from_torch(module, **kw)
    x = torch.rand(64, n_in, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        want = module(x)
    want = list(want) if isinstance(want, tuple) else [want]
    got = g.evaluate(x)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.reshape(b.shape[0], -1), atol=1e-10, rtol=1e-10)
    return g


def test_mlp_sigmoid_head_matches_torch():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(22, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 38), nn.Sigmoid())
    g = _check(mlp, 22)
    assert g.input_names == ["x"] and list(g.output_names) == ["y"]
    assert [n.op for n in g.nodes].count("linear") == 3


def test_acopf_like_arithmetic_and_trig_matches_torch():
    torch.manual_seed(1)
    g = _check(AcopfLike(), 6)
    ops = {n.op for n in g.nodes}
    assert {"sin", "cos", "mul", "exp", "sqrt", "pow", "reciprocal", "sigmoid"} <= ops


def test_structural_ops_match_torch():
    torch.manual_seed(2)
    m = Structural()
    with torch.no_grad():  # non-trivial running statistics
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    _check(m, 6, example=torch.zeros(2, 6))


def test_two_outputs_in_order_and_float32_evaluation():
    torch.manual_seed(3)
    g = _check(TwoOutputs(), 5, input_size=5)
    assert list(g.output_names) == ["y0", "y1"]
    m = TwoOutputs().eval()
    g32 = from_torch(m)
    x = torch.randn(10, 5)
    torch.testing.assert_close(g32.evaluate(x, dtype=torch.float32)[1], m(x)[1].detach(),
                               atol=1e-5, rtol=1e-5)


def test_functional_activations_and_methods():
    class Fun(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(x) + F.sigmoid(x) + F.tanh(x) + x.sin() + x.cos().exp() + x.floor()
            z = x.clamp(min=0.25).sqrt() + torch.clip(x, -1.0, 1.0) + x.clamp(max=0.3)
            w = torch.pow(x, 4) - x ** 2 + x.neg() * 3 - x / 4 + torch.sub(x, 1, alpha=2)
            return torch.cat([y, z + 1.0, w, torch.reciprocal(x.exp())], dim=-1)

    _check(Fun(), 4, input_size=4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_from_torch_vs_onnx_export_same_graph_outputs():
    """torch.onnx.export (TorchScript exporter) then from_onnx == from_torch == onnxruntime."""
    torch.manual_seed(4)
    m = AcopfLike().double().eval()
    buf = io.BytesIO()
    torch.onnx.export(m, (torch.zeros(1, 6, dtype=torch.float64),), buf, dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    model = onnx.load_from_string(buf.getvalue())
    g_onnx, g_torch = from_onnx(model), from_torch(m)
    x = torch.rand(32, 6, dtype=torch.float64) * 4 - 2
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(g_onnx.evaluate(x)[0].numpy(), want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g_onnx.evaluate(x)[0], g_torch.evaluate(x)[0], atol=1e-10,
                               rtol=1e-10)


@pytest.mark.parametrize("approx", ["none", "tanh"])
def test_gelu_and_erf_import_exactly(approx):
    class WithGelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3, dtype=torch.float64)
            self.act = nn.GELU(approximate=approx)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.gelu(self.fc(x), approximate=approx) + self.act(x) + torch.erf(x)

    m = WithGelu()
    g = from_torch(m)
    assert "erf" in {n.op for n in g.nodes} or approx == "tanh"
    x = torch.rand(64, 3, dtype=torch.float64) * 8 - 4
    with torch.no_grad():
        torch.testing.assert_close(g.evaluate(x)[0], m(x), atol=1e-12, rtol=1e-12)


def test_unsupported_ops_name_op_and_node():
    with pytest.raises(UnsupportedOpError) as err:
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.GELU(approximate="none"), nn.Softmax(1)))
    assert err.value.op_type == "Softmax" and "2" in err.value.node
    with pytest.raises(UnsupportedOpError, match="Softmax"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1)))


def test_untraceable_and_bad_arguments():
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(GraphError, match="fx cannot trace.*torch.export cannot export"):
        from_torch(Branchy(), input_size=3)
    with pytest.raises(GraphError, match="input_size"):
        from_torch(nn.ReLU())
    with pytest.raises(GraphError, match="nn.Module"):
        from_torch(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="Linear|linear|shape|size"):
        from_torch(nn.Linear(4, 2), input_size=5)


def test_constant_calls_fold_and_like_constructors():
    class Consts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = x[:, :2] * 0 + (torch.zeros(1, 2, dtype=torch.float64) + torch.arange(2.0))
            o = torch.ones_like(x) * 3 + torch.full_like(x, 0.5)
            n = x.size(1) * 2 - 1  # python arithmetic on traced sizes
            return torch.cat([x * o, z, F.dropout(x, 0.5, False), x[:, :1] * n], 1)

    _check(Consts(), 3, input_size=3)


def test_inplace_ops_only_when_their_input_is_dead():
    class SafeInplace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.fc(x))
            return h.mul_(2.0).add_(1.0)

    class UnsafeInplace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            r = F.relu(h, inplace=True)  # modifies h, which is read again below
            return h + r

    _check(SafeInplace(), 3)
    with pytest.raises(UnsupportedOpError, match="in-place"):
        from_torch(UnsafeInplace())
    with pytest.raises(UnsupportedOpError, match="training"):
        from_torch(nn.Sequential(nn.Linear(3, 3), _Drop()))


class _Drop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, 0.5)  # training=True by default: random


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamic", [False, True])
def test_structural_module_through_torch_onnx_export(dynamic):
    """The TorchScript exporter writes Where/Equal/Expand/ConstantOfShape/ReduceMean/Clip..."""
    torch.manual_seed(2)
    m = Structural().double().eval()
    buf = io.BytesIO()
    batch = 2 if dynamic else 1
    torch.onnx.export(m, (torch.zeros(batch, 6, dtype=torch.float64),), buf, dynamo=False,
                      opset_version=17, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}} if dynamic else None)
    ops = {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
    assert {"Where", "Equal", "Expand", "BatchNormalization", "Transpose"} <= ops
    g = from_onnx(buf.getvalue())
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(8, 6, dtype=torch.float64) * 4 - 2
    want = np.concatenate([sess.run(None, {"x": x[i:i + 1].numpy()})[0] for i in range(8)])
    np.testing.assert_allclose(g.evaluate(x)[0].numpy(), want, atol=1e-9, rtol=1e-9)
    # ONNX stores BatchNormalization's epsilon as a float32 attribute: 1e-7 relative
    torch.testing.assert_close(g.evaluate(x)[0], from_torch(m).evaluate(x)[0], atol=1e-7,
                               rtol=1e-6)


# ------------------------------------------------- torch.export programs (from_exported)


class _MaskWrite(nn.Module):
    """A constant mask written in place (``zeros``, ``select``, ``copy_`` once exported),
    then read: the write must not be lost."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.zeros(4, dtype=x.dtype)
        m[2] = 5.0
        return self.fc(x) + m


class _ViewWrite(nn.Module):
    """An in-place op on a view of a tensor that is read afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        h[:, :2].relu_()
        return h * 2.0


class _DeadWrites(nn.Module):
    """In-place ops on tensors (and views) nothing reads afterwards: imported as is."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        v = h.view(-1, 2, 2)
        return v.relu_().mul_(3.0).reshape(-1, 4)


class _ShapeBranchNorm(nn.Module):
    """Python logic on a shape (torch.fx cannot trace it: torch.export does), then a
    batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 2:
            x = self.fc(x)
        return self.bn(x)


def test_a_module_in_training_mode_is_refused_on_every_path():
    """The export fallback (modules fx cannot trace) bounds the module in its own mode:
    in training mode its batch norm uses batch statistics and is refused, as on the fx
    path; it used to be put in evaluation mode and bounded as another function."""
    torch.manual_seed(0)
    for module in (_ShapeBranchNorm(), nn.BatchNorm1d(2)):
        with pytest.raises(UnsupportedOpError, match="training mode"):
            from_torch(module.double().train(), input_size=2)
    _check(_ShapeBranchNorm().eval(), 2, input_size=2)


@pytest.mark.parametrize("decompose", [False, True])
def test_exported_inplace_writes_are_refused_or_exact(decompose):
    """Exported as written, the writes are refused; decomposed (functional ATen), each
    program imports exactly or names an op it lacks."""
    torch.manual_seed(0)
    x = torch.rand(9, 3, dtype=torch.float64) * 4 - 2
    for module in (_MaskWrite(), _ViewWrite(), _DeadWrites()):
        module = module.double().eval()
        try:
            g = _exported(module, 3, True, decompose)
        except UnsupportedOpError as e:
            assert decompose or "in-place op" in str(e), e
            assert not isinstance(module, _DeadWrites), e
            continue
        assert decompose or isinstance(module, _DeadWrites)
        with torch.no_grad():
            torch.testing.assert_close(g.evaluate_flat(x), module(x), atol=1e-12, rtol=1e-12)


class Activations(nn.Module):
    """The activations and norms of torch.nn, as torch.export keeps them (ATen ops)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 8)
        self.prelu = nn.PReLU(8, 0.2)
        self.ln = nn.LayerNorm(8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        a = (F.elu(h, 0.7) + F.selu(h) + F.celu(h, 0.6) + F.gelu(h) + F.gelu(h, approximate="tanh")
             + F.softplus(h, beta=2.0, threshold=1.5) + F.silu(h) + F.hardsigmoid(h)
             + F.hardswish(h) + F.mish(h) + F.leaky_relu(h, 0.1) + self.prelu(h) + F.relu6(h)
             + F.hardtanh(h, -0.5, 0.7) + torch.clamp(h, min=-0.2) + F.dropout(h, 0.3, False))
        return torch.sigmoid(self.out(self.ln(a))) * 2.0 - x[:, [1, 4, 0, 2]]


def _exported(module: nn.Module, n_in: int, dynamic: bool, decompose: bool = False):
    from gridverify.ir.torch_import import from_exported

    ep = torch.export.export(module, (torch.rand(3, n_in, dtype=torch.float64),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic
                             else None)
    return from_exported(ep.run_decompositions() if decompose else ep)


def _modules() -> dict[str, tuple[nn.Module, int]]:
    torch.manual_seed(4)
    s = Structural()
    with torch.no_grad():
        s.bn.running_mean.uniform_(-1, 1)
        s.bn.running_var.uniform_(0.5, 2)
    return {"acopf": (AcopfLike(), 6), "structural": (s, 6), "two": (TwoOutputs(), 5),
            "activations": (Activations(), 5)}


# core ATen (decompose) writes Activations' softplus, mish and celu with where, log1p and
# expm1; Structural decomposed with a static batch merges the batch into another axis (next
# test)
_EXPORTS = [(name, dynamic, decompose) for name in ("acopf", "structural", "two", "activations")
            for dynamic in (True, False) for decompose in (False, True)
            if not (name == "structural" and decompose and not dynamic)]


@pytest.mark.parametrize(("name", "dynamic", "decompose"), _EXPORTS)
def test_exported_program_matches_torch(name, dynamic, decompose):
    module, n_in = _modules()[name]
    module = module.double().eval()
    g = _exported(module, n_in, dynamic, decompose)
    x = torch.rand(17, n_in, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        want = module(x)
    want = torch.cat([w.reshape(17, -1) for w in (want if isinstance(want, tuple) else [want])], 1)
    torch.testing.assert_close(g.evaluate_flat(x), want, atol=1e-12, rtol=1e-12)
    # the same graph as the fx import of the module itself, node for node in value
    torch.testing.assert_close(g.evaluate_flat(x), from_torch(module).evaluate_flat(x),
                               atol=1e-12, rtol=1e-12)


def test_exported_program_errors():
    from gridverify.ir.torch_import import from_exported

    module, n_in = _modules()["structural"]
    with pytest.raises(GraphError, match="static batch of 3: export it with a dynamic batch"):
        _exported(module.double().eval(), n_in, dynamic=False, decompose=True)

    class Cumsum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, 1)

    with pytest.raises(UnsupportedOpError, match="aten.cumsum"):
        _exported(Cumsum(), 4, dynamic=True)

    class TwoInputs(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x + y

    ep = torch.export.export(TwoInputs(), (torch.ones(2, 3), torch.ones(2, 3)))
    with pytest.raises(GraphError, match="2 inputs"):
        from_exported(ep)
    with pytest.raises(GraphError, match="expected a torch.export program"):
        from_exported(nn.Linear(2, 2))


def test_module_fx_cannot_trace_is_imported_through_torch_export():
    class ShapeLogic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(6, 8)
            self.b = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            if h.shape[1] == 8:  # Python logic on a shape: torch.fx cannot trace it
                h = h * 2.0
            return torch.sigmoid(self.b(h))

    torch.manual_seed(6)
    m = ShapeLogic()
    with pytest.raises(Exception):  # noqa: B017 - fx raises its own error types
        torch.fx.symbolic_trace(m)
    g = _check(m, 6, input_size=6)
    assert {n.op for n in g.nodes} >= {"linear", "relu", "sigmoid"}
    m.train()
    from_torch(m, input_size=6)
    assert m.training  # the caller's module keeps its mode


def test_module_that_evaluates_a_graph_is_that_graph():
    """A proxy read from a file (its module evaluates a gridverify graph) imports as
    that graph, its outputs concatenated as the module returns them."""
    from gridverify.bounds import compute_bounds
    from gridverify.proxy.onnx_torch import OnnxModule, read_onnx

    m = OnnxModule(read_onnx("models/case14_relu/model.onnx"))
    g = from_torch(m)
    assert g.output_size == 38 and len(g.outputs) == 1
    x = torch.rand(6, 22, dtype=torch.float64)
    torch.testing.assert_close(g.evaluate_flat(x), m(x), atol=0, rtol=0)
    r = compute_bounds(m, torch.zeros(22, dtype=torch.float64),
                       torch.ones(22, dtype=torch.float64), method="crown")
    y = m(torch.rand(200, 22, dtype=torch.float64))
    assert bool((r.lower <= y).all() and (y <= r.upper).all())


def test_casts_to_integer_dtypes_are_refused():
    """A cast of a variable to an integer dtype rounds: refused (as ONNX's Cast), by
    both importers; float casts and casts of constants stay."""
    from gridverify.ir.torch_import import from_exported

    class Rounding(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * 10).to(torch.int64).to(torch.float64) / 10

    class FloatCasts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = torch.arange(3).to(torch.float64)  # a constant, cast: evaluated
            return torch.relu(x.to(torch.float64)).type_as(x) + c

    ep = torch.export.export(Rounding(), (torch.zeros(2, 3, dtype=torch.float64),))
    with pytest.raises(UnsupportedOpError, match="cast of a variable to torch.int64"):
        from_torch(Rounding(), input_size=3)
    with pytest.raises(UnsupportedOpError, match="aten.to.*torch.int64"):
        from_exported(ep)
    _check(FloatCasts(), 3, input_size=3)
    ep = torch.export.export(FloatCasts(), (torch.zeros(2, 3, dtype=torch.float64),),
                             dynamic_shapes=({0: torch.export.Dim("b")},))
    x = torch.rand(5, 3, dtype=torch.float64)
    torch.testing.assert_close(from_exported(ep).evaluate_flat(x), FloatCasts()(x))


class Splits(nn.Module):
    """torch.split / Tensor.split / chunk (ATen: split_with_sizes, split, chunk)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = torch.split(x, [2, 3, 2], dim=1)
        d, e = x.split(4, 1)  # sizes 4, 3
        f, g, h = torch.chunk(x, 3, dim=1)  # sizes 3, 3, 1
        return torch.cat([c * 2.0, a, torch.relu(b), e - d[:, :3], f + g, h], 1)


def test_split_and_chunk_import_through_fx_and_export():
    from gridverify.ir.torch_import import from_exported

    m = Splits().double().eval()
    x = torch.randn(16, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ep = torch.export.export(m, (x[:3],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    for g in (from_torch(m, input_size=7), from_exported(ep),
              from_exported(ep.run_decompositions())):
        torch.testing.assert_close(g.evaluate(x)[0], m(x), rtol=0, atol=1e-12)


def test_clamp_with_min_above_max_is_max_as_in_torch():
    """torch (and ONNX Clip) give ``max`` where ``min > max``: imported exactly, bounded
    soundly, not refused."""

    class Crossed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("lo", torch.tensor([-1.0, 0.5, 2.0]))
            self.register_buffer("hi", torch.tensor([1.0, 0.2, 2.5]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return torch.cat([torch.clamp(h, 1.0, -1.0), torch.clamp(h, self.lo, self.hi)], 1)

    torch.manual_seed(0)
    g = _check(Crossed(), 3)
    from gridverify.bounds import compute_bounds

    lo, hi = -torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    b = compute_bounds(g, lo, hi, method="crown")
    x = lo + (hi - lo) * torch.rand(500, 3, dtype=torch.float64)
    y = g.evaluate_flat(x)
    assert (y <= b.upper + 1e-9).all() and (y >= b.lower - 1e-9).all()
    assert torch.allclose(y[:, :3], torch.full_like(y[:, :3], -1.0))


class _OnThreeAxes(nn.Module):
    """``Linear``, ``LayerNorm`` over two axes and ``cat`` along axis 1, on ``(B, 2, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3).double()
        self.norm = nn.LayerNorm([2, 3]).double()
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 2.0)
            self.norm.bias.uniform_(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x.view(x.size(0), 2, 3)
        return torch.cat([self.lin(r), self.norm(r), -r], dim=1).flatten(1)


def test_layers_on_three_axis_tensors_compute_the_module() -> None:
    """A linear layer on the last axis of a 3-D tensor, a layer norm over its two
    trailing axes and a concatenation along axis 1: the graph computes what torch does."""
    torch.manual_seed(0)
    m = _OnThreeAxes().eval()
    g = from_torch(m, input_size=6)
    x = torch.randn(5, 6, dtype=torch.float64)
    with torch.no_grad():
        want = m(x)
    torch.testing.assert_close(g.evaluate_flat(x), want, rtol=1e-12, atol=1e-12)
