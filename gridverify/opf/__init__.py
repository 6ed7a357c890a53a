"""AC-OPF ground truth: the Pyomo ACP model, solver selection and OPF datasets.

Names are imported lazily so that the CLI does not import Pyomo to build --help.
"""

from __future__ import annotations

from gridverify._lazy import lazy_module_attrs

_EXPORTS: dict[str, str] = {
    "ACOPFModel": "gridverify.opf.acopf",
    "OPFSolution": "gridverify.opf.acopf",
    "solve_opf": "gridverify.opf.acopf",
    "SolverOptions": "gridverify.opf.solvers",
    "available_solvers": "gridverify.opf.solvers",
    "solver_routes": "gridverify.opf.solvers",
    "resolve_solver": "gridverify.opf.solvers",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_module_attrs(__name__, _EXPORTS)
