"""AC-OPF ground truth: the Pyomo ACP model, solver selection and OPF datasets.

Names are imported lazily so that the CLI does not import Pyomo to build --help.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ACOPFModel": "gridverify.opf.acopf",
    "OPFSolution": "gridverify.opf.acopf",
    "solve_opf": "gridverify.opf.acopf",
    "SolverOptions": "gridverify.opf.solvers",
    "available_solvers": "gridverify.opf.solvers",
    "resolve_solver": "gridverify.opf.solvers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gridverify.opf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
