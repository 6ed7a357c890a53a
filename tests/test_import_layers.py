"""No import cycle between the subpackages (and top-level modules) of gridverify.

Every import statement counts, the ones inside functions too: a lazy import is
still a dependency.  The graph is read from the source (``ast``), not from what
one run happens to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import gridverify

PKG = Path(gridverify.__file__).resolve().parent


def _part(module: str) -> str | None:
    """The subpackage (or top-level module) of ``gridverify.<part>...``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "gridverify" else None


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        me = _part(".".join(rel.parts))
        if me is None or me == "__init__":
            continue
        g.add_node(me)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                other = _part(name)
                if other and other != me:
                    g.add_edge(me, other)
    return g


def test_no_import_cycle_between_subpackages() -> None:
    g = import_graph()
    assert len(g) > 15 and g.has_edge("certify", "bounds")  # the graph is really read
    assert list(nx.simple_cycles(g)) == []


def test_the_engine_knows_nothing_of_grids() -> None:
    g = import_graph()
    for low in ("bounds", "bab", "ir", "attack"):
        reach = nx.descendants(g, low)
        assert not reach & {"grid", "physics", "spec", "certify", "opf", "cli"}, (low, reach)
