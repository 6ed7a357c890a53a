"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch intra-op thread for the test, restored afterwards.

    The graphs under test are small and the CI runner has 2 cores shared with
    other runs: more threads mostly contend.  Directories that bound graphs use
    it autouse from their own ``conftest.py``.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
