"""Jupyter helpers: HTML views, pandas DataFrames and one-call plots.

In a notebook::

    from gridverify import display
    display.register()          # cases, proxies and certificates show as HTML tables
    display.to_dataframe(cert)  # one row per constraint
    display.plot(cert)          # the grid colored by the certified worst violations

(or ``%load_ext gridverify.display``).  Importing this module (which
``import gridverify`` does) registers the HTML views of
:class:`~gridverify.grid.compiled.CompiledCase`, :class:`~gridverify.proxy.load.Proxy`
and :class:`~gridverify.certify.Certificate` with :mod:`gridverify._html`, whose
``HtmlView._repr_html_`` those classes inherit: the display layer depends on
them, never the other way round.  :func:`register` also adds them to IPython's
formatters by class name (study results,
:class:`~gridverify.study.results.StudyResults`, have their own ``_repr_html_``).
"""

from __future__ import annotations

import html
import math
import os
from typing import Any

from gridverify._html import NO_BOUND_NOTE, register_plot, register_view, value_text
from gridverify.errors import SpecError

__all__ = [
    "case_html",
    "certificate_diff_frame",
    "certificate_diff_html",
    "certificate_frame",
    "certificate_html",
    "load_ipython_extension",
    "plot",
    "proxy_html",
    "register",
    "study_plot",
    "to_dataframe",
]


def _kv_table(title: str, items: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                   for k, v in items)
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>" \
           f"{rows}</table>"


def case_frame(case: Any) -> Any:
    """One row per bus: id, type, voltage limits, demand, shunts, generators at the bus."""
    import numpy as np
    import pandas as pd

    n_gen = np.bincount(np.asarray(case.gen_bus, dtype=np.int64), minlength=case.n_bus)
    return pd.DataFrame({
        "bus_id": np.asarray(case.bus_ids), "type": np.asarray(case.bus_type),
        "vmin": np.asarray(case.vmin), "vmax": np.asarray(case.vmax),
        "pd": np.asarray(case.pd_bus), "qd": np.asarray(case.qd_bus),
        "gs": np.asarray(case.gs), "bs": np.asarray(case.bs), "n_gen": n_gen,
    })


def case_html(case: Any) -> str:
    """HTML summary of a compiled case."""
    return _kv_table(f"case {case.name}", [
        ("buses", case.n_bus), ("generators", case.n_gen), ("branches", case.n_branch),
        ("loads", case.n_load), ("base MVA", case.base_mva),
        ("total demand (MW)", f"{float(case.pd.sum() * case.base_mva):.1f}"),
        ("source", case.source), ("content hash", case.content_hash[:16] + "..."),
    ])


def proxy_html(proxy: Any) -> str:
    """HTML summary of a loaded proxy."""
    reg = "-"
    if proxy.region is not None:
        reg = f"box over {len(proxy.region.lower)} inputs"
    return _kv_table(f"proxy {proxy.source or '<module>'}", [
        ("case", proxy.case_name), ("inputs (2L)", proxy.input_size),
        ("outputs (2G+2N)", proxy.output_size), ("activation", proxy.activation or "-"),
        ("hidden", proxy.hidden or "-"), ("training region", reg),
    ])


#: the columns (and dtypes) of :func:`certificate_frame`
CERTIFICATE_COLUMNS: dict[str, str] = {
    "family": "object", "component": "int64", "status": "object", "upper_bound": "float64",
    "attained": "float64", "gap": "float64", "threshold": "float64", "margin": "float64",
    "unit": "object", "method": "object", "seconds": "float64", "index": "int64",
    "rate": "float64", "radius": "float64", "loading_upper_bound": "float64",
    "loading_attained": "float64",
}

#: the columns (and dtypes) of :func:`certificate_diff_frame`
DIFF_COLUMNS: dict[str, str] = {
    "family": "object", "component": "int64", "kind": "object",
    **{f"{side}_{k}": "object" if k == "status" else "float64" for side in ("old", "new")
       for k in ("status", "upper_bound", "attained", "threshold")},
}


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> Any:
    """A DataFrame of ``rows`` with ``columns`` (in that order); without rows, an empty
    frame that still has them, with their dtypes."""
    import pandas as pd

    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return pd.DataFrame(rows, columns=list(columns))


def certificate_frame(cert: Any) -> Any:
    """One row per constraint: bound, attained, gap, threshold, margin, status, loading and
    radius (NaN where none; ``rate`` NaN for non-thermal constraints).  A certificate
    without constraints gives an empty frame with the same columns."""
    rows = []
    for c in cert.constraints:
        ld = c.loading()
        rows.append({
            "family": c.family, "component": c.component, "status": c.status,
            "upper_bound": c.upper_bound, "attained": c.attained, "gap": c.gap,
            "threshold": c.threshold, "margin": c.upper_bound - c.threshold, "unit": c.unit,
            "method": c.method, "seconds": c.seconds, "index": c.index,
            "rate": math.nan if c.rate is None else c.rate,
            "radius": math.nan if c.radius is None else c.radius,
            "loading_upper_bound": ld[1] if ld else math.nan,
            "loading_attained": ld[0] if ld else math.nan,
        })
    return _frame(rows, CERTIFICATE_COLUMNS)


def _text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """An HTML table of ``rows``, every value written by :func:`~gridverify._html.value_text`
    (``inf`` where there is no finite bound, ``-`` where there is no value)."""
    import pandas as pd

    if not rows:
        return ""
    cells = [{c: value_text(r.get(c)) for c in columns} for r in rows]
    return pd.DataFrame(cells, columns=columns).to_html(index=False)


def _no_bound_note(values: list[Any]) -> str:
    """The note on ``inf`` (:data:`~gridverify._html.NO_BOUND_NOTE`) when one of
    ``values`` is shown as ``inf``."""
    shown = any(value_text(v) == "inf" for v in values)
    return f"<p>{html.escape(NO_BOUND_NOTE)}.</p>" if shown else ""


def certificate_html(cert: Any) -> str:
    """HTML view of a certificate: status counts and the per-family summary table
    (``inf`` where a family has no finite bound)."""
    s = cert.summary
    head = (f"<p><b>certificate</b> {html.escape(cert.case)} | {html.escape(cert.model)} | "
            f"{html.escape(cert.region.describe())} | {html.escape(cert.method)}: "
            f"<span style='color:#1a7f37'>{s['certified']} certified</span>, "
            f"<span style='color:#c62828'>{s['violated']} violated</span>, "
            f"<span style='color:#b26a00'>{s['open']} open</span> of {s['total']} "
            f"in {cert.seconds:.1f} s</p>")
    fams = cert.families(null_nonfinite=False)
    cols = ["family", "count", "certified", "violated", "open", "max_upper_bound",
            "max_attained", "gap", "unit"]
    if any(d["radius"] is not None for d in fams.values()):
        cols.append("radius")
    table = _text_table([{"family": k, **v} for k, v in fams.items()], cols)
    table += _no_bound_note([d["max_upper_bound"] for d in fams.values()])
    note = cert.relu_note()
    if note:
        head += (f"<p>{html.escape(note)} (see docs/tightness.md for what closes open "
                 "constraints).</p>")
    radius = cert.radius_note()
    if radius:
        table += f"<p>{html.escape(radius)}.</p>"
    return head + table


def certificate_diff_html(diff: Any) -> str:
    """HTML view of a comparison of two certificates: the counts of each kind of change
    (constraints added or removed too, when any), per-family counts and worst values
    of both (``-`` where a family is absent from one of them, ``inf`` where it has no
    finite bound), then the constraints whose status changed or that are in one
    certificate only."""
    c = diff.counts
    one_side = "".join(f", {c[k]} {k}" for k in ("added", "removed") if c[k])
    if diff.lost:
        one_side += (f" (<span style='color:#c62828'>{len(diff.lost)} of them certified before: "
                     "lost certificates</span>)")
    head = (f"<p><b>comparison</b> {html.escape(diff.old.case)}: "
            f"{html.escape(diff.old.model)} ({html.escape(diff.old.method)}) &rarr; "
            f"{html.escape(diff.new.model)} ({html.escape(diff.new.method)}): "
            f"<span style='color:#c62828'>{c['regression']} regressed</span>, "
            f"<span style='color:#1a7f37'>{c['improvement']} improved</span>, "
            f"{c['unchanged']} unchanged{one_side}</p>")
    head += "".join(f"<p>note: {html.escape(n)}</p>" for n in diff.notes)
    rows = []
    for fam, d in diff.families(null_nonfinite=False).items():
        row: dict[str, Any] = {"family": fam}
        for side in ("old", "new"):
            for k in ("certified", "violated", "open", "max_upper_bound", "max_attained"):
                row[f"{k} ({side})"] = (d[side] or {}).get(k)
        rows.append(row)
    table = _text_table(rows, list(rows[0]) if rows else [])
    shown = [r[f"max_upper_bound ({side})"] for r in rows for side in ("old", "new")]
    changed = certificate_diff_frame(diff)
    changed = changed[changed.kind != "unchanged"]
    if len(changed):
        table += _text_table(changed.to_dict("records"), list(changed.columns))
        shown += [*changed.old_upper_bound, *changed.new_upper_bound]
    return head + table + _no_bound_note(shown)


def certificate_diff_frame(diff: Any) -> Any:
    """One row per constraint of a comparison of two certificates: its kind of change,
    old and new status, upper bound, attained value and threshold (status ``None`` and
    numbers NaN where the constraint is absent from that certificate; an upper bound
    ``inf`` where it has no finite bound).  Empty frames keep the columns."""
    rows = []
    for ch in diff.changes:
        row: dict[str, Any] = {"family": ch.family, "component": int(ch.component),
                               "kind": ch.kind}
        for side, c in (("old", ch.old), ("new", ch.new)):
            row[f"{side}_status"] = None if c is None else c.status
            for k in ("upper_bound", "attained", "threshold"):
                row[f"{side}_{k}"] = math.nan if c is None else float(getattr(c, k))
        rows.append(row)
    return _frame(rows, DIFF_COLUMNS)


def to_dataframe(obj: Any, level: str = "summary") -> Any:
    """A DataFrame of a certificate (constraints), a comparison of two certificates
    (constraints), case (buses), proxy or study results.

    ``level`` applies to study results (summary, jobs, families, constraints, combined).
    """
    import pandas as pd

    if hasattr(obj, "constraints") and hasattr(obj, "families"):
        return certificate_frame(obj)
    if hasattr(obj, "changes") and hasattr(obj, "counts"):
        return certificate_diff_frame(obj)
    if hasattr(obj, "pf_t") and hasattr(obj, "bus_ids"):
        return case_frame(obj)
    if hasattr(obj, "to_dataframe"):
        return obj.to_dataframe(level)
    if hasattr(obj, "module") and hasattr(obj, "case_hash"):
        return pd.DataFrame([{
            "source": obj.source, "case": obj.case_name, "inputs": obj.input_size,
            "outputs": obj.output_size, "activation": obj.activation,
            "hidden": obj.hidden,
        }])
    raise TypeError(f"to_dataframe: unsupported object {type(obj).__name__}")


def _case_of(cert: Any) -> Any:
    import warnings

    from gridverify.grid import load_compiled

    src = (cert.provenance or {}).get("case_source") or cert.case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load_compiled(src, emit_warnings=False)
        except (OSError, ValueError, Exception):  # noqa: BLE001 - fall back to the name
            return load_compiled(cert.case, emit_warnings=False)


def study_plot(results: Any, kind: str = "grid", **kwargs: Any) -> Any:
    """Figures of study results (:meth:`StudyResults.plot`): ``grid`` (topology colored
    by worst violation), ``gaps``, ``time``, ``radius`` (share certified against the
    radius, per model and region); the report's figure functions.

    ``case``: the study's case key (default: the first case); ``ax``: the axes to draw
    on (``gaps`` and ``radius``, which draw one axes; the others draw several)."""
    from gridverify.report import figures

    fn = {"grid": figures.grid_figure, "gaps": figures.gap_figure,
          "time": figures.bound_time_figure, "radius": figures.study_radius_figure}
    if kind not in fn:
        raise ValueError(f"kind: one of {', '.join(fn)}, got {kind!r}")
    if kwargs.get("ax") is not None and kind not in ("gaps", "radius"):
        raise TypeError(f"plot: kind {kind!r} draws a figure of several axes; ax= is for "
                        "kinds 'gaps' and 'radius'")
    if "ax" in kwargs and kwargs["ax"] is None:  # the figure functions make their own
        del kwargs["ax"]
    return fn[kind](results, **kwargs)


register_plot("study", study_plot)


def comparison_plot(diff: Any, ax: Any = None) -> Any:
    """The figure of a comparison of two certificates
    (:func:`~gridverify.report.figures.comparison_figure`)."""
    from gridverify.report import figures

    return figures.comparison_figure(diff, ax=ax)


register_plot("certificate-diff", comparison_plot)


def plot(obj: Any, case: Any = None, ax: Any = None, **kwargs: Any) -> Any:
    """One-call figure; returns the matplotlib Figure.

    A certificate: the grid colored by certified worst violations (``case``:
    the compiled case or its name or file, default loaded from the certificate;
    SpecError when it is
    not the certificate's case), or with
    ``kind="radius"`` the share of each family certified against the radius of
    the box about the region's centre (:func:`~gridverify.report.figures.radius_figure`).
    A compiled case: its topology.  Study results: :func:`study_plot` (``kind=...``;
    ``case``: the study's case key, default its first case; ``ax`` for the one-axes
    kinds).  A comparison of two certificates (:func:`~gridverify.compare_certificates`):
    :meth:`CertificateDiff.plot <gridverify.certify.compare.CertificateDiff.plot>`.
    """
    from gridverify.report import figures

    plt = figures._plt()
    if hasattr(obj, "plot") and hasattr(obj, "records"):
        extra = {k: v for k, v in (("case", case), ("ax", ax)) if v is not None}
        return study_plot(obj, **kwargs, **extra)
    if hasattr(obj, "changes") and hasattr(obj, "counts"):
        kind = kwargs.pop("kind", "compare")
        if kind != "compare":
            raise ValueError(f"kind: a comparison has one figure ('compare'), got {kind!r}")
        bad = ([] if case is None else ["case"]) + sorted(kwargs.keys() - {"figsize"})
        if bad:
            raise TypeError(f"plot: a comparison takes no {'=, '.join(bad)}=")
        if ax is None and "figsize" in kwargs:
            _, ax = plt.subplots(figsize=kwargs["figsize"])
        return obj.plot(ax=ax)
    kind = kwargs.pop("kind", "grid")
    if kind not in ("grid", "radius"):
        raise ValueError(f"kind: 'grid' or 'radius', got {kind!r}")
    if kind == "radius":
        if not hasattr(obj, "constraints"):
            raise TypeError(f"plot: kind 'radius' needs a certificate, not {type(obj).__name__}")
        return figures.radius_figure(obj, ax=ax)
    if hasattr(obj, "constraints") and hasattr(obj, "families"):
        if isinstance(case, (str, os.PathLike)):  # a case's name or file, as elsewhere
            from gridverify.grid import load_compiled

            case = load_compiled(case, emit_warnings=False)
        cc = case if case is not None else _case_of(obj)
        prov = obj.provenance or {}
        try:
            figures.check_case(cc, obj.case, prov.get("case_hash"), "the certificate")
        except SpecError as exc:
            hint = "" if case is not None else " (pass the certificate's case as case=)"
            raise SpecError(f"plot: {exc}{hint}") from None
        vals = figures.grid_values(cc, certificate_frame(obj))
        title = f"{obj.case} | {obj.model} | {obj.region.describe()} | {obj.method}"
    elif hasattr(obj, "pf_t"):
        import numpy as np

        cc = obj
        vals = {"bus_value": np.full(cc.n_bus, np.nan), "bus_status": np.full(cc.n_bus, -1),
                "branch_loading": np.where(np.isfinite(cc.rate_a), 0.0, np.nan),
                "branch_status": np.full(cc.n_branch, -1)}
        title = cc.name
    else:
        raise TypeError(f"plot: unsupported object {type(obj).__name__}")
    if ax is None:
        fig, ax = plt.subplots(figsize=kwargs.pop("figsize", (7, 5.5)), layout="constrained")
    figures.draw_grid(ax, cc, vals, title, colorbars=hasattr(obj, "constraints"))
    return ax.figure


def register(ipython: Any = None) -> bool:
    """Register HTML views with IPython (the running shell by default); False outside IPython."""
    if ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        ipython = get_ipython()
    if ipython is None:
        return False
    fmt = ipython.display_formatter.formatters["text/html"]
    for _kind, module, name, view in _VIEWS:
        fmt.for_type_by_name(module, name, view)
    return True


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gridverify.display``."""
    register(ipython)


# (html kind, module, class name, view) of every object with an HTML view
_VIEWS: tuple[tuple[str, str, str, Any], ...] = (
    ("certificate", "gridverify.certify.certificate", "Certificate", certificate_html),
    ("certificate-diff", "gridverify.certify.compare", "CertificateDiff", certificate_diff_html),
    ("case", "gridverify.grid.compiled", "CompiledCase", case_html),
    ("proxy", "gridverify.proxy.load", "Proxy", proxy_html),
)
for _v in _VIEWS:
    register_view(_v[0], _v[3])
