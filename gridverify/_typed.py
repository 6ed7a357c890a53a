"""Type checks of the plain fields of frozen option dataclasses.

The options are typed and frozen, but Python does not enforce annotations: an
``int`` field given ``2.5`` or a ``float`` field given ``"1"`` passed the range
checks (or raised a bare ``TypeError`` in them) and failed deep inside a run.
:func:`check_field_types` reads each field's annotation and, for the plain
ones (unions of ``int``, ``float``, ``str``, ``bool`` and ``None``), refuses a
value of another type with the options' own error, naming the field.  Numpy
integers and booleans are stored as Python ones (the options go into JSON);
other annotations are left to the class's own checks.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

__all__ = ["check_field_types"]

_PLAIN = {"int", "float", "str", "bool", "None"}
_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "True or False",
          "None": "None"}


def _accepts(kind: str, value: Any) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False  # a bool is no number here
    if kind == "int":
        return isinstance(value, (int, np.integer))
    if kind == "float":
        return isinstance(value, (int, float, np.integer, np.floating))
    return isinstance(value, str)


def check_field_types(obj: Any, error: type[Exception], where: str) -> None:
    """Raise ``error("<where>.<field>: expected ..., got <type> (<value>)")`` for the
    first plain field of the dataclass ``obj`` whose value is not of its annotation;
    store numpy integers and booleans as Python ones (``obj`` may be frozen)."""
    for f in fields(obj):
        kinds = [k.strip() for k in str(f.type).split("|")]
        if not kinds or not set(kinds) <= _PLAIN:
            continue
        value = getattr(obj, f.name)
        if not any(_accepts(k, value) for k in kinds):
            want = " or ".join(_WORDS[k] for k in kinds)
            raise error(f"{where}.{f.name}: expected {want}, got {type(value).__name__} "
                        f"({value!r})")
        if isinstance(value, np.bool_):
            object.__setattr__(obj, f.name, bool(value))
        elif isinstance(value, np.integer) and "int" in kinds:
            object.__setattr__(obj, f.name, int(value))
