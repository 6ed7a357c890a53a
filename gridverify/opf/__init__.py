"""AC-OPF ground truth: the Pyomo ACP model, solver selection and OPF datasets."""

from __future__ import annotations

from gridverify.opf.acopf import ACOPFModel, OPFSolution, solve_opf
from gridverify.opf.solvers import SolverOptions, available_solvers, resolve_solver

__all__ = [
    "ACOPFModel",
    "OPFSolution",
    "SolverOptions",
    "available_solvers",
    "resolve_solver",
    "solve_opf",
]
