"""The quickstart notebook executes (nbclient, real kernel) and shows HTML tables and plots."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("certificate" in h and "certified" in h for h in html)  # registered view
    assert any("case pglib_opf_case14_ieee" in h for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the grid plot
    assert not [o for o in outputs if o.get("output_type") == "error"]
