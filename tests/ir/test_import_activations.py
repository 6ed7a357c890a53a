"""The activations built from the op table, through both importers.

Each activation sits in a small MLP with batch norm; the graph imported from
the torch module and the graph imported from its ONNX export both compute the
module (float64; onnxruntime for the ONNX file), the ONNX proxy module loads,
and every bound method contains sampled and attacked outputs over a box.
"""

from __future__ import annotations

import io
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.errors import UnsupportedOpError
from gridverify.ir import from_onnx, from_torch
from gridverify.proxy.onnx_torch import OnnxModule

ACTIVATIONS = {
    "elu": lambda: nn.ELU(0.7),
    "selu": nn.SELU,
    "celu": lambda: nn.CELU(1.5),
    "prelu": lambda: nn.PReLU(8, init=0.3),
    "prelu_one": lambda: nn.PReLU(1, init=1.7),
    "silu": nn.SiLU,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "softsign": nn.Softsign,
    "leaky": lambda: nn.LeakyReLU(0.2),
    "softplus": nn.Softplus,
    "mish": nn.Mish,
    "layernorm": lambda: _affine_layer_norm(nn.LayerNorm(8, eps=1e-3)),
    "layernorm_plain": lambda: nn.LayerNorm(8, elementwise_affine=False),
}
#: torch's softplus is the identity where beta * x is above its threshold; these cross it
#: (torch's legacy ONNX exporter drops the threshold, so they are checked through torch and
#: through the pattern its current exporter writes, below)
THRESHOLDED = {
    "softplus_beta": lambda: nn.Softplus(beta=2.0, threshold=1.0),
    "softplus_low": lambda: nn.Softplus(beta=0.5, threshold=-0.5),
}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript export

def _affine_layer_norm(m: nn.LayerNorm) -> nn.LayerNorm:
    with torch.no_grad():  # non-trivial scale and shift
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.3, 0.3)
    return m


def _mlp(act: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), act, nn.Linear(8, 3))
    with torch.no_grad():  # non-trivial running statistics
        m[1].running_mean.uniform_(-0.3, 0.3)
        m[1].running_var.uniform_(0.5, 2.0)
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-0.2, 0.2)
    return m.eval()


def _onnx(m: nn.Module) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(m.double(), torch.zeros(1, 5, dtype=torch.float64), buf,
                      input_names=["x"], output_names=["y"], opset_version=18, dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


def _x(n: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(3).uniform(-4, 4, (n, 5)))


def _assert_computes(g, m: nn.Module, x: torch.Tensor, atol: float = 1e-12) -> None:
    """The imported graph ``g`` is the module ``m`` at the rows of ``x``."""
    with torch.no_grad():
        np.testing.assert_allclose(g.evaluate(x)[0].numpy(), m(x).numpy(), rtol=0, atol=atol)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS | THRESHOLDED))
def test_torch_import_computes_the_module(name):
    m = _mlp({**ACTIVATIONS, **THRESHOLDED}[name]()).double()
    x = _x()
    (y,) = from_torch(m, input_size=5).evaluate(x)
    with torch.no_grad():
        np.testing.assert_allclose(y.numpy(), m(x).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_onnx_import_computes_the_module_and_loads_as_a_proxy(name):
    m = _mlp(ACTIVATIONS[name]()).double()
    model = _onnx(m)
    x = _x()
    (y,) = from_onnx(model).evaluate(x)
    with torch.no_grad():
        np.testing.assert_array_equal(OnnxModule(model)(x).numpy(), y.numpy())
        # ONNX stores activation attributes (alpha, ...) as float32: 1e-6, not exact
        np.testing.assert_allclose(y.numpy(), m(x).numpy(), rtol=0, atol=1e-6)
    # onnxruntime agrees too (some of its double kernels compute in float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ort_y,) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(y.numpy(), ort_y, rtol=0, atol=1e-6)


def _softplus_pattern(beta: float, t: float, *, other_true: bool = False,
                      greater_out: bool = False) -> onnx.ModelProto:
    """``Linear(5, 4)`` then torch's softplus as its current (dynamo) ONNX exporter
    writes it: ``Where(Greater(b x, t), x, Softplus(b x) / b)``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 5)) * 2, "w"),
             numpy_helper.from_array(rng.normal(size=4), "b"),
             numpy_helper.from_array(np.array(beta), "beta"),
             numpy_helper.from_array(np.array(t), "t")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
             helper.make_node("Mul", ["z", "beta"], ["bz"]),
             helper.make_node("Softplus", ["bz"], ["sp"]),
             helper.make_node("Div", ["sp", "beta"], ["spb"]),
             helper.make_node("Greater", ["bz", "t"], ["gt"]),
             helper.make_node("Where", ["gt", "bz" if other_true else "z", "spb"], ["y"])]
    outs = [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 4])]
    if greater_out:
        outs.append(helper.make_tensor_value_info("gt", TensorProto.BOOL, ["N", 4]))
    graph = helper.make_graph(nodes, "softplus", [helper.make_tensor_value_info(
        "x", TensorProto.DOUBLE, ["N", 5])], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize(("beta", "t"), [(1.0, 20.0), (1.0, 0.5), (2.0, 1.0), (0.5, -0.5)])
def test_torch_softplus_pattern_imports_as_torch_computes_it(beta, t):
    model = _softplus_pattern(beta, t)
    lin = nn.Linear(5, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(onnx.numpy_helper.to_array(model.graph.initializer[0])))
        lin.bias.copy_(torch.tensor(onnx.numpy_helper.to_array(model.graph.initializer[1])))
    m = nn.Sequential(lin, nn.Softplus(beta=beta, threshold=t))
    g = from_onnx(model)
    assert [n.op for n in g.nodes].count("softplus") == 1
    x = _x(4000)
    _assert_computes(g, m, x)
    # exported again, it is the same pattern, and the same function
    from gridverify.ir.onnx_export import to_onnx

    again = from_onnx(to_onnx(g, None, batch_dim=None, dtype=np.float64))
    np.testing.assert_allclose(again.evaluate(x)[0].numpy(), g.evaluate(x)[0].numpy(),
                               rtol=0, atol=1e-12)


def test_other_comparisons_of_variables_are_refused():
    # where(b x > t, b x, softplus(b x) / b): branches apart at the threshold (a step)
    with pytest.raises(UnsupportedOpError, match="differ at x = t"):
        from_onnx(_softplus_pattern(2.0, 1.0, other_true=True))
    with pytest.raises(UnsupportedOpError, match="condition of a where"):
        from_onnx(_softplus_pattern(2.0, 1.0, greater_out=True))


def _attack(g, lo: torch.Tensor, hi: torch.Tensor, steps: int = 80) -> tuple[np.ndarray, ...]:
    """Min and max of every output found by projected gradient steps from random starts."""
    gen = torch.Generator().manual_seed(0)
    n = 64
    best_lo = np.full(g.output_size, math.inf)
    best_hi = np.full(g.output_size, -math.inf)
    for sign in (1.0, -1.0):
        x = (lo + (hi - lo) * torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64))
        for _ in range(steps):
            x.requires_grad_(True)
            (y,) = g.evaluate(x)
            (grad,) = torch.autograd.grad((sign * y).sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + 0.05 * (hi - lo) * grad.sign(), lo), hi)
        with torch.no_grad():
            (y,) = g.evaluate(x)
        best_lo = np.minimum(best_lo, y.min(0).values.numpy())
        best_hi = np.maximum(best_hi, y.max(0).values.numpy())
    return best_lo, best_hi


def _assert_bounds_hold(g) -> None:
    """Every bound method contains the outputs sampled and attacked over a fixed box."""
    lo = torch.tensor([-2.0, -1.0, 0.0, 0.5, -3.0], dtype=torch.float64)
    hi = lo + torch.tensor([1.0, 2.5, 0.3, 1.0, 4.0], dtype=torch.float64)
    xs = lo + (hi - lo) * torch.rand(20000, 5, generator=torch.Generator().manual_seed(1),
                                     dtype=torch.float64)
    (ys,) = g.evaluate(xs)
    a_lo, a_hi = _attack(g, lo, hi)
    s_lo = np.minimum(ys.min(0).values.numpy(), a_lo)
    s_hi = np.maximum(ys.max(0).values.numpy(), a_hi)
    for method in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=method)
        b_lo, b_hi = r.lower.reshape(-1).numpy(), r.upper.reshape(-1).numpy()
        assert np.all(b_lo <= s_lo + 1e-12) and np.all(s_hi <= b_hi + 1e-12), method


@pytest.mark.parametrize("name", sorted(ACTIVATIONS | THRESHOLDED))
def test_bounds_contain_sampled_and_attacked_outputs(name):
    m = _mlp({**ACTIVATIONS, **THRESHOLDED}[name](), seed=1).double()
    _assert_bounds_hold(from_torch(m, input_size=5) if name in THRESHOLDED
                        else from_onnx(_onnx(m)))


def test_functional_layer_norm_and_its_range():
    """``F.layer_norm`` with a weight only; a normalized entry never leaves
    ``[-sqrt(n - 1), sqrt(n - 1)]``, which bounds it even on a box where the
    variance can vanish (without the bias, the scale 1: the bound is that range)."""
    import torch.nn.functional as F

    class FL(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 4)

        def forward(self, x):  # noqa: ANN001, ANN202
            return F.layer_norm(self.lin(x), (4,), None, None, 1e-5)

    torch.manual_seed(2)
    m = FL().double().eval()
    g = from_torch(m, input_size=5)
    _assert_computes(g, m, _x(500))
    lo, hi = -torch.ones(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    for method in ("ibp", "crown"):
        r = compute_bounds(g, lo, hi, method=method)
        assert float(r.upper.max()) <= math.sqrt(3) * (1 + 1e-9)
        assert float(r.lower.min()) >= -math.sqrt(3) * (1 + 1e-9)


def test_clamp_intervals_stay_within_its_ends():
    """``clamp`` (hardtanh here) is built as a min of a max: interval arithmetic and
    CROWN keep its output in ``[lo, hi]`` however wide the input, and contain the
    sampled outputs."""
    torch.manual_seed(4)
    m = nn.Sequential(nn.Linear(5, 6), nn.Hardtanh(-0.5, 2.0)).double().eval()
    g = from_torch(m, input_size=5)
    lo, hi = -10 * torch.ones(5, dtype=torch.float64), 10 * torch.ones(5, dtype=torch.float64)
    xs = lo + (hi - lo) * torch.rand(20000, 5, generator=torch.Generator().manual_seed(0),
                                     dtype=torch.float64)
    with torch.no_grad():
        ys = m(xs).numpy()
    for method in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=method)
        b_lo, b_hi = r.lower.reshape(-1).numpy(), r.upper.reshape(-1).numpy()
        assert np.all(b_lo >= -0.5 - 1e-9) and np.all(b_hi <= 2.0 + 1e-9), method
        assert np.all(b_lo <= ys.min(0) + 1e-12) and np.all(ys.max(0) <= b_hi + 1e-12)


# ------------------------------------------- where(x > t, a, b) written in torch


class WhereActivations(nn.Module):
    """Activations users write with ``torch.where`` and comparisons (fx traces them as
    ``gt``/``lt``/``ge`` and ``where``), and the ones ATen decomposes into them."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        leaky = torch.where(h > 0, h, 0.1 * h)
        cap = torch.where(h < 1.0, h, 1.0 + 0.5 * (h - 1.0))  # kink at 1, branches swapped
        scaled = torch.where(2.0 * h - 1.0 >= 0, h * h, 0.5 * h + 0.25 - 0.5 + 0.25)  # at 0.5
        flipped = torch.where(0.3 > h, torch.expm1(h - 0.3), h - 0.3)  # celu-like, kink at 0.3
        const = torch.where(h > -1.0, h, torch.full_like(h, -1.0))  # max(h, -1)
        soft = torch.where(4.0 * h > 3.0, h, torch.log1p(torch.exp(4.0 * h)) / 4.0)
        return self.out(leaky + cap + scaled + flipped + const + soft + F.logsigmoid(h))


def _where_expected(h: torch.Tensor) -> torch.Tensor:
    return (F.leaky_relu(h, 0.1) + torch.where(h < 1, h, 0.5 * h + 0.5)
            + torch.where(h >= 0.5, h * h, 0.5 * h) + torch.where(h < 0.3, torch.expm1(h - 0.3),
                                                                   h - 0.3)
            + torch.clamp(h, min=-1.0) + F.softplus(h, beta=4.0, threshold=3.0) + F.logsigmoid(h))


def test_where_activations_import_as_torch_computes_them():
    from gridverify.ir import from_exported

    torch.manual_seed(2)
    m = WhereActivations().double().eval()
    x = _x(4000) * 2.0  # far past every threshold on both sides
    with torch.no_grad():
        want = m(x)
        np.testing.assert_allclose(m.out(_where_expected(m.lin(x))).numpy(), want.numpy(),
                                   rtol=0, atol=1e-12)  # the module is what it says
    ep = torch.export.export(m, (x[:3],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    graphs = {"fx": from_torch(m, input_size=5), "export": from_exported(ep),
              "core aten": from_exported(ep.run_decompositions())}
    for how, g in graphs.items():
        assert [n.op for n in g.nodes].count("softplus") >= 2, how  # the pattern, log1p(exp)
        np.testing.assert_allclose(g.evaluate(x)[0].numpy(), want.numpy(), rtol=0, atol=1e-11,
                                   err_msg=how)


def test_where_activation_bounds_contain_sampled_and_attacked_outputs():
    torch.manual_seed(3)
    _assert_bounds_hold(from_torch(WhereActivations().double().eval(), input_size=5))


def test_where_on_a_variable_that_is_an_affine_image_of_an_inner_one():
    """``z = logsigmoid(h)`` is ``-softplus(-h)``: the comparison ``z > t`` is one of the
    softplus, which no node of the module computes; the branches are functions of ``z``
    itself, and the import reads them so (it refused them)."""

    class LogSigmoidWhere(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = F.logsigmoid(self.lin(x))
            return torch.where(z > -0.3, 2.0 * z + 0.3, z)

    torch.manual_seed(5)
    m = LogSigmoidWhere().double().eval()
    g = from_torch(m, input_size=5)
    _assert_computes(g, m, _x(4000))
    _assert_bounds_hold(g)


class _Where(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.lin(x), x)


@pytest.mark.parametrize(("fn", "match"), [
    (lambda h, x: torch.where(h > 0, torch.ones_like(h), torch.zeros_like(h)), "differ at x = t"),
    (lambda h, x: torch.where(h > 0, h, x), "other than the compared"),
    (lambda h, x: torch.where(h > 0, h, h.mean(-1, keepdim=True) + 0.0 * h),
     "not elementwise"),
    (lambda h, x: (h > 0).double() * h, "condition of a where"),
    (lambda h, x: torch.where(h > x, h, x), "condition of a where"),
    (lambda h, x: torch.log1p(h * h), "log1p"),
])
def test_where_forms_gridverify_cannot_bound_are_refused(fn, match):
    with pytest.raises(UnsupportedOpError, match=match):
        from_torch(_Where(fn).double().eval(), input_size=4)


class WhereOnnx(WhereActivations):
    """The ``where`` activations ONNX spells as ``Where(Greater|Less|...(x, t), a, b)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.out(torch.where(h > 0, h, 0.1 * h)
                        + torch.where(h < 1.0, h, 1.0 + 0.5 * (h - 1.0))
                        + torch.where(2.0 * h - 1.0 >= 0, h * h, 0.5 * h)
                        + torch.where(0.3 > h, torch.exp(h - 0.3) - 1.0, h - 0.3)
                        + torch.where(-h <= 1.0, h, torch.full_like(h, -1.0)))


def test_onnx_where_activations_import_and_bound_soundly():
    torch.manual_seed(5)
    m = WhereOnnx().double().eval()
    g = from_onnx(_onnx(m))
    _assert_computes(g, m, _x(4000) * 2.0, atol=1e-11)
    _assert_bounds_hold(g)


def test_where_branches_rounded_apart_at_the_threshold():
    """Constants written to meet at t may miss by a rounding (0.1 * 3 != 0.3): still one
    continuous function, imported within half that gap; a real step is refused."""
    lin = nn.Linear(5, 4).double()
    ok = _Where(lambda h, x: torch.where(h > 3.0, 0.1 * h, 0.3 + 0.2 * (h - 3.0)))
    ok.lin = lin
    x = _x(4000) * 3.0
    with torch.no_grad():
        want = ok(x)
        g = from_torch(ok.double().eval(), input_size=5)
        np.testing.assert_allclose(g.evaluate(x)[0].numpy(), want.numpy(), rtol=0, atol=1e-15)
    step = _Where(lambda h, x: torch.where(h > 0.0, h + 1e-9, h))
    step.lin = lin
    with pytest.raises(UnsupportedOpError, match="differ at x = t by 1e-09"):
        from_torch(step.double().eval(), input_size=5)


class LogForms(nn.Module):
    """Softplus and logsigmoid spelled with log (as written by hand, or exported)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.out(F.logsigmoid(h) + torch.log(1 + torch.exp(h))
                        + torch.log1p(torch.exp(-h)) + torch.log(torch.sigmoid(2.0 * h))
                        + torch.log(torch.exp(h)))


def test_log_forms_import_through_every_route():
    from gridverify.ir import from_exported

    torch.manual_seed(6)
    m = LogForms().double().eval()
    x = _x(4000) * 2.0
    ep = torch.export.export(m, (x[:3],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    with torch.no_grad():
        want = m(x).numpy()
    for how, g in {"fx": from_torch(m, input_size=5), "export": from_exported(ep),
                   "core aten": from_exported(ep.run_decompositions()),
                   "onnx": from_onnx(_onnx(m))}.items():
        np.testing.assert_allclose(g.evaluate(x)[0].numpy(), want, rtol=0, atol=1e-11,
                                   err_msg=how)
    _assert_bounds_hold(from_onnx(_onnx(m)))
    bad = _Where(lambda h, x: torch.log(h * h + 1.0))
    with pytest.raises(UnsupportedOpError, match="log of a variable is supported only as"):
        from_torch(bad.double().eval(), input_size=4)
