"""Training a case14 proxy from a small real dataset: metrics, card, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gridverify.errors import ProxyError
from gridverify.proxy.artifacts import read_model_dir
from gridverify.proxy.data import read_proxy_data
from gridverify.proxy.options import ACTIVATIONS
from gridverify.proxy.train import TrainOptions, split_indices, train_proxy


def test_trained_proxy_beats_nominal_baseline(trained14):
    result, out = trained14
    m, b = result.metrics, result.baseline
    assert b is not None
    for group, mae in m.mae().items():
        assert np.isfinite(mae)
        assert mae < b.mae()[group], f"{group}: proxy {mae} vs baseline {b.mae()[group]}"
    card = json.loads((out / "card.json").read_text())
    assert card["metrics"]["beats_baseline_mae"] == {"pg": True, "qg": True, "vm": True,
                                                      "va": True}
    assert card["case_name"] == "pglib_opf_case14_ieee"
    ds = card["dataset"]
    assert ds["n_train"] + ds["n_val"] + ds["n_test"] == ds["n_optimal"]
    assert card["region"]["kind"] == "sampler"
    assert card["training"]["seconds"] > 0


def test_region_matches_sampler_box(trained14, case14):
    _, out = trained14
    md = read_model_dir(out)
    lo = np.asarray(md.card["region"]["lower"])
    hi = np.asarray(md.card["region"]["upper"])
    nom = np.concatenate([case14.pd, case14.qd])
    np.testing.assert_allclose(lo, np.minimum(0.9 * nom, 1.1 * nom))
    np.testing.assert_allclose(hi, np.maximum(0.9 * nom, 1.1 * nom))


def test_metrics_recomputed_from_saved_model(trained14, case14, case14_data):
    """The card's test metrics are those of the saved (folded, float32) weights."""
    from gridverify.proxy.metrics import evaluate_predictions

    result, out = trained14
    md = read_model_dir(out)
    data = read_proxy_data(case14_data, case14)
    xt, yt = data.x[result.split.test], data.y[result.split.test]
    with torch.no_grad():
        pred = md.module(torch.from_numpy(xt)).numpy()
    m = evaluate_predictions(case14, xt, yt, pred)
    for k, v in m.to_dict().items():
        assert v == pytest.approx(md.card["metrics"]["test"][k], rel=1e-9, abs=1e-12)


def test_metrics_of_ground_truth_are_physical(case14, case14_data):
    """The OPF solutions themselves balance (sanity of the metric code)."""
    from gridverify.proxy.metrics import evaluate_predictions

    data = read_proxy_data(case14_data, case14)
    m = evaluate_predictions(case14, data.x, data.y, data.y)
    assert m.mae_pg == 0 and m.mae_va == 0
    assert m.balance_max_pu < 1e-5
    assert m.thermal_max_pu < 1e-5


def test_same_seed_same_weights(case14, case14_data, nominal14):
    data = read_proxy_data(case14_data, case14)
    opts = TrainOptions(hidden=(16, 16), activation="tanh", clamp_head=True, epochs=12,
                        batch_size=8, seed=3, balance_weight=0.1, progress=False)
    a = train_proxy(case14, data, opts, baseline=nominal14)
    b = train_proxy(case14, data, opts, baseline=nominal14)
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.history == b.history
    c = train_proxy(case14, data, TrainOptions(**{**opts.to_dict(), "hidden": (16, 16),
                                                  "seed": 4, "progress": False}),
                    baseline=nominal14)
    assert not torch.equal(c.module.state_dict()["layers.0.weight"], sa["layers.0.weight"])
    # global torch settings are restored
    assert not torch.are_deterministic_algorithms_enabled()


def test_balance_penalty_changes_training(case14, case14_data, nominal14):
    data = read_proxy_data(case14_data, case14)
    base = dict(hidden=(16,), activation="relu", clamp_head=False, epochs=5, batch_size=16,
                seed=1, progress=False)
    a = train_proxy(case14, data, TrainOptions(**base), baseline=nominal14)
    b = train_proxy(case14, data, TrainOptions(**base, balance_weight=10.0), baseline=nominal14)
    assert a.history[0]["train_loss"] < b.history[0]["train_loss"]


def test_split_is_disjoint_and_seeded():
    s = split_indices(100, 0, 0.1, 0.1)
    allr = np.concatenate([s.train, s.val, s.test])
    assert sorted(allr.tolist()) == list(range(100))
    assert len(s.test) == 10 and len(s.val) == 10
    s2 = split_indices(100, 0, 0.1, 0.1)
    assert np.array_equal(s.test, s2.test)
    with pytest.raises(ProxyError):
        split_indices(2, 0, 0.1, 0.1)


def test_bad_options():
    with pytest.raises(ProxyError, match="activation"):
        TrainOptions(activation="softsign")
    with pytest.raises(ProxyError, match="lr"):
        TrainOptions(lr=-1)
    with pytest.raises(ProxyError, match="val_fraction"):
        TrainOptions(val_fraction=0.7)
    with pytest.raises(ProxyError, match="stability_weight"):
        TrainOptions(stability_weight=-0.1)
    # beyond float32, where Adam keeps them (it raised an overflow RuntimeError)
    with pytest.raises(ProxyError, match=r"lr = 1e\+39 \(--lr must be in \(0, 3.403e\+38\]"):
        TrainOptions(lr=1e39)
    with pytest.raises(ProxyError, match="weight_decay"):
        TrainOptions(weight_decay=float("inf"))


def test_a_step_beyond_float32_is_divergence(case14, case14_data, nominal14):
    """A learning rate within float32 whose first Adam step (lr / (1 - beta1) = 10 lr)
    is not: training diverged (a one-line error), not an overflow RuntimeError."""
    data = read_proxy_data(case14_data, case14)
    opts = TrainOptions(hidden=(8,), epochs=1, lr=3e38, progress=False)
    with pytest.raises(ProxyError, match="diverged at epoch 1: the optimizer's step overflows"):
        train_proxy(case14, data, opts, baseline=nominal14)


def _random_training_module(activation: str, seed: int):
    from gridverify.proxy.model import ProxyArch, ProxyMLP

    g = np.random.default_rng(seed)
    arch = ProxyArch(n_load=3, n_gen=2, n_bus=3, hidden=(12, 9), activation=activation,
                     clamp_head=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = ProxyMLP(arch, in_shift=g.normal(size=6), in_scale=g.uniform(0.2, 2.0, size=6),
                     out_shift=np.zeros(10), out_scale=np.ones(10), dtype=torch.float64)
    return m


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hidden_intervals_contain_sampled_preactivations(activation):
    """The intervals of the verification-friendliness term hold on dense samples of the box."""
    from gridverify.proxy.train import hidden_intervals

    for seed in range(3):
        m = _random_training_module(activation, seed)
        g = np.random.default_rng(seed + 10)
        lo = torch.tensor(g.normal(size=6))
        hi = lo + torch.tensor(g.uniform(0.0, 2.0, size=6))
        iv = hidden_intervals(m, lo[None], hi[None])
        u = torch.rand(20000, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        x = torch.cat([lo + u * (hi - lo), lo[None], hi[None]])  # interior and two corners
        z = (x - m.in_shift) * m.in_gain
        for (pl, ph), lin in zip(iv, m.layers[:-1]):
            pre = lin(z)
            assert torch.all(pre >= pl - 1e-12) and torch.all(pre <= ph + 1e-12)
            z = m.act(pre)


def test_relaxation_gap_zero_when_stable_positive_when_not():
    from gridverify.proxy.train import relaxation_gap

    m = _random_training_module("relu", 0)
    lo, hi = torch.full((1, 6), -1.0, dtype=torch.float64), torch.ones(1, 6, dtype=torch.float64)
    assert float(relaxation_gap(m, lo, hi).detach()) > 0
    with torch.no_grad():
        for lin in m.layers[:-1]:
            lin.bias.fill_(1e3)  # every pre-activation positive over the box
    assert float(relaxation_gap(m, lo, hi).detach()) == 0.0
    t = _random_training_module("tanh", 0)
    assert float(relaxation_gap(t, lo, lo).detach()) == 0.0  # a point: no width, no gap
    assert float(relaxation_gap(t, lo, hi).detach()) > 0


def test_stability_weight_makes_neurons_stable_over_the_region(case14, case14_data, nominal14):
    """Training with the term leaves fewer unstable relu neurons over the training region
    (interval bounds), and the proxy still beats the nominal baseline."""
    from gridverify.proxy.train import hidden_intervals, training_region

    data = read_proxy_data(case14_data, case14)
    base = dict(hidden=(32, 32), activation="relu", clamp_head=True, epochs=60, batch_size=16,
                lr=3e-3, seed=5, patience=40, progress=False)
    reg = training_region(case14, data)
    lo = torch.tensor(np.asarray(reg["lower"]), dtype=torch.float32)[None]
    hi = torch.tensor(np.asarray(reg["upper"]), dtype=torch.float32)[None]

    def unstable(result) -> int:
        iv = hidden_intervals(result.module, lo, hi)  # the deployed (folded) module
        return int(sum(((pl < 0) & (ph > 0)).sum() for pl, ph in iv))

    plain = train_proxy(case14, data, TrainOptions(**base), baseline=nominal14)
    friendly = train_proxy(case14, data, TrainOptions(**base, stability_weight=1.0),
                           baseline=nominal14)
    assert unstable(friendly) < unstable(plain) / 2
    assert all(friendly.metrics.mae()[k] < friendly.baseline.mae()[k] for k in ("pg", "vm"))
    assert friendly.card["training"]["options"]["stability_weight"] == 1.0


def test_every_metric_has_a_unit():
    """``model info`` prints the metrics of METRIC_UNITS: every metric, each with its unit."""
    from dataclasses import fields

    from gridverify.proxy.metrics import METRIC_UNITS, ProxyMetrics

    assert list(METRIC_UNITS) == [f.name for f in fields(ProxyMetrics) if f.name != "n_samples"]


def test_test_rows_do_not_reach_training(case14, case14_data, nominal14):
    """Normalization statistics and fitting read the training rows only: changing the
    held-out test rows leaves the trained weights exactly as they were."""
    import dataclasses

    data = read_proxy_data(case14_data, case14)
    opts = TrainOptions(hidden=(8,), activation="relu", clamp_head=True, epochs=1,
                        batch_size=16, seed=2, progress=False)
    split = split_indices(data.n_samples, opts.seed, opts.val_fraction, opts.test_fraction)
    x, y = data.x.copy(), data.y.copy()
    x[split.test] *= 1.3
    y[split.test] *= 1.2
    other = dataclasses.replace(data, x=x, y=y)
    a = train_proxy(case14, data, opts, baseline=nominal14).module.state_dict()
    b = train_proxy(case14, other, opts, baseline=nominal14).module.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
