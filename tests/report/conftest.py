"""Fixtures of the report and figure tests: the Agg backend, case14, no figure left open."""

from __future__ import annotations

import warnings

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def case14():
    from gridverify.grid import load_compiled

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled("pglib_opf_case14_ieee", emit_warnings=False)


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")
