"""Proxies trained with another layout (block order, MW, degrees), adapted to the convention."""

from __future__ import annotations

import io
import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.errors import ProxyError
from gridverify.grid import load_compiled
from gridverify.proxy import load_proxy
from gridverify.proxy.layout import OUTPUT_BLOCKS, ProxyLayout

_CASE = load_compiled("pglib_opf_case14_ieee")


class Foreign(nn.Module):
    """The shipped case14 proxy, as a user would have trained it with ``layout``."""

    def __init__(self, inner: nn.Module, layout: ProxyLayout) -> None:
        super().__init__()
        self.inner, self.layout = inner, layout

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        L, G, N, mva = _CASE.n_load, _CASE.n_gen, _CASE.n_bus, _CASE.base_mva
        k = mva if self.layout.load_units == "mw" else 1.0
        first, second = (u[:, 0::2], u[:, 1::2]) if self.layout.interleaved else (u[:, :L],
                                                                                  u[:, L:])
        parts = dict(zip(self.layout.inputs, (first / k, second / k)))
        y = self.inner(torch.cat([parts["pd"], parts["qd"]], 1))
        blocks = dict(zip(OUTPUT_BLOCKS, torch.split(y, [G, G, N, N], 1)))
        if self.layout.gen_units == "mw":
            blocks["pg"], blocks["qg"] = blocks["pg"] * mva, blocks["qg"] * mva
        if self.layout.angle_units == "deg":
            blocks["va"] = blocks["va"] * (180.0 / math.pi)
        order = self.layout.outputs
        if self.layout.interleaved_outputs:  # heads (G, 2) and (N, 2), flattened
            return torch.cat([torch.stack([blocks[a], blocks[b]], 2).flatten(1)
                              for a, b in (order[:2], order[2:])], 1)
        return torch.cat([blocks[b] for b in order], 1)


_LAYOUTS = [ProxyLayout(("qd", "pd"), ("va", "vm", "pg", "qg"), "mw", "mw", "deg"),
            ProxyLayout(outputs=("vm", "va", "pg", "qg")),
            ProxyLayout(load_units="mw", angle_units="deg"),
            ProxyLayout(("qd", "pd"), load_units="mw", interleaved=True),
            ProxyLayout(outputs=("qg", "pg", "va", "vm"), interleaved_outputs=True),
            ProxyLayout(("qd", "pd"), ("va", "vm", "pg", "qg"), "mw", "mw", "deg",
                        interleaved=True, interleaved_outputs=True)]


@pytest.fixture(scope="module")
def convention():
    return load_proxy("models/case14_relu", case=_CASE)


def _loads(n: int = 64) -> torch.Tensor:
    x0 = torch.from_numpy(np.concatenate([_CASE.pd, _CASE.qd]))
    g = torch.Generator().manual_seed(0)
    return x0 * (0.9 + 0.2 * torch.rand(n, x0.numel(), generator=g, dtype=torch.float64))


def _onnx(module: nn.Module, names: list[str] | None = None) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 2 * _CASE.n_load, dtype=torch.float64),), buf,
                      dynamo=False, opset_version=17, input_names=["u"],
                      output_names=names or ["v"],
                      dynamic_axes={n: {0: "b"} for n in ["u", *(names or ["v"])]})
    return buf.getvalue()


@pytest.mark.parametrize("layout", _LAYOUTS, ids=lambda lay: lay.describe())
def test_adapted_proxy_is_the_convention_proxy(convention, layout, tmp_path):
    foreign = Foreign(convention.module, layout).eval()
    path = tmp_path / "foreign.onnx"
    path.write_bytes(_onnx(foreign))
    x = _loads()
    with torch.no_grad():
        want = convention.module(x)
        for src in (foreign, path):
            p = load_proxy(src, case=_CASE, layout=layout)
            assert p.layout == layout
            torch.testing.assert_close(p.module(x), want, rtol=0, atol=1e-12)
    # the ONNX file's own runtime, through the same maps
    ref = load_proxy(path, case=_CASE, layout=layout).module.reference(x.numpy())
    np.testing.assert_allclose(ref, want.numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("layout", [_LAYOUTS[0], _LAYOUTS[-1]], ids=["blocks", "pairs"])
def test_exported_program_and_the_graph_the_bounds_see(convention, tmp_path, layout):
    from gridverify.certify.certify import proxy_graph

    foreign = Foreign(convention.module, layout).eval()
    ep = torch.export.export(foreign, (_loads(3),),
                             dynamic_shapes=({0: torch.export.Dim("b")},))
    path = tmp_path / "foreign.pt2"
    torch.export.save(ep, path)
    x = _loads()
    with torch.no_grad():
        want = convention.module(x)
    for src in (path, tmp_path / "foreign.onnx"):
        if src.suffix == ".onnx":
            src.write_bytes(_onnx(foreign))
        p = load_proxy(src, case=_CASE, layout=layout)
        g = proxy_graph(p)  # the file's graph inlined between the layout's linear maps
        torch.testing.assert_close(g.evaluate_flat(x, dtype=torch.float64), want, rtol=0,
                                   atol=1e-12)


def test_certificate_of_the_adapted_proxy_is_the_same(convention, tmp_path):
    from gridverify.certify import CertifyOptions, certify

    layout = _LAYOUTS[0]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(_onnx(Foreign(convention.module, layout).eval()))
    opts = CertifyOptions(samples=32, radius=False, attack="none")
    a = certify(_CASE, convention, method="crown", options=opts)
    b = certify(_CASE, load_proxy(path, case=_CASE, layout=layout), method="crown",
                options=opts)
    ua = np.array([c.upper_bound for c in a.constraints])
    ub = np.array([c.upper_bound for c in b.constraints])
    np.testing.assert_allclose(ub, ua, rtol=1e-9, atol=1e-9)
    assert b.provenance["proxy_layout"] == layout.to_dict()
    assert a.provenance["proxy_layout"] is None


def test_named_heads_follow_the_layout_order(convention, tmp_path):
    class Heads(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, u: torch.Tensor):
            G, N = _CASE.n_gen, _CASE.n_bus
            pg, qg, vm, va = torch.split(self.inner(u), [G, G, N, N], 1)
            return vm, va, pg, qg

    path = tmp_path / "heads.onnx"
    path.write_bytes(_onnx(Heads(convention.module).eval(), ["vm", "va", "pg", "qg"]))
    with pytest.raises(ProxyError, match="read in order as pg, qg, vm, va"):
        load_proxy(path, case=_CASE)
    p = load_proxy(path, case=_CASE, layout=ProxyLayout(outputs=("vm", "va", "pg", "qg")))
    with torch.no_grad():
        torch.testing.assert_close(p.module(_loads()), convention.module(_loads()),
                                   rtol=0, atol=1e-12)
    with pytest.raises(ProxyError, match="read in order as va, vm, pg, qg"):
        load_proxy(path, case=_CASE, layout=ProxyLayout(outputs=("va", "vm", "pg", "qg")))


def test_bad_layouts_and_own_proxies_are_refused():
    for kw, match in (({"inputs": ("pd",)}, "inputs must be an order of pd,qd"),
                      ({"outputs": ("pg", "qg", "vm", "vm")}, "outputs must be an order"),
                      ({"load_units": "kw"}, "load_units must be one of pu, mw"),
                      ({"angle_units": "grad"}, "angle_units must be one of rad, deg")):
        with pytest.raises(ProxyError, match=match):
            ProxyLayout(**kw)
    assert ProxyLayout.parse(" QD, pd ", None, "MW").inputs == ("qd", "pd")
    assert ProxyLayout.parse().is_convention
    lay = _LAYOUTS[0]
    with pytest.raises(ProxyError, match="written by gridverify follows the convention"):
        load_proxy("models/case14_relu", case=_CASE, layout=lay)
    with pytest.raises(ProxyError, match="needs case="):
        load_proxy("models/case14_relu", layout=lay)
    # a convention layout changes nothing
    assert load_proxy("models/case14_relu", case=_CASE, layout=ProxyLayout()).layout is None


def test_every_block_order_round_trips(convention):
    x = _loads(8)
    with torch.no_grad():
        want = convention.module(x)
        for order in itertools.permutations(OUTPUT_BLOCKS):
            lay = ProxyLayout(outputs=order, gen_units="mw")
            p = load_proxy(Foreign(convention.module, lay), case=_CASE, layout=lay)
            torch.testing.assert_close(p.module(x), want, rtol=0, atol=1e-12)


def test_cli_flags(convention, tmp_path, capsys):
    from gridverify.cli import main

    lay = _LAYOUTS[0]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(_onnx(Foreign(convention.module, lay).eval()))
    flags = ["--inputs", "qd,pd", "--outputs", "va,vm,pg,qg", "--load-units", "MW",
             "--gen-units", "mw", "--angle-units", "deg"]
    assert main(["model", "info", str(path), "--case", _CASE.name, *flags]) == 0
    assert "adapted from its own layout: inputs qd,pd (mw)" in capsys.readouterr().out
    out = tmp_path / "cert.json"
    rc = main(["certify", _CASE.name, "--model", str(path), *flags, "--method", "crown",
               "--samples", "16", "--attack", "none", "--no-radius", "--quiet", "--threads",
               "1", "--out", str(out)])
    assert rc in (0, 1, 3)
    assert json.loads(out.read_text())["provenance"]["proxy_layout"] == lay.to_dict()
    assert main(["vnncomp", "make-instances", _CASE.name, "--model", str(path), *flags,
                 "--out", str(tmp_path / "vnn"), "--widths", "0.01", "--kinds",
                 "balance_one"]) == 0
    assert "wrote 2 properties" in capsys.readouterr().out
    assert main(["model", "info", "case14_relu", "--angle-units", "deg"]) == 2
    assert "follows the convention" in capsys.readouterr().err
    assert main(["model", "info", "case14_relu", "--interleaved-loads"]) == 2
    assert "--interleaved-loads (the layout flags)" in capsys.readouterr().err
    assert main(["certify", _CASE.name, "--model", str(path), "--outputs", "pg,qg"]) == 2
    assert "outputs must be an order" in capsys.readouterr().err
    missing = tmp_path / "norm.npz"
    assert main(["model", "info", str(path), "--case", _CASE.name, *flags,
                 "--normalization", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and "\n" not in err


class Normalized(nn.Module):
    """The shipped proxy as a pipeline that normalizes outside the network would export
    it: it reads ``(u - mean) / std`` and returns ``(y - mean) / std``."""

    def __init__(self, inner: nn.Module, stats: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.inner, self.s = inner, {k: torch.from_numpy(v) for k, v in stats.items()}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = z * self.s["input_std"] + self.s["input_mean"]
        return (self.inner(u) - self.s["output_mean"]) / self.s["output_std"]


def _stats(seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    n_in, n_out = 2 * _CASE.n_load, 2 * _CASE.n_gen + 2 * _CASE.n_bus
    return {"input_mean": g.normal(size=n_in) * 0.1, "input_std": g.uniform(0.05, 2, n_in),
            "output_mean": g.normal(size=n_out), "output_std": g.uniform(0.1, 3, n_out)}


def test_normalization_outside_the_network(convention, tmp_path):
    stats = _stats()
    # the user's layout too: MW loads, qd first (the stats are in the proxy's own units)
    lay_units = _LAYOUTS[0]
    inner = Foreign(convention.module, lay_units).eval()
    foreign = Normalized(inner, stats).eval()
    npz, js = tmp_path / "norm.npz", tmp_path / "norm.json"
    np.savez(npz, **stats)
    js.write_text(json.dumps({k: v.tolist() for k, v in stats.items()}))
    x = _loads()
    with torch.no_grad():
        want = convention.module(x)
    for f in (npz, js):
        lay = ProxyLayout.parse("qd,pd", "va,vm,pg,qg", "mw", "mw", "deg", normalization=f)
        p = load_proxy(foreign, case=_CASE, layout=lay)
        with torch.no_grad():
            torch.testing.assert_close(p.module(x), want, rtol=0, atol=1e-10)
        assert lay.to_dict()["normalization"]["sha256"] == lay.normalization.sha256
        assert ProxyLayout.from_dict(lay.to_dict()) == lay
    path = tmp_path / "normed.onnx"
    path.write_bytes(_onnx(foreign))
    lay = ProxyLayout.parse("qd,pd", "va,vm,pg,qg", "mw", "mw", "deg", normalization=npz)
    p = load_proxy(path, case=_CASE, layout=lay)
    ref = p.module.reference(x.numpy())
    np.testing.assert_allclose(ref, want.numpy(), rtol=0, atol=1e-8)
    from gridverify.certify import CertifyOptions, certify

    opts = CertifyOptions(samples=32, radius=False, attack="none")
    ua = [c.upper_bound for c in certify(_CASE, convention, method="crown",
                                         options=opts).constraints]
    ub = [c.upper_bound for c in certify(_CASE, p, method="crown", options=opts).constraints]
    np.testing.assert_allclose(ub, ua, rtol=1e-8, atol=1e-8)
    # a recorded layout whose file changed since is refused
    recorded = lay.to_dict()
    np.savez(npz, **_stats(1))
    with pytest.raises(ProxyError, match="changed since it was recorded"):
        ProxyLayout.from_dict(recorded)


def test_bad_normalization_files(tmp_path):
    n_in = 2 * _CASE.n_load
    bad = tmp_path / "bad.npz"
    for arrays, match in (({"input_std": -np.ones(n_in)}, "input_std: expected finite numbers, "
                           "all positive"),
                          ({"mean": np.zeros(n_in)}, "unknown key"),
                          ({"input_mean": np.zeros(n_in + 1)}, "input_mean has 23 entries")):
        np.savez(bad, **arrays)
        with pytest.raises(ProxyError, match=match):
            lay = ProxyLayout.parse(normalization=bad)
            load_proxy(nn.Linear(n_in, 2 * _CASE.n_gen + 2 * _CASE.n_bus).double(),
                       case=_CASE, layout=lay)
    txt = tmp_path / "bad.json"
    txt.write_text("[1, 2]")
    with pytest.raises(ProxyError, match="not a normalization file"):
        ProxyLayout.parse(normalization=txt)
    with pytest.raises(FileNotFoundError):
        ProxyLayout.parse(normalization=tmp_path / "missing.npz")


class _TupleHeads(nn.Module):
    """The convention proxy returning its four blocks as separate outputs, in ``order``."""

    def __init__(self, inner: nn.Module, order: tuple[str, ...]) -> None:
        super().__init__()
        self.inner, self.order = inner, order

    def forward(self, u: torch.Tensor):  # noqa: ANN201
        G, N = _CASE.n_gen, _CASE.n_bus
        blocks = dict(zip(OUTPUT_BLOCKS, torch.split(self.inner(u), [G, G, N, N], 1)))
        return tuple(blocks[b] for b in self.order)


def test_unnamed_heads_must_have_the_layout_widths(convention, tmp_path):
    """Four unnamed heads ``va, vm, pg, qg`` (widths 14, 14, 5, 5 on case14) are not
    read as ``pg, qg, vm, va`` cut across: refused, naming the file, the widths found
    and the widths the layout needs; with the layout's order they load."""
    order = ("va", "vm", "pg", "qg")
    module = _TupleHeads(convention.module, order).eval()
    names = ["o1", "o2", "o3", "o4"]
    path = tmp_path / "unnamed.onnx"
    path.write_bytes(_onnx(module, names))
    want = (r"unnamed\.onnx: ONNX outputs \['o1', 'o2', 'o3', 'o4'\] are 4 heads of widths "
            r"\[14, 14, 5, 5\].* pg, qg, vm, va, which needs widths \[5, 5, 14, 14\]; name "
            r"the outputs after the quantities, or give their order \(--outputs ORDER")
    with pytest.raises(ProxyError, match=want) as info:
        load_proxy(path, case=_CASE)
    assert "\n" not in str(info.value)
    # a layout of another order whose widths still differ: the widths it needs
    with pytest.raises(ProxyError, match=r"as pg, vm, qg, va, which needs widths "
                                         r"\[5, 14, 5, 14\]"):
        load_proxy(path, case=_CASE, layout=ProxyLayout(outputs=("pg", "vm", "qg", "va")))
    layout = ProxyLayout(outputs=order)
    x = _loads()
    with torch.no_grad():
        p = load_proxy(path, case=_CASE, layout=layout)
        torch.testing.assert_close(p.module(x), convention.module(x), rtol=0, atol=1e-12)
        # in the convention's order, unnamed heads load as they are
        ok = tmp_path / "ordered.onnx"
        ok.write_bytes(_onnx(_TupleHeads(convention.module, OUTPUT_BLOCKS).eval(), names))
        torch.testing.assert_close(load_proxy(ok, case=_CASE).module(x),
                                   convention.module(x), rtol=0, atol=1e-12)
    # the same for a torch.export program returning a tuple
    ep = torch.export.export(module.double(), (torch.zeros(3, 2 * _CASE.n_load,
                                                           dtype=torch.float64),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    pt2 = tmp_path / "tuple.pt2"
    torch.export.save(ep, pt2)
    with pytest.raises(ProxyError, match=r"tuple\.pt2: the program's outputs are 4 heads of "
                                         r"widths \[14, 14, 5, 5\].*\[5, 5, 14, 14\]"):
        load_proxy(pt2, case=_CASE)
    with torch.no_grad():
        torch.testing.assert_close(load_proxy(pt2, case=_CASE, layout=layout).module(x),
                                   convention.module(x), rtol=0, atol=1e-12)


def test_model_info_refuses_unnamed_heads_cut_across(convention, tmp_path, capsys):
    from gridverify.cli import main

    path = tmp_path / "h.onnx"
    order = ("va", "vm", "pg", "qg")
    path.write_bytes(_onnx(_TupleHeads(convention.module, order).eval(),
                           ["a", "b", "c", "d"]))
    assert main(["model", "info", str(path), "--case", _CASE.name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and "[14, 14, 5, 5]" in err
    assert main(["model", "info", str(path), "--case", _CASE.name,
                 "--outputs", ",".join(order)]) == 0


class _DictHeads(nn.Module):
    """The convention proxy returning its blocks as a dict, in ``order``."""

    def __init__(self, inner: nn.Module, order: tuple[str, ...]) -> None:
        super().__init__()
        self.inner, self.order = inner, order

    def forward(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        G, N = _CASE.n_gen, _CASE.n_bus
        pg, qg, vm, va = torch.split(self.inner(u), [G, G, N, N], 1)
        blocks = {"pg": pg, "qg": qg, "vm": vm, "va": va}
        return {k: blocks[k] for k in self.order}


def test_a_torchscript_dict_in_another_order_is_refused(convention, tmp_path):
    """As for .pt2 and ONNX: dict keys naming the blocks in another order than the
    layout's are refused (they were read as pg, qg, vm, va: silently wrong when the
    widths agree), and accepted with that order given."""
    order = ("va", "vm", "pg", "qg")
    path = tmp_path / "dict.pt"
    example = torch.zeros(2, 2 * _CASE.n_load, dtype=torch.float64)
    traced = torch.jit.trace(_DictHeads(convention.module, order).eval(), example, strict=False)
    torch.jit.save(traced, path)
    with pytest.raises(ProxyError, match=r"archive's outputs \['va', 'vm', 'pg', 'qg'\] are "
                                         "read in order as pg, qg, vm, va"):
        load_proxy(path, case=_CASE)
    p = load_proxy(path, case=_CASE, layout=ProxyLayout(outputs=order))
    with torch.no_grad():
        torch.testing.assert_close(p.module(_loads()), convention.module(_loads()),
                                   rtol=0, atol=1e-12)


def test_kept_outputs_are_still_read_as_named_heads(convention, tmp_path):
    """--keep-outputs keeps the first 2G + 2N entries; when named heads fill them, their
    names and widths are checked as without it (va, vm, pg, qg were read as pg, qg...)."""
    class HeadsAndResidual(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, u: torch.Tensor):  # noqa: ANN202
            G, N = _CASE.n_gen, _CASE.n_bus
            pg, qg, vm, va = torch.split(self.inner(u), [G, G, N, N], 1)
            return va, vm, pg, qg, u[:, :3]

    path = tmp_path / "heads_resid.onnx"
    path.write_bytes(_onnx(HeadsAndResidual(convention.module).eval(),
                           ["va", "vm", "pg", "qg", "resid"]))
    with pytest.raises(ProxyError, match="read in order as pg, qg, vm, va"):
        load_proxy(path, case=_CASE, onnx_keep_outputs=True)
    p = load_proxy(path, case=_CASE, onnx_keep_outputs=True,
                   layout=ProxyLayout(outputs=("va", "vm", "pg", "qg")))
    with torch.no_grad():
        torch.testing.assert_close(p.module(_loads()), convention.module(_loads()),
                                   rtol=0, atol=1e-6)


def test_empty_normalization_files_and_arrays_are_refused(tmp_path):
    empty = tmp_path / "zero.npz"
    empty.write_bytes(b"")
    with pytest.raises(ProxyError, match="zero.npz: not a normalization file"):
        ProxyLayout.parse(normalization=empty)
    for name, write in (("a.npz", lambda p: np.savez(p, input_std=np.zeros(0))),
                        ("a.json", lambda p: p.write_text('{"input_std": []}'))):
        path = tmp_path / name
        write(path)
        with pytest.raises(ProxyError, match="input_std: no entries"):
            ProxyLayout.parse(normalization=path)


def test_normalization_values_must_be_real_vectors(tmp_path):
    n_in = 2 * _CASE.n_load
    cases = (("c.npz", lambda p: np.savez(p, input_mean=np.zeros(n_in) + 1j),
              "expected a list of real numbers"),
             ("b.json", lambda p: p.write_text('{"input_mean": true}'),
              "expected a list of real numbers"),
             ("m.json", lambda p: p.write_text('{"input_mean": [[0, 1], [2, 3]]}'),
              "expected a list of real numbers"),
             ("t.npz", lambda p: np.savez(p, input_std=np.full(n_in, 1e-320)),
              "1/std overflows"))
    for name, write, match in cases:
        path = tmp_path / name
        write(path)
        with pytest.raises(ProxyError, match=match):
            ProxyLayout.parse(normalization=path)


def test_interleaved_loads_flag_and_records(convention, tmp_path, capsys):
    """``--interleaved-loads``: loads read load by load; recorded only when set (block
    layouts keep their records), read back from a record and a study's table."""
    from gridverify.cli import main

    lay = _LAYOUTS[3]
    assert lay.interleaved and lay.to_dict()["interleaved"] is True
    assert "interleaved" not in _LAYOUTS[0].to_dict()
    assert ProxyLayout.from_dict(lay.to_dict()) == lay
    assert ProxyLayout.from_dict({"inputs": "qd,pd", "load_units": "mw",
                                  "interleaved": True}) == lay
    with pytest.raises(ProxyError, match="interleaved must be true or false"):
        ProxyLayout.from_dict({"interleaved": "yes"})
    path = tmp_path / "foreign.onnx"
    path.write_bytes(_onnx(Foreign(convention.module, lay).eval()))
    flags = ["--inputs", "qd,pd", "--load-units", "MW", "--interleaved-loads"]
    assert main(["model", "info", str(path), "--case", _CASE.name, *flags]) == 0
    assert "inputs qd,pd per load (mw)" in capsys.readouterr().out
    p = load_proxy(path, case=_CASE, layout=lay)
    x = _loads(16)
    torch.testing.assert_close(p.module(x), convention.module(x), rtol=0, atol=1e-9)
    # without the flag the same file reads other loads: another function
    q = load_proxy(path, case=_CASE, layout=ProxyLayout(("qd", "pd"), load_units="mw"))
    assert not torch.allclose(q.module(x), convention.module(x), atol=1e-6)


def test_interleaved_outputs_flag_records_and_pair_heads(convention, tmp_path, capsys):
    """``--interleaved-outputs``: the solution read generator by generator and bus by
    bus (``pg_1, qg_1, ...`` in the ``--outputs`` order); recorded only when set, read
    back from a record; two heads of shapes ``(G, 2)`` and ``(N, 2)`` load as one per
    pair; an order that splits a pair is refused."""
    from gridverify.cli import main

    lay = _LAYOUTS[4]
    assert lay.to_dict()["interleaved_outputs"] is True
    assert "interleaved_outputs" not in _LAYOUTS[3].to_dict()
    assert ProxyLayout.from_dict(lay.to_dict()) == lay
    assert ProxyLayout.from_dict({"outputs": "qg,pg,va,vm",
                                  "interleaved_outputs": True}) == lay
    with pytest.raises(ProxyError, match="interleaved_outputs must be true or false"):
        ProxyLayout.from_dict({"interleaved_outputs": 1})
    with pytest.raises(ProxyError, match="keep each pair together, got pg,vm,qg,va"):
        ProxyLayout(outputs=("pg", "vm", "qg", "va"), interleaved_outputs=True)
    assert lay.maps(2, 2, 3, 100.0)[3].tolist() == [1, 3, 0, 2, 5, 7, 9, 4, 6, 8]
    path = tmp_path / "pairs.onnx"
    path.write_bytes(_onnx(Foreign(convention.module, lay).eval()))
    flags = ["--outputs", "qg,pg,va,vm", "--interleaved-outputs"]
    assert main(["model", "info", str(path), "--case", _CASE.name, *flags]) == 0
    assert "outputs qg,pg,va,vm per generator and bus (pu, rad)" in capsys.readouterr().out
    x = _loads(16)
    with torch.no_grad():
        want = convention.module(x)
        torch.testing.assert_close(load_proxy(path, case=_CASE, layout=lay).module(x), want,
                                   rtol=0, atol=1e-12)
        # without the flag the same file reads another solution
        other = load_proxy(path, case=_CASE, layout=ProxyLayout(outputs=lay.outputs))
        assert not torch.allclose(other.module(x), want, atol=1e-6)

    class PairHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.foreign = Foreign(convention.module, lay)

        def forward(self, u):  # noqa: ANN001, ANN201
            v = self.foreign(u)
            return v[:, :2 * _CASE.n_gen], v[:, 2 * _CASE.n_gen:]

    class Heads3d(PairHeads):  # the same heads as (B, G, 2) and (B, N, 2) tensors
        def forward(self, u):  # noqa: ANN001, ANN201
            g, b = super().forward(u)
            return g.reshape(-1, _CASE.n_gen, 2), b.reshape(-1, _CASE.n_bus, 2)

    heads = tmp_path / "heads.onnx"
    heads.write_bytes(_onnx(PairHeads().eval(), ["gens", "buses"]))
    heads3 = tmp_path / "heads3d.onnx"
    heads3.write_bytes(_onnx(Heads3d().eval(), ["gens", "buses"]))
    with torch.no_grad():
        for src in (heads, heads3):
            torch.testing.assert_close(load_proxy(src, case=_CASE, layout=lay).module(x),
                                       want, rtol=0, atol=1e-12)
    with pytest.raises(ProxyError, match=r"are 2 heads of widths \[10, 28\].* one per "
                                         r"quantity, as qg, pg, va, vm, which needs widths "
                                         r"\[5, 5, 14, 14\]"):
        load_proxy(heads, case=_CASE, layout=ProxyLayout(outputs=lay.outputs))
    four = tmp_path / "four.onnx"
    four.write_bytes(_onnx(_TupleHeads(convention.module, lay.outputs).eval(),
                           ["o1", "o2", "o3", "o4"]))
    with pytest.raises(ProxyError, match=r"one per pair of quantities, as qg,pg and va,vm, "
                                         r"which needs widths \[10, 28\]"):
        load_proxy(four, case=_CASE, layout=lay)
