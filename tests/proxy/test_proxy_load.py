"""Loading proxies from every source, and every bad input the issue lists (exit status 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
import torch
from onnx import helper

from gridverify.cli import main
from gridverify.errors import DatasetError, ProxyError, UnsupportedOpError
from gridverify.proxy import export_onnx, load_proxy, save_checkpoint
from gridverify.proxy.data import read_proxy_data

CASE5 = "pglib_opf_case5_pjm"


def _x(proxy, n=50, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(proxy.region.lower, proxy.region.upper,
                                        (n, proxy.input_size)))


# ---------------------------------------------------------------- good sources


def test_model_dir_proxy_object(trained14, case14):
    _, out = trained14
    p = load_proxy(out)
    assert p.case_name == case14.name and p.case_hash == case14.content_hash
    assert (p.n_load, p.n_gen, p.n_bus) == (case14.n_load, case14.n_gen, case14.n_bus)
    assert p.activation == "relu" and p.hidden == (32, 32) and p.clamp_head
    assert p.region is not None and p.region.lower.shape == (2 * case14.n_load,)
    y = p.module(_x(p))
    assert y.dtype == torch.float64 and y.shape == (50, p.output_size)
    parts = p.split(y)
    assert parts["vm"].shape == (50, case14.n_bus)
    assert p.vm_slice == slice(2 * case14.n_gen, 2 * case14.n_gen + case14.n_bus)
    assert p.va_slice.stop == p.output_size
    assert p.qd_slice == slice(case14.n_load, 2 * case14.n_load)
    # loading with the matching case (object or name) works
    assert load_proxy(out, case=case14).case_hash == case14.content_hash
    assert load_proxy(out, case="pglib_opf_case14_ieee").n_bus == 14


def test_all_sources_agree(trained14, case14, tmp_path):
    _, out = trained14
    p = load_proxy(out)
    x = _x(p, 200)
    y = p.module(x)
    # ONNX file (our metadata: case optional)
    po = load_proxy(out / "model.onnx")
    assert po.case_hash == case14.content_hash and po.activation == "relu"
    assert torch.allclose(po.module(x), y, atol=1e-10, rtol=0)
    # torch checkpoint with embedded arch
    ck = save_checkpoint(p.module, tmp_path / "p.pt", case_name=case14.name,
                         case_hash=case14.content_hash)
    pc = load_proxy(ck, case=case14)
    assert torch.allclose(pc.module(x), y, atol=0, rtol=0)
    # bare state dict with arch json alongside
    torch.save(p.module.state_dict(), tmp_path / "bare.pt")
    shutil.copy(out / "arch.json", tmp_path / "bare.json")
    pb = load_proxy(tmp_path / "bare.pt", case=case14)
    assert torch.allclose(pb.module(x), y, atol=0, rtol=0)
    # an nn.Module in memory (a user's Sequential) + case
    seq = torch.nn.Sequential(*(m for m in _as_sequential(p.module)))
    pm = load_proxy(seq, case=case14)
    assert pm.module(x).dtype == torch.float64
    assert next(seq.parameters()).dtype == torch.float32  # the user's module is not mutated


def _as_sequential(mlp):
    mods = []
    for i, lin in enumerate(mlp.layers):
        mods.append(lin)
        if i < len(mlp.layers) - 1:
            mods.append(torch.nn.ReLU())
    return [m.float() for m in mods]


def test_onnx_with_extra_outputs(trained14, case14, tmp_path):
    _, out = trained14
    m = onnx.load(out / "model.onnx")
    g = m.graph
    # append a second output ("residuals": the solution squared) after the solution
    g.node.append(helper.make_node("Mul", ["solution", "solution"], ["resid"], name="extra"))
    g.output.append(helper.make_tensor_value_info("resid", onnx.TensorProto.FLOAT,
                                                  ["batch", 38]))
    del m.metadata_props[:]
    path = tmp_path / "extra.onnx"
    onnx.save(m, path)
    with pytest.raises(ProxyError, match="--keep-outputs, onnx_keep_outputs"):
        load_proxy(path, case=case14)
    with pytest.raises(ProxyError, match="needs case"):
        load_proxy(path, onnx_keep_outputs=True)
    p = load_proxy(path, case=case14, onnx_keep_outputs=True)
    assert load_proxy(path, case=case14, onnx_keep_outputs=38).output_size == 38
    with pytest.raises(ProxyError, match="onnx_keep_outputs=40"):
        load_proxy(path, case=case14, onnx_keep_outputs=40)
    ref = load_proxy(out)
    x = _x(ref)
    assert torch.allclose(p.module(x), ref.module(x), atol=1e-10, rtol=0)
    # the command line: --keep-outputs (ONNX files only)
    assert main(["model", "info", str(path), "--case", case14.name, "--json"]) == 2
    assert main(["model", "info", str(path), "--case", case14.name, "--json",
                 "--keep-outputs"]) == 0
    assert main(["model", "info", str(out), "--keep-outputs"]) == 2
    with pytest.raises(ProxyError, match="ONNX proxy files only"):
        load_proxy(out, onnx_keep_outputs=True)


def test_onnx_errors_name_the_file(trained14, case14, tmp_path):
    """A non-finite weight and a second graph input are refused naming the file."""
    _, out = trained14
    m = onnx.load(out / "model.onnx")
    init = m.graph.initializer[0]
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    del m.metadata_props[:]
    bad = tmp_path / "nan.onnx"
    onnx.save(m, bad)
    with pytest.raises(ProxyError, match=r"^.*nan\.onnx: .*holds NaN or inf"):
        load_proxy(bad, case=case14)
    m2 = onnx.load(out / "model.onnx")
    m2.graph.input.append(helper.make_tensor_value_info("qd", onnx.TensorProto.FLOAT,
                                                        ["batch", 11]))
    del m2.metadata_props[:]
    two = tmp_path / "two.onnx"
    onnx.save(m2, two)
    with pytest.raises(ProxyError, match=r"two\.onnx: a proxy ONNX graph needs exactly one "
                                         r"input, found 2"):
        load_proxy(two, case=case14)


# ---------------------------------------------------------------- bad models


def test_missing_or_altered_files(trained14, tmp_path):
    _, out = trained14
    for name in ("weights.npz", "arch.json", "model.onnx"):
        d = tmp_path / f"miss_{name}"
        shutil.copytree(out, d)
        (d / name).unlink()
        with pytest.raises(ProxyError, match=f"{name} is missing"):
            load_proxy(d)
        assert main(["model", "info", str(d)]) == 2
        d2 = tmp_path / f"alt_{name}"
        shutil.copytree(out, d2)
        data = bytearray((d2 / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (d2 / name).write_bytes(bytes(data))
        with pytest.raises(ProxyError, match="sha256 mismatch"):
            load_proxy(d2)
        assert main(["model", "info", str(d2)]) == 2
    d3 = tmp_path / "nocard"
    shutil.copytree(out, d3)
    (d3 / "card.json").unlink()
    with pytest.raises(ProxyError, match="not a model directory"):
        load_proxy(d3)
    assert main(["model", "info", str(out)]) == 0


@pytest.mark.parametrize("edit, message", [
    ({"case_hash": 5}, "field case_hash: expected a string"),
    ({"arch": None}, "field arch: expected an object"),
    ({"metrics": {"test": {"mae_pg": "x"}}}, "field metrics.test.mae_pg: expected a number"),
])
def test_hand_edited_card_is_one_line(trained14, tmp_path, capsys, edit, message):
    """card.json is not hashed: the fields readers use are type-checked (model info and
    certify raised TypeError/AttributeError)."""
    _, out = trained14
    d = tmp_path / "edited"
    shutil.copytree(out, d)
    card = json.loads((d / "card.json").read_text())
    (d / "card.json").write_text(json.dumps({**card, **edit}))
    with pytest.raises(ProxyError, match=message):
        load_proxy(d)
    capsys.readouterr()
    assert main(["model", "info", str(d)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_card_with_wrong_case(trained14, case14, tmp_path):
    _, out = trained14
    with pytest.raises(ProxyError, match="not to case"):
        load_proxy(out, case=CASE5)


def test_checkpoint_needing_unpickling_code(trained14, case14, tmp_path):
    _, out = trained14
    p = load_proxy(out)
    path = tmp_path / "whole_module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(22, 38)), path)  # pickles a class
    with pytest.raises(ProxyError, match="unpickling code"):
        load_proxy(path, case=case14)
    torch.save({"state_dict": p.module.state_dict()}, tmp_path / "noarch.pt")
    with pytest.raises(ProxyError, match="no architecture"):
        load_proxy(tmp_path / "noarch.pt", case=case14)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ProxyError):
        load_proxy(tmp_path / "garbage.pt", case=case14)
    # a TorchScript archive (no Python class needed) loads as a graph
    lin = torch.nn.Sequential(torch.nn.Linear(22, 38)).double()
    torch.jit.save(torch.jit.script(lin), tmp_path / "script.pt")
    q = load_proxy(tmp_path / "script.pt", case=case14)
    x = _x(q if q.region is not None else p)
    with torch.no_grad():
        torch.testing.assert_close(q.module(x), lin(x), atol=1e-12, rtol=1e-12)
    with pytest.raises(ProxyError, match="TorchScript archive needs case"):
        load_proxy(tmp_path / "script.pt")
    with pytest.raises(ProxyError, match="needs \\(B, 38\\)"):
        torch.jit.save(torch.jit.script(torch.nn.Linear(22, 30)), tmp_path / "w.pt")
        load_proxy(tmp_path / "w.pt", case=case14)


def test_training_loop_checkpoints_and_sequential_mismatch(case14, tmp_path):
    """``{"model_state_dict": ..., "epoch": N}`` (the PyTorch tutorials' layout) loads
    with its architecture beside it; a Sequential state dict whose layer count differs
    from the architecture is named by its own keys."""
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(22, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 38)).double().eval()
    arch = {"n_load": 11, "n_gen": 5, "n_bus": 14, "hidden": [16], "activation": "tanh",
            "clamp_head": False}
    torch.save({"model_state_dict": seq.state_dict(), "epoch": 7}, tmp_path / "loop.pt")
    (tmp_path / "loop.json").write_text(json.dumps(arch))
    q = load_proxy(tmp_path / "loop.pt", case=case14)
    x = torch.rand(5, 22, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(q.module(x), seq(x), atol=1e-12, rtol=1e-12)
    (tmp_path / "loop.json").write_text(json.dumps({**arch, "hidden": [16, 16]}))
    with pytest.raises(ProxyError, match=r"has 2 linear layer\(s\) \(keys 0.weight, "
                                         r"2.weight\), the architecture \(hidden \[16, 16\]\) 3"):
        load_proxy(tmp_path / "loop.pt", case=case14)
    torch.save({"model_state_dict": {"a": [1, 2]}, "epoch": 3}, tmp_path / "bad.pt")
    with pytest.raises(ProxyError, match="'a' is a list.*'model_state_dict'"):
        load_proxy(tmp_path / "bad.pt", case=case14)


def _save_exported(module, n_in, path, dynamic=True):
    ep = torch.export.export(module.eval(), (torch.zeros(3, n_in, dtype=torch.float64),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic
                             else None)
    torch.export.save(ep, path)
    return path


def test_torch_export_program(trained14, case14, tmp_path):
    from gridverify.certify import model_hash

    _, out = trained14
    p = load_proxy(out)
    for dynamic in (True, False):
        path = _save_exported(p.module, p.input_size, tmp_path / f"m{dynamic}.pt2", dynamic)
        q = load_proxy(path, case=case14)
        assert q.case_name == case14.name and q.case_hash == case14.content_hash
        assert q.source == str(path) and q.region is None
        x = _x(p)
        torch.testing.assert_close(q.module(x), p.module(x), atol=1e-12, rtol=1e-12)
    # the file identifies the proxy
    other = torch.nn.Sequential(torch.nn.Linear(22, 38), torch.nn.Sigmoid()).double()
    q2 = load_proxy(_save_exported(other, 22, tmp_path / "other.pt2"), case=case14)
    assert model_hash(q2.module) != model_hash(q.module)
    with pytest.raises(ProxyError, match="needs case"):
        load_proxy(path)
    with pytest.raises(ProxyError, match="needs \\(B, 38\\)"):
        load_proxy(_save_exported(torch.nn.Linear(22, 30).double(), 22, tmp_path / "w.pt2"),
                   case=case14)
    (tmp_path / "garbage.pt2").write_bytes(b"not a program")
    with pytest.raises(ProxyError, match="not a readable torch.export program"):
        load_proxy(tmp_path / "garbage.pt2", case=case14)
    # witnesses are re-run by the file the proxy was read from, not by another
    q = load_proxy(path, case=case14)
    q.module.reference(_x(p, n=2).numpy())
    path.write_bytes((tmp_path / "other.pt2").read_bytes())
    with pytest.raises(ProxyError, match="changed since the proxy was loaded"):
        q.module.reference(_x(p, n=2).numpy())


class _Payload:
    """Unpickling it creates the folder ``marker``: code a file runs when loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.mkdir, (self.marker,))


def _rewrite_member(src, dst, suffix: str, data: bytes | None, extra: str | None = None):
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for item in zin.infolist():
            body = zin.read(item.filename)
            if data is not None and item.filename.endswith(suffix):
                body = data
            zout.writestr(item, body)
        if extra is not None:
            zout.writestr(f"{root}/{extra}", b"\x80\x04N.")
    return dst


def test_torch_export_program_runs_no_code_of_the_file(case14, tmp_path):
    """torch.export.load unpickles some members in full (its fallback for sample
    inputs, Python-object constants): gridverify reads every pickle weights-only
    and refuses archives of Python objects."""
    import pickle

    good = _save_exported(torch.nn.Sequential(torch.nn.Linear(22, 38)).double(), 22,
                          tmp_path / "good.pt2")
    marker = tmp_path / "ran"
    evil = _rewrite_member(good, tmp_path / "evil.pt2", "data/sample_inputs/model.pt",
                           pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ProxyError, match="not a readable torch.export program"):
        load_proxy(evil, case=case14)
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - what torch itself does with the file
        torch.export.load(evil)
    assert marker.exists()  # torch alone runs the file's code: the check above can fail
    obj = _rewrite_member(good, tmp_path / "obj.pt2", "", None,
                          extra="data/constants/opaque_obj_0")
    with pytest.raises(ProxyError, match="holds a Python object"):
        load_proxy(obj, case=case14)
    assert load_proxy(good, case=case14).output_size == 38


class _DictHeads(torch.nn.Module):
    """A user's network returning its heads as a dict, in ``order``."""

    def __init__(self, order: tuple[str, ...]) -> None:
        super().__init__()
        self.order = order
        self.body = torch.nn.Sequential(torch.nn.Linear(22, 16), torch.nn.ReLU())
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(16, n) for k, n in
                                          (("pg", 5), ("qg", 5), ("vm", 14), ("va", 14))})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.body(x)
        return {k: self.heads[k](z) for k in self.order}


def test_torch_export_program_with_dict_heads(case14, tmp_path):
    torch.manual_seed(0)
    good = _DictHeads(("pg", "qg", "vm", "va")).double()
    q = load_proxy(_save_exported(good, 22, tmp_path / "good.pt2"), case=case14)
    x = torch.rand(4, 22, dtype=torch.float64)
    with torch.no_grad():
        want = torch.cat(list(good(x).values()), 1)
    torch.testing.assert_close(q.module(x), want, atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(q.module.reference(x.numpy()), want.numpy(), atol=1e-12)
    # the same widths in another order would be read as the wrong quantities
    bad = _DictHeads(("vm", "va", "pg", "qg")).double()
    with pytest.raises(ProxyError, match="'vm', 'va', 'pg', 'qg'.*read in order as pg, qg"):
        load_proxy(_save_exported(bad, 22, tmp_path / "bad.pt2"), case=case14)


def test_torch_export_program_certifies_as_the_model_dir(tmp_path):
    from gridverify.certify import CertifyOptions, certify
    from gridverify.grid import load_compiled
    from gridverify.spec.region import parse_region

    case = load_compiled("pglib_opf_case14_ieee")
    p = load_proxy("case14_relu")
    path = _save_exported(p.module, p.input_size, tmp_path / "c14.pt2")
    opts = CertifyOptions(samples=64, attack="none", radius=False)
    region = parse_region("box:0.9,1.1", case)
    sel = "p_balance,thermal_fr,angle_max"
    a = certify(case, "case14_relu", region, sel, method="crown", options=opts)
    b = certify(case, str(path), region, sel, method="crown", options=opts)
    ua = np.array([r.upper_bound for r in a.constraints])
    ub = np.array([r.upper_bound for r in b.constraints])
    np.testing.assert_allclose(ub, ua, rtol=1e-9, atol=1e-12)
    assert [r.status for r in a.constraints] == [r.status for r in b.constraints]


class _Cumsum(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(22, 38)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.lin(x), 1)


def test_torchscript_errors_are_one_line(case14, tmp_path, capfd):
    torch.jit.save(torch.jit.script(_Cumsum()), tmp_path / "cumsum.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 38)), tmp_path / "small.pt")
    capfd.readouterr()
    for name, expect in (("cumsum.pt", "aten.cumsum"),
                         ("small.pt", "does not accept inputs of size 2L = 22")):
        assert main(["certify", case14.name, "--model", str(tmp_path / name), "--quiet"]) == 2
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err


def test_model_info_on_proxy_files(trained14, case14, tmp_path, capsys):
    _, out = trained14
    p = load_proxy(out)
    pt2 = _save_exported(p.module, p.input_size, tmp_path / "m.pt2")
    for path, extra in ((pt2, ["--case", case14.name]), (out / "model.onnx", [])):
        capsys.readouterr()
        assert main(["model", "info", str(path), *extra, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["case"] == case14.name and info["input_size"] == 22
        assert info["output_size"] == 38 and sum(info["outputs"].values()) == 38
        assert info["nonlinear_entries"]["relu"] == 64  # hidden (32, 32)
        assert info["ops"]["linear"] == 3
        assert info["region"] == "box:0.9,1.1" and 0 <= info["relus"]["unstable"] <= 64
        assert info["relus"]["total"] == 64
        assert main(["model", "info", str(path), *extra]) == 0
        text = capsys.readouterr().out
        assert "maps (B, 22)" in text and "relu 64" in text
    # a file that does not name its case, a proxy for another case
    assert main(["model", "info", str(pt2)]) == 2
    assert "pass --case" in capsys.readouterr().err
    assert main(["model", "info", str(pt2), "--case", CASE5]) == 2
    assert main(["model", "info", str(out), "--case", CASE5]) == 2
    assert "not to case" in capsys.readouterr().err
    assert main(["model", "info", str(out), "--case", case14.name]) == 0
    # an ONNX file naming a bundled case whose content differs from its own
    other = export_onnx(p.module, tmp_path / "other.onnx", case_name=case14.name,
                        case_hash="0" * 64)
    capsys.readouterr()
    assert main(["model", "info", str(other)]) == 2
    err = capsys.readouterr().err
    assert "is not the bundled case of that name" in err and err.count("\n") == 1
    # the relu census over a region, as certificates record it
    capsys.readouterr()
    assert main(["model", "info", "models/case57_relu_stable/model.onnx", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["relus"] == {"unstable": 0, "total": 256} and info["region"] == "box:0.9,1.1"
    assert main(["model", "info", "models/case57_relu/model.onnx", "--json", "--region",
                 "box:0.99,1.01"]) == 0
    assert json.loads(capsys.readouterr().out)["relus"]["total"] == 256


def test_wrong_dimensions(trained14, case14, tmp_path):
    _, out = trained14
    p = load_proxy(out)
    ck = save_checkpoint(p.module, tmp_path / "p.pt")
    with pytest.raises(ProxyError, match="do not match case"):
        load_proxy(ck, case=CASE5)
    with pytest.raises(ProxyError, match="needs \\(B, 38\\)"):
        load_proxy(torch.nn.Linear(22, 30).double(), case=case14)
    with pytest.raises(ProxyError, match="does not accept inputs"):
        load_proxy(torch.nn.Linear(10, 38), case=case14)
    with pytest.raises(ProxyError, match="needs case"):
        load_proxy(torch.nn.Linear(22, 38))
    with pytest.raises(ProxyError, match="input has 22 entries"):
        load_proxy(out / "model.onnx", case=CASE5)
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ProxyError, match="unknown proxy format"):
        load_proxy(tmp_path / "m.txt", case=case14)


# ---------------------------------------------------------------- bad datasets


def _copy(src, dst):
    shutil.copy(src, dst)
    return dst


def test_dataset_of_another_case(case14, case14_data, tmp_path):
    from gridverify.opf.dataset import make_dataset

    other = tmp_path / "case5.h5"
    make_dataset(CASE5, 4, other, seed=0, progress=False)
    with pytest.raises(DatasetError, match="not of case"):
        read_proxy_data(other, case14)
    rc = main(["train", str(other), "--case", "pglib_opf_case14_ieee", "--out",
               str(tmp_path / "m"), "--epochs", "1", "--no-progress"])
    assert rc == 2
    assert not (tmp_path / "m").exists()


def test_dataset_read_for_a_case_name(case14, case14_data):
    """As ``train_proxy`` does, the readers take a case by name (compiled on the way)."""
    from gridverify.proxy.data import read_proxy_data_many

    by_name = read_proxy_data(case14_data, "pglib_opf_case14_ieee")
    np.testing.assert_array_equal(by_name.x, read_proxy_data(case14_data, case14).x)
    assert read_proxy_data_many([case14_data], "pglib_opf_case14_ieee").x.shape == by_name.x.shape


def test_dataset_wrong_shapes(case14, case14_data, tmp_path):
    bad = _copy(case14_data, tmp_path / "shape.h5")
    with h5py.File(bad, "r+") as f:
        pd = f["inputs/pd"][()]
        del f["inputs/pd"]
        f["inputs/pd"] = pd[:, :-1]
    with pytest.raises(DatasetError, match=r"dataset 'inputs/pd' has shape \(80, 10\)"):
        read_proxy_data(bad, case14)
    assert main(["train", str(bad), "--out", str(tmp_path / "m"), "--no-progress"]) == 2


def test_dataset_nan_rows(case14, case14_data, tmp_path):
    bad = _copy(case14_data, tmp_path / "nan.h5")
    with h5py.File(bad, "r+") as f:
        f["outputs/vm"][7, 3] = np.nan
        assert f["status"][7] == 1
    with pytest.raises(DatasetError, match="'outputs/vm': sample 7 is optimal but holds NaN"):
        read_proxy_data(bad, case14)
    assert main(["train", str(bad), "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    # a NaN row whose status is not optimal is simply skipped
    with h5py.File(bad, "r+") as f:
        f["status"][7] = 4
    d = read_proxy_data(bad, case14)
    assert d.n_samples == 79 and 7 not in d.rows


def test_dataset_value_too_large_to_normalize(case14, case14_data, tmp_path):
    """A finite 1e300 in an optimal row overflowed the normalization's spread, and
    training said it diverged: the reader names the field and the row."""
    bad = _copy(case14_data, tmp_path / "huge.h5")
    with h5py.File(bad, "r+") as f:
        assert f["status"][2] == 1
        f["outputs/vm"][2, 2] = 1e300
    with pytest.raises(DatasetError, match=r"field outputs/vm: row 2: value 1e\+300 is too "
                                           "large to train on"):
        read_proxy_data(bad, case14)


def test_dataset_of_a_case_file_named_as_a_bundled_case(tmp_path):
    """A dataset made from an edited copy of a bundled case, under the bundled name:
    train finds the recorded case file (it took the bundled case, of another hash)."""
    from gridverify.cli.train import _dataset_case_name
    from gridverify.grid import load_compiled
    from gridverify.opf.dataset import make_dataset

    src = Path(load_compiled("pglib_opf_case5_pjm").source).read_text()
    assert "300.0" in src
    mine = tmp_path / "mine" / "pglib_opf_case5_pjm.m"
    mine.parent.mkdir()
    mine.write_text(src.replace("300.0", "310.0", 1))
    edited = load_compiled(str(mine))
    assert edited.content_hash != load_compiled("pglib_opf_case5_pjm").content_hash
    data = tmp_path / "mine.h5"
    make_dataset(edited, 4, data, seed=0, progress=False)
    assert Path(_dataset_case_name(data)) == mine.resolve()
    assert read_proxy_data(data, edited).n_samples >= 1


def test_dataset_rows_not_done_or_of_unknown_status(case14, case14_data, tmp_path):
    """Only rows that are done count (a killed run can leave outputs without the flag);
    a status code the schema does not know is an error, as in ``load_dataset``."""
    bad = _copy(case14_data, tmp_path / "notdone.h5")
    with h5py.File(bad, "r+") as f:
        assert f["status"][5] == 1 and bool(f["done"][5])
        f["done"][5] = False
    d = read_proxy_data(bad, case14)
    assert d.n_samples == 79 and 5 not in d.rows
    with h5py.File(bad, "r+") as f:
        f["done"][...] = False
    with pytest.raises(DatasetError, match="no optimal rows"):
        read_proxy_data(bad, case14)
    assert main(["train", str(bad), "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    odd = _copy(case14_data, tmp_path / "odd.h5")
    with h5py.File(odd, "r+") as f:
        f["status"][0] = 9
    with pytest.raises(DatasetError, match=r"field status: row 0: unknown status code 9$"):
        read_proxy_data(odd, case14)
    assert not (tmp_path / "m").exists()


def test_dataset_not_hdf5_and_missing(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello")
    assert main(["train", str(p), "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    assert main(["train", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "m")]) == 2
    assert main(["model", "info", str(tmp_path / "nope")]) == 2


def test_bad_cli_options_exit_2(case14_data, tmp_path):
    assert main(["train", str(case14_data), "--out", str(tmp_path / "m"), "--hidden",
                 "a,b"]) == 2
    assert main(["train", str(case14_data), "--out", str(tmp_path / "m"), "--lr", "-1",
                 "--no-progress"]) == 2


def test_cli_train_and_info_json(case14_data, tmp_path, capsys):
    out = tmp_path / "cli_model"
    rc = main(["train", str(case14_data), "--out", str(out), "--hidden", "8", "--epochs", "3",
               "--activation", "tanh", "--no-clamp-head", "--seed", "2", "--no-progress"])
    assert rc == 0
    capsys.readouterr()
    assert main(["model", "info", str(out), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["arch"]["activation"] == "tanh" and card["arch"]["clamp_head"] is False
    assert card["training"]["options"]["seed"] == 2
    assert set(card["files"]) == {"arch.json", "weights.npz", "model.onnx"}


def test_several_datasets(case14, case14_data, tmp_path, capsys):
    from gridverify.opf.dataset import make_dataset
    from gridverify.opf.samplers import BoxSampler
    from gridverify.proxy.data import read_proxy_data_many

    with pytest.raises(DatasetError, match="seed 11 used by another"):
        read_proxy_data_many([case14_data, case14_data], case14)
    other_region = tmp_path / "wide.h5"
    make_dataset(case14, 3, other_region, sampler=BoxSampler(0.8, 1.2), seed=12,
                 progress=False)
    with pytest.raises(DatasetError, match="sampler"):
        read_proxy_data_many([case14_data, other_region], case14)
    second = tmp_path / "s12.h5"
    make_dataset(case14, 6, second, sampler=BoxSampler(0.9, 1.1), seed=12, progress=False)
    d = read_proxy_data_many([case14_data, second], case14)
    assert d.n_samples == 86 and d.rows[-1] == 85
    # a first file with a sample that is not optimal: the second file's rows follow
    # all of the first file's rows (its sample count), with no row twice
    import shutil

    import h5py

    from gridverify.opf.dataset import STATUS_CODES

    holed = shutil.copy(case14_data, tmp_path / "holed.h5")
    with h5py.File(holed, "r+") as f:
        f["status"][1] = STATUS_CODES["infeasible"]
    d = read_proxy_data_many([holed, second], case14)
    assert d.n_samples == 85 and d.rows[-1] == 85
    assert len(set(d.rows.tolist())) == d.rows.size
    out = tmp_path / "two"
    assert main(["train", str(case14_data), str(second), "--out", str(out), "--hidden", "8",
                 "--epochs", "2", "--no-progress", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert [p["seed"] for p in card["dataset"]["parts"]] == [11, 12]
    assert card["dataset"]["n_optimal"] == 86


def test_arch_json_fields_of_the_wrong_type_name_the_file_and_field(case14, tmp_path, capsys):
    """``"clamp_head": "no"`` next to a checkpoint is no ``true`` (it used to be taken
    as one, and the error then blamed the weights): the arch file and the field are
    named, in one line, by the API and by the command line."""
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(22, 16), torch.nn.Tanh(), torch.nn.Linear(16, 38))
    torch.save(seq.state_dict(), tmp_path / "seq.pt")
    arch = {"format": "gridverify-proxy-mlp", "version": 1, "n_load": 11, "n_gen": 5,
            "n_bus": 14, "hidden": [16], "activation": "tanh", "clamp_head": False}
    side = tmp_path / "seq.json"
    side.write_text(json.dumps(arch))
    assert load_proxy(tmp_path / "seq.pt", case=case14).clamp_head is False
    for field, value in (("clamp_head", "no"), ("clamp_head", 0), ("n_bus", 14.0),
                         ("hidden", [16.0]), ("activation", 3)):
        side.write_text(json.dumps({**arch, field: value}))
        with pytest.raises(ProxyError, match=rf"seq\.json: arch field {field}: ") as info:
            load_proxy(tmp_path / "seq.pt", case=case14)
        assert "\n" not in str(info.value) and "weights lack" not in str(info.value)
    side.write_text(json.dumps({**arch, "clamp_head": "no"}))
    assert main(["model", "info", str(tmp_path / "seq.pt"), "--case", case14.name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(side) in err and "clamp_head" in err
    assert "weights" not in err
    # an arch embedded in the checkpoint is named as such
    torch.save({"state_dict": seq.state_dict(), "arch": {**arch, "clamp_head": "yes"}},
               tmp_path / "emb.pt")
    with pytest.raises(ProxyError, match=r"emb\.pt \(its 'arch' entry\): arch field clamp_head"):
        load_proxy(tmp_path / "emb.pt", case=case14)


class _OneHotMask(torch.nn.Module):
    """vm of bus 1 = 1 + 0.5 (pd_1 - 3), through a one-hot mask written in place: torch's
    TorchScript converter drops the write (the mask stays zero)."""

    def __init__(self, base: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("base", base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(1, self.base.shape[0], dtype=x.dtype)
        mask[0, 10] = 1.0
        return self.base[None] + 0.5 * (x[:, :1] - 3.0) * mask


def test_an_import_that_differs_from_the_files_runtime_is_refused(tmp_path, capsys) -> None:
    """A constant mask written in place (a write torch.export keeps as ``copy_`` into a
    view) is refused by the importer, naming the op; and certify compares the imported
    graph with the file's own runtime over the region: a graph that is another function
    (here a faithful archive's graph swapped for another, as an importer bug would) is
    refused, never certified."""
    from gridverify.certify import certify
    from gridverify.grid import load_compiled
    from gridverify.ir import from_torch
    from gridverify.proxy import check_source

    c = load_compiled("pglib_opf_case5_pjm")
    base = torch.tensor(np.concatenate([(c.pmin + c.pmax) / 2, np.zeros(c.n_gen),
                                        np.ones(c.n_bus), np.zeros(c.n_bus)]))
    loads = torch.from_numpy(np.concatenate([c.pd, c.qd]))[None].repeat(2, 1)
    ts = torch.jit.trace(_OneHotMask(base).eval(), loads)
    path = tmp_path / "mask.pt"
    ts.save(path)
    with pytest.raises(UnsupportedOpError, match="mask.pt: unsupported op 'aten.copy_'"):
        load_proxy(path, case=c)
    assert main(["certify", "pglib_opf_case5_pjm", "--model", str(path), "--method", "ibp",
                 "--quiet"]) == 2
    assert "in-place op" in capsys.readouterr().err
    # a faithful archive passes the check; with another graph in its place it fails
    torch.manual_seed(0)
    lin = torch.jit.trace(torch.nn.Linear(2 * c.n_load, base.numel()).double().eval(), loads)
    lin.save(tmp_path / "lin.pt")
    x = np.concatenate([c.pd, c.qd])[None] * np.array([[0.9], [1.1]])
    p = load_proxy(tmp_path / "lin.pt", case=c)
    check_source(p, x)
    p.module.graph = from_torch(torch.nn.Linear(2 * c.n_load, base.numel()).double())
    with pytest.raises(ProxyError, match="disagrees with TorchScript"):
        check_source(p, x)
    with pytest.raises(ProxyError, match="lin.pt: the graph gridverify imported"):
        certify(c, p, method="ibp")


def test_a_missing_proxy_is_a_proxy_error_naming_the_bundled_ones(tmp_path):
    """A mistyped bundled name or a missing path: a ProxyError listing the bundled
    proxies (Python callers got a bare FileNotFoundError)."""
    from gridverify.grid import load_compiled

    case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    for what in ("case14_rleu", str(tmp_path / "nope")):
        with pytest.raises(ProxyError, match=r"no such model file or folder.*case14_relu"):
            load_proxy(what, case=case)
    # a path to a copy of a bundled proxy that is not there (a study moved out of the
    # checkout: ../models/case14_relu): said so, not "nor a bundled proxy of that name"
    with pytest.raises(ProxyError) as err:
        load_proxy(str(tmp_path / "models" / "case14_relu"), case=case)
    assert "give that name alone" in str(err.value) and "nor a bundled" not in str(err.value)


def test_model_info_names_the_bundled_proxies_of_a_missing_model(capsys) -> None:
    from gridverify.cli import main

    assert main(["model", "info", "case14_rleu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nor a bundled proxy of that name" in err, err


def test_a_proxy_with_fewer_outputs_than_the_case_needs_is_told_what_is_missing(
        case14, tmp_path):
    """Not the --keep-outputs advice (for a model with more entries): all four of pg,
    qg, vm, va are needed."""
    import io

    buf = io.BytesIO()
    torch.onnx.export(torch.nn.Linear(22, 19).double(), (torch.zeros(1, 22, dtype=torch.float64),),
                      buf, input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    path = tmp_path / "partial.onnx"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ProxyError, match=r"19 entries in all; the case needs 2G \+ 2N = 38: "
                                         r"pg and qg \(G each\), vm and va \(N each\), all four"):
        load_proxy(path, case=case14)


def test_a_torch_proxy_wider_than_the_case_needs_is_refused(case14):
    """A module mapping the loads to two more columns than the case's outputs is not
    this case's proxy: refused, never read as its first columns."""
    n_in, n_out = 2 * case14.n_load, 2 * case14.n_gen + 2 * case14.n_bus
    with pytest.raises(ProxyError, match=rf"\(B, {n_out}\)"):
        load_proxy(torch.nn.Linear(n_in, n_out + 2).double(), case=case14)
