"""Importer QA fixes: exact semantics or a one-line refusal naming the op and node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.errors import GraphError, UnsupportedOpError
from gridverify.ir import from_onnx, from_torch

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as T  # noqa: E402
from onnx import helper  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402


def _model(nodes, x_shape, y_shape, inits=(), opset=17, x_type=T.DOUBLE, inputs=None):
    inputs = inputs or [helper.make_tensor_value_info("x", x_type, x_shape)]
    g = helper.make_graph(nodes, "g", inputs,
                          [helper.make_tensor_value_info("y", T.DOUBLE, y_shape)], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _ev(m, x):
    return from_onnx(m).evaluate_flat(torch.tensor(x, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("axes_input", [False, True])
def test_b1_reducemean_noop_with_empty_axes_is_identity(axes_input):
    ins = ["x", "ax"] if axes_input else ["x"]
    inits = [nh.from_array(np.zeros(0, np.int64), "ax")] if axes_input else []
    m = _model([helper.make_node("ReduceMean", ins, ["y"], noop_with_empty_axes=1)],
               [1, 4], [1, 4], inits, opset=18)
    x = np.array([[1.0, 2.0, 3.0, 10.0]])
    np.testing.assert_array_equal(_ev(m, x), x)
    m2 = _model([helper.make_node("ReduceMean", ["x", "a"], ["y"], keepdims=0)], [1, 4], [1],
                [nh.from_array(np.array([1]), "a")], opset=18)
    np.testing.assert_allclose(_ev(m2, x), [[4.0]])


def test_b2_training_mode_batch_norm_is_refused():
    p = [nh.from_array(np.ones(2), n) for n in ("s", "v")] + \
        [nh.from_array(np.zeros(2), n) for n in ("b", "m")]
    m = _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                 training_mode=1, name="bn")], [1, 2, 3], [1, 2, 3], p, opset=15)
    with pytest.raises(UnsupportedOpError, match="'bn'.*training-mode batch norm"):
        from_onnx(m)


def test_b3_dropout_in_training_mode_is_refused():
    def model(t):
        inputs = [helper.make_tensor_value_info("x", T.DOUBLE, [1, 4])]
        if t is None:
            inputs.append(helper.make_tensor_value_info("t", T.BOOL, []))
        inits = [nh.from_array(np.array(0.5), "r")]
        if t is not None:
            inits.append(nh.from_array(np.array(t), "t"))
        return _model([helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="dr")], None,
                      [1, 4], inits, opset=13, inputs=inputs)

    x = np.ones((1, 4))
    np.testing.assert_array_equal(_ev(model(False), x), x)
    with pytest.raises(UnsupportedOpError, match="'dr'.*training mode"):
        from_onnx(model(True))
    with pytest.raises((UnsupportedOpError, GraphError)):
        from_onnx(model(None))  # a fed training_mode (also a bool input: refused)


def test_b5_inputs_with_initializers_and_zero_input_graphs():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [1, 4], [1, 4],
               [nh.from_array(-np.ones((1, 4)), "x")])
    with pytest.raises(GraphError, match="no variable input.*'x'.*initializer"):
        from_onnx(m)
    with pytest.raises(GraphError, match="no variable input"):
        compute_bounds(m, torch.zeros(4), torch.ones(4), method="crown")
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    b.output(b.constant(torch.ones(2, dtype=torch.float64)), "y")
    with pytest.raises(GraphError, match="no inputs"):
        compute_bounds(b.build(), torch.zeros(0), torch.zeros(0), method="ibp")


def test_b6_input_without_shape_is_refused():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], None, [1, 4])
    with pytest.raises(GraphError, match="input 'x' has no shape"):
        from_onnx(m)


X_N = helper.make_tensor_value_info("x", T.DOUBLE, ["N", 4])


def _batch_model(nodes, y_shape, inits):
    return _model(nodes, None, y_shape, inits, inputs=[X_N])


@pytest.mark.parametrize("label", ["gather0", "slice0", "reshape_merge", "transpose",
                                   "concat0", "unsqueeze0", "flatten0", "matmul_right"])
def test_b4_onnx_ops_across_the_batch_axis_are_refused(label):
    i64 = lambda v, n: nh.from_array(np.array(v, dtype=np.int64), n)  # noqa: E731
    cases = {
        "gather0": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], [i64(0, "i")]),
        "slice0": ([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])],
                   [i64([0], "s"), i64([1], "e"), i64([0], "a")]),
        "reshape_merge": ([helper.make_node("Reshape", ["x", "s"], ["r"]),
                           helper.make_node("ReduceSum", ["r", "a"], ["y"])],
                          [i64([1, -1, 4], "s"), i64([1], "a")]),
        "transpose": ([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], []),
        "concat0": ([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], []),
        "unsqueeze0": ([helper.make_node("Unsqueeze", ["x", "a"], ["y"])], [i64([0], "a")]),
        "flatten0": ([helper.make_node("Flatten", ["x"], ["y"], axis=0)], []),
        "matmul_right": ([helper.make_node("MatMul", ["w", "x"], ["y"])],
                         [nh.from_array(np.ones((3, 1)), "w")]),
    }
    nodes, inits = cases[label]
    with pytest.raises(UnsupportedOpError, match="batch"):  # a proxy: evaluated on batches
        from_onnx(_batch_model(nodes, [1, 4], inits), batch_axis=True)


def test_a_graph_read_for_one_sample_keeps_its_batch_one_function():
    """Without ``batch_axis`` (vnncomp run, compute_bounds: one sample, as VNN-COMP runs
    a model) a symbolic leading axis is read at size 1 and a graph that merges it (a
    literal Reshape to [-1]) imports as the model's function of one sample."""
    ort = pytest.importorskip("onnxruntime")
    i64 = lambda v, n: nh.from_array(np.array(v, dtype=np.int64), n)  # noqa: E731
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["f"]),
             helper.make_node("Reshape", ["f", "row"], ["g"]),
             helper.make_node("MatMul", ["g", "w"], ["y"])]
    w = np.arange(8.0).reshape(4, 2)
    m = _batch_model(nodes, [1, 2], [i64([-1], "flat"), i64([1, 4], "row"),
                                     nh.from_array(w, "w")])
    with pytest.raises(UnsupportedOpError, match="batch"):
        from_onnx(m, batch_axis=True)
    x = np.array([[0.5, -1.0, 2.0, 0.25]])
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(_ev(m, x), want, rtol=1e-12)


def test_b4_onnx_batch_preserving_reshapes_still_import():
    # x.view(x.size(0), -1) as exporters write it: Shape -> Gather -> Unsqueeze -> Concat
    i64 = lambda v, n: nh.from_array(np.array(v, dtype=np.int64), n)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "m1", "two"], ["tgt"], axis=0),
             helper.make_node("Reshape", ["x", "tgt"], ["r"]),
             helper.make_node("ReduceSum", ["r", "ax2"], ["s"], keepdims=0),
             helper.make_node("Reshape", ["s", "flat"], ["y"]),
             ]
    inits = [i64(0, "zero"), i64([0], "ax0"), i64([-1], "m1"), i64([2], "two"),
             i64([2], "ax2"), i64([-1, 2], "flat")]
    m = _batch_model(nodes, ["N", 2], inits)
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(_ev(m, x), x.reshape(3, 2, 2).sum(-1))


def test_b4_torch_batch_axis_ops_are_refused():
    class Slice0(nn.Module):
        def forward(self, x):
            return x[0:1] * 2 + x

    class Gram(nn.Module):
        def forward(self, x):
            return (x.T @ x).flatten()

    class Merge(nn.Module):
        def forward(self, x):
            return x.reshape(1, -1).sum(1, keepdim=True)

    for mod in (Slice0(), Gram(), Merge()):
        with pytest.raises(UnsupportedOpError, match="batch"):
            from_torch(mod, example=torch.zeros(1, 4, dtype=torch.float64))

    class Keeps(nn.Module):
        def forward(self, x):
            h = x.view(x.size(0), 2, 2)
            return (h.transpose(1, 2) @ h).flatten(1) + x[:, :1] + x[..., 1:2]

    x = torch.randn(5, 4, dtype=torch.float64)
    g = from_torch(Keeps(), example=x[:1])
    torch.testing.assert_close(g.evaluate_flat(x), Keeps()(x))


def test_b7_torch_batchnorm2d_3d_and_functional():
    torch.manual_seed(0)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 2)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.c(x.reshape(-1, 1, 3, 3))).flatten(1)

    class F3(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm3d(2)

        def forward(self, x):
            h = self.bn(x.reshape(-1, 2, 1, 2, 2))
            return torch.nn.functional.batch_norm(
                h, self.bn.running_mean * 0.5, self.bn.running_var + 1.0,
                self.bn.weight, None, False, 0.1, 1e-3).flatten(1)

    for mod, n in ((M(), 9), (F3(), 8)):
        for p in mod.modules():
            if isinstance(p, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():
                    p.running_mean.uniform_(-1, 1)
                    p.running_var.uniform_(0.5, 2)
                    p.weight.uniform_(0.5, 2)
        mod = mod.double().eval()
        x = torch.randn(4, n, dtype=torch.float64)
        g = from_torch(mod, example=x[:1])
        torch.testing.assert_close(g.evaluate_flat(x), mod(x), atol=1e-12, rtol=1e-12)
    with pytest.raises(UnsupportedOpError, match="training"):
        from_torch(M().double().train(), example=torch.zeros(1, 9, dtype=torch.float64))


def test_b8_opset_range():
    b = nh.from_array(np.array([10.0, 20.0, 30.0]), "b")
    m6 = _model([helper.make_node("Add", ["x", "b"], ["y"], broadcast=1, axis=1)],
                [1, 3, 3], [1, 3, 3], [b], opset=6)
    with pytest.raises(GraphError, match="opset 6"):
        from_onnx(m6)
    m99 = _model([helper.make_node("Relu", ["x"], ["y"])], [1, 3], [1, 3], opset=99)
    with pytest.raises(GraphError, match="opset 99"):
        from_onnx(m99)
    m7 = _model([helper.make_node("Add", ["x", "b"], ["y"], broadcast=1)],
                [1, 3], [1, 3], [b], opset=7)
    with pytest.raises(UnsupportedOpError, match="broadcast"):
        from_onnx(m7)


@pytest.mark.parametrize("to", [T.FLOAT16, T.BFLOAT16])
def test_b9_half_precision_casts_are_refused(to):
    m = _model([helper.make_node("Cast", ["x"], ["h"], to=to, name="c"),
                helper.make_node("Cast", ["h"], ["y"], to=T.DOUBLE)], [1, 1], [1, 1])
    with pytest.raises(UnsupportedOpError, match="'c'.*cast of a variable"):
        from_onnx(m)
    m32 = _model([helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT)], [1, 1], [1, 1])
    np.testing.assert_array_equal(_ev(m32, [[1.0004]]), [[1.0004]])  # float32: exact


@pytest.mark.parametrize(("op", "ref"), [
    ("HardSigmoid", lambda x: np.clip(float(np.float32(0.2)) * x + 0.5, 0, 1)),
    ("LeakyRelu", lambda x: np.where(x > 0, x, float(np.float32(0.01)) * x)),
])
def test_b10_float_attribute_defaults_are_float32(op, ref):
    m = _model([helper.make_node(op, ["x"], ["y"])], [1, 2], [1, 2])
    x = np.array([[-2.3, 0.7]])
    np.testing.assert_array_equal(_ev(m, x), ref(x))


def test_b11_clip_min_above_max_is_max():
    m = _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="myclip")], [1, 3],
               [1, 3], [nh.from_array(np.array(0.8), "lo"), nh.from_array(np.array(-0.5), "hi")],
               opset=13)
    np.testing.assert_array_equal(_ev(m, [[-1.0, 0.0, 1.0]]), [[-0.5, -0.5, -0.5]])


def test_b12_export_fallback_uses_the_example_dtype(capfd):
    w = torch.randn(2, 2, dtype=torch.float64)

    class A(nn.Module):
        def forward(self, x):
            return torch.bmm(x.reshape(-1, 2, 2), w.expand(x.shape[0], 2, 2)).flatten(1)

    x = torch.randn(3, 4, dtype=torch.float64)
    g = from_torch(A(), example=torch.zeros(1, 4, dtype=torch.float64))
    torch.testing.assert_close(g.evaluate_flat(x), A()(x))
    assert "Traceback" not in capfd.readouterr().err


def test_minor_structural_errors():
    m = _model([helper.make_node("Concat", ["x", "x"], ["y"], name="cc")], [1, 2], [1, 4])
    with pytest.raises(GraphError, match="'cc'.*missing attribute 'axis'"):
        from_onnx(m)
    for t in (T.INT64, T.STRING):
        m = _model([helper.make_node("Identity", ["x"], ["y"])], [1, 2], [1, 2], x_type=t)
        with pytest.raises(GraphError, match="input 'x' has element type"):
            from_onnx(m)
    x = helper.make_tensor_value_info("x", T.DOUBLE, [1, 2])
    m = _model([helper.make_node("Relu", ["x"], ["y"])], None, [1, 2], inputs=[x, x])
    with pytest.raises(GraphError, match="listed twice"):
        from_onnx(m)
    m = _model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])],
               [1, 2], [1, 2])
    with pytest.raises(GraphError, match="writes 'y', which is already defined"):
        from_onnx(m)


def test_b4_static_batch_reshape_with_batch_axis():
    def model(shape):
        return _model([helper.make_node("Reshape", ["x", "s"], ["y"])], shape, [1, 4],
                      [nh.from_array(np.array([1, -1]), "s")])

    assert from_onnx(model([1, 2, 2]), batch_axis=True).output_size == 4  # x.view(B, -1)
    with pytest.raises(UnsupportedOpError, match="merges or moves the batch axis"):
        from_onnx(model(["N", 2, 2]), batch_axis=True)
    assert from_onnx(model(["N", 2, 2])).output_size == 4  # one sample: [1, 4]
