"""AC flow equations: numpy and torch agree, batch dims, autograd, physics properties."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.grid import (
    GridverifyWarning,
    balance_residuals,
    branch_flows,
    bus_injections,
    load_compiled,
    thermal_residuals,
)


@pytest.fixture(scope="module")
def case118():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridverifyWarning)
        return load_compiled("case118_ieee")


@pytest.fixture(scope="module")
def case14():
    return load_compiled("case14_ieee")


def _voltages(cc, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.9, 1.1, (*shape, cc.n_bus)), rng.uniform(-0.5, 0.5, (*shape, cc.n_bus))


def test_numpy_torch_agree_with_batch_dims(case118):
    vm, va = _voltages(case118, (2, 3))
    fl_np = branch_flows(case118, vm, va)
    fl_t = branch_flows(case118, torch.tensor(vm), torch.tensor(va))
    for a, b in zip(fl_np, fl_t):
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
        assert a.shape == (2, 3, case118.n_branch) and b.dtype == torch.float64
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-13)
    # batch entries equal the unbatched evaluation
    single = branch_flows(case118, vm[1, 2], va[1, 2])
    np.testing.assert_allclose(single.pf, fl_np.pf[1, 2], rtol=0, atol=1e-15)
    p_np, q_np = bus_injections(case118, vm, va)
    p_t, q_t = bus_injections(case118, torch.tensor(vm), torch.tensor(va))
    assert p_np.shape == (2, 3, case118.n_bus)
    np.testing.assert_allclose(p_np, p_t.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(q_np, q_t.numpy(), rtol=0, atol=1e-12)


def test_injections_are_incidence_sums(case14):
    vm, va = _voltages(case14, (5,), seed=2)
    fl = branch_flows(case14, vm, va)
    p, q = bus_injections(case14, vm, va)
    ref_p = fl.pf @ case14.cf.toarray() + fl.pt @ case14.ct.toarray()
    ref_q = fl.qf @ case14.cf.toarray() + fl.qt @ case14.ct.toarray()
    np.testing.assert_allclose(p, ref_p, atol=1e-13)
    np.testing.assert_allclose(q, ref_q, atol=1e-13)


def test_balance_residuals_definition(case14):
    vm, va = _voltages(case14, (3,), seed=4)
    rng = np.random.default_rng(5)
    pg = rng.uniform(0, 1, (3, case14.n_gen))
    qg = rng.uniform(-0.5, 0.5, (3, case14.n_gen))
    pd = case14.pd * rng.uniform(0.8, 1.2, (3, case14.n_load))
    rp, rq = balance_residuals(case14, pg, qg, vm, va, pd=pd)
    p, q = bus_injections(case14, vm, va)
    cg, cl = case14.cg.toarray(), case14.cl.toarray()
    np.testing.assert_allclose(rp, pg @ cg - pd @ cl - case14.gs * vm**2 - p, atol=1e-13)
    np.testing.assert_allclose(rq, qg @ cg - case14.qd @ cl + case14.bs * vm**2 - q, atol=1e-13)
    rp_t, rq_t = balance_residuals(case14, torch.tensor(pg), torch.tensor(qg), torch.tensor(vm),
                                   torch.tensor(va), pd=torch.tensor(pd))
    np.testing.assert_allclose(rp_t.numpy(), rp, atol=1e-13)
    np.testing.assert_allclose(rq_t.numpy(), rq, atol=1e-13)


def test_torch_autograd_gradcheck(case14):
    vm, va = _voltages(case14, (2,), seed=9)
    vm_t = torch.tensor(vm, requires_grad=True)
    va_t = torch.tensor(va, requires_grad=True)

    def fn(vm_, va_):
        fl = branch_flows(case14, vm_, va_)
        p, q = bus_injections(case14, vm_, va_)
        return torch.cat([fl.pf, fl.qf, fl.pt, fl.qt, p, q], dim=-1)

    assert torch.autograd.gradcheck(fn, (vm_t, va_t), eps=1e-6, atol=1e-6)


def test_float32_and_device_kept(case14):
    vm = torch.ones(case14.n_bus, dtype=torch.float32)
    va = torch.zeros(case14.n_bus, dtype=torch.float32)
    fl = branch_flows(case14, vm, va)
    assert fl.pf.dtype == torch.float32 and fl.pf.device == vm.device
    ref = branch_flows(case14, np.ones(case14.n_bus), np.zeros(case14.n_bus))
    np.testing.assert_allclose(fl.pf.numpy(), ref.pf, atol=1e-5)


def test_thermal_residuals(case14):
    vm, va = _voltages(case14, (2,), seed=1)
    fl = branch_flows(case14, vm, va)
    sf, st_ = thermal_residuals(case14, fl)
    np.testing.assert_allclose(sf, fl.pf**2 + fl.qf**2 - case14.rate_a**2)
    np.testing.assert_allclose(st_, fl.pt**2 + fl.qt**2 - case14.rate_a**2)


def test_thermal_unlimited_is_minus_inf(tmp_path):
    from gridverify.grid.case import bundled_cases_dir

    text = (bundled_cases_dir() / "pglib_opf_case5_pjm.m").read_text()
    p = tmp_path / "unl.m"
    p.write_text(text.replace("0.00712	 400.0", "0.00712	 0.0", 1))
    cc = load_compiled(p)
    fl = branch_flows(cc, np.ones(cc.n_bus), np.zeros(cc.n_bus))
    sf, st_ = thermal_residuals(cc, fl)
    assert sf[0] == -np.inf and st_[0] == -np.inf and np.all(np.isfinite(sf[1:]))


@functools.cache
def _case57():
    return load_compiled("case57_ieee")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.2))
def test_losses_nonnegative_and_lossless_at_flat(seed, spread):
    """pf + pt = r |I_series|^2 >= 0 on every branch (no branch conductance)."""
    cc = _case57()
    rng = np.random.default_rng(seed)
    vm = rng.uniform(0.8, 1.2, cc.n_bus)
    va = rng.uniform(-spread, spread, cc.n_bus)
    fl = branch_flows(cc, vm, va)
    assert np.all(fl.pf + fl.pt >= -1e-12)
    v = vm * np.exp(1j * va)
    a = cc.tap * np.exp(1j * cc.shift)
    i_series = (v[cc.f_bus] / a - v[cc.t_bus]) / (cc.r + 1j * cc.x)
    np.testing.assert_allclose(fl.pf + fl.pt, cc.r * np.abs(i_series) ** 2, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(case118):
    vm, va = _voltages(case118, (4,), seed=11)
    ref = branch_flows(case118, vm, va)
    dev = torch.device("cuda")
    got = branch_flows(case118, torch.tensor(vm, device=dev), torch.tensor(va, device=dev))
    for a, b in zip(ref, got):
        assert b.device.type == "cuda"
        np.testing.assert_allclose(b.cpu().numpy(), a, rtol=0, atol=1e-12)
    p, _ = bus_injections(case118, torch.tensor(vm, device=dev), torch.tensor(va, device=dev))
    assert p.device.type == "cuda"
