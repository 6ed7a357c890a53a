"""Every frozen options class refuses a plain field of the wrong type, naming it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridverify.attack.options import AttackOptions
from gridverify.bab.options import BabOptions
from gridverify.bounds.options import BoundOptions
from gridverify.certify.options import CertifyOptions
from gridverify.errors import GridverifyError
from gridverify.exact.scip import ExactOptions
from gridverify.opf.solvers import SolverOptions
from gridverify.proxy.options import TrainOptions
from gridverify.study.executors import ExecutorOptions
from gridverify.vnncomp.check_physics import CheckOptions
from gridverify.vnncomp.runner import RunOptions

CLASSES = [AttackOptions, BabOptions, BoundOptions, CertifyOptions, ExactOptions, SolverOptions,
           TrainOptions, ExecutorOptions, CheckOptions, RunOptions]
WRONG = {"int": 2.5, "float": "1", "str": 3, "bool": "yes"}


def _plain(cls):
    for f in dataclasses.fields(cls):
        kinds = {k.strip() for k in str(f.type).split("|")}
        if kinds <= {"int", "float", "str", "bool", "None"} and kinds - {"None"}:
            yield f.name, kinds


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_plain_field_of_the_wrong_type_is_refused_by_name(cls) -> None:
    fields = list(_plain(cls))
    assert fields  # the check has something to check
    for name, kinds in fields:
        bad = next(WRONG[k] for k in ("int", "float", "str", "bool") if k in kinds)
        if "float" in kinds and isinstance(bad, float):  # 2.5 is a number there
            continue
        with pytest.raises(GridverifyError, match=rf"\b{name}\b"):
            cls(**{name: bad})


def test_numpy_integers_and_booleans_become_python_ones() -> None:
    o = BabOptions(batch=np.int64(8), focus=np.bool_(False))
    assert type(o.batch) is int and o.batch == 8 and o.focus is False
    with pytest.raises(GridverifyError, match="bab.focus: expected True or False"):
        BabOptions(focus=1)
    with pytest.raises(GridverifyError, match="attack.restarts: expected an integer"):
        AttackOptions(restarts=True)
