"""Row bounds equal the ones pinned before row selections became index vectors.

To 1e-9 (alpha-CROWN: 1e-3, see the test).

The fixture ``tests/data/bound_rows/bound_rows.json`` was written by
``tests/data/bound_rows/make_fixture.py`` with the dense one-hot spec of
``_bound_rows`` (issue 15); the memory work must not change any bound.
Regenerated (2026-12-05) when the least-area slope of the smooth ops' default
lines came to be found by a batched search instead of a 26-step bisection
(both to about 1e-7 of the derivative's range): CROWN's bounds moved by at most
1.1e-6 (relative), alpha-CROWN's by up to 2.6e-2 either way (its projected
ascent from a start that differs in the seventh digit ends elsewhere), IBP's
not at all beyond rounding.  Regenerated (2026-12-06) when the search came to
stop at 2**-12 of the range and pick the best of the cell's middle, the chord
through the points its ends touch and the midpoint tangent: CROWN's bounds
moved by at most 1.1e-6 (relative; 1,071 of 2,774 rows tighter, 161 looser,
by at most 2.5e-7), alpha-CROWN's by up to 3.7e-2 either way.  Regenerated
(2026-12-06) when interval sums and CROWN's final products came to be widened by
their rounding error bound: IBP and CROWN moved by about 1e-13 (relative),
alpha-CROWN by up to 1.5e-2 either way (27 rows tighter, 21 looser).  Regenerated
(2026-12-06) when CROWN's back-substitution came to take each coefficient's line
without cancellation and to pad the offsets by their terms' magnitudes: IBP
looser by at most 5.7e-12 (relative), CROWN by at most 7.9e-10, alpha-CROWN by up
to 1.5e-2 either way (26 of 96 rows tighter, 44 looser); and once more when the
split of the coefficients came to be computed once for the lines and the offsets:
IBP and CROWN unchanged to the last bit, alpha-CROWN moved by up to 1.5e-2 through
the rounding of its gradients alone (31 rows).  Regenerated (2026-12-06) when the
rounding of the back-substitution's coefficients came to be charged step by step
(sums of ``a @ W`` that cancel, float32 weights): IBP unchanged, CROWN looser by at
most 8.0e-10 (relative), alpha-CROWN moved by up to 2.0e-2 either way (28 of 96
rows tighter, 61 looser); and once more when the rounding of a sparse map came to
count the entries of its rows and columns (repeated ones included) instead of its
input and output sizes: IBP tighter by at most 5.7e-12, CROWN by at most 2.4e-10
(relative, every row), alpha-CROWN moved by up to 1.5e-2 (73 rows tighter, 23 looser).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from gridverify.certify.certify import _bound_rows

DATA = Path(__file__).resolve().parents[1] / "data" / "bound_rows"
FIXTURE = json.loads((DATA / "bound_rows.json").read_text())


def _maker():
    spec = importlib.util.spec_from_file_location("make_fixture", DATA / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _maker()
_INSTANCES: dict = {}


def _instance(case: str, model: str):
    key = (case, model)
    if key not in _INSTANCES:
        _INSTANCES.clear()  # one instance at a time: entries are grouped by pair
        _INSTANCES[key] = MAKER.instance(case, model)
    return _INSTANCES[key]


@pytest.mark.parametrize(
    "entry", FIXTURE["entries"], ids=lambda e: f"{e['model'].split('/')[-1]}-{e['run']}"
)
def test_bounds_match_fixture(entry):
    graph, region, physics, subset = _instance(entry["case"], entry["model"])
    rows = np.asarray(entry["rows"], dtype=np.int64)
    if entry["run"].endswith("subset"):
        np.testing.assert_array_equal(rows, subset)
    up = _bound_rows(graph, region, rows, physics.n_rows, entry["method"],
                     FIXTURE["alpha_iterations"], entry["intermediate"])
    want = np.array([np.inf if v is None else v for v in entry["upper"]])
    assert up.shape == want.shape
    fin = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(up), fin)
    err = np.abs(up[fin] - want[fin]) / np.maximum(1.0, np.abs(want[fin]))
    # IBP and CROWN are closed forms: equal to rounding on any machine.  alpha-CROWN's
    # projected ascent follows the float rounding of the CPU it runs on (another
    # BLAS kernel, another path: case14_relu differs by up to 1e-4 on some CPUs), so
    # its pin is looser, still far below what reading the wrong rows would change
    tol = 1e-3 if entry["method"] == "alpha-crown" else 1e-9
    assert err.size == 0 or err.max() <= tol, float(err.max())
