"""Specification files (TOML or JSON) and the :class:`Specification` object.

A specification file has up to three tables::

    [region]                 # one of: box, pglearn, dataset, lower+upper
    box = [0.9, 1.1]

    [constraints]
    families = ["p_balance", "thermal_fr", "vm_max"]   # default: all
    components = { thermal_fr = [1, 5] }                # optional

    [thresholds]
    default = 1e-6
    p_balance = { absolute = 1e-3, relative = 0.01 }   # max(a, b * |pd_i|)

The JSON form is the same object.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridverify.errors import SpecError
from gridverify.fileio import json_loads, toml_error_message
from gridverify.spec.constraints import (
    ConstraintSelection,
    select_constraints,
    selection_from_mapping,
)
from gridverify.spec.region import Region, region_from_mapping
from gridverify.spec.thresholds import ThresholdSpec, thresholds_from_mapping

_TOP_KEYS = ("region", "constraints", "thresholds")


@dataclass(frozen=True)
class Specification:
    """What to certify: a region (None: the proxy's default), constraints and thresholds."""

    region: Region | None = None
    constraints: ConstraintSelection = field(default_factory=ConstraintSelection)
    thresholds: ThresholdSpec = field(default_factory=ThresholdSpec)


def _reject_nan(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where}: not a finite number ({value!r})")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _reject_nan(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reject_nan(v, f"{where}[{i}]")


def _unique_keys(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict; a key given twice is an error (JSON keeps the last silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SpecError(f"{path}: key {k!r} is given twice (conflicting values)")
        out[k] = v
    return out


def load_spec_mapping(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON spec file into a dict (SpecError with file and line on bad syntax)."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"spec file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a spec file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json_loads(text, object_pairs_hook=functools.partial(_unique_keys, path))
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(toml_error_message(path, text, exc)) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: top level must be a table/object")
    for k in data:
        if k not in _TOP_KEYS:
            raise SpecError(f"{path}: unknown key {k!r} (expected {', '.join(_TOP_KEYS)})")
    for k, v in data.items():
        try:
            _reject_nan(v, k)
        except SpecError as exc:  # "FILE: region.box[1]: ...", as the other errors
            raise SpecError(f"{path}: {exc}") from None
    return data


def _check_selection(case: Any, sel: ConstraintSelection) -> None:
    """SpecError (``constraints.components.FAMILY: ...``) for a component id the case
    lacks, or for a selection without a constraint in this case."""
    for fam, ids in sel.components:
        try:
            select_constraints(case, ConstraintSelection((fam,), ((fam, ids),)))
        except SpecError as exc:
            msg = str(exc).removeprefix("constraints: ")
            raise SpecError(f"constraints.components.{fam}: {msg}") from None
    if not select_constraints(case, sel):
        raise SpecError(f"constraints: the selection is empty for case {case.name}")


def spec_from_mapping(
    data: Mapping[str, Any], case: Any, base: Path | None = None, source: str = "spec"
) -> Specification:
    """Build a Specification from a mapping (the parsed file) against a compiled case."""
    for k in data:
        if k not in _TOP_KEYS:
            raise SpecError(f"{source}: unknown key {k!r} (expected {', '.join(_TOP_KEYS)})")
    _reject_nan(dict(data), source)
    region = None
    try:
        if "region" in data:
            if not isinstance(data["region"], Mapping):
                raise SpecError("region: expected a table")
            region = region_from_mapping(case, dict(data["region"]), base=base)
        sel = ConstraintSelection()
        if "constraints" in data:
            if not isinstance(data["constraints"], Mapping):
                raise SpecError("constraints: expected a table")
            sel = selection_from_mapping(data["constraints"])
            _check_selection(case, sel)
        thr = ThresholdSpec()
        if "thresholds" in data:
            if not isinstance(data["thresholds"], Mapping):
                raise SpecError("thresholds: expected a table")
            thr = thresholds_from_mapping(data["thresholds"])
    except SpecError as exc:
        if source != "spec":
            raise SpecError(f"{source}: {exc}") from None
        raise
    return Specification(region, sel, thr)


def load_spec(path: str | Path, case: Any) -> Specification:
    """Load a TOML/JSON specification file for a compiled case."""
    path = Path(path)
    data = load_spec_mapping(path)
    return spec_from_mapping(data, case, base=path.parent, source=str(path))
