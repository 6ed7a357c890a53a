"""Grid cases: MATPOWER/PGLib and pandapower input, validation, compiled form, AC flows."""

from __future__ import annotations

from gridverify.errors import CaseFormatError
from gridverify.grid.case import RawCase, list_bundled_cases, load_case
from gridverify.grid.compile import compile_case, load_compiled
from gridverify.grid.compiled import CompiledCase, FlowTemplate
from gridverify.grid.flows import (
    Flows,
    balance_residuals,
    branch_flows,
    bus_injections,
    thermal_residuals,
    ybus_injections,
)
from gridverify.grid.validate import GridverifyWarning


def from_pandapower(net, name: str | None = None) -> RawCase:  # noqa: ANN001
    """Convert a pandapower network to a :class:`RawCase` (see ``pandapower_io``)."""
    from gridverify.grid.pandapower_io import from_pandapower as _fp

    return _fp(net, name=name)


__all__ = [
    "CaseFormatError",
    "CompiledCase",
    "Flows",
    "FlowTemplate",
    "GridverifyWarning",
    "RawCase",
    "balance_residuals",
    "branch_flows",
    "bus_injections",
    "compile_case",
    "from_pandapower",
    "list_bundled_cases",
    "load_case",
    "load_compiled",
    "thermal_residuals",
    "ybus_injections",
]
