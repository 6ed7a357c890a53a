"""NLP solver selection for the Pyomo AC-OPF.

Routes, in the order ``name="auto"`` tries them:

``ipopt``
    A real Ipopt executable found on ``PATH`` (``shutil.which("ipopt")``), driven
    by Pyomo through AMPL ``.nl`` files.  Used first when present.
``pounce``
    POUNCE (``pounce-solver`` / ``pyomo-pounce`` from PyPI): a Rust port of
    Ipopt's interior-point algorithm.  Pyomo writes the model's ``.nl`` text
    once and POUNCE evaluates and solves it in-process; re-solves for new loads
    change only row bounds and the start point (see :mod:`.backends`).  This
    is the pip-installable default and the fastest route.
``pounce-cli``
    The same solver through its wheel-bundled executable, driven by Pyomo's
    ``SolverFactory("pounce")`` (``.nl`` file written and a process run per
    solve).  Slower; kept as a cross-check.

``cyipopt`` (real Ipopt 3.14 bundled in ``cyipopt-wheels``) is *not* a route:
Pyomo's ``cyipopt`` interface evaluates the model through PyNumero's compiled
AMPL-solver-library extension, which is not pip-installable and is absent here;
:func:`solver_routes` reports it with that reason.

Options are the Ipopt option names (both solvers accept them): ``tol``,
``max_iter``, ``print_level``, ``linear_solver``, ``max_wall_time``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from gridverify._typed import check_field_types
from gridverify.errors import SolverError

SOLVER_NAMES = ("auto", "ipopt", "pounce", "pounce-cli")
#: Ipopt's ``print_level`` range (0 silent ... 12 everything); the log goes to stderr
PRINT_LEVEL_MAX = 12


@dataclass(frozen=True)
class SolverOptions:
    """How to solve one NLP.

    ``name``: ``"auto"`` (a real ``ipopt`` on PATH, else POUNCE), ``"ipopt"``,
    ``"pounce"`` or ``"pounce-cli"``.  ``tol``/``max_iter``/``print_level``/``linear_solver``/
    ``time_limit`` map onto the Ipopt options ``tol``, ``max_iter``,
    ``print_level`` (0..12; the solver's log goes to stderr), ``linear_solver`` and
    ``max_wall_time`` (seconds).
    ``constr_viol_tol`` is Ipopt's absolute constraint-violation tolerance; the
    default keeps power-balance residuals far below 1e-6 p.u.  ``extra`` holds
    further ``(option, value)`` pairs passed verbatim.
    """

    name: str = "auto"
    tol: float = 1e-8
    constr_viol_tol: float = 1e-8
    max_iter: int = 3000
    print_level: int = 0
    linear_solver: str | None = None
    time_limit: float | None = None
    extra: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def settings(self) -> dict[str, Any]:
        """The options that can change a solution (all but the name and the print
        level), as plain JSON values: what a dataset records and a resume must match."""
        return {"tol": self.tol, "constr_viol_tol": self.constr_viol_tol,
                "max_iter": self.max_iter, "linear_solver": self.linear_solver,
                "time_limit": self.time_limit,
                "extra": [[str(k), v if isinstance(v, int | float | str) else str(v)]
                          for k, v in self.extra]}

    def __post_init__(self) -> None:
        check_field_types(self, SolverError, "solver options")
        if self.name not in SOLVER_NAMES:
            raise SolverError(
                f"unknown solver {self.name!r}; choose one of {', '.join(SOLVER_NAMES)}"
            )
        if not self.tol > 0 or not self.constr_viol_tol > 0:
            raise SolverError("solver option tol/constr_viol_tol must be positive")
        if self.max_iter < 1:
            raise SolverError("solver option max_iter must be >= 1")
        if not 0 <= self.print_level <= PRINT_LEVEL_MAX:
            raise SolverError(f"solver option print_level must be in [0, {PRINT_LEVEL_MAX}], "
                              f"got {self.print_level}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise SolverError("solver option time_limit must be positive")

    def ipopt_options(self) -> dict[str, Any]:
        """The options as an Ipopt option dictionary."""
        opts: dict[str, Any] = {
            "tol": self.tol,
            "constr_viol_tol": self.constr_viol_tol,
            "max_iter": self.max_iter,
            "print_level": self.print_level,
        }
        if self.linear_solver:
            opts["linear_solver"] = self.linear_solver
        if self.time_limit is not None:
            opts["max_wall_time"] = float(self.time_limit)
        opts.update(dict(self.extra))
        return opts


@dataclass(frozen=True)
class SolverInfo:
    """A resolved solver route: Pyomo factory name, executable, name and version."""

    name: str  # "ipopt", "pounce" or "pounce-cli"
    executable: str
    version: str

    @property
    def label(self) -> str:
        """``"name version"``, as recorded in results and dataset attributes."""
        return f"{self.name} {self.version}"


def import_pounce() -> Any:
    """The ``pounce`` module (in-process POUNCE).  Its Rust log (``RUST_LOG``, read when
    the module loads) is kept to warnings unless the user set it: its INFO lines
    ("refusing an acceptable-level termination ...") reached stderr at print_level 0."""
    import os

    os.environ.setdefault("RUST_LOG", "warn")
    import pounce

    return pounce


def _version_of(executable: str) -> str:
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for token in out.replace(",", " ").split():
        if token[:1].isdigit() and "." in token:
            return token
    return "unknown"


def _pounce_executable() -> str | None:
    try:
        import pyomo.environ as pyo
        import pyomo_pounce  # noqa: F401  (registers the Pyomo plugin)
    except ImportError:
        return None
    solver = pyo.SolverFactory("pounce")
    try:
        if not solver.available(exception_flag=False):
            return None
    except Exception:  # noqa: BLE001 - a broken plugin means "not available"
        return None
    exe = solver.executable()
    return str(exe) if exe else None


@functools.cache
def _resolve(name: str) -> SolverInfo | None:
    if name == "ipopt":
        exe = shutil.which("ipopt")
        return SolverInfo("ipopt", exe, _version_of(exe)) if exe else None
    if name == "pounce-cli":
        exe = _pounce_executable()
        return SolverInfo("pounce-cli", exe, _version_of(exe)) if exe else None
    if name == "pounce":
        try:
            from importlib.metadata import version

            from pyomo.repn.plugins.nl_writer import NLWriter  # noqa: F401
            pounce = import_pounce()
        except ImportError:
            return None
        if not hasattr(pounce, "parse_nl_text") or not hasattr(pounce, "solve_nlp_batch"):
            return None
        return SolverInfo("pounce", "<in-process>", version("pounce-solver"))
    return None


#: the routes ``name="auto"`` tries, in order
AUTO_ORDER = ("ipopt", "pounce")
#: why a route is unusable, for error messages and :func:`solver_routes`
_UNAVAILABLE = {
    "ipopt": "no `ipopt` executable on PATH",
    "pounce": "pounce-solver/pyomo-pounce not installed (or too old)",
    "pounce-cli": "pounce-solver/pyomo-pounce not installed (or its executable does not run)",
}
_CYIPOPT = "not a route: Pyomo's cyipopt interface needs PyNumero's AMPL (ASL) extension"


def resolve_solver(options: SolverOptions | None = None) -> SolverInfo:
    """The solver route that ``options.name`` selects; SolverError if none is usable."""
    options = options or SolverOptions()
    order = AUTO_ORDER if options.name == "auto" else (options.name,)
    for name in order:
        info = _resolve(name)
        if info is not None:
            return info
    if options.name == "auto":
        raise SolverError(
            "no NLP solver available: no `ipopt` executable on PATH and the "
            "pyomo-pounce solver is not installed (pip install pyomo-pounce)"
        )
    raise SolverError(f"solver {options.name!r} is not available: {_UNAVAILABLE[options.name]}")


def solver_routes() -> dict[str, Any]:
    """Every known route, machine-readable: ``{"routes": {name: {"available": bool,
    "detail": str}}, "default": name or None}``.  ``detail`` is ``"name version"``
    for a usable route, else why it is not; ``default`` is the route ``--solver auto``
    takes (None when none is usable).  ``cyipopt`` is listed, never available."""
    routes: dict[str, dict[str, Any]] = {}
    for name in ("ipopt", "pounce", "pounce-cli"):
        info = _resolve(name)
        routes[name] = {"available": info is not None,
                        "detail": info.label if info else _UNAVAILABLE[name]}
    routes["cyipopt"] = {"available": False, "detail": _CYIPOPT}
    default = next((name for name in AUTO_ORDER if routes[name]["available"]), None)
    return {"routes": routes, "default": default}


def available_solvers() -> dict[str, str]:
    """Every known route with ``"name version"``, ``"not available"`` or (cyipopt) the
    reason it is no route: the text of ``gridverify opf solvers``; see
    :func:`solver_routes` for the machine-readable form."""
    return {name: route["detail"] if route["available"] or name == "cyipopt"
            else "not available" for name, route in solver_routes()["routes"].items()}


def make_pyomo_solver(info: SolverInfo) -> Any:
    """A Pyomo solver object for a resolved route."""
    import pyomo.environ as pyo

    if info.name == "pounce-cli":
        import pyomo_pounce  # noqa: F401

        return pyo.SolverFactory("pounce")
    return pyo.SolverFactory("ipopt", executable=info.executable)
