"""from_onnx: every supported ONNX op against onnxruntime (float64, 1e-6), errors, speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from gridverify.errors import GraphError, GridverifyError, UnsupportedOpError
from gridverify.ir.onnx_import import from_onnx

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
RNG = np.random.default_rng(1234)


def make_model(nodes, inputs, outputs, inits=(), opset=17, elem=TP.DOUBLE):
    """A model from nodes; inputs/outputs are (name, shape) pairs, inits name -> array."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, elem, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_matches_ort(model, x_shape, n=6, low=-2.0, high=2.0, tol=1e-6):
    """IR import == onnxruntime on ``n`` random samples, one ORT call each.

    ``x_shape`` is the input's full shape in the file (batch 1 included).
    """
    g = from_onnx(model)
    name = model.graph.input[0].name
    xs = RNG.uniform(low, high, size=(n, *x_shape))
    ref = [run_ort(model, {name: xs[i]}) for i in range(n)]
    got = g.evaluate(torch.from_numpy(xs.reshape(n, -1)))
    assert len(got) == len(model.graph.output)
    for k, out in enumerate(got):
        want = np.stack([np.asarray(r[k]).reshape(-1) for r in ref])
        assert out.shape == want.shape
        np.testing.assert_allclose(out.numpy(), want, atol=tol, rtol=tol)
    return g


def const_node(name, arr):
    return helper.make_node("Constant", [], [name], name=name,
                            value=numpy_helper.from_array(np.asarray(arr), name + "_v"))


# --------------------------------------------------------------------- linear ops
@pytest.mark.parametrize("trans_a,trans_b,alpha,beta", [(0, 0, 1.0, 1.0), (0, 1, 0.5, 2.0),
                                                        (1, 1, -1.5, 0.0), (1, 0, 2.0, -1.0)])
def test_gemm_attributes(trans_a, trans_b, alpha, beta):
    w = RNG.normal(size=(4, 3))
    w = w.T if trans_b else w
    x_shape = [4, 1] if trans_a else [1, 4]  # transA of a column is a row
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], name="gemm", transA=trans_a,
                            transB=trans_b, alpha=alpha, beta=beta)
    model = make_model([node], [("x", x_shape)], [("y", [1, 3])],
                       {"W": w, "C": RNG.normal(size=(3,))})
    assert_matches_ort(model, tuple(x_shape))


def test_gemm_bad_weights_name_the_node():
    """A weight of the wrong shape or with NaN is refused naming the ONNX node (the
    importer used to leave it to the graph builder, which names its own nodes)."""
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], name="dense0", transB=1)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TP.DOUBLE, [1, 2])],
        [helper.make_tensor_value_info("y", TP.DOUBLE, [1, 2])],
        [numpy_helper.from_array(RNG.normal(size=(2, 3)), "W"),
         numpy_helper.from_array(np.zeros(2), "C")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(GraphError, match=r"'dense0' \(Gemm\): operands of shapes \[1, 2\] "
                                         r"and \[3, 2\]"):
        from_onnx(model)
    for bad, what in ((np.array([[1.0, np.nan], [0.0, 1.0]]), None), (None, np.inf)):
        w = bad if bad is not None else np.eye(2)
        c = np.array([0.0, what]) if what is not None else np.zeros(2)
        m = make_model([helper.make_node("Gemm", ["x", "W", "C"], ["y"], name="dense1")],
                       [("x", [1, 2])], [("y", [1, 2])], {"W": w, "C": c})
        kind = "weight" if bad is not None else "bias"
        with pytest.raises(GraphError, match=rf"'dense1' \(Gemm\): the {kind} holds NaN"):
            from_onnx(m)


def test_gemm_variable_right_operand():
    a = RNG.normal(size=(3, 4))
    model = make_model([helper.make_node("Gemm", ["A", "x"], ["y"], transB=1, alpha=0.7)],
                       [("x", [2, 4])], [("y", [3, 2])], {"A": a})
    assert_matches_ort(model, (2, 4))


@pytest.mark.parametrize("case", ["vec_mat", "mat_vec", "const_left", "batched", "var_var",
                                  "vec_vec", "rows", "broadcast_up", "flatten_neg_axis",
                                  "concat_axis1"])
def test_matmul_shapes(case):
    if case == "vec_mat":  # 1-D variable times matrix
        model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                           [("x", [5])], [("y", [3])], {"W": RNG.normal(size=(5, 3))})
        shape = (5,)
    elif case == "mat_vec":  # (1,5) variable times 1-D constant
        model = make_model([helper.make_node("MatMul", ["x", "v"], ["y"])],
                           [("x", [1, 5])], [("y", [1])], {"v": RNG.normal(size=(5,))})
        shape = (1, 5)
    elif case == "const_left":  # W @ x^T with x reshaped to a column
        model = make_model([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
                            helper.make_node("MatMul", ["W", "xt"], ["y"])],
                           [("x", [1, 5])], [("y", [4, 1])], {"W": RNG.normal(size=(4, 5))})
        shape = (1, 5)
    elif case == "batched":  # (1,2,3,4) @ (2,4,5) broadcast batch
        model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                           [("x", [1, 2, 3, 4])], [("y", [1, 2, 3, 5])],
                           {"W": RNG.normal(size=(2, 4, 5))})
        shape = (1, 2, 3, 4)
    elif case == "var_var":  # x (1,2,3) reshaped pieces multiplied: products of variables
        model = make_model([helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
                            helper.make_node("MatMul", ["x", "xt"], ["y"])],
                           [("x", [1, 2, 3])], [("y", [1, 2, 2])])
        shape = (1, 2, 3)
    elif case == "vec_vec":  # 1-D dot product with a constant
        model = make_model([helper.make_node("MatMul", ["v", "x"], ["y"])],
                           [("x", [4])], [("y", [])], {"v": RNG.normal(size=(4,))})
        shape = (4,)
    elif case == "broadcast_up":  # (1,2,4) @ (3,4,5): the constant has more leading axes
        model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                           [("x", [1, 2, 4])], [("y", [3, 2, 5])],
                           {"W": RNG.normal(size=(3, 4, 5))})
        shape = (1, 2, 4)
    elif case == "flatten_neg_axis":  # Flatten(axis=-1) of (1,2,3) is (2,3), then @ (3,4)
        model = make_model([helper.make_node("Flatten", ["x"], ["f"], axis=-1),
                            helper.make_node("MatMul", ["f", "W"], ["y"])],
                           [("x", [1, 2, 3])], [("y", [2, 4])], {"W": RNG.normal(size=(3, 4))})
        shape = (1, 2, 3)
    elif case == "concat_axis1":  # (1,2,3) and its negation joined along axis 1, then @
        model = make_model([helper.make_node("Neg", ["x"], ["n"]),
                            helper.make_node("Concat", ["x", "n"], ["c"], axis=1),
                            helper.make_node("MatMul", ["c", "W"], ["y"])],
                           [("x", [1, 2, 3])], [("y", [1, 4, 2])], {"W": RNG.normal(size=(3, 2))})
        shape = (1, 2, 3)
    else:  # several rows of the variable times a matrix
        model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])],
                           [("x", [3, 4])], [("y", [3, 2])], {"W": RNG.normal(size=(4, 2))})
        shape = (3, 4)
    assert_matches_ort(model, shape)


def test_large_constant_node_matrix_and_bias_chain():
    w1, w2 = RNG.normal(size=(20, 64)), RNG.normal(size=(64, 7))
    nodes = [const_node("W1", w1), const_node("b1", RNG.normal(size=(64,))),
             const_node("W2", w2),
             helper.make_node("MatMul", ["x", "W1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["o"]),
             helper.make_node("Sigmoid", ["o"], ["y"])]
    model = make_model(nodes, [("x", [1, 20])], [("y", [1, 7])])
    g = assert_matches_ort(model, (1, 20))
    assert sum(n.op == "linear" for n in g.nodes) == 2


# ------------------------------------------------------------------ elementwise
def test_elementwise_and_arithmetic():
    c = RNG.uniform(0.5, 2.0, size=(6,))
    nodes = [
        helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Cos", ["x"], ["c"]),
        helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Tanh", ["x"], ["t"]),
        helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Floor", ["x"], ["f"]),
        helper.make_node("Mul", ["s", "c"], ["sc"]),
        helper.make_node("Sub", ["e", "t"], ["et"]),
        helper.make_node("Sub", ["C", "x"], ["cx"]),
        helper.make_node("Div", ["x", "C"], ["xd"]),          # variable / constant
        helper.make_node("Div", ["C", "e"], ["cd"]),          # constant / variable
        helper.make_node("Div", ["sc", "e"], ["vv"]),         # variable / variable
        helper.make_node("Add", ["e", "C"], ["ep"]),
        helper.make_node("Sqrt", ["ep"], ["sq"]),
        helper.make_node("Pow", ["x", "three"], ["p3"]),
        helper.make_node("Pow", ["x", "two"], ["p2"]),
        helper.make_node("Pow", ["ep", "minus_two"], ["pm2"]),
        helper.make_node("Pow", ["ep", "half"], ["ph"]),
        helper.make_node("Sum", ["sc", "et", "cx", "xd"], ["sum1"]),
        helper.make_node("Max", ["s", "c"], ["mx"]), helper.make_node("Min", ["s", "C"], ["mn"]),
        helper.make_node("Clip", ["x", "lo", "hi"], ["cl"]),
        helper.make_node("Abs", ["x"], ["ab"]),
        helper.make_node("LeakyRelu", ["x"], ["lr"], alpha=0.1),
        helper.make_node("Concat", ["sum1", "cd", "vv", "sq", "p3", "p2", "pm2", "ph", "n", "f",
                                    "mx", "mn", "cl", "ab", "lr"], ["y"], axis=1),
    ]
    inits = {"C": c, "three": np.array(3.0), "two": np.array(2.0), "minus_two": np.array(-2.0),
             "half": np.array(0.5), "lo": np.array(-0.5), "hi": np.array(0.75)}
    model = make_model(nodes, [("x", [1, 6])], [("y", [1, 90])], inits)
    assert_matches_ort(model, (1, 6), n=20)


def test_where_equal_expand_constantofshape():
    mask = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    nodes = [
        helper.make_node("Equal", ["mask", "one"], ["cond"]),        # folded to a constant
        helper.make_node("ConstantOfShape", ["shp"], ["zeros"],
                         value=numpy_helper.from_array(np.array([0.25]))),
        helper.make_node("Where", ["cond", "x", "zeros"], ["w1"]),   # variable / constant
        helper.make_node("Sigmoid", ["x"], ["sx"]),
        helper.make_node("Where", ["cond", "sx", "x"], ["w2"]),      # variable / variable
        helper.make_node("Expand", ["bias", "shp3"], ["eb"]),        # constant expand
        helper.make_node("Unsqueeze", ["x", "ax1"], ["xu"]),         # (1,1,5)
        helper.make_node("Expand", ["xu", "shp3"], ["xe"]),          # variable expand (1,3,5)
        helper.make_node("Add", ["xe", "eb"], ["z"]),
        helper.make_node("Flatten", ["z"], ["zf"], axis=1),
        helper.make_node("Concat", ["w1", "w2", "zf"], ["y"], axis=1),
    ]
    inits = {"mask": mask, "one": np.array(1.0), "shp": np.array([1, 5], dtype=np.int64),
             "shp3": np.array([1, 3, 5], dtype=np.int64), "bias": RNG.normal(size=(3, 1)),
             "ax1": np.array([1], dtype=np.int64)}
    model = make_model(nodes, [("x", [1, 5])], [("y", [1, 25])], inits)
    assert_matches_ort(model, (1, 5))


# ------------------------------------------------------------------- structure
def test_shape_gather_concat_reshape_chain_dynamic_batch():
    """x.view(x.size(0), -1) the way exporters write it, with a symbolic batch."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["bu"]),
        helper.make_node("Concat", ["bu", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["xt", "shape"], ["flat_t"]),
        helper.make_node("Slice", ["flat_t", "st", "en", "axs", "stp"], ["sl"]),
        helper.make_node("Gather", ["flat", "idx"], ["ga"], axis=1),   # (1,2,2)
        helper.make_node("Reshape", ["ga", "shape"], ["ga2"]),
        helper.make_node("Unsqueeze", ["flat", "ax1"], ["unsq"]),     # (N,1,6)
        helper.make_node("Squeeze", ["unsq", "ax1"], ["sqz"]),        # (N,6)
        helper.make_node("Reshape", ["sqz", "shape0"], ["sq3"]),      # 0 copies the batch
        helper.make_node("Flatten", ["sq3"], ["sqf"]),
        helper.make_node("Identity", ["sqf"], ["idn"]),
        helper.make_node("Shape", ["x"], ["nx"], start=2),
        helper.make_node("Cast", ["nx"], ["nxf"], to=TP.DOUBLE),
        helper.make_node("Mul", ["ga2", "nxf"], ["gam"]),
        helper.make_node("Concat", ["flat", "sl", "gam", "idn", "cst"], ["y"], axis=1),
    ]
    inits = {"zero": np.array(0, dtype=np.int64), "ax0": np.array([0], dtype=np.int64),
             "minus1": np.array([-1], dtype=np.int64), "st": np.array([-1], dtype=np.int64),
             "en": np.array([-100], dtype=np.int64), "axs": np.array([1], dtype=np.int64),
             "stp": np.array([-2], dtype=np.int64),
             "idx": np.array([[5, 0], [2, -1]], dtype=np.int64),
             "shape0": np.array([0, 3, -1], dtype=np.int64), "ax1": np.array([1], dtype=np.int64)}
    nodes.insert(-1, const_node("cst", RNG.normal(size=(1, 2))))
    nodes.insert(-1, helper.make_node("Expand", ["cst", "bshape"], ["cstb"]))
    nodes.insert(-3, helper.make_node("Concat", ["bu", "two"], ["bshape"], axis=0))
    nodes[-1].input[4] = "cstb"
    inits["two"] = np.array([2], dtype=np.int64)
    model = make_model(nodes, [("x", ["N", 2, 3])], [("y", ["N", 6 + 3 + 4 + 6 + 2])], inits)
    assert_matches_ort(model, (1, 2, 3))
    # and the same rows at once through the runtime batch
    g = from_onnx(model)
    xs = RNG.normal(size=(4, 2, 3))
    want = run_ort(model, {"x": xs})[0]
    np.testing.assert_allclose(g.evaluate(torch.from_numpy(xs.reshape(4, -1)))[0].numpy(),
                               want.reshape(4, -1), atol=1e-9)


def test_squeeze_unsqueeze_slice_reduce_opset11_attributes():
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),            # (1,1,6)
        helper.make_node("Squeeze", ["u"], ["s"], axes=[0]),              # (1,6)
        helper.make_node("Slice", ["s", "st", "en"], ["sl"]),             # axes default
        helper.make_node("ReduceSum", ["s"], ["rs"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["sl", "rs"], ["y"], axis=1),
    ]
    inits = {"st": np.array([0, 1], dtype=np.int64), "en": np.array([1, 5], dtype=np.int64)}
    model = make_model(nodes, [("x", [1, 6])], [("y", [1, 5])], inits, opset=11)
    assert_matches_ort(model, (1, 6))


def test_reduce_scatter_batchnorm_opset13():
    nodes = [
        helper.make_node("Reshape", ["x", "s23"], ["x23"]),
        helper.make_node("ReduceSum", ["x23", "ax"], ["r"], keepdims=0),
        helper.make_node("ReduceMean", ["x23"], ["rm"], axes=[0], keepdims=1),
        helper.make_node("Flatten", ["rm"], ["rmf"]),
        helper.make_node("ConstantOfShape", ["s14"], ["z"],
                         value=numpy_helper.from_array(np.array([0.0]))),
        helper.make_node("ScatterElements", ["z", "sidx", "x"], ["sc"], axis=1,
                         reduction="add"),
        helper.make_node("ScatterElements", ["x", "sidx2", "upd"], ["sc2"], axis=1),
        helper.make_node("Reshape", ["x", "bshape"], ["xb"]),
        helper.make_node("BatchNormalization", ["xb", "g", "b", "m", "v"], ["bn"]),
        helper.make_node("Flatten", ["bn"], ["bnf"]),
        helper.make_node("Unsqueeze", ["r", "ax"], ["ru"]),
        helper.make_node("Concat", ["ru", "rmf", "sc", "sc2", "bnf"], ["y"], axis=1),
    ]
    inits = {"s23": np.array([2, 3], dtype=np.int64), "ax": np.array([0], dtype=np.int64),
             "s14": np.array([1, 4], dtype=np.int64),
             "sidx": np.array([[3, 0, 3, 1, 2, 0]], dtype=np.int64),
             "sidx2": np.array([[4, 1]], dtype=np.int64), "upd": RNG.normal(size=(1, 2)),
             "bshape": np.array([1, 3, 2], dtype=np.int64), "g": RNG.uniform(0.5, 2, 3),
             "b": RNG.normal(size=3), "m": RNG.normal(size=3), "v": RNG.uniform(0.5, 2, 3)}
    model = make_model(nodes, [("x", [1, 6])], [("y", [1, 3 + 3 + 4 + 6 + 6])], inits, opset=16)
    assert_matches_ort(model, (1, 6))


def test_multiple_outputs_and_keep_outputs():
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"]), helper.make_node("Sin", ["x"], ["b"]),
             helper.make_node("Identity", ["x"], ["c"])]
    model = make_model(nodes, [("x", [1, 4])], [("a", [1, 4]), ("b", [1, 4]), ("c", [1, 4])])
    g = assert_matches_ort(model, (1, 4))
    assert list(g.output_names) == ["a", "b", "c"]
    g6 = from_onnx(model, keep_outputs=6)
    assert list(g6.output_names) == ["a", "b"] and g6.output_size == 6
    x = torch.from_numpy(RNG.normal(size=(3, 4)))
    full = torch.cat(g.evaluate(x), dim=1)
    np.testing.assert_allclose(torch.cat(g6.evaluate(x), 1).numpy(), full[:, :6].numpy())
    assert from_onnx(model, keep_outputs=4).output_names == ("a",)
    with pytest.raises(GraphError, match="keep_outputs"):
        from_onnx(model, keep_outputs=13)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("op,domain", [("Softmax", ""), ("Hardmax", ""),
                                       ("MyCustomOp", "my.dom")])
def test_unsupported_op_names_op_and_node(op, domain):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node(op, ["r"], ["y"], name="the_bad_node", domain=domain)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [1, 3])])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    with pytest.raises(UnsupportedOpError) as err:
        from_onnx(model)
    assert err.value.op_type == op and err.value.node == "the_bad_node"
    assert op in str(err.value) and "the_bad_node" in str(err.value)
    assert isinstance(err.value, GridverifyError)


def test_unsupported_variable_condition_and_lstm(tmp_path):
    nodes = [helper.make_node("Greater", ["x", "zero"], ["c"], name="gt")]
    relu = make_model(nodes + [helper.make_node("Where", ["c", "x", "zero"], ["y"])],
                      [("x", [1, 3])], [("y", [1, 3])], {"zero": np.zeros(1)})
    x = torch.linspace(-2, 2, 12, dtype=torch.float64).reshape(4, 3)
    torch.testing.assert_close(from_onnx(relu).evaluate(x)[0], torch.relu(x))  # continuous
    step = make_model(nodes + [helper.make_node("Where", ["c", "one", "zero"], ["y"])],
                      [("x", [1, 3])], [("y", [1, 3])], {"zero": np.zeros(1), "one": np.ones(1)})
    with pytest.raises(UnsupportedOpError, match="Where.*differ at x = t"):
        from_onnx(step)
    bare = make_model(nodes, [("x", [1, 3])], [("c", [1, 3])], {"zero": np.zeros(1)})
    with pytest.raises(UnsupportedOpError, match="Greater.*condition of a where"):
        from_onnx(bare)
    lstm = helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="rnn", hidden_size=2)
    graph = helper.make_graph(
        [lstm], "t", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 1, 3])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)],
        [numpy_helper.from_array(np.zeros((1, 8, 3), np.float32), "W"),
         numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "R")])
    path = tmp_path / "lstm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    with pytest.raises(UnsupportedOpError) as err:
        from_onnx(path)
    assert (err.value.op_type, err.value.node) == ("LSTM", "rnn")


def test_bad_files_and_dynamic_feature_dims(tmp_path):
    with pytest.raises(GraphError, match="no such ONNX file"):
        from_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage-not-a-model" * 10)
    with pytest.raises(GraphError, match="bad.onnx"):
        from_onnx(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(GraphError, match="empty.onnx: not an ONNX model"):
        from_onnx(empty)
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", "M"])],
                       [("y", ["N", "M"])])
    with pytest.raises(GraphError, match="axis 1"):
        from_onnx(model)


def test_float32_file_batch_one_committed_model():
    """The committed tiny model (float32, batch fixed at 1) against onnxruntime."""
    path = DATA / "mlp_sigmoid_b1.onnx"
    model = onnx.load(path)
    g = from_onnx(path)
    xs = RNG.uniform(-1, 1, size=(5, 4)).astype(np.float32)
    want = np.concatenate([run_ort(model, {"x": xs[i:i + 1]})[0] for i in range(5)])
    got = g.evaluate(torch.from_numpy(xs.astype(np.float64)))[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


# ----------------------------------------------------------------------- speed
def _mlp_onnx(sizes, path):
    nodes, inits, prev = [], {}, "x"
    for k in range(len(sizes) - 1):
        inits[f"W{k}"] = RNG.normal(size=(sizes[k + 1], sizes[k])).astype(np.float32) * 0.05
        inits[f"b{k}"] = RNG.normal(size=(sizes[k + 1],)).astype(np.float32)
        nodes.append(helper.make_node("Gemm", [prev, f"W{k}", f"b{k}"], [f"h{k}"], transB=1))
        act = "Sigmoid" if k == len(sizes) - 2 else "Relu"
        nodes.append(helper.make_node(act, [f"h{k}"], [f"a{k}"]))
        prev = f"a{k}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    model = make_model(nodes, [("x", [1, sizes[0]])], [("y", [1, sizes[-1]])], inits,
                       elem=TP.FLOAT)
    onnx.save(model, path)
    return sum(v.size for v in inits.values())


@pytest.mark.parametrize("sizes", [(402, 256, 256, 512, 738), (402, 512, 512, 512, 738)])
def test_startup_time_large_mlp(tmp_path, sizes):
    path = tmp_path / "mlp.onnx"
    n_params = _mlp_onnx(sizes, path)
    from_onnx(path)  # warm imports
    # One torch thread: on a shared, overloaded 2-core machine torch's thread pool
    # (not the importer) dominates otherwise.  Best of three runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            g = from_onnx(path)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    elapsed = min(times)
    print(f"from_onnx {sizes} ({n_params} params): {elapsed:.3f} s")
    assert n_params > 400_000
    assert elapsed < 1.0  # typically 0.1-0.2 s
    x = RNG.uniform(-1, 1, size=(1, sizes[0])).astype(np.float32)
    want = run_ort(onnx.load(path), {"x": x})[0]
    got = g.evaluate(torch.from_numpy(x.astype(np.float64)))[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("opset,kw,with_input,sizes", [
    (13, {}, True, (2, 4)), (11, {"split": [2, 4]}, False, (2, 4)),
    (18, {"num_outputs": 2}, False, (3, 3)), (13, {}, False, (3, 3))])
def test_split_forms(opset, kw, with_input, sizes):
    split = helper.make_node("Split", ["x", "sp"] if with_input else ["x"], ["a", "b"], axis=-1,
                             **kw)
    nodes = [split, helper.make_node("Sin", ["a"], ["y1"]), helper.make_node("Cos", ["b"], ["y2"])]
    model = make_model(nodes, [("x", [1, 6])], [("y1", [1, sizes[0]]), ("y2", [1, sizes[1]])],
                       {"sp": np.array([2, 4])} if with_input else {}, opset=opset)
    assert_matches_ort(model, (1, 6))


def test_mostly_zero_constant_matrix_becomes_sparse_linear():
    w = np.zeros((400, 300))
    idx = RNG.integers(0, w.size, size=900)
    w.flat[idx] = RNG.normal(size=900)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["h"]),
                        helper.make_node("Add", ["h", "b"], ["y"])],
                       [("x", [1, 400])], [("y", [1, 300])], {"W": w, "b": RNG.normal(size=300)})
    g = assert_matches_ort(model, (1, 400))
    assert "sparse_linear" in {n.op for n in g.nodes} and "linear" not in {n.op for n in g.nodes}


@pytest.mark.parametrize("approx", ["none", "tanh"])
def test_gelu_and_erf_match_onnxruntime(approx):
    """``Gelu`` (opset 20) and ``Erf`` (the pattern our proxy exporter writes), float32."""
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
             helper.make_node("Gelu", ["h"], ["g"], approximate=approx),
             helper.make_node("Erf", ["x"], ["e"]),
             helper.make_node("Concat", ["g", "e"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TP.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TP.FLOAT, [None, 7])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    g = from_onnx(model)
    x = (RNG.normal(size=(50, 3)) * 3).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    got = g.evaluate_flat(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)


def test_where_of_a_negated_comparison():
    """Older opsets write ``x >= t`` as ``Not(Less(x, t))``."""
    nodes = [helper.make_node("Less", ["x", "one"], ["lt"]),
             helper.make_node("Not", ["lt"], ["ge"]),
             helper.make_node("Mul", ["x", "half"], ["hx"]),
             helper.make_node("Add", ["hx", "half"], ["cap"]),
             helper.make_node("Where", ["ge", "cap", "x"], ["y"])]
    model = make_model(nodes, [("x", [1, 3])], [("y", [1, 3])],
                       {"one": np.ones(1), "half": np.full(1, 0.5)})
    x = torch.linspace(-3, 3, 12, dtype=torch.float64).reshape(4, 3)
    want = torch.where(x >= 1.0, 0.5 * x + 0.5, x)
    torch.testing.assert_close(from_onnx(model).evaluate(x)[0], want)


def test_an_in_memory_model_with_unloaded_external_weights_is_refused(tmp_path, monkeypatch):
    """Its tensors would be read relative to the current folder (another model's file
    of the same name there): refused in one line naming the tensor and the file; by
    its path the model reads its own weights."""
    from gridverify.errors import GraphError
    from gridverify.ir import from_onnx

    def save(w: np.ndarray, folder: Path) -> Path:
        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
            [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 4])],
            [numpy_helper.from_array(w, "W")])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        folder.mkdir()
        onnx.save_model(m, folder / "m.onnx", save_as_external_data=True,
                        location="m.onnx.data", size_threshold=0)
        return folder / "m.onnx"

    path = save(np.eye(4, dtype=np.float32), tmp_path / "model")
    save(-7 * np.eye(4, dtype=np.float32), tmp_path / "other")
    monkeypatch.chdir(tmp_path / "other")
    bare = onnx.load(path, load_external_data=False)
    for given in (bare, bare.SerializeToString()):
        with pytest.raises(GraphError, match=r"tensor 'W' is stored in the external file "
                                             r"'m.onnx.data', which was not loaded"):
            from_onnx(given)
    y = from_onnx(path).evaluate_flat(torch.ones(1, 4, dtype=torch.float64))
    assert y.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert from_onnx(onnx.load(path)).evaluate_flat(torch.ones(1, 4, dtype=torch.float64)
                                                    ).tolist() == [[1.0, 1.0, 1.0, 1.0]]


def test_mean_of_several_inputs_with_broadcasting() -> None:
    """``Mean`` is the sum of its inputs over their count (numpy broadcasting), as
    onnxruntime computes it, and its bounds bracket it."""
    from gridverify.bounds import compute_bounds
    from gridverify.ir import from_onnx

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w")
    c = numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "c")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Mean", ["h", "r", "c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 4])], [w, c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    graph = from_onnx(m)
    x = rng.uniform(-1, 1, size=(50, 3)).astype(np.float32)  # no float64 Mean kernel
    (ref,) = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    got = graph.evaluate_flat(torch.from_numpy(x).double()).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    b = compute_bounds(graph, -np.ones(3), np.ones(3), method="crown")
    assert (b.lower.numpy() <= got.min(0)).all() and (got.max(0) <= b.upper.numpy()).all()
