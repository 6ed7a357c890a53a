"""Exact worst-case violations on small grids and small proxies (global optimization)."""

from gridverify.exact.scip import (
    ExactError,
    ExactOptions,
    ExactResult,
    exact_worst_case,
    mlp_layers,
)

__all__ = ["ExactError", "ExactOptions", "ExactResult", "exact_worst_case", "mlp_layers"]
