"""Value equality of frozen dataclasses that hold numpy arrays.

A dataclass's generated ``__eq__`` compares its fields as a tuple, which raises
"the truth value of an array is ambiguous" as soon as a field is an array, and
its generated hash fails on the array.  :class:`ArrayValueEq` gives such classes
(declared ``@dataclass(frozen=True, eq=False)``) value equality instead, and
makes them unhashable, as mutable-looking values are in Python.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

__all__ = ["ArrayValueEq", "same_value"]


def same_value(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` hold the same value: numpy arrays by shape and elements
    (NaN equal to NaN), scipy sparse matrices by shape and entries, dataclasses field by
    field, dicts, lists and tuples item by item, floats with NaN equal to NaN; anything
    else by ``==`` (a comparison that gives no single truth value counts as different)."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        nan = a.dtype.kind in "fc" and b.dtype.kind in "fc"
        return bool(np.array_equal(a, b, equal_nan=nan))
    if _is_sparse(a) or _is_sparse(b):
        return (_is_sparse(a) and _is_sparse(b) and a.shape == b.shape
                and (a != b).nnz == 0)
    if is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same_value(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same_value(v, b[k]) for k, v in a.items()))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same_value(x, y) for x, y in zip(a, b)))
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return bool(a == b) or (math.isnan(a) and math.isnan(b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # objects whose == gives no single truth value
        return False


def _is_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse")


class ArrayValueEq:
    """Mixin: ``==`` by :func:`same_value` on the fields, no hash.

    Use with ``@dataclass(frozen=True, eq=False)`` (a generated ``__eq__`` would
    replace this one).
    """

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return same_value(self, other)
