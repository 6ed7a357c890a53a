"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

#: rows of a small MATPOWER case: three 230 kV buses (slack, PV with load, PQ
#: with load), two generators with quadratic costs, three rated lines
MPC3 = {
    "bus": ["1 3 0 0 0 0 1 1 0 230 1 1.1 0.9",
            "2 2 50 10 0 0 1 1 0 230 1 1.1 0.9",
            "3 1 80 30 0 0 1 1 0 230 1 1.1 0.9"],
    "gen": ["1 0 0 100 -100 1 100 1 200 0",
            "2 0 0 100 -100 1 100 1 100 0"],
    "branch": ["1 2 0.01 0.05 0.04 100 0 0 0 0 1 -30 30",
               "1 3 0.02 0.08 0.04 100 0 0 0 0 1 -30 30",
               "2 3 0.02 0.08 0.04 100 0 0 0 0 1 -30 30"],
    "gencost": ["2 0 0 3 0.02 20 0",
                "2 0 0 3 0.03 25 0"],
}


def mpc_text(name: str, bus: Sequence[str], gen: Sequence[str], branch: Sequence[str],
             gencost: Sequence[str]) -> str:
    """A MATPOWER version-2 case file (100 MVA base) with these table rows."""
    def table(key: str, rows: Sequence[str]) -> str:
        return f"mpc.{key} = [\n" + "".join(f" {r};\n" for r in rows) + "];\n"

    return (f"function mpc = {name}\nmpc.version = '2';\nmpc.baseMVA = 100;\n"
            + table("bus", bus) + table("gen", gen) + table("branch", branch)
            + table("gencost", gencost))


@pytest.fixture
def mpc3(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing :data:`MPC3` to ``tmp_path/NAME.m``: a table given as a list
    replaces it, as a dict ``{row: text}`` replaces those rows (0-based); rows
    appended with ``bus_extra``, ``branch_extra``."""
    def make(name: str = "c3", *, bus_extra: Sequence[str] = (),
             branch_extra: Sequence[str] = (),
             **tables: Sequence[str] | dict[int, str]) -> Path:
        rows = {k: list(v) for k, v in MPC3.items()}
        for key, new in tables.items():
            if isinstance(new, dict):
                for i, text in new.items():
                    rows[key][i] = text
            else:
                rows[key] = list(new)
        rows["bus"] += list(bus_extra)
        rows["branch"] += list(branch_extra)
        path = tmp_path / f"{name}.m"
        path.write_text(mpc_text(name, **rows))
        return path

    return make


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
