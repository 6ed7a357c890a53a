"""The shipped proxies in models/: integrity, size, baseline, torch vs ONNX vs onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from gridverify.proxy import load_proxy
from gridverify.proxy.onnx_torch import OnnxModule, read_onnx

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = {
    "case14_relu": ("pglib_opf_case14_ieee", "relu", True),
    "case14_tanh": ("pglib_opf_case14_ieee", "tanh", False),
    "case14_gelu": ("pglib_opf_case14_ieee", "gelu", True),
    "case14_relu_stable": ("pglib_opf_case14_ieee", "relu", True),
    "case57_relu_stable": ("pglib_opf_case57_ieee", "relu", True),
    "case57_relu": ("pglib_opf_case57_ieee", "relu", True),
    "case57_tanh": ("pglib_opf_case57_ieee", "tanh", False),
    "case118_relu": ("pglib_opf_case118_ieee", "relu", True),
    "case118_tanh": ("pglib_opf_case118_ieee", "tanh", False),
    "case300_relu": ("pglib_opf_case300_ieee", "relu", True),
    "case300_tanh": ("pglib_opf_case300_ieee", "tanh", False),
}
MAX_BYTES = 5 * 1024 * 1024


def _keep_options():
    from gridverify.bounds import BoundOptions

    return BoundOptions(keep_intermediate=True)


_KEEP = _keep_options()


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    name = request.param
    path = MODELS / name
    assert (path / "card.json").is_file(), f"shipped proxy {name} missing from models/"
    return name, path, load_proxy(path)


def test_shipped_identity_and_size(shipped):
    name, path, p = shipped
    case_name, act, clamp = SHIPPED[name]
    assert p.case_name == case_name
    assert p.activation == act and p.clamp_head is clamp
    from gridverify.grid import load_compiled

    assert p.case_hash == load_compiled(case_name, emit_warnings=False).content_hash
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= MAX_BYTES, f"{name}: {size} bytes"
    region = p.card["region"]
    assert region["kind"] == "sampler" and region["sampler"] == {
        "kind": "box", "low": 0.9, "high": 1.1}


def test_shipped_beats_nominal_baseline(shipped):
    name, _, p = shipped
    met = p.card["metrics"]
    for g in ("pg", "qg", "vm", "va"):
        assert met["test"][f"mae_{g}"] < met["baseline_nominal"][f"mae_{g}"], (name, g)
    assert met["beats_baseline_mae"] == {"pg": True, "qg": True, "vm": True, "va": True}


def test_shipped_torch_onnx_ort_agree(shipped):
    """1,000 random loads from the region: torch, ONNX (as torch) and onnxruntime agree."""
    name, path, p = shipped
    rng = np.random.default_rng(2024)
    x = rng.uniform(p.region.lower, p.region.upper, (1000, p.input_size))
    with torch.no_grad():
        y_torch = p.module(torch.from_numpy(x)).numpy()
        y_onnx = OnnxModule(read_onnx(path / "model.onnx"))(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {"loads": x.astype(np.float32)})[0].astype(np.float64)
    # the torch module and the ONNX file are the same function (float64 evaluation)
    assert np.max(np.abs(y_torch - y_onnx)) <= 1e-5, name
    # onnxruntime evaluates the float32 graph in float32: agreement to 1e-5 relative to
    # max(1, |y|) (outputs reach ~25 pu on case300, where float32 rounding is ~1e-5 abs)
    scale = np.maximum(1.0, np.abs(y_torch))
    assert np.max(np.abs(y_ort - y_torch) / scale) <= 1e-5, name
    assert np.max(np.abs(y_ort - y_onnx) / scale) <= 1e-5, name
    # torch evaluated in float32, as onnxruntime does
    with torch.no_grad():
        y32 = p.module.float()(torch.from_numpy(x.astype(np.float32))).double().numpy()
    p.module.double()
    assert np.max(np.abs(y32 - y_ort) / scale) <= 1e-5, name


def test_shipped_ir_import_agrees(shipped):
    """The bound engine's importer sees the same function as torch."""
    from gridverify.ir import from_onnx

    name, path, p = shipped
    x = torch.from_numpy(np.random.default_rng(7).uniform(p.region.lower, p.region.upper,
                                                          (64, p.input_size)))
    g = from_onnx(path / "model.onnx")
    with torch.no_grad():
        assert torch.max(torch.abs(g.evaluate(x)[0] - p.module(x))).item() <= 1e-9, name


def test_models_readme_lists_every_proxy():
    text = (MODELS / "README.md").read_text()
    for name in SHIPPED:
        assert f"models/{name}" in text
        card = json.loads((MODELS / name / "card.json").read_text())
        assert str(card["training"]["options"]["seed"]) in text


@pytest.mark.parametrize("name", ["case14_relu_stable", "case57_relu_stable"])
def test_stable_proxies_are_stable_over_the_region(name):
    """The verification-friendly proxies: trained with a stability weight, and every relu
    is stable over the whole region by the bound engine's CROWN intervals (the plain
    proxy of the same case has every relu unstable)."""
    from gridverify.bounds import compute_bounds
    from gridverify.ir import from_torch

    def unstable(path: Path) -> tuple[int, int]:
        p = load_proxy(path)
        g = from_torch(p.module, input_size=p.input_size)
        r = compute_bounds(g, torch.tensor(p.region.lower), torch.tensor(p.region.upper),
                           method="crown", options=_KEEP)
        relu_in = [n.inputs[0] for n in g.nodes if n.op == "relu"]
        lo = torch.cat([r.interm[i][0].reshape(-1) for i in relu_in])
        hi = torch.cat([r.interm[i][1].reshape(-1) for i in relu_in])
        return int(((lo < 0) & (hi > 0)).sum()), lo.numel()

    p = load_proxy(MODELS / name)
    assert p.card["training"]["options"]["stability_weight"] > 0
    n_unstable, n_relu = unstable(MODELS / name)
    assert n_relu > 0 and n_unstable <= 0.05 * n_relu
    plain_unstable, plain_relu = unstable(MODELS / name.replace("_stable", ""))
    assert plain_unstable > 0.5 * plain_relu
