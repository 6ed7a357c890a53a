"""Notebook views of gridverify objects (HTML and figures), filled in by the display layer.

A class that can show itself as HTML in a notebook derives from
:class:`HtmlView` and names its ``html_kind``; :mod:`gridverify.display`
registers one view function per kind when it is imported (``import gridverify``
imports it).  Figures likewise: :func:`plotter` returns the plot function the
display layer registered for a kind (study results' ``plot`` method reads it).
This module imports nothing of gridverify, so the data classes (cases,
proxies, certificates, study results) need no import of the layers above them.
:func:`value_text` is how every view (and the study report) writes a number, so
that they agree, on ``inf`` for "no finite bound" in particular.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["NO_BOUND_NOTE", "HtmlView", "plotter", "register_plot", "register_view",
           "value_text"]

#: what ``inf`` in a view's table means (:func:`value_text`)
NO_BOUND_NOTE = "inf: no finite upper bound was obtained (such a constraint is never certified)"

_VIEWS: dict[str, Callable[[Any], str]] = {}
_PLOTS: dict[str, Callable[..., Any]] = {}


def value_text(v: Any, digits: int = 4) -> str:
    """A table value as every view shows it (the HTML views of certificates and of their
    comparisons, the study report, the CLI's tables): integers as they are, other
    numbers with ``digits`` significant digits (``-0`` as ``0``), ``inf`` where there
    is no finite bound (an infinite upper bound or gap; ``-inf``: no attained value),
    ``-`` where there is no value (``None``, NaN: say a family absent from one
    certificate), other values as ``str``."""
    if v is None:
        return "-"
    if isinstance(v, (str, bool)):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "-"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f + 0.0:.{digits}g}"


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
