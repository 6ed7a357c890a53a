"""Test-set metrics of a proxy and of the constant nominal-solution baseline.

All physics quantities use :mod:`gridverify.grid.flows` in float64:

* ``mae_pg, mae_qg, mae_vm, mae_va``: mean absolute error per output group
  (pu, pu, pu, rad) over samples and entries;
* ``balance_mean_pu`` / ``balance_max_pu``: mean / max of ``|res|`` over samples,
  buses and both P and Q balance residuals of the *predicted* solution at the
  sample's loads;
* ``thermal_mean_pu`` / ``thermal_max_pu``: mean / max over samples and branch
  ends of ``max(0, |S| - rate_a)`` (apparent-power excess, pu; unlimited branches
  count 0); ``thermal_violation_rate``: share of samples with any excess > 1e-6.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gridverify.errors import ProxyError

THERMAL_TOL = 1e-6

#: every metric in display order, with its unit (see the module docstring)
METRIC_UNITS: dict[str, str] = {
    "mae_pg": "pu", "mae_qg": "pu", "mae_vm": "pu", "mae_va": "rad",
    "balance_mean_pu": "pu", "balance_max_pu": "pu",
    "thermal_mean_pu": "pu", "thermal_max_pu": "pu", "thermal_violation_rate": "share",
}


@dataclass(frozen=True)
class ProxyMetrics:
    """Metrics of predictions against the true OPF solutions (see module docstring)."""

    n_samples: int
    mae_pg: float
    mae_qg: float
    mae_vm: float
    mae_va: float
    balance_mean_pu: float
    balance_max_pu: float
    thermal_mean_pu: float
    thermal_max_pu: float
    thermal_violation_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)

    def mae(self) -> dict[str, float]:
        """``{"pg": ..., "qg": ..., "vm": ..., "va": ...}``."""
        return {"pg": self.mae_pg, "qg": self.mae_qg, "vm": self.mae_vm, "va": self.mae_va}


def split_outputs(case: Any, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(pg, qg, vm, va)`` of an output batch ``(B, 2G + 2N)``."""
    g, n = case.n_gen, case.n_bus
    if y.shape[-1] != 2 * g + 2 * n:
        raise ProxyError(
            f"outputs have {y.shape[-1]} entries, case needs 2G + 2N = {2 * g + 2 * n}"
        )
    return y[..., :g], y[..., g : 2 * g], y[..., 2 * g : 2 * g + n], y[..., 2 * g + n :]


def physics_metrics(case: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Balance and thermal metrics of solutions ``y`` at loads ``x`` (float64)."""
    from gridverify.grid.flows import balance_residuals, branch_flows

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    L = case.n_load
    pg, qg, vm, va = split_outputs(case, y)
    rp, rq = balance_residuals(case, pg, qg, vm, va, x[:, :L], x[:, L:])
    res = np.abs(np.concatenate([np.asarray(rp), np.asarray(rq)], axis=1))
    fl = branch_flows(case, vm, va)
    rate = np.asarray(case.rate_a, dtype=np.float64)
    lim = np.isfinite(rate)
    sf = np.sqrt(np.asarray(fl.pf) ** 2 + np.asarray(fl.qf) ** 2)
    st = np.sqrt(np.asarray(fl.pt) ** 2 + np.asarray(fl.qt) ** 2)
    r = np.where(lim, rate, 0.0)
    exc = np.concatenate(
        [np.where(lim, np.maximum(sf - r, 0.0), 0.0), np.where(lim, np.maximum(st - r, 0.0), 0.0)],
        axis=1,
    )
    if exc.shape[1] == 0:
        exc = np.zeros((y.shape[0], 1))
    return {
        "balance_mean_pu": float(res.mean()),
        "balance_max_pu": float(res.max()),
        "thermal_mean_pu": float(exc.mean()),
        "thermal_max_pu": float(exc.max()),
        "thermal_violation_rate": float(np.mean(exc.max(axis=1) > THERMAL_TOL)),
    }


def evaluate_predictions(
    case: Any, x: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray
) -> ProxyMetrics:
    """Metrics of ``y_pred`` against ``y_true`` at loads ``x`` (all ``(B, .)`` arrays)."""
    x = np.asarray(x, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or x.shape[0] != y_true.shape[0] or x.shape[0] == 0:
        raise ProxyError(
            f"metrics need matching non-empty batches, got x {x.shape}, "
            f"y_true {y_true.shape}, y_pred {y_pred.shape}"
        )
    if not np.all(np.isfinite(y_pred)):
        raise ProxyError("proxy predictions hold NaN or inf")
    t = split_outputs(case, y_true)
    p = split_outputs(case, y_pred)
    maes = [float(np.mean(np.abs(a - b))) for a, b in zip(p, t)]
    phys = physics_metrics(case, x, y_pred)
    return ProxyMetrics(
        n_samples=int(x.shape[0]),
        mae_pg=maes[0],
        mae_qg=maes[1],
        mae_vm=maes[2],
        mae_va=maes[3],
        **phys,
    )


def nominal_baseline(case: Any, options: Any = None) -> np.ndarray:
    """The AC-OPF solution at nominal loads as one output vector ``(2G + 2N,)``.

    Raises :class:`ProxyError` when the nominal AC-OPF is not solved to optimality.
    """
    from gridverify.opf import solve_opf

    sol = solve_opf(case, options=options)
    if not sol.optimal:
        raise ProxyError(f"nominal AC-OPF of {case.name!r} not solved: {sol.status} {sol.message}")
    return np.concatenate([sol.pg, sol.qg, sol.vm, sol.va]).astype(np.float64)


def baseline_metrics(
    case: Any, x: np.ndarray, y_true: np.ndarray, nominal: np.ndarray
) -> ProxyMetrics:
    """Metrics of the constant prediction ``nominal`` on the batch."""
    y_pred = np.broadcast_to(np.asarray(nominal, dtype=np.float64), y_true.shape).copy()
    return evaluate_predictions(case, x, y_true, y_pred)


def beats_baseline(proxy: ProxyMetrics, baseline: ProxyMetrics) -> dict[str, bool]:
    """Per output group: is the proxy's MAE strictly below the baseline's?"""
    b = baseline.mae()
    return {k: v < b[k] for k, v in proxy.mae().items()}
