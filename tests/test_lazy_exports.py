"""Lazy package exports (gridverify._lazy) as used by gridverify, .opf and .proxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gridverify
import gridverify.opf
import gridverify.proxy
from gridverify._lazy import lazy_module_attrs


@pytest.mark.parametrize("pkg", [gridverify, gridverify.opf, gridverify.proxy])
def test_every_export_resolves_and_is_listed(pkg):
    names = set(pkg._EXPORTS)
    assert names <= set(dir(pkg))
    for name in names:
        assert getattr(pkg, name) is not None
    with pytest.raises(AttributeError, match=f"module '{pkg.__name__}' has no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_tuple_exports_rename():
    getattr_, dir_ = lazy_module_attrs(__name__, {"jdumps": ("json", "dumps"), "sqrt": "math"})
    import json
    import math

    assert getattr_("jdumps") is json.dumps and getattr_("sqrt") is math.sqrt
    assert {"jdumps", "sqrt", "test_tuple_exports_rename"} <= set(dir_())
    with pytest.raises(AttributeError):
        getattr_("dumps")


def test_import_is_light():
    code = ("import sys, gridverify, gridverify.opf, gridverify.proxy; "
            "print(sorted(m for m in ('torch', 'pyomo', 'pandapower') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
