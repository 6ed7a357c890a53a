"""Shared fixtures of the proxy tests: a small real case14 dataset and a trained proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

CASE14 = "pglib_opf_case14_ieee"


@pytest.fixture(scope="session")
def case14():
    """The compiled case14_ieee."""
    from gridverify.grid import load_compiled

    return load_compiled(CASE14)


@pytest.fixture(scope="session")
def case14_data(tmp_path_factory, case14) -> Path:
    """80 AC-OPF samples of case14 from the box [0.9, 1.1] (real solver, ~10 s)."""
    from gridverify.opf.dataset import make_dataset
    from gridverify.opf.samplers import BoxSampler

    path = tmp_path_factory.mktemp("proxy_data") / "case14.h5"
    make_dataset(case14, 80, path, sampler=BoxSampler(0.9, 1.1), seed=11, progress=False)
    return path


@pytest.fixture(scope="session")
def nominal14(case14):
    """The nominal AC-OPF solution vector of case14 (the baseline)."""
    from gridverify.proxy.metrics import nominal_baseline

    return nominal_baseline(case14)


@pytest.fixture(scope="session")
def trained14(tmp_path_factory, case14, case14_data, nominal14):
    """A small ReLU proxy with clamp head trained on the fixture dataset, written to disk."""
    from gridverify.proxy.artifacts import write_model_dir
    from gridverify.proxy.data import read_proxy_data
    from gridverify.proxy.train import TrainOptions, train_proxy

    data = read_proxy_data(case14_data, case14)
    opts = TrainOptions(hidden=(32, 32), activation="relu", clamp_head=True, epochs=150,
                        batch_size=16, lr=3e-3, seed=5, patience=40, progress=False)
    result = train_proxy(case14, data, opts, baseline=nominal14)
    out = write_model_dir(tmp_path_factory.mktemp("proxy_models") / "m14", result.module,
                          result.card)
    return result, out
