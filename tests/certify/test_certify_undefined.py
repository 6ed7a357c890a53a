"""A proxy that is undefined (NaN) over part of the region is never certified there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gridverify as gv
from gridverify.certify import Certificate, CertifyOptions

CASE = "pglib_opf_case14_ieee"


class _SqrtProxy(nn.Module):
    """Mid-range set points; vm at bus 1 is ``0.95 + 0.1 sqrt(pd_1 - shift)`` (NaN
    below the shift), every other voltage 1 and every angle 0."""

    def __init__(self, case, shift: float) -> None:  # noqa: ANN001
        super().__init__()
        self.shift = shift
        self.register_buffer("pg", torch.tensor((case.pmin + case.pmax) / 2))
        self.register_buffer("qg", torch.tensor((case.qmin + case.qmax) / 2))
        self.n_bus = case.n_bus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        vm1 = 0.95 + 0.1 * torch.sqrt(x[:, :1] - self.shift)
        vm = torch.cat([vm1, torch.ones(b, self.n_bus - 1, dtype=x.dtype)], 1)
        va = torch.zeros(b, self.n_bus, dtype=x.dtype)
        return torch.cat([self.pg.expand(b, -1), self.qg.expand(b, -1), vm, va], 1)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_nan_proxy_is_never_certified(method: str) -> None:
    case = gv.load_compiled(CASE)
    region = gv.certify.default_region(case, None)
    lo1, hi1 = float(region.lower[0]), float(region.upper[0])
    opts = CertifyOptions(samples=64, radius=False)
    # below the whole range: NaN everywhere; inside it: NaN on part of the region
    for shift in (hi1 + 1.0, (lo1 + hi1) / 2):
        proxy = _SqrtProxy(case, shift).double()
        cert = gv.certify(case, proxy, region=region, constraints="vm_max[1],vm_min[1]",
                          method=method, options=opts)
        assert [c.status for c in cert.constraints] == ["open", "open"], shift
        assert any("undefined (NaN" in w for w in cert.warnings)
        assert all(c.reason and "NaN" in c.reason or c.upper_bound is None
                   or not np.isfinite(c.upper_bound) for c in cert.constraints)
    # above the range the proxy is defined everywhere: certified as usual
    proxy = _SqrtProxy(case, lo1 - 0.01).double()
    cert = gv.certify(case, proxy, region=region, constraints="vm_max[1],vm_min[1]",
                      method=method, options=opts)
    assert [c.status for c in cert.constraints] == ["certified", "certified"]
    assert not any("NaN" in w for w in cert.warnings)


class _OverflowProxy(_SqrtProxy):
    """vm at bus 1 is ``0.95 + exp(1e5 (pd_1 - shift))``: +inf on part of the region."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x + 0.0 * x)  # the sqrt part is defined: shift below the range
        bump = torch.exp(1e5 * (x[:, :1] - self.bump_at))
        n_g = self.pg.numel()
        return torch.cat([y[:, :2 * n_g], y[:, 2 * n_g:2 * n_g + 1] + bump,
                          y[:, 2 * n_g + 1:]], 1)


def test_a_proxy_overflowing_to_infinity_is_undefined_and_reads_back(tmp_path) -> None:
    """A value that overflows to +inf at loads of the region is no attained value (a
    certificate's JSON holds finite ones): those loads count as undefined, said in a
    warning, and the certificate written reads back."""
    case = gv.load_compiled(CASE)
    region = gv.certify.default_region(case, None)
    lo1, hi1 = float(region.lower[0]), float(region.upper[0])
    proxy = _OverflowProxy(case, lo1 - 0.01).double()
    proxy.bump_at = (lo1 + hi1) / 2
    cert = gv.certify(case, proxy, region=region, constraints="vm_max[1],vm_min[1]",
                      method="crown", options=CertifyOptions(samples=64, radius=False))
    vm_max = next(c for c in cert.constraints if c.family == "vm_max")
    # violated where the bump is finite and large, never certified; its value finite
    assert vm_max.status in ("open", "violated") and np.isfinite(vm_max.attained)
    assert any("NaN or infinite" in w for w in cert.warnings)
    assert not any("float32" in w for w in cert.warnings)  # unbounded: said as undefined
    path = cert.write(tmp_path / "cert.json")
    back = Certificate.read(path)
    assert [c.status for c in back.constraints] == [c.status for c in cert.constraints]


def test_an_infinite_output_leaves_the_lower_limit_open_too() -> None:
    """vm = +inf at part of the region makes vm_min's value -inf there: the proxy is
    undefined at those loads for that constraint as well (it was certified, though the
    warning said constraints undefined at some load are never certified)."""
    case = gv.load_compiled(CASE)
    region = gv.certify.default_region(case, None)
    lo1, hi1 = float(region.lower[0]), float(region.upper[0])
    proxy = _OverflowProxy(case, lo1 - 0.01).double()
    proxy.bump_at = (lo1 + hi1) / 2
    cert = gv.certify(case, proxy, region=region, constraints="vm_min[1]", method="crown",
                      options=CertifyOptions(samples=64, radius=False))
    (vm_min,) = cert.constraints
    assert vm_min.status == "open" and "undefined" in (vm_min.reason or ""), vm_min


class _Float32OverflowProxy(_SqrtProxy):
    """vm at bus 1 is ``0.95 + 0.1 sqrt(pd_1 - shift) + ((b 1e30) 1e30) 1e-60`` with
    ``b = relu(pd_1 - at)``: exact in float64, while a float32 runtime overflows the
    product ``b 1e60`` to inf wherever ``b > 0``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        b = torch.relu(x[:, :1] - self.at)
        bump = ((b * 1e30) * 1e30) * 1e-60
        n_g = self.pg.numel()
        return torch.cat([y[:, :2 * n_g], y[:, 2 * n_g:2 * n_g + 1] + bump,
                          y[:, 2 * n_g + 1:]], 1)


def test_values_beyond_float32_range_are_said() -> None:
    """Certified (the function computed exactly stays in range), with a warning that
    a float32 runtime of the proxy may overflow, naming the op; none for a proxy
    whose values stay within float32's range over the region."""
    case = gv.load_compiled(CASE)
    region = gv.certify.default_region(case, None)
    lo1, hi1 = float(region.lower[0]), float(region.upper[0])
    opts = CertifyOptions(samples=64, radius=False)
    for at, beyond in ((hi1 - 1e-3, True), (hi1 + 1.0, False)):
        proxy = _Float32OverflowProxy(case, lo1 - 0.01).double()
        proxy.at = at
        cert = gv.certify(case, proxy, region=region, constraints="vm_max[1],vm_min[1]",
                          method="crown", options=opts)
        said = [w for w in cert.warnings if "float32" in w]
        assert bool(said) == beyond, (at, cert.warnings)
        if beyond:
            assert "may overflow" in said[0] and "'scale'" in said[0], said
