"""gridverify: certify neural-network AC-OPF proxies against grid physics.

The public surface is re-exported lazily here so that ``import gridverify``
stays fast (torch, pyomo and pandapower load only when used).
"""

from __future__ import annotations

from gridverify._lazy import lazy_module_attrs

__version__ = "0.1.0"

# name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_case": ("gridverify.grid", "load_case"),
    "compile_case": ("gridverify.grid", "compile_case"),
    "load_compiled": ("gridverify.grid", "load_compiled"),
    "list_bundled_cases": ("gridverify.grid", "list_bundled_cases"),
    "from_pandapower": ("gridverify.grid", "from_pandapower"),
    "solve_opf": ("gridverify.opf", "solve_opf"),
    "compute_bounds": ("gridverify.bounds", "compute_bounds"),
    "load_proxy": ("gridverify.proxy", "load_proxy"),
    "certify": ("gridverify.certify", "certify"),
    "compare_certificates": ("gridverify.certify.compare", "compare_certificates"),
}


__all__ = sorted(_EXPORTS)  # ``from gridverify import *`` imports each of them then

__getattr__, __dir__ = lazy_module_attrs(__name__, _EXPORTS)

# the display layer registers the notebook HTML views of cases, proxies and certificates
from gridverify import display as _display  # noqa: E402, F401

