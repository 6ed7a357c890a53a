"""Shared fixtures of the branch-and-bound tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every branch-and-bound test runs with one torch thread (see ``tests/conftest.py``)."""
