"""Edges of the proxy model directory, its ONNX export and foreign layouts.

Small untrained :class:`ProxyMLP` instances (seeded) keep these fast; every value is
checked against a reference computed by hand or by the torch module itself.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from gridverify.errors import ProxyError
from gridverify.proxy.artifacts import (
    CARD_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    npz_bytes,
    read_card,
    read_model_dir,
    write_model_dir,
)
from gridverify.proxy.layout import LayoutModule, Normalization, ProxyLayout, adapt
from gridverify.proxy.model import ProxyArch, ProxyMLP
from gridverify.proxy.onnx_export import export_onnx, proxy_to_onnx

# L = 2 loads, G = 1 generator, N = 2 buses: inputs 4, outputs 6
_L, _G, _N, _MVA = 2, 1, 2, 100.0


def _mlp(act: str = "tanh", clamp: bool = True, seed: int = 0,
         dtype: torch.dtype = torch.float32) -> ProxyMLP:
    torch.manual_seed(seed)
    arch = ProxyArch(_L, _G, _N, (5, 4), act, clamp)
    lo = np.array([0.0, -0.5, 0.94, 0.95])  # pg, qg, vm, vm (2G + N)
    hi = np.array([2.0, 0.5, 1.06, 1.05])
    return ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=dtype).eval()


def _card() -> dict:
    return {"case_name": "tiny", "case_hash": "abc123"}


def _x(n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2 * _L))


# ---------------------------------------------------------------- model directory


@pytest.fixture
def mdir(tmp_path):
    return write_model_dir(tmp_path / "m", _mlp(), _card())


def test_written_directory_reads_back_as_the_same_float32_network(mdir):
    m = _mlp()
    with np.load(mdir / WEIGHTS_FILE) as z:
        assert {z[k].dtype for k in z.files} == {np.dtype(np.float32)}
    got = read_model_dir(mdir)
    assert (got.case_name, got.case_hash) == ("tiny", "abc123")
    card = json.loads((mdir / CARD_FILE).read_text())
    assert sorted(card["files"]) == ["arch.json", "model.onnx", "weights.npz"]
    x = torch.from_numpy(_x())
    with torch.no_grad():
        np.testing.assert_allclose(got.module(x).numpy(), m.double()(x).numpy(), atol=1e-12)


@pytest.mark.parametrize("name", ["model.onnx", "weights.npz", "arch.json"])
def test_an_altered_file_is_refused_by_name(mdir, name):
    p = mdir / name
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(ProxyError, match=rf"{name}: sha256 mismatch"):
        read_model_dir(mdir)


def test_verify_false_skips_hashes_but_default_does_not(mdir, tmp_path):
    other = write_model_dir(tmp_path / "other", _mlp(seed=7), _card())
    (mdir / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ProxyError, match="weights.npz: sha256 mismatch"):
        read_model_dir(mdir)
    assert read_model_dir(mdir, verify=False).module is not None


def test_a_missing_file_is_a_proxy_error_naming_it(mdir):
    (mdir / ONNX_FILE).unlink()
    with pytest.raises(ProxyError, match="file model.onnx is missing"):
        read_model_dir(mdir)


def _edit_card(mdir, **changes):
    card = json.loads((mdir / CARD_FILE).read_text())
    for k, v in changes.items():
        if v is None:
            del card[k]
        else:
            card[k] = v
    (mdir / CARD_FILE).write_text(json.dumps(card))
    return card


def test_card_without_the_onnx_hash_is_refused(mdir):
    card = json.loads((mdir / CARD_FILE).read_text())
    files = {k: v for k, v in card["files"].items() if k != ONNX_FILE}
    _edit_card(mdir, files=files)
    with pytest.raises(ProxyError, match="field files: no hash for model.onnx"):
        read_model_dir(mdir)


def test_card_file_names_outside_the_directory_are_refused(mdir, tmp_path):
    (tmp_path / "evil").write_bytes(b"x")
    card = json.loads((mdir / CARD_FILE).read_text())
    import hashlib

    files = dict(card["files"], **{"../evil": hashlib.sha256(b"x").hexdigest()})
    _edit_card(mdir, files=files)
    with pytest.raises(ProxyError, match="bad file name '../evil'"):
        read_model_dir(mdir)


@pytest.mark.parametrize("changes, match", [
    ({"version": 2}, "field version: unsupported card version 2"),
    ({"case_name": ""}, "field case_name: expected a string"),
    ({"metrics": {"test": {"mae": True}}}, "field metrics.test.mae: expected a number"),
])
def test_bad_card_fields_are_named(mdir, changes, match):
    _edit_card(mdir, **changes)
    with pytest.raises(ProxyError, match=match):
        read_model_dir(mdir)


def test_writing_needs_case_identity(tmp_path):
    with pytest.raises(ProxyError, match="model card needs case_hash"):
        write_model_dir(tmp_path / "m", _mlp(), {"case_name": "tiny"})
    assert not (tmp_path / "m").exists()


def test_a_foreign_directory_is_not_overwritten(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ProxyError, match="exists and is not a model directory"):
        write_model_dir(out, _mlp(), _card())
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporaries left


def test_replacing_a_model_directory_leaves_nothing_behind(mdir, tmp_path):
    write_model_dir(mdir, _mlp(seed=3), _card())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    x = torch.from_numpy(_x())
    with torch.no_grad():
        np.testing.assert_allclose(read_model_dir(mdir).module(x).numpy(),
                                   _mlp(seed=3).double()(x).numpy(), atol=1e-12)


def test_non_finite_card_values_are_written_as_text_and_null(tmp_path):
    card = dict(_card(), metrics={"val": {"lo": -math.inf, "hi": math.inf, "nan": math.nan}})
    out = write_model_dir(tmp_path / "m", _mlp(), card)
    assert read_card(out)["metrics"]["val"] == {"lo": "-inf", "hi": "inf", "nan": None}


def test_an_infinite_test_metric_reads_back(tmp_path):
    """A diverged training's infinite error: written as text, read back as a number (the
    reader refused the writer's own "inf", and the directory could not be loaded)."""
    card = dict(_card(), metrics={"test": {"mae_pg": math.inf, "mae_vm": -math.inf}})
    out = write_model_dir(tmp_path / "m", _mlp(), card)
    assert read_card(out)["metrics"]["test"] == {"mae_pg": math.inf, "mae_vm": -math.inf}
    assert read_model_dir(out).card["metrics"]["test"]["mae_pg"] == math.inf


def test_a_file_is_not_overwritten_by_a_model_directory(tmp_path):
    out = tmp_path / "model"
    out.write_text("keep me")
    with pytest.raises(ProxyError, match="exists and is a file, not a model directory"):
        write_model_dir(out, _mlp(), _card())
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporaries left


def test_npz_bytes_do_not_depend_on_key_order():
    a, b = np.arange(3, dtype=np.float32), np.ones((2, 2), dtype=np.float32)
    assert npz_bytes({"b": b, "a": a}) == npz_bytes({"a": a, "b": b})


# ---------------------------------------------------------------- ONNX export


def test_onnx_names_metadata_and_float32_values():
    m = _mlp("relu").folded(torch.float32)
    om = proxy_to_onnx(m, case_name="tiny", case_hash="abc123")
    props = {p.key: p.value for p in om.metadata_props}
    assert props["gridverify.case_name"] == "tiny"
    assert props["gridverify.case_hash"] == "abc123"
    assert json.loads(props["gridverify.arch"]) == json.loads(m.arch.to_json())
    sess = ort.InferenceSession(om.SerializeToString())
    assert [i.name for i in sess.get_inputs()] == ["loads"]
    assert [o.name for o in sess.get_outputs()] == ["solution"]
    x = _x(64)
    (y,) = sess.run(None, {"loads": x.astype(np.float32)})
    with torch.no_grad():
        ref = m.double()(torch.from_numpy(x)).numpy()
    assert y.dtype == np.float32 and y.shape == (64, 2 * _G + 2 * _N)
    np.testing.assert_allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_float64_onnx_equals_the_float64_module(act):
    m = _mlp(act, dtype=torch.float64)
    with torch.no_grad():  # weights that float32 cannot hold
        for lin in m.layers:
            lin.weight.add_(1e-9 * torch.arange(lin.weight.numel(), dtype=torch.float64)
                            .reshape(lin.weight.shape))
    om = proxy_to_onnx(m.folded(torch.float64), dtype="float64")
    assert om.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    sess = ort.InferenceSession(om.SerializeToString())
    x = _x(64)
    (y,) = sess.run(None, {"loads": x})
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-13)


def test_onnx_dtype_is_checked():
    with pytest.raises(ProxyError, match="float32 or float64, got 'float16'"):
        proxy_to_onnx(_mlp().folded(), dtype="float16")


def test_export_replaces_the_file_rather_than_writing_into_it(tmp_path):
    p = tmp_path / "m.onnx"
    export_onnx(_mlp(seed=1).folded(), p)
    first = p.read_bytes()
    os.link(p, tmp_path / "reader.onnx")  # a reader holding the old file
    export_onnx(_mlp(seed=2).folded(), p)
    assert (tmp_path / "reader.onnx").read_bytes() == first
    assert p.read_bytes() != first
    assert sorted(q.name for q in tmp_path.iterdir()) == ["m.onnx", "reader.onnx"]


# ---------------------------------------------------------------- layouts


def test_maps_of_a_mw_degree_reordered_layout_by_hand():
    lay = ProxyLayout(("qd", "pd"), ("va", "vm", "pg", "qg"), "mw", "mw", "deg")
    in_index, in_scale, in_shift, out_index, out_scale, out_shift = lay.maps(_L, _G, _N, _MVA)
    np.testing.assert_array_equal(in_index, [2, 3, 0, 1])
    np.testing.assert_allclose(in_scale, [100.0] * 4)
    np.testing.assert_allclose(in_shift, [0.0] * 4)
    # proxy output: va(2) vm(2) pg(1) qg(1); convention: pg qg vm vm va va
    np.testing.assert_array_equal(out_index, [4, 5, 2, 3, 0, 1])
    np.testing.assert_allclose(out_scale, [0.01, 0.01, 1, 1, math.pi / 180, math.pi / 180])
    np.testing.assert_allclose(out_shift, [0.0] * 6)


def test_units_apply_only_to_their_own_blocks():
    _, in_scale, _, _, out_scale, _ = ProxyLayout(gen_units="mw").maps(_L, _G, _N, _MVA)
    np.testing.assert_allclose(in_scale, [1.0] * 4)
    np.testing.assert_allclose(out_scale, [0.01, 0.01, 1, 1, 1, 1])
    _, in_scale, _, _, out_scale, _ = ProxyLayout(load_units="mw").maps(_L, _G, _N, _MVA)
    np.testing.assert_allclose(in_scale, [100.0] * 4)
    np.testing.assert_allclose(out_scale, [1.0] * 6)


def test_interleaved_indices_by_hand():
    lay = ProxyLayout(("qd", "pd"), ("qg", "pg", "va", "vm"), interleaved=True,
                      interleaved_outputs=True)
    in_index, _, _, out_index, _, _ = lay.maps(3, 2, 3, _MVA)
    np.testing.assert_array_equal(in_index, [3, 0, 4, 1, 5, 2])  # qd1 pd1 qd2 pd2 ...
    # proxy output: qg1 pg1 qg2 pg2 | va1 vm1 va2 vm2 va3 vm3
    np.testing.assert_array_equal(out_index, [1, 3, 0, 2, 5, 7, 9, 4, 6, 8])


def test_interleaved_outputs_need_the_pairs_together():
    with pytest.raises(ProxyError, match="keep each pair together"):
        ProxyLayout(outputs=("pg", "vm", "qg", "va"), interleaved_outputs=True)


@pytest.mark.parametrize("lay", [ProxyLayout(gen_units="mw"), ProxyLayout(angle_units="deg"),
                                 ProxyLayout(load_units="mw"),
                                 ProxyLayout(interleaved=True)])
def test_any_non_default_option_is_not_the_convention(lay):
    assert not lay.is_convention
    assert ProxyLayout().is_convention


class _Affine(nn.Module):
    """A foreign proxy (a fixed linear map) with its own reference runtime."""

    def __init__(self) -> None:
        super().__init__()
        g = np.random.default_rng(4)
        self.w = torch.from_numpy(g.normal(size=(2 * _G + 2 * _N, 2 * _L)))
        self.b = torch.from_numpy(g.normal(size=2 * _G + 2 * _N))

    reference_name = "numpy"

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u @ self.w.T + self.b

    def reference(self, u: np.ndarray) -> np.ndarray:
        return u @ self.w.numpy().T + self.b.numpy()


def test_normalized_mw_degree_proxy_by_hand(tmp_path):
    f = tmp_path / "norm.json"
    im, isd = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 10.0]
    om, osd = [10.0, 20.0, 0.5, 0.6, 30.0, 40.0], [3.0, 2.0, 1.0, 0.5, 4.0, 5.0]
    f.write_text(json.dumps({"input_mean": im, "input_std": isd, "output_mean": om,
                             "output_std": osd}))
    lay = ProxyLayout(load_units="mw", gen_units="mw", angle_units="deg",
                      normalization=Normalization.read(f))

    class Case:
        n_load, n_gen, n_bus, base_mva = _L, _G, _N, _MVA

    inner = _Affine()
    wrapped = adapt(inner, lay, Case)
    assert isinstance(wrapped, LayoutModule)
    x = _x(8)
    u = (x * 100.0 - np.array(im)) / np.array(isd)  # what the proxy reads
    v = inner.reference(u) * np.array(osd) + np.array(om)  # what it stands for
    ref = v * np.array([0.01, 0.01, 1, 1, math.pi / 180, math.pi / 180])
    with torch.no_grad():
        got = wrapped(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wrapped.reference(x), ref, rtol=1e-12, atol=1e-12)


def test_a_changed_normalization_file_is_refused(tmp_path):
    f = tmp_path / "norm.json"
    f.write_text(json.dumps({"input_std": [2.0]}))
    rec = ProxyLayout(normalization=Normalization.read(f)).to_dict()
    assert ProxyLayout.from_dict(rec).normalization.input_std == (2.0,)
    f.write_text(json.dumps({"input_std": [3.0]}))
    with pytest.raises(ProxyError, match="normalization file changed"):
        ProxyLayout.from_dict(rec)


def test_zero_std_is_refused_naming_the_key(tmp_path):
    f = tmp_path / "norm.json"
    f.write_text(json.dumps({"output_std": [1.0, 0.0]}))
    with pytest.raises(ProxyError, match="output_std: expected finite numbers, all positive"):
        Normalization.read(f)
