"""Files shipped inside the package: the bundled cases and proxies.

Everything is found through :mod:`importlib.resources`, so it works the same
from a checkout, an editable install and an installed wheel.  In a checkout,
``gridverify/data/cases`` and ``gridverify/data/models/NAME`` are links to the
repository's ``cases/`` and ``models/NAME`` folders; a built wheel holds the
files themselves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["data_dir", "bundled_models_dir", "list_bundled_models", "bundled_model"]


def data_dir() -> Path:
    """The package's ``data`` folder (bundled cases, proxies and tables)."""
    return Path(str(files("gridverify").joinpath("data")))


def bundled_models_dir() -> Path:
    """The folder of the bundled proxies (one model directory per name)."""
    return data_dir() / "models"


def list_bundled_models() -> list[str]:
    """Names of the bundled proxies (e.g. ``case14_relu``), sorted."""
    d = bundled_models_dir()
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if (p / "card.json").is_file())


def bundled_model(name: str) -> Path | None:
    """The model directory of the bundled proxy ``name`` (``case14_relu`` or
    ``models/case14_relu``), or ``None`` when there is no such bundled proxy."""
    parts = Path(name).parts
    if len(parts) == 2 and parts[0] == "models":
        parts = parts[1:]
    if len(parts) != 1 or parts[0] in (".", ".."):
        return None
    cand = bundled_models_dir() / parts[0]
    return cand if (cand / "card.json").is_file() else None
