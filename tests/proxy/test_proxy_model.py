"""The proxy MLP: folding, clamp head, ONNX export (torch vs onnxruntime vs ONNX->torch)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.errors import ProxyError, UnsupportedOpError
from gridverify.ir import from_torch
from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits, module_from_arrays
from gridverify.proxy.onnx_export import proxy_to_onnx
from gridverify.proxy.onnx_torch import OnnxModule
from gridverify.proxy.options import ACTIVATIONS


def _training_module(case, act: str, clamp: bool, seed: int = 0) -> ProxyMLP:
    rng = np.random.default_rng(seed)
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (16, 12), act, clamp)
    lo, hi = case_limits(case)
    n_lin = arch.output_size - arch.n_clamped
    torch.manual_seed(seed)
    return ProxyMLP(
        arch,
        head_lo=lo if clamp else None,
        head_hi=hi if clamp else None,
        in_shift=rng.normal(size=arch.input_size),
        in_scale=rng.uniform(0.05, 2.0, arch.input_size),
        out_shift=rng.normal(size=n_lin),
        out_scale=rng.uniform(0.05, 2.0, n_lin),
        dtype=torch.float64,
    )


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("clamp", [True, False])
def test_fold_is_exact_in_float64(case14, act, clamp):
    m = _training_module(case14, act, clamp)
    f = m.folded(torch.float64)
    assert f.is_folded and not m.is_folded
    x = torch.tensor(np.random.default_rng(1).normal(size=(200, m.arch.input_size)))
    with torch.no_grad():
        assert torch.allclose(m(x), f(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("clamp", [True, False])
def test_onnx_forms_agree(case14, act, clamp):
    deployed = _training_module(case14, act, clamp).folded(torch.float32)
    m = proxy_to_onnx(deployed, case_name=case14.name, case_hash=case14.content_hash)
    sess = ort.InferenceSession(m.SerializeToString())
    x = np.random.default_rng(2).normal(size=(1000, deployed.arch.input_size))
    with torch.no_grad():
        y_t = deployed.double()(torch.from_numpy(x)).numpy()
        y_o = OnnxModule(m)(torch.from_numpy(x)).numpy()
    y_r = sess.run(None, {"loads": x.astype(np.float32)})[0]
    assert np.max(np.abs(y_t - y_o)) < 1e-7  # same float32 weights, float64 arithmetic
    assert np.max(np.abs(y_t - y_r)) < 1e-5  # onnxruntime computes in float32
    # the graph the bounds see, from the module itself, is the module
    (y_g,) = from_torch(deployed.double(), input_size=deployed.arch.input_size).evaluate(
        torch.from_numpy(x))
    assert np.max(np.abs(y_t - y_g.numpy())) < 1e-12


@settings(max_examples=60, deadline=None)
@given(
    scale=st.floats(min_value=0.0, max_value=1e4),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_clamp_head_keeps_limits_for_any_input(case14, scale, seed):
    """pg, qg, vm stay in their limits even far outside the training region."""
    m = _training_module(case14, "relu", True, seed=seed % 7).folded(torch.float64)
    x = torch.tensor(np.random.default_rng(seed).normal(size=(64, m.arch.input_size)) * scale)
    with torch.no_grad():
        y = m(x).numpy()
    lo, hi = case_limits(case14)
    nc = m.arch.n_clamped
    assert np.all(y[:, :nc] >= lo - 1e-12) and np.all(y[:, :nc] <= hi + 1e-12)
    assert np.all(np.isfinite(y))


def test_clamp_head_needs_finite_limits(case14):
    arch = ProxyArch(case14.n_load, case14.n_gen, case14.n_bus, (4,), "relu", True)
    lo, hi = case_limits(case14)
    hi = hi.copy()
    hi[0] = np.inf
    with pytest.raises(ProxyError, match="finite"):
        ProxyMLP(arch, head_lo=lo, head_hi=hi)


def test_arch_validation():
    with pytest.raises(ProxyError, match="activation"):
        ProxyArch(2, 1, 3, (4,), "swish", False)
    with pytest.raises(ProxyError, match="hidden"):
        ProxyArch(2, 1, 3, (), "relu", False)
    with pytest.raises(ProxyError, match="n_bus"):
        ProxyArch(2, 1, 0, (4,), "relu", False)
    with pytest.raises(ProxyError, match=r"missing field 'n_gen' \(an architecture is "
                                         r"\{\"n_load\": L, \"n_gen\": G"):
        ProxyArch.from_dict({"n_load": 2, "n_bus": 3, "hidden": [4], "activation": "relu"})
    a = ProxyArch(2, 1, 3, (4, 5), "tanh", True)
    assert ProxyArch.from_dict(a.to_dict()) == a


def test_module_from_arrays_checks_shapes_and_values():
    arch = ProxyArch(2, 1, 3, (4,), "relu", False)
    good = {k: v.numpy() for k, v in ProxyMLP(arch).state_dict().items()}
    module_from_arrays(arch, good, source="t")
    bad = dict(good)
    bad["layers.0.weight"] = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(ProxyError, match=r"layers.0.weight has shape \(5, 4\)"):
        module_from_arrays(arch, bad, source="t")
    bad = dict(good)
    bad["layers.1.bias"] = np.full(8, np.nan, dtype=np.float32)
    with pytest.raises(ProxyError, match="NaN"):
        module_from_arrays(arch, bad, source="t")
    bad = dict(good)
    del bad["layers.1.bias"]
    with pytest.raises(ProxyError, match="lack layers.1.bias"):
        module_from_arrays(arch, bad, source="t")
    seq = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 8))
    m = module_from_arrays(arch, seq.state_dict(), source="t")
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(m(x), seq.double()(x))


def test_onnx_module_rejects_unknown_ops():
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Softmax", ["x"], ["y"], name="sm")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    with pytest.raises(UnsupportedOpError, match="Softmax.*sm"):
        OnnxModule(m)


def test_onnx_module_state_identifies_the_file(case14):
    """Two ONNX proxies differ in model_hash (the certificate's provenance) exactly when
    their files differ."""
    from gridverify.certify import model_hash

    a = _training_module(case14, "relu", False, seed=1).folded(torch.float32)
    b = _training_module(case14, "relu", False, seed=2).folded(torch.float32)
    ma = proxy_to_onnx(a, case_name=case14.name, case_hash=case14.content_hash)
    mb = proxy_to_onnx(b, case_name=case14.name, case_hash=case14.content_hash)
    assert model_hash(OnnxModule(ma)) == model_hash(OnnxModule(ma))
    assert model_hash(OnnxModule(ma)) != model_hash(OnnxModule(mb))


@pytest.mark.parametrize(("field", "value", "match"), [
    ("clamp_head", "no", r"arch field clamp_head: must be a JSON boolean \(true or false\), "
                         r"got 'no'"),
    ("clamp_head", 1, "arch field clamp_head: must be a JSON boolean"),
    ("clamp_head", None, "arch field clamp_head: must be a JSON boolean"),
    ("n_load", 2.0, r"arch field n_load: must be a positive integer, got 2\.0"),
    ("n_gen", "1", "arch field n_gen: must be a positive integer"),
    ("n_bus", True, "arch field n_bus: must be a positive integer"),
    ("hidden", [4.0], "arch field hidden: must be positive integers"),
    ("hidden", ["4"], "arch field hidden: must be positive integers"),
    ("hidden", 4, "arch field hidden: must be a list of positive integers"),
    ("activation", 1, r"arch field activation: must be a string \(one of relu"),
    ("activation", ["relu"], "arch field activation: must be a string"),
    ("version", True, "field version: unsupported version True"),
    ("clamphead", True, "unknown field 'clamphead' \\(known: activation, clamp_head"),
])
def test_arch_fields_must_have_their_json_types(field, value, match):
    """A field of the wrong JSON type is an error naming the source and the field
    (never taken by truthiness: ``"clamp_head": "no"`` is no ``true``)."""
    good = ProxyArch(2, 1, 3, (4,), "tanh", False).to_dict()
    with pytest.raises(ProxyError, match=match) as info:
        ProxyArch.from_dict({**good, field: value}, source="dir/arch.json")
    assert str(info.value).startswith("dir/arch.json: ") and "\n" not in str(info.value)
    assert ProxyArch.from_dict(good) == ProxyArch(2, 1, 3, (4,), "tanh", False)
    assert ProxyArch.from_dict({**good, "clamp_head": True}).clamp_head is True
    without = {k: v for k, v in good.items() if k != "clamp_head"}
    assert ProxyArch.from_dict(without).clamp_head is False  # absent: no clamp head


def test_arch_constructor_checks_clamp_head_and_activation_types():
    with pytest.raises(ProxyError, match="arch field clamp_head: must be a boolean"):
        ProxyArch(2, 1, 3, (4,), "relu", "no")
    with pytest.raises(ProxyError, match="arch field activation: must be a string"):
        ProxyArch(2, 1, 3, (4,), None, False)
    a = ProxyArch(2, 1, 3, (4,), "relu", np.bool_(True))  # a numpy flag is a boolean
    assert a.clamp_head is True and ProxyArch.from_dict(a.to_dict()) == a


def test_a_sequential_held_as_a_modules_one_child_loads_and_missing_keys_are_shown():
    """``model.state_dict()`` of a module whose one child is the Sequential
    (``net.0.weight``) is that Sequential's; keys that fit no form are listed."""
    arch = ProxyArch(2, 1, 3, (4,), "relu", False)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 8))
    wrapped = {f"net.{k}": v for k, v in seq.state_dict().items()}
    m = module_from_arrays(arch, wrapped, source="t")
    x = torch.rand(3, 4, dtype=torch.float64)
    torch.testing.assert_close(m(x), seq.double()(x))
    with pytest.raises(ProxyError, match=r"weights lack layers.0.weight.*keys found: "
                                         r"mean, net.0.bias"):
        module_from_arrays(arch, {**wrapped, "mean": torch.zeros(4)}, source="t")
