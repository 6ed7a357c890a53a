"""The proxy MLP: loads in, AC-OPF solution out (see ``docs/proxy.md``).

Convention: input ``[pd_1..pd_L, qd_1..qd_L]`` (pu), output
``[pg_1..pg_G, qg_1..qg_G, vm_1..vm_N, va_1..va_N]`` (pu, radians).

:class:`ProxyMLP` has two forms:

* the *training* form carries an input normalization ``(x - in_shift) * in_gain``
  and an output de-normalization ``z * out_scale + out_shift`` on the unclamped
  outputs;
* the *deployed* (folded) form, made by :meth:`ProxyMLP.folded`, has the input
  normalization folded into the first linear layer and the output affine folded
  into the last one: it is a plain chain of ``Linear`` and activations followed,
  with the clamp head, by ``lo + span * sigmoid(z)`` on ``pg, qg, vm``.

Only the deployed form is saved, exported and loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import ProxyError
from gridverify.proxy.options import ACTIVATIONS  # noqa: E402

ARCH_FORMAT = "gridverify-proxy-mlp"
ARCH_VERSION = 1
#: the fields every architecture gives
_ARCH_REQUIRED = ("n_load", "n_gen", "n_bus", "hidden", "activation")
#: an architecture as messages show it (the case's sizes, the hidden widths, the activation)
ARCH_EXAMPLE = ('{"n_load": L, "n_gen": G, "n_bus": N, "hidden": [64, 64], '
                '"activation": "relu"}, plus "clamp_head": true for gridverify\'s clamp head')


class _IOSizes:
    """``input_size`` and ``output_size`` of the proxy layout (``docs/proxy.md``).

    For a class with ``n_load``, ``n_gen`` and ``n_bus`` attributes: the input is
    ``[pd (L), qd (L)]``, the output ``[pg (G), qg (G), vm (N), va (N)]``.
    """

    n_load: int
    n_gen: int
    n_bus: int

    @property
    def input_size(self) -> int:
        """``2L``: ``2 * n_load``."""
        return 2 * self.n_load

    @property
    def output_size(self) -> int:
        """``2G + 2N``: ``2 * n_gen + 2 * n_bus``."""
        return 2 * self.n_gen + 2 * self.n_bus


@dataclass(frozen=True)
class ProxyArch(_IOSizes):
    """Architecture of a proxy MLP (what ``arch.json`` holds).

    ``clamp_head``: ``pg, qg, vm`` are ``lo + (hi - lo) * sigmoid(z)`` with the
    case limits (va is unclamped).
    """

    n_load: int
    n_gen: int
    n_bus: int
    hidden: tuple[int, ...]
    activation: str
    clamp_head: bool

    def __post_init__(self) -> None:
        if not isinstance(self.activation, str):
            raise ProxyError(f"arch field activation: must be a string (one of "
                             f"{', '.join(ACTIVATIONS)}), got {self.activation!r}")
        if self.activation not in ACTIVATIONS:
            raise ProxyError(
                f"arch field activation: {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        for name in ("n_load", "n_gen", "n_bus"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ProxyError(f"arch field {name}: must be a positive integer, got {v!r}")
        if not self.hidden or any(
            (not isinstance(h, int)) or isinstance(h, bool) or h <= 0 for h in self.hidden
        ):
            raise ProxyError(f"arch field hidden: must be positive integers, got {self.hidden!r}")
        if isinstance(self.clamp_head, np.bool_):  # (a numpy flag is a boolean)
            object.__setattr__(self, "clamp_head", bool(self.clamp_head))
        if not isinstance(self.clamp_head, bool):
            raise ProxyError(f"arch field clamp_head: must be a boolean (true or false), "
                             f"got {self.clamp_head!r}")

    @property
    def n_clamped(self) -> int:
        """Number of leading outputs under the clamp head (``2G + N``) or 0."""
        return (2 * self.n_gen + self.n_bus) if self.clamp_head else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (with format tag and version)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return {"format": ARCH_FORMAT, "version": ARCH_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "arch") -> ProxyArch:
        """Parse the JSON form; a bad field raises :class:`ProxyError` naming it."""
        if not isinstance(d, dict):
            raise ProxyError(f"{source}: architecture must be a JSON object")
        fmt = d.get("format", ARCH_FORMAT)
        if fmt != ARCH_FORMAT:
            raise ProxyError(f"{source}: field format: expected {ARCH_FORMAT!r}, got {fmt!r}")
        ver = d.get("version", ARCH_VERSION)
        if ver != ARCH_VERSION or not isinstance(ver, int) or isinstance(ver, bool):
            raise ProxyError(f"{source}: field version: unsupported version {ver!r}")
        for key in _ARCH_REQUIRED:
            if key not in d:
                raise ProxyError(f"{source}: missing field {key!r} (an architecture is "
                                 f"{ARCH_EXAMPLE})")
        # a misspelt field (``clamphead``) would silently describe another network
        known = {"format", "version", *(f.name for f in fields(cls))}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ProxyError(f"{source}: unknown field {unknown[0]!r} (known: "
                             f"{', '.join(sorted(known))})")
        # JSON types exactly: a string "no" or a number 1 is no boolean, 64.0 no size
        hidden = d["hidden"]
        if not isinstance(hidden, (list, tuple)):
            raise ProxyError(f"{source}: arch field hidden: must be a list of positive "
                             f"integers, got {hidden!r}")
        clamp = d.get("clamp_head", False)
        if not isinstance(clamp, bool):
            raise ProxyError(f"{source}: arch field clamp_head: must be a JSON boolean (true "
                             f"or false), got {clamp!r}")
        try:
            return cls(
                n_load=d["n_load"],
                n_gen=d["n_gen"],
                n_bus=d["n_bus"],
                hidden=tuple(hidden),
                activation=d["activation"],
                clamp_head=clamp,
            )
        except ProxyError as exc:
            raise ProxyError(f"{source}: {exc}") from None

    def to_json(self) -> str:
        """Canonical JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


#: negative slope of the ``leaky_relu`` activation (torch's default)
LEAKY_SLOPE = 0.01

_ACTIVATION_MODULES = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
    "elu": nn.ELU, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "softplus": nn.Softplus,
}


def make_activation(name: str) -> nn.Module:
    """The torch module of an activation name (one of ``ACTIVATIONS``)."""
    if name not in _ACTIVATION_MODULES:
        raise ProxyError(f"unknown activation {name!r}")
    return _ACTIVATION_MODULES[name]()


def case_limits(case: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper limits of the clamped outputs ``[pg, qg, vm]`` of a compiled case.

    An infinite limit (``Inf`` in a case file: no limit) gets a finite stand-in so
    that the sigmoid head stays finite: for ``pg``/``qg`` the other end moved by
    twice the total load magnitude plus 1 pu (no generator serves more), for
    ``vm`` 0 or 2 pu.
    """
    lo = np.concatenate([case.pmin, case.qmin, case.vmin]).astype(np.float64)
    hi = np.concatenate([case.pmax, case.qmax, case.vmax]).astype(np.float64)
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        return lo, hi
    n_pq = 2 * int(case.n_gen)
    reach = 2.0 * float(np.abs(case.pd).sum() + np.abs(case.qd).sum()) + 1.0
    power = np.arange(lo.size) < n_pq
    lo_f = np.where(np.isfinite(lo), lo, 0.0)
    hi_f = np.where(np.isfinite(hi), hi, 0.0)
    lo = np.where(np.isfinite(lo), lo, np.where(power, np.minimum(hi_f, 0.0) - reach, 0.0))
    hi = np.where(np.isfinite(hi), hi, np.where(power, np.maximum(lo_f, 0.0) + reach, 2.0))
    return lo, hi


class ProxyMLP(nn.Module):
    """MLP following the proxy convention (see module docstring).

    Parameters are ``layers.{i}.weight/bias``; buffers ``head_lo``/``head_span``
    (clamp head), ``in_shift``/``in_gain`` (training form only) and
    ``out_shift``/``out_scale`` (training form only, unclamped outputs).
    """

    def __init__(
        self,
        arch: ProxyArch,
        *,
        head_lo: np.ndarray | None = None,
        head_hi: np.ndarray | None = None,
        in_shift: np.ndarray | None = None,
        in_scale: np.ndarray | None = None,
        out_shift: np.ndarray | None = None,
        out_scale: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.arch = arch
        sizes = [arch.input_size, *arch.hidden, arch.output_size]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.act = make_activation(arch.activation)
        nc = arch.n_clamped
        self.n_clamped = nc
        if arch.clamp_head:
            if head_lo is None or head_hi is None:
                head_lo = np.zeros(nc)
                head_hi = np.ones(nc)
            lo = np.asarray(head_lo, dtype=np.float64)
            hi = np.asarray(head_hi, dtype=np.float64)
            if lo.shape != (nc,) or hi.shape != (nc,):
                raise ProxyError(f"clamp head limits must have {nc} entries")
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
                raise ProxyError(
                    "clamp head needs finite pg/qg/vm limits in the case; use --no-clamp-head"
                )
            if np.any(hi < lo):
                raise ProxyError("clamp head: an upper limit is below its lower limit")
            self.register_buffer("head_lo", torch.tensor(lo, dtype=dtype))
            self.register_buffer("head_span", torch.tensor(hi - lo, dtype=dtype))
        self.in_norm = in_shift is not None
        if self.in_norm:
            scale = np.asarray(in_scale, dtype=np.float64)
            self.register_buffer("in_shift", torch.tensor(np.asarray(in_shift), dtype=dtype))
            self.register_buffer("in_gain", torch.tensor(1.0 / scale, dtype=dtype))
        self.out_norm = out_shift is not None
        if self.out_norm:
            n_lin = arch.output_size - nc
            sh = np.asarray(out_shift, dtype=np.float64)
            sc = np.asarray(out_scale, dtype=np.float64)
            if sh.shape != (n_lin,) or sc.shape != (n_lin,):
                raise ProxyError(f"output normalization must have {n_lin} entries")
            self.register_buffer("out_shift", torch.tensor(sh, dtype=dtype))
            self.register_buffer("out_scale", torch.tensor(sc, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2L) -> (B, 2G + 2N)``."""
        z = x
        if self.in_norm:
            z = (z - self.in_shift) * self.in_gain
        last = len(self.layers) - 1
        for i, lin in enumerate(self.layers):
            z = lin(z)
            if i < last:
                z = self.act(z)
        if self.n_clamped:
            nc = self.n_clamped
            yc = self.head_lo + self.head_span * torch.sigmoid(z[:, :nc])
            zl = z[:, nc:]
            if self.out_norm:
                zl = zl * self.out_scale + self.out_shift
            return torch.cat([yc, zl], dim=1)
        if self.out_norm:
            z = z * self.out_scale + self.out_shift
        return z

    @property
    def is_folded(self) -> bool:
        """True for the deployed form (no normalization buffers)."""
        return not (self.in_norm or self.out_norm)

    def folded(self, dtype: torch.dtype = torch.float32) -> ProxyMLP:
        """The deployed form: normalizations folded into the first/last layers.

        The fold is computed in float64 and the result stored in ``dtype``.
        """
        arch = self.arch
        ws = [lin.weight.detach().to(torch.float64).clone() for lin in self.layers]
        bs = [lin.bias.detach().to(torch.float64).clone() for lin in self.layers]
        if self.in_norm:
            gain = self.in_gain.detach().to(torch.float64)
            shift = self.in_shift.detach().to(torch.float64)
            w0 = ws[0] * gain[None, :]
            bs[0] = bs[0] - w0 @ shift
            ws[0] = w0
        if self.out_norm:
            nc = self.n_clamped
            sc = self.out_scale.detach().to(torch.float64)
            sh = self.out_shift.detach().to(torch.float64)
            ws[-1][nc:] = ws[-1][nc:] * sc[:, None]
            bs[-1][nc:] = bs[-1][nc:] * sc + sh
        lo = hi = None
        if arch.clamp_head:
            lo64 = self.head_lo.detach().to(torch.float64)
            lo = lo64.numpy()
            hi = (lo64 + self.head_span.detach().to(torch.float64)).numpy()
        out = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=dtype)
        with torch.no_grad():
            for lin, w, b in zip(out.layers, ws, bs):
                lin.weight.copy_(w.to(dtype))
                lin.bias.copy_(b.to(dtype))
        out.eval()
        return out

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """The deployed state as numpy arrays keyed like the state dict."""
        if not self.is_folded:
            raise ProxyError("only the folded (deployed) proxy is saved; call .folded() first")
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}


def expected_keys(arch: ProxyArch) -> list[str]:
    """State-dict keys of the deployed form of ``arch``."""
    keys = []
    for i in range(len(arch.hidden) + 1):
        keys += [f"layers.{i}.weight", f"layers.{i}.bias"]
    if arch.clamp_head:
        keys += ["head_lo", "head_span"]
    return keys


def module_from_arrays(
    arch: ProxyArch, arrays: dict[str, Any], *, source: str, dtype: torch.dtype = torch.float64
) -> ProxyMLP:
    """Build the deployed module from a state dict (numpy or torch), checking every key/shape.

    A state dict of a plain ``nn.Sequential`` (keys ``"0.weight"``, ``"2.weight"`` ...)
    is accepted too: its linear layers are taken in order.
    """
    arrays = _normalize_keys(arch, dict(arrays), source)
    want = expected_keys(arch)
    missing = [k for k in want if k not in arrays]
    extra = sorted(k for k in arrays if k not in want)
    if missing:
        raise ProxyError(
            f"{source}: weights lack {', '.join(missing)} (the state dict of gridverify's "
            "MLP has layers.<i>.weight/bias, that of a plain nn.Sequential 0.weight, "
            "2.weight, ...: give the Sequential's own state_dict(), its input normalization "
            "as --normalization FILE; keys found: "
            f"{', '.join(sorted(arrays)[:6])}{', ...' if len(arrays) > 6 else ''})")
    if extra:
        raise ProxyError(f"{source}: unexpected weights {', '.join(extra)}")
    model = ProxyMLP(arch, dtype=dtype)
    state = model.state_dict()
    new_state = {}
    for k in want:
        a = arrays[k]
        t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
        if not (t.is_floating_point()):
            raise ProxyError(f"{source}: weight {k} is not a floating-point array")
        if tuple(t.shape) != tuple(state[k].shape):
            raise ProxyError(
                f"{source}: weight {k} has shape {tuple(t.shape)}, "
                f"the architecture needs {tuple(state[k].shape)}"
            )
        if not torch.all(torch.isfinite(t)):
            raise ProxyError(f"{source}: weight {k} holds NaN or inf")
        new_state[k] = t.to(dtype)
    model.load_state_dict(new_state)
    if arch.clamp_head and torch.any(model.head_span < 0):
        raise ProxyError(f"{source}: weight head_span has negative entries")
    model.eval()
    return model


def _normalize_keys(arch: ProxyArch, arrays: dict[str, Any], source: str) -> dict[str, Any]:
    if any(k.startswith("layers.") for k in arrays):
        return arrays
    heads = {k.split(".", 1)[0] for k in arrays}
    if len(heads) == 1 and all(k.count(".") >= 2 for k in arrays):
        # the state dict of a module holding the network as its one child (``net.0.weight``)
        arrays = {k.split(".", 1)[1]: v for k, v in arrays.items()}
        if any(k.startswith("layers.") for k in arrays):
            return arrays
    # nn.Sequential numbering: take "<n>.weight"/"<n>.bias" pairs in numeric order
    idx = sorted(
        {int(k.split(".")[0]) for k in arrays if k.split(".")[0].isdigit() and k.count(".") == 1}
    )
    if not idx:
        return arrays
    out = {k: v for k, v in arrays.items() if not k.split(".")[0].isdigit()}
    n_layers = len(arch.hidden) + 1
    if len(idx) != n_layers:
        raise ProxyError(
            f"{source}: the state dict has {len(idx)} linear layer(s) (keys "
            f"{', '.join(f'{n}.weight' for n in idx)}), the architecture (hidden "
            f"{list(arch.hidden)}) {n_layers}")
    for j, n in enumerate(idx):
        for part in ("weight", "bias"):
            key = f"{n}.{part}"
            if key not in arrays:
                raise ProxyError(f"{source}: weights lack {key}")
            out[f"layers.{j}.{part}"] = arrays[key]
    return out
