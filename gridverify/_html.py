"""Notebook HTML views of gridverify objects, filled in by the display layer.

A class that can show itself as HTML in a notebook derives from
:class:`HtmlView` and names its ``html_kind``; :mod:`gridverify.display`
registers one view function per kind when it is imported (``import gridverify``
imports it).  This module imports nothing of gridverify, so the data classes
(cases, proxies, certificates) need no import of the display layer above them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["HtmlView", "register_view"]

_VIEWS: dict[str, Callable[[Any], str]] = {}


def register_view(kind: str, view: Callable[[Any], str]) -> None:
    """Make ``view(obj)`` the HTML of every :class:`HtmlView` whose ``html_kind`` is ``kind``."""
    _VIEWS[kind] = view


class HtmlView:
    """Mixin: ``_repr_html_`` from the view registered for ``html_kind`` (None without one)."""

    html_kind: ClassVar[str] = ""

    def _repr_html_(self) -> str | None:
        """Notebook display (the registered view; None lets IPython use the plain repr)."""
        view = _VIEWS.get(self.html_kind)
        return None if view is None else view(self)
