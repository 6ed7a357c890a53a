"""Small real ONNX models and properties with known answers (test helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_onnx(
    path: Path, weights: list[tuple[np.ndarray, np.ndarray]], batch: int | str = 1
) -> Path:
    """Write an MLP (MatMul + Add, ReLU between layers) as a float32 ONNX model.

    ``weights`` are ``(W (out, in), b (out,))`` per layer; input ``x`` of shape
    ``(batch, in)``, output ``y`` of shape ``(batch, out)``.
    """
    nodes, inits = [], []
    cur = "x"
    n_in = weights[0][0].shape[1]
    for k, (W, b) in enumerate(weights):
        inits.append(numpy_helper.from_array(W.T.astype(np.float32), f"W{k}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{k}"))
        nodes.append(helper.make_node("MatMul", [cur, f"W{k}"], [f"m{k}"]))
        out = "y" if k == len(weights) - 1 else f"a{k}"
        nodes.append(helper.make_node("Add", [f"m{k}", f"b{k}"], [out]))
        if k < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{k}"]))
            cur = f"h{k}"
    n_out = weights[-1][0].shape[0]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_relu_weights() -> list[tuple[np.ndarray, np.ndarray]]:
    """y0 = relu(x0 + x1), y1 = relu(x0 - x1) (exact in float32)."""
    W1 = np.array([[1.0, 1.0], [1.0, -1.0]])
    return [(W1, np.zeros(2)), (np.eye(2), np.zeros(2))]


def random_weights(seed: int, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """A random MLP with layer sizes ``sizes`` (input first)."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(o, i)) / np.sqrt(i), rng.normal(size=o) * 0.1)
        for i, o in zip(sizes[:-1], sizes[1:])
    ]


def forward(weights, x: np.ndarray) -> np.ndarray:
    """The MLP in float64 numpy, x (B, n_in) -> (B, n_out)."""
    h = x
    for k, (W, b) in enumerate(weights):
        h = h @ W.T + b
        if k < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def ibp_upper(weights, lo: np.ndarray, hi: np.ndarray, c: np.ndarray) -> float:
    """An interval-arithmetic upper bound of ``c @ y`` over the box."""
    l, u = lo, hi
    for k, (W, b) in enumerate(weights):
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        l, u = Wp @ l + Wn @ u + b, Wp @ u + Wn @ l + b
        if k < len(weights) - 1:
            l, u = np.maximum(l, 0), np.maximum(u, 0)
    cp, cn = np.maximum(c, 0), np.minimum(c, 0)
    return float(cp @ u + cn @ l)


def vnnlib_text(lo: np.ndarray, hi: np.ndarray, n_out: int, disjuncts: list[list[str]]) -> str:
    """A property: the box and an ``or`` of ``and``s of output atoms (SMT text)."""
    lines = [f"(declare-const X_{i} Real)" for i in range(lo.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(lo.size):
        lines.append(f"(assert (>= X_{i} {float(lo[i])!r}))")
        lines.append(f"(assert (<= X_{i} {float(hi[i])!r}))")
    body = " ".join("(and " + " ".join(d) + ")" for d in disjuncts)
    lines.append(f"(assert (or {body}))")
    return "\n".join(lines) + "\n"


def tiny_acopf_proxy(case, hidden=(8,), activation="tanh", seed=0):  # noqa: ANN001, ANN201
    """An untrained seeded proxy of ``case`` with the clamp head (float64, eval mode)."""
    import torch

    from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits

    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, hidden, activation, True)
    lo, hi = case_limits(case)
    torch.manual_seed(seed)
    return ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
