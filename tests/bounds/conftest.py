"""Shared fixtures of the bound-engine tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every bound-engine test runs with one torch thread (see ``tests/conftest.py``)."""
