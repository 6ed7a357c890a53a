"""Notebook views of gridverify objects (HTML and figures), filled in by the display layer.

A class that can show itself as HTML in a notebook derives from
:class:`HtmlView` and names its ``html_kind``; :mod:`gridverify.display`
registers one view function per kind when it is imported (``import gridverify``
imports it).  Figures likewise: :func:`plotter` returns the plot function the
display layer registered for a kind (study results' ``plot`` method reads it).
This module imports nothing of gridverify, so the data classes (cases,
proxies, certificates, study results) need no import of the layers above them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["HtmlView", "plotter", "register_plot", "register_view"]

_VIEWS: dict[str, Callable[[Any], str]] = {}
_PLOTS: dict[str, Callable[..., Any]] = {}


def register_plot(kind: str, fn: Callable[..., Any]) -> None:
    """Make ``fn(obj, ...)`` the figure function of objects of ``kind``."""
    _PLOTS[kind] = fn


def plotter(kind: str) -> Callable[..., Any]:
    """The figure function registered for ``kind``."""
    fn = _PLOTS.get(kind)
    if fn is None:
        raise RuntimeError(f"no figures for {kind!r}: they come with gridverify.display "
                           "(import gridverify)")
    return fn


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
