"""Lazy re-exports for package ``__init__`` modules (PEP 562 ``__getattr__``/``__dir__``).

A package lists its public names and the modules that define them; a name is
imported from its module only when first read, so ``import gridverify`` and the
CLI's ``--help`` do not pay for torch, Pyomo or pandapower.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_module_attrs"]


def lazy_module_attrs(
    module_name: str,
    exports: Mapping[str, str | tuple[str, str]],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of module ``module_name`` for ``exports``.

    ``exports`` maps a public name to the module that defines it under the same
    name, or to ``(module, attribute)``.  ``__getattr__`` imports on each use
    (the module cache makes that cheap) and raises ``AttributeError`` for other
    names; ``__dir__`` lists the module's globals and the exported names.
    """
    table = {name: (src, name) if isinstance(src, str) else src
             for name, src in exports.items()}

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's name
        if name in table:
            mod, attr = table[name]
            return getattr(importlib.import_module(mod), attr)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook's name
        return sorted([*vars(sys.modules[module_name]), *table])

    return __getattr__, __dir__
