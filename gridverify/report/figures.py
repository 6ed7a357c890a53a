"""Report figures (matplotlib, Agg backend): grid maps, bound and gap vs time, gap histograms.

* :func:`grid_figure`: the grid drawn from its topology (buses at a
  Kamada-Kawai layout of the case graph), buses colored by their certified worst
  violation (the largest upper bound, in pu, over the balance, voltage and
  generator constraints at the bus; at most 0 shows as the lightest color),
  branches colored by their certified worst loading ``|S| / rate`` (upper bound
  of the thermal constraints, blue below 1, red above; unrated branches grey
  and dashed).  Edge colors/widths show the status: green certified, orange
  open, red violated.
* :func:`bound_time_figure`: per model and region, the worst power-balance
  bound, the median gap (upper bound - attained) and the number of open
  constraints against each job's time, one point per method (ibp, crown,
  alpha-crown, bab), and branch-and-bound traces (thin grey steps) when
  certificates carry them (``provenance["bab"]``, see :func:`_bab_traces`).
* :func:`gap_figure`: distribution of ``log10`` gaps per method.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.spec.constraints import BALANCE_FAMILIES

__all__ = [
    "FigureInfo",
    "bound_time_figure",
    "check_case",
    "draw_grid",
    "gap_figure",
    "grid_figure",
    "grid_values",
    "literal_text",
    "study_radius_figure",
    "write_figures",
]

_METHOD_ORDER = ("ibp", "crown", "alpha-crown", "bab")
_STATUS_COLOR = {"certified": "#2ca02c", "open": "#ff7f0e", "violated": "#d62728"}
_STATUS_RANK = {"certified": 0, "open": 1, "violated": 2}
_BUS_FAMILIES = ("p_balance", "q_balance", "vm_max", "vm_min")
_GEN_FAMILIES = ("pg_max", "pg_min", "qg_max", "qg_min")
_BRANCH_FAMILIES = ("thermal_fr", "thermal_to", "angle_max", "angle_min")
_BUS_FLOOR = 1e-4  # pu: bus values at or below this share the lightest color
_NO_BUS = "bus: no bus or generator constraint (white)"


def _plt() -> Any:
    """pyplot; the Agg backend unless pyplot is already in use or a Jupyter kernel runs."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _quiet_glyphs(func: Any) -> Any:
    """Run ``func`` without matplotlib's "Glyph N missing from font(s)" warnings: a
    name in a script the default font lacks (CJK, emoji) is drawn as boxes, and the
    command's stderr stays its own lines.  Only those warnings, only while it runs."""
    import warnings

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from",
                                    category=UserWarning)
            return func(*args, **kwargs)

    return run


def literal_text(text: Any) -> str:
    """``text`` (a case name, model path, region, ...) made safe to show literally in a
    matplotlib title, label, legend entry or annotation: the one home of that escaping,
    used by every figure function.

    Matplotlib reads a text with an even number of unescaped ``$`` as mathtext (and
    fails on a ``$\\x$`` at draw time): each ``$`` becomes ``\\$``, which matplotlib
    shows as ``$`` (mathtext's only trigger).  With ``text.parse_math`` off the text
    is left as it is; with ``text.usetex`` on, TeX's special characters are escaped.
    Compose a whole string first and escape it once (escaping twice shows the
    backslashes)."""
    import matplotlib

    s = str(text)
    if matplotlib.rcParams["text.usetex"]:
        return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)
    if not matplotlib.rcParams["text.parse_math"]:
        return s
    return s.replace("$", r"\$")


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&",
                "#": r"\#", "%": r"\%", "_": r"\_", "^": r"\^{}", "~": r"\~{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


_BREAK = re.compile(r"[^ _/\\|-]*[ _/\\|-]*")  # pieces ending after a break character


def text_width(text: str, fontsize: float) -> float:
    """Width in inches of one line of plain ``text`` at ``fontsize`` (the default font,
    measured without a renderer, so for any backend)."""
    if not text:
        return 0.0
    from matplotlib.font_manager import FontProperties  # the rcParams' font of now

    w, _, _ = _text_path().get_text_width_height_descent(text, FontProperties(size=fontsize),
                                                         ismath=False)
    return float(w) / 72.0


@functools.cache
def _text_path() -> Any:
    """One text measurer for every :func:`text_width` (it keeps no state of a text)."""
    from matplotlib.textpath import TextToPath

    return TextToPath()


def _wrap(text: str, width: float, fontsize: float) -> list[str]:
    """``text`` broken greedily into lines at most ``width`` inches wide: after spaces,
    ``_ / \\ | -`` where it can, inside a piece too long for a line where it must."""
    lines: list[str] = []
    line = ""
    for piece in (p for p in _BREAK.findall(text) if p):
        if text_width((line + piece).rstrip(), fontsize) <= width:
            line += piece
            continue
        if line:
            lines.append(line.rstrip())
            line = ""
        while text_width(piece.rstrip(), fontsize) > width and len(piece) > 1:
            k = len(piece) - 1
            while k > 1 and text_width(piece[:k], fontsize) > width:
                k -= 1
            lines.append(piece[:k])
            piece = piece[k:]
        line = piece
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


@_quiet_glyphs
def fit_text(text: Any, width: float, fontsize: float = 9.0, min_fontsize: float = 6.0,
             max_lines: int = 3) -> tuple[str, float]:
    """Plain ``text`` made to fit ``width`` inches: wrapped (:func:`_wrap`), the font
    shrunk from ``fontsize`` towards ``min_fontsize`` while it takes more than
    ``max_lines`` lines, and, still longer at the smallest font, its last line cut with
    an ellipsis.  Returns ``(shown, fontsize)``, ``shown`` escaped by :func:`literal_text`
    (each line apart): the one home of the fitting of titles, labels and legend entries
    to their room."""
    s = " ".join(str(text).splitlines())
    fs = float(fontsize)
    lines = _wrap(s, width, fs)
    while len(lines) > max_lines and fs - 0.5 >= min_fontsize:
        fs -= 0.5
        lines = _wrap(s, width, fs)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and text_width(last + "\u2026", fs) > width:
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "\u2026"]
    return "\n".join(literal_text(line) for line in lines), fs


def fit_suptitle(fig: Any, text: Any, fontsize: float = 10.0) -> None:
    """``text`` as ``fig``'s suptitle fitted to the figure's width (``tight_layout``
    makes room for it, however many lines it takes)."""
    shown, fs = fit_text(text, fig.get_figwidth() - 0.3, fontsize, max_lines=3)
    fig.suptitle(shown, fontsize=fs)


def fit_title(ax: Any, text: Any, fontsize: float = 9.0, width: float | None = None,
              max_lines: int = 3) -> None:
    """``text`` as ``ax``'s title fitted to ``width`` inches (default: the axes' width)."""
    if width is None:
        width = ax.get_position().width * ax.figure.get_figwidth()
    shown, fs = fit_text(text, width, fontsize, max_lines=max_lines)
    ax.set_title(shown, fontsize=fs)


def no_data(ax: Any, message: str) -> None:
    """Mark ``ax`` as a panel without data: no ticks, ``message`` in its middle (fitted to
    the panel)."""
    width = ax.get_position().width * ax.figure.get_figwidth() * 0.9
    shown, fs = fit_text(message, width, 9.0, max_lines=4)
    for minor in (False, True):
        ax.set_xticks([], minor=minor)
        ax.set_yticks([], minor=minor)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.text(0.5, 0.5, shown, transform=ax.transAxes, ha="center", va="center", fontsize=fs,
            color="0.4")


@_quiet_glyphs
def figure_legend(fig: Any, handles: Sequence[Any], labels: Sequence[str],
                  fontsize: float = 7.0, grow: bool = True) -> float:
    """A legend of plain ``labels`` below the axes of ``fig``, across its width, as many
    columns as the labels allow and each label fitted to its column; the figure grows
    by the legend's height when ``grow``.  Returns the figure fraction the legend takes
    at the bottom (the bottom of the ``rect`` for ``tight_layout``)."""
    if not handles:
        return 0.0
    room = fig.get_figwidth() - 0.3
    extra = 5.0 * fontsize / 72.0  # handle, padding and column spacing (in em)
    widest = max(text_width(str(t), fontsize) for t in labels) + extra
    ncol = max(1, min(len(labels), 4, int(room // widest)))
    fitted = [fit_text(t, room / ncol - extra, fontsize, max_lines=2) for t in labels]
    legend = fig.legend(handles, [t for t, _ in fitted], loc="lower center", ncol=ncol,
                        fontsize=min(f for _, f in fitted), frameon=False,
                        bbox_to_anchor=(0.5, 0.0))
    height = legend.get_window_extent().height / fig.dpi + 0.05
    if grow:
        fig.set_figheight(fig.get_figheight() + height)
    return height / fig.get_figheight()


@_quiet_glyphs
def save_figure(fig: Any, fmt: str, dpi: int = 110) -> bytes:
    """``fig`` as the bytes of a ``png``, ``svg`` or ``pdf`` file, the same bytes for the
    same figure (no creation date; fixed SVG ids): the one way figures are written."""
    import io

    import matplotlib

    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "gridverify"}):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    return buf.getvalue()


@dataclass(frozen=True)
class FigureInfo:
    """A written figure: ``title``, file ``path`` and a one-line ``caption``."""

    title: str
    path: Path
    caption: str


def layout(case: Any) -> dict[int, np.ndarray]:
    """Deterministic 2-D positions of the buses (Kamada-Kawai on the case graph)."""
    import networkx as nx

    g = nx.Graph(case.graph) if case.graph is not None else nx.Graph()
    g.add_nodes_from(range(case.n_bus))
    for f, t in zip(case.f_bus, case.t_bus):
        g.add_edge(int(f), int(t))
    pos: dict[int, np.ndarray] = {}
    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    x_off = 0.0
    for comp in comps:
        sub = g.subgraph(sorted(comp))
        p = nx.kamada_kawai_layout(sub) if len(comp) > 2 else nx.circular_layout(sub)
        arr = np.array([p[n] for n in sub.nodes]) if p else np.zeros((0, 2))
        width = float(np.ptp(arr[:, 0])) if len(arr) > 1 else 0.2
        for n in sub.nodes:
            pos[int(n)] = np.asarray(p[n]) + np.array([x_off - arr[:, 0].min(), 0.0])
        x_off += width + 0.3
    return pos


def check_case(case: Any, name: str, case_hash: str | None, what: str) -> None:
    """SpecError unless the compiled ``case`` is the case ``name`` (with content hash
    ``case_hash`` when known) that ``what`` (e.g. ``"the certificate"``) was made for."""
    from gridverify.errors import SpecError

    have = getattr(case, "content_hash", None)
    if case_hash and have:
        if str(case_hash) == str(have):
            return
    elif str(name) == str(case.name):
        return
    detail = ""
    if str(name) == str(case.name) and case_hash and have:
        detail = f" (case hashes differ: {str(have)[:12]} and {str(case_hash)[:12]})"
    raise SpecError(f"case {case.name!r} is not the case of {what} ({name!r}){detail}")


def grid_values(case: Any, rows: Any) -> dict[str, np.ndarray]:
    """Per-bus and per-branch worst values and statuses from constraint rows.

    ``rows``: a DataFrame (or records) with ``family``, ``index``,
    ``upper_bound``, ``status`` and, for thermal rows, ``rate``, of constraints of
    ``case`` (SpecError when an index is out of its range: rows of another case;
    check the case itself with :func:`check_case`).  Returns
    ``bus_value`` (pu, NaN where no constraint), ``bus_status`` (rank -1 none,
    0 certified, 1 open, 2 violated), ``branch_loading`` (NaN unrated),
    ``branch_status``.
    """
    from gridverify.errors import SpecError

    recs = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    bus_v = np.full(case.n_bus, np.nan)
    bus_s = np.full(case.n_bus, -1)
    br_v = np.full(case.n_branch, np.nan)
    br_s = np.full(case.n_branch, -1)
    sizes = {**{f: (case.n_bus, "buses") for f in _BUS_FAMILIES},
             **{f: (case.n_gen, "generators") for f in _GEN_FAMILIES},
             **{f: (case.n_branch, "branches") for f in _BRANCH_FAMILIES}}
    for r in recs:
        fam, idx, ub = r["family"], int(r["index"]), float(r["upper_bound"])
        if fam in sizes and not 0 <= idx < sizes[fam][0]:
            n, what = sizes[fam]
            raise SpecError(f"constraint {fam}[{r.get('component', '?')}]: index {idx} is out "
                            f"of range for case {case.name!r} ({n} {what}); the constraints "
                            "are of another case")
        rank = _STATUS_RANK[r["status"]]
        if fam in _BUS_FAMILIES or fam in _GEN_FAMILIES:
            b = idx if fam in _BUS_FAMILIES else int(case.gen_bus[idx])
            bus_v[b] = ub if np.isnan(bus_v[b]) else max(bus_v[b], ub)
            bus_s[b] = max(bus_s[b], rank)
        elif fam in _BRANCH_FAMILIES:
            br_s[idx] = max(br_s[idx], rank)
            rate = r.get("rate")
            if fam.startswith("thermal") and rate is not None and rate == rate and rate > 0:
                ld = math.sqrt(max(ub + rate * rate, 0.0)) / rate if math.isfinite(ub) else np.inf
                br_v[idx] = ld if np.isnan(br_v[idx]) else max(br_v[idx], ld)
    return {"bus_value": bus_v, "bus_status": bus_s, "branch_loading": br_v,
            "branch_status": br_s}


def grid_norms(values: Sequence[dict[str, np.ndarray]]) -> tuple[Any, Any]:
    """Shared color norms (bus log-norm over the positive values, branch loading around 1)."""
    import matplotlib.colors as mcolors

    bus = np.concatenate([v["bus_value"] for v in values]) if values else np.zeros(0)
    pos = bus[np.isfinite(bus) & (bus > _BUS_FLOOR)]
    lo = max(_BUS_FLOOR, float(pos.min())) if pos.size else _BUS_FLOOR
    hi = float(pos.max()) if pos.size else 1e-2
    hi = max(hi, 10 * lo)
    ld = np.concatenate([v["branch_loading"] for v in values]) if values else np.zeros(0)
    fin = ld[np.isfinite(ld)]
    vmax_ld = max(1.5, float(fin.max()) if fin.size else 1.5)
    return (mcolors.LogNorm(vmin=lo, vmax=hi),
            mcolors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax_ld))


@_quiet_glyphs
def draw_grid(ax: Any, case: Any, values: dict[str, np.ndarray], title: str = "",
              pos: dict[int, np.ndarray] | None = None, colorbars: bool = True,
              norms: tuple[Any, Any] | None = None, title_width: float | None = None) -> None:
    """Draw one grid map on ``ax`` (see the module docstring for the encoding).

    ``title``: plain text, shown literally and fitted to ``title_width`` inches
    (:func:`fit_text`; default: the map's width).
    ``norms``: (bus, branch) color norms shared between maps (default: this map's).
    ``colorbars``: add the two colorbars next to ``ax``.
    """
    from matplotlib.collections import LineCollection

    plt = _plt()
    pos = pos or layout(case)
    bus_norm, ld_norm = norms or grid_norms([values])
    bus_v, bus_s = values["bus_value"], values["bus_status"]
    br_v, br_s = values["branch_loading"], values["branch_status"]
    rated = ~np.isnan(br_v)
    ld_cmap = plt.get_cmap("coolwarm")
    segs, colors, widths = [], [], []
    dashed = []
    for k, (f, t) in enumerate(zip(case.f_bus, case.t_bus)):
        seg = [pos[int(f)], pos[int(t)]]
        if rated[k]:
            segs.append(seg)
            colors.append(ld_cmap(ld_norm(min(br_v[k], ld_norm.vmax))))
            widths.append({-1: 1.2, 0: 1.8, 1: 3.0, 2: 3.8}[int(br_s[k])])
        else:
            dashed.append(seg)
    if dashed:
        ax.add_collection(LineCollection(dashed, colors="0.6", linewidths=1.0,
                                         linestyles="dashed", zorder=1))
    if segs:
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=widths, zorder=2))
    xy = np.array([pos[i] for i in range(case.n_bus)])
    bus_cmap = plt.get_cmap("YlOrRd")
    levels = [float(bus_norm(min(max(v, bus_norm.vmin), bus_norm.vmax))) if np.isfinite(v)
              else (1.0 if np.isinf(v) else -1.0) for v in bus_v]
    face = [bus_cmap(lv) if lv >= 0 else "white" for lv in levels]
    edge = [_STATUS_COLOR.get({0: "certified", 1: "open", 2: "violated"}.get(int(s), ""), "0.5")
            for s in bus_s]
    size = 170 if case.n_bus <= 30 else (60 if case.n_bus <= 120 else 15)
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=face, edgecolors=edge,
               linewidths=[2.4 if s >= 1 else 1.4 for s in bus_s], zorder=3)
    if case.n_bus <= 60:
        fs = 6.5 if case.n_bus <= 30 else 4.5
        for i in range(case.n_bus):
            ax.annotate(str(int(case.bus_ids[i])), xy[i], fontsize=fs, ha="center",
                        va="center", zorder=4, color="white" if levels[i] > 0.65 else "black")
    if title_width is None:  # the colorbars, added beside the map, narrow it
        title_width = ax.get_position().width * ax.figure.get_figwidth() * (
            0.8 if colorbars else 1.0)
    fit_title(ax, title, 9.0, width=title_width)
    ax.set_aspect("equal")
    ax.axis("off")
    pad = 0.08
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    if colorbars:
        _colorbars(ax.figure, (bus_norm, ld_norm), ax=ax, bus_note=bus_scale_note([values]))


def bus_scale_note(values: Sequence[dict[str, np.ndarray]]) -> str | None:
    """What the bus colorbar says instead of a scale when no bus value is above
    ``_BUS_FLOOR`` (every bus the lightest color, or white without a bus constraint);
    None when there is a scale."""
    bus = np.concatenate([v["bus_value"] for v in values]) if values else np.zeros(0)
    if (np.isfinite(bus) & (bus > _BUS_FLOOR)).any() or np.isposinf(bus).any():
        return None
    if not (~np.isnan(bus)).any():
        return _NO_BUS
    if (bus[~np.isnan(bus)] <= 0).all():
        return "bus: every certified worst violation <= 0 (all certified)"
    return f"bus: every certified worst violation <= {_BUS_FLOOR:g} pu"


def _colorbars(fig: Any, norms: tuple[Any, Any], ax: Any = None,
               caxes: tuple[Any, Any] | None = None, bus_note: str | None = None) -> None:
    """The bus and branch colorbars: in ``caxes`` when given, else on the left and the
    right of ``ax``.  The bus bar's triangle at its bottom stands for every value at or
    below its lowest (certified ones too); ``bus_note`` (:func:`bus_scale_note`): one
    plain color and that note instead of a scale."""
    import matplotlib.colors as mcolors

    plt = _plt()
    bus_cmap = plt.get_cmap("YlOrRd")
    if bus_note is None:
        sm_b = plt.cm.ScalarMappable(norm=norms[0], cmap=bus_cmap)
    else:
        plain = "white" if bus_note == _NO_BUS else bus_cmap(0.0)  # as the buses are drawn
        sm_b = plt.cm.ScalarMappable(norm=mcolors.Normalize(0, 1),
                                     cmap=mcolors.ListedColormap([plain]))
    sm_l = plt.cm.ScalarMappable(norm=norms[1], cmap=plt.get_cmap("coolwarm"))
    extend = "min" if bus_note is None else "neither"
    if caxes is not None:
        cb1 = fig.colorbar(sm_b, cax=caxes[0], extend=extend)
        cb2 = fig.colorbar(sm_l, cax=caxes[1])
    else:  # one on each side of the map: neither one's ticks and label reach the other
        cb1 = fig.colorbar(sm_b, ax=ax, fraction=0.04, pad=0.02, location="left",
                           extend=extend)
        cb2 = fig.colorbar(sm_l, ax=ax, fraction=0.04, pad=0.02, location="right")
    length = cb1.ax.get_position().height * fig.get_figheight()
    if bus_note is None:
        label = (f"bus: certified worst violation (pu); triangle: <= {norms[0].vmin:.2g}, "
                 "certified ones too")
    else:
        cb1.set_ticks([])
        label = bus_note
    for cb, text in ((cb1, label), (cb2, "branch: certified max |S|/rate")):
        shown, fs = fit_text(text, length, 7.0, min_fontsize=5.5, max_lines=2)
        cb.set_label(shown, fontsize=fs)
        cb.ax.tick_params(which="both", labelsize=6)


def _legend(fig: Any) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                      markeredgecolor=c, markeredgewidth=2, label=s)
               for s, c in _STATUS_COLOR.items()]
    handles.append(Line2D([], [], color="0.6", linestyle="dashed", label="unrated branch"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)


def _case_keys(results: Any, case: str | None) -> list[str]:
    keys = list(dict.fromkeys(r["job"]["case_key"] for r in results.records))
    if case is not None:
        if case not in keys:
            raise ValueError(f"case {case!r} is not in the study (cases: {', '.join(keys)})")
        return [case]
    return keys


def _compiled(results: Any, case_key: str) -> Any:
    import warnings

    from gridverify.grid import load_compiled

    rec = next(r for r in results.records if r["job"]["case_key"] == case_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled(rec["job"]["case"], emit_warnings=False)


def _check_study_case(results: Any, key: str, cc: Any) -> None:
    """SpecError unless ``cc`` is the case of the study's jobs of case key ``key``."""
    for r in results.records:
        if r["job"]["case_key"] != key:
            continue
        prov = (r.get("certificate") or {}).get("provenance") or {}
        name = prov.get("case_name") or r["job"].get("case_name") or r["job"]["case"]
        check_case(cc, name, prov.get("case_hash"), f"the study's jobs of case {key!r}")
        if prov.get("case_hash"):
            return


@_quiet_glyphs
def grid_figure(results: Any, case: str | None = None, compiled: Any = None) -> Any:
    """Grid maps of one case (default: the first) for every model x region of the study.

    ``compiled``: that case, compiled (default: loaded from the study); SpecError when
    it is another case than the study's jobs were run on.
    """
    plt = _plt()
    key = _case_keys(results, case)[0]
    cc = compiled if compiled is not None else _compiled(results, key)
    if compiled is not None:
        _check_study_case(results, key, cc)
    comb = results.combined_frame()
    comb = comb[comb.case == key] if not comb.empty else comb
    models = list(dict.fromkeys(comb.model)) if not comb.empty else []
    regions = list(dict.fromkeys(comb.region)) if not comb.empty else []
    nr, nc = max(len(models), 1), max(len(regions), 1)
    fig, axes = plt.subplots(nr, nc, figsize=(4.8 * nc + 1.2, 4.4 * nr + 0.5), squeeze=False)
    pos = layout(cc)
    vals = {(m, r): grid_values(cc, comb[(comb.model == m) & (comb.region == r)])
            for m in models for r in regions}
    norms = grid_norms(list(vals.values()))
    slot = (fig.get_figwidth() - 1.2) / nc - 0.35  # a map's column, less the gap to the next
    titles: dict[tuple[int, int], str] = {}
    for i, m in enumerate(models):
        for j, r in enumerate(regions):
            if not ((comb.model == m) & (comb.region == r)).any():
                axes[i][j].axis("off")
                continue
            titles[(i, j)] = f"{key} | {m} | {r}"
            draw_grid(axes[i][j], cc, vals[(m, r)], titles[(i, j)], pos=pos,
                      colorbars=False, norms=norms, title_width=slot)
    fit_suptitle(fig, f"{cc.name}: certified worst violation per bus and branch "
                            "(best of methods)")
    if not models:
        no_data(axes[0][0], "no finished jobs")
        axes[0][0].axis("off")
        fig.tight_layout()
        return fig
    _legend(fig)
    right = 1.0 - 1.1 / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0.04, right, 1))
    # a title wider than its (equal-aspect) map pushes the maps together; titles fitted
    # to the maps' spacing let the layout move them closer again: until it settles
    width = slot
    for _ in range(4 if nc > 1 else 0):
        xs = [axes[0][j].get_position(original=True) for j in range(nc)]
        step = min(b.x0 + b.x1 - a.x0 - a.x1 for a, b in zip(xs, xs[1:])) / 2  # centres
        fits = step * fig.get_figwidth() - 0.3
        if fits >= width - 1e-3:  # the titles, fitted to ``width``, stay apart
            break
        width = fits
        for (i, j), title in titles.items():
            fit_title(axes[i][j], title, 9.0, width=width)
        fig.tight_layout(rect=(0, 0.04, right, 1))
    cax1 = fig.add_axes((right + 0.01, 0.55, 0.015, 0.36))
    cax2 = fig.add_axes((right + 0.01, 0.10, 0.015, 0.36))
    _colorbars(fig, norms, caxes=(cax1, cax2), bus_note=bus_scale_note(list(vals.values())))
    return fig


def _method_key(m: str) -> int:
    return _METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER)


@_quiet_glyphs
def bound_time_figure(results: Any, case: str | None = None) -> Any:
    """Bound, gap and open count against time, one line per model and region of a case."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    key = _case_keys(results, case)[0]
    df = results.constraints_frame()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    df = df[df.case == key] if not df.empty else df
    groups = df.groupby(["model", "region"], sort=False) if not df.empty else []
    jobs = results.jobs_frame().set_index("job_id")
    handles, labels = [], []
    for (model, region), grp in groups:
        pts = []
        for job_id, g in grp.groupby("job_id", sort=False):
            bal = g[g.family.isin(list(BALANCE_FAMILIES))].upper_bound
            fin = g.gap[np.isfinite(g.gap)]
            pts.append((g.method.iloc[0], float(jobs.loc[job_id, "seconds"]),
                        float(bal.max()) if len(bal) else math.nan,
                        float(fin.median()) if len(fin) else math.nan,
                        int((g.status == "open").sum())))
        pts.sort(key=lambda p: (_method_key(p[0]), p[1]))
        t = [p[1] for p in pts]
        for ax, col in zip(axes, (2, 3, 4)):
            y = [p[col] for p in pts]
            line = ax.plot(t, y, marker="o", label=literal_text(f"{model} | {region}"))[0]
            for p, yy in zip(pts, y):
                if yy == yy:
                    ax.annotate(literal_text(p[0]), (p[1], yy), fontsize=6,
                                color=line.get_color(),
                                xytext=(3, 3), textcoords="offset points")
        handles.append(line)
        labels.append(f"{model} | {region}")
    if _bab_traces(results, key, axes):
        handles.append(Line2D([], [], **_BAB_STYLE))
        labels.append("branch-and-bound trace of one constraint (bound against its time)")
    titles = ("worst power-balance upper bound (pu)",
              "median gap: bound - attained (family units)", "open constraints")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlabel("job time (s)")
        fit_title(ax, title, 9.0)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:  # log where every finite value is positive (and there is one)
        ys = [v for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)]
        if ys and min(ys) > 0:
            ax.set_yscale("log")
        elif ys:
            ax.set_yscale("symlog", linthresh=1e-3)
    counts = [v for line in axes[2].get_lines() for v in line.get_ydata() if v == v]
    top = max(counts + [1.0])
    axes[2].set_ylim(-0.04 * top, 1.08 * top)  # counts: integer ticks from 0
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if df.empty:
        for ax in axes:
            no_data(ax, "no finished jobs")
    elif not df.family.isin(list(BALANCE_FAMILIES)).any():
        no_data(axes[0], "no power-balance constraints selected")
    bottom = figure_legend(fig, handles, labels)  # first: it makes the figure taller
    fit_suptitle(fig, f"{key}: bound and gap against time (points: methods, in "
                            "order of effort)")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


_BAB_STYLE = {"linewidth": 0.7, "alpha": 0.6, "color": "0.35"}


def _bab_traces(results: Any, key: str, axes: Sequence[Any]) -> bool:
    """Branch-and-bound traces, when certificates carry them; whether there was one.

    Read from ``provenance["bab"]``: a list of ``{"family", "component",
    "history": [[seconds, bound, attained], ...]}`` (one per BaB call).  Balance
    constraints go to the bound panel, every trace to the gap panel.
    """
    drawn = False
    for r in results.done:
        if r["job"]["case_key"] != key:
            continue
        runs = (r["certificate"].get("provenance") or {}).get("bab") or []
        for run in runs if isinstance(runs, list) else []:
            hist = run.get("history") if isinstance(run, dict) else None
            if not hist:
                continue
            arr = np.array([[np.nan if v is None else v for v in row[:3]] for row in hist],
                           dtype=float)
            if run.get("family") in BALANCE_FAMILIES:
                axes[0].step(arr[:, 0], arr[:, 1], where="post", **_BAB_STYLE)
            axes[1].step(arr[:, 0], arr[:, 1] - arr[:, 2], where="post", **_BAB_STYLE)
            drawn = True
    return drawn


@_quiet_glyphs
def gap_figure(results: Any, case: str | None = None, ax: Any = None) -> Any:
    """Histogram of ``log10(bound - attained)`` per method for one case (default the first),
    on ``ax`` (default: a new figure)."""
    plt = _plt()
    key = _case_keys(results, case)[0]
    df = results.constraints_frame()
    df = df[df.case == key] if not df.empty else df
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    fig = ax.figure
    methods = sorted(set(df.method), key=_method_key) if not df.empty else []
    bins = np.linspace(-10, 2, 49)
    for m in methods:
        g = df[df.method == m].gap.to_numpy()
        fin = g[np.isfinite(g)]
        n_inf = int((~np.isfinite(g)).sum())
        vals = np.clip(np.log10(np.maximum(fin, 1e-10)), bins[0], bins[-1])
        label = f"{m} ({len(fin)} finite" + (f", {n_inf} no bound)" if n_inf else ")")
        ax.hist(vals, bins=bins, histtype="step", linewidth=1.6, label=literal_text(label))
    ax.set_xlabel("log10 gap = log10(upper bound - attained)  (each family in its unit)")
    ax.set_ylabel("constraints")
    fit_title(ax, f"{key}: distribution of gaps (all models and regions)", 10.0)
    ax.grid(alpha=0.3)
    if methods:
        ax.legend(fontsize=8)
    else:
        no_data(ax, "no finished jobs")
    fig.tight_layout()
    return fig


#: tab20 without its reds and greens, which mean violated and certified elsewhere
_CURVE_COLORS = tuple(k for k in range(20) if k not in (4, 5, 6, 7))


def _radius_curves(ax: Any, groups: dict[str, list[float | None]], bold: str | None,
                   title: str, own: bool) -> None:
    """One step curve per group: the share of its constraints whose radius is at least
    ``x`` (``None``: no radius; 1.0: certified over the whole region), on a log axis.
    ``own``: the figure is this axes' alone (the legend goes below it, the figure grows);
    else the legend's entries are fitted to the axes' width."""
    from gridverify.certify.options import RADII

    plt = _plt()
    xs = np.array(sorted({*RADII, 1.0, *(r for v in groups.values() for r in v
                                         if r is not None)}))
    tab = plt.get_cmap("tab20")
    handles, labels = [], []
    for k, (name, radii) in enumerate(groups.items()):
        r = np.array([-1.0 if v is None else v for v in radii])
        share = [(r >= x).mean() for x in xs]  # between two radii: the larger one's share
        labels.append(f"{name} ({r.size})")  # the line's label in full, the legend's fitted
        handles += ax.plot(xs, share, drawstyle="steps-pre", marker=".",
                           label=literal_text(labels[-1]), linewidth=2.4 if name == bold else 1.2,
                           color="black" if name == bold else
                           tab(_CURVE_COLORS[k % len(_CURVE_COLORS)]))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("radius: fraction of the region's half-widths about its centre")
    ax.set_ylabel("share certified on that box")
    fit_title(ax, title, 10.0)
    ax.grid(alpha=0.3, which="both")
    fig = ax.figure
    if own:
        bottom = figure_legend(fig, handles, labels)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        fit_title(ax, title, 10.0)  # to the width the layout gave the axes
        return
    width = ax.get_position().width * fig.get_figwidth() - 0.6
    fitted = [fit_text(t, width, 7.0, max_lines=2) for t in labels]
    ax.legend(handles, [t for t, _ in fitted], fontsize=min(f for _, f in fitted))
    fig.tight_layout()


@_quiet_glyphs
def radius_figure(cert: Any, ax: Any = None) -> Any:
    """Share of each family's constraints certified on the box about the region's centre,
    against that box's radius (``ConstraintResult.radius``; a certified constraint counts
    at every radius).  Raises ``ValueError`` for a certificate without radii."""
    if not cert.radius_asked():
        raise ValueError("the certificate has no radius: certify with CertifyOptions(radius=True)")
    own = ax is None
    if ax is None:
        _, ax = _plt().subplots(figsize=(7, 4))
    groups: dict[str, list[float | None]] = {}
    for c in cert.constraints:
        groups.setdefault(c.family, []).append(c.radius)
    groups["all"] = [r for fam in list(groups) for r in groups[fam]]
    _radius_curves(ax, groups, "all", f"{cert.case} | {cert.model} | {cert.region.describe()}",
                   own)
    return ax.figure


@_quiet_glyphs
def study_radius_figure(results: Any, case: str | None = None, ax: Any = None) -> Any:
    """For one case of a study (default the first): per model and region, the share of
    the constraints certified on the box about the region's centre against its radius
    (the largest radius over the methods, as in ``combined_frame``; a constraint
    certified by some method counts up to 1).  Models and regions without radii are
    left out; ``ValueError`` when no job of the case computed one."""
    key = _case_keys(results, case)[0]
    df = results.combined_frame()
    df = df[df.case == key] if not df.empty else df
    if df.empty or not df.radius.notna().any():
        raise ValueError(f"case {key!r}: no job computed a radius")
    own = ax is None
    if ax is None:
        _, ax = _plt().subplots(figsize=(7, 4))
    groups: dict[str, list[float | None]] = {}
    for (model, region), g in df.groupby(["model", "region"], sort=False):
        if not g.radius.notna().any():
            continue  # no job of this model and region computed radii: nothing to draw
        groups[f"{model} | {region}"] = [
            1.0 if st == "certified" else None if r != r else float(r)
            for r, st in zip(g.radius, g.status)]
    _radius_curves(ax, groups, None, f"{key}: where the constraints hold (all families; "
                   "certified ones at radius 1)", own)
    return ax.figure


_KIND_COLOR = {"regression": "#d62728", "improvement": "#2ca02c", "unchanged": "#7f7f7f"}


@_quiet_glyphs
def comparison_figure(diff: Any, ax: Any = None) -> Any:
    """Two certificates side by side (:class:`~gridverify.certify.compare.CertificateDiff`):
    per constraint in both, the margin ``upper bound - threshold`` of the old certificate
    (x) against the new one's (y), on symmetric-log axes in each family's unit.  Below
    the diagonal the new bound is tighter; left of x = 0 (below y = 0) the old (new)
    certificate certifies the constraint.  Colors: regressed, improved, same status.
    A constraint without a finite bound in a certificate (``inf``, say a regression from
    certified to no bound) is drawn at that axis' edge with a diamond; the legend counts
    every constraint drawn, those at the edge too."""
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = _plt().subplots(figsize=(6.2, 5.4))
    pts: dict[str, list[tuple[float, float]]] = {k: [] for k in _KIND_COLOR}
    for ch in diff.changes:
        if ch.old is None or ch.new is None or ch.kind not in pts:
            continue
        pts[ch.kind].append((_margin(ch.old), _margin(ch.new)))
    every = [abs(v) for kind in pts.values() for p in kind for v in p if np.isfinite(v)]
    top = int(np.ceil(np.log10(max(every + [1e-6]))))
    small = [v for v in every if v > 0]
    low = max(int(np.floor(np.log10(min(small)))) if small else top - 6, top - 8)
    step = max(1, -(-(top - low) // 4))  # at most about four decades labelled a side
    decades = [10.0 ** k for k in range(top, low - 1, -step)]
    ticks = sorted([-d for d in decades] + [0.0] + decades)
    for axis in ("x", "y"):
        getattr(ax, f"set_{axis}scale")("symlog", linthresh=10.0 ** low)
        getattr(ax, f"set_{axis}ticks")(ticks)
    edge = 1.5 * 10.0 ** top
    lim = (-edge, edge)
    ax.plot(lim, lim, color="black", lw=0.8, ls="--", zorder=1)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.axvline(0.0, color="black", lw=0.6)
    handles = []
    n_edge = 0
    for kind in ("unchanged", "improvement", "regression"):  # regressions drawn on top
        if not pts[kind]:
            continue
        xy = np.asarray(pts[kind], dtype=float)
        out = ~np.isfinite(xy).all(axis=1)
        xy = np.clip(xy, -edge, edge)  # no finite bound: at the edge
        color = _KIND_COLOR[kind]
        if (~out).any():
            ax.scatter(xy[~out, 0], xy[~out, 1], s=14, color=color, zorder=2, alpha=0.8)
        if out.any():
            ax.scatter(xy[out, 0], xy[out, 1], s=42, marker="D", color=color,
                       edgecolors="black", linewidths=0.8, zorder=3, clip_on=False)
            n_edge += int(out.sum())
        handles.append(Line2D([], [], marker="o", linestyle="", color=color, alpha=0.8,
                              label=f"{kind} ({len(xy)})"))
    if n_edge:
        handles.append(Line2D([], [], marker="D", linestyle="", markerfacecolor="white",
                              markeredgecolor="black",
                              label=f"no finite bound, at the axis edge ({n_edge})"))
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    names, differ = _compared(diff.old, diff.new)
    fig = ax.figure
    width = ax.get_position().width * fig.get_figwidth()
    height = ax.get_position().height * fig.get_figheight()
    for which, name, set_label, room in (("old", names[0], ax.set_xlabel, width),
                                         ("new", names[1], ax.set_ylabel, height)):
        shown, fs = fit_text(f"{which}: bound - threshold ({name})", room, 10.0, max_lines=2)
        set_label(shown, fontsize=fs)
    fit_title(ax, f"{diff.old.case}: certificates compared (below the diagonal: tighter)"
              + (f"; they differ in {' and '.join(differ)}" if differ else ""), 10.0,
              max_lines=2)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _compared(old: Any, new: Any) -> tuple[tuple[str, str], list[str]]:
    """How the comparison figure names the two certificates (model: its folder's name, the
    whole path where both names are the same; region and method where they differ), and
    which of region and method differ."""
    a, b = str(old.model), str(new.model)
    same_base = Path(a).name == Path(b).name
    models = (a, b) if same_base and a != b else (Path(a).name, Path(b).name)
    parts: list[tuple[str, str]] = [models]
    differ = []
    for what, pair in (("region", (old.region.describe(), new.region.describe())),
                       ("method", (str(old.method), str(new.method)))):
        if pair[0] != pair[1]:
            parts.append(pair)
            differ.append(what)
    return (" | ".join(p[0] for p in parts), " | ".join(p[1] for p in parts)), differ


def _margin(c: Any) -> float:
    """``upper bound - threshold`` of a constraint result; ``inf`` without a finite
    bound (an infinite or NaN one)."""
    m = float(c.upper_bound - c.threshold)
    return math.inf if math.isnan(m) else m


@_quiet_glyphs
def write_figures(results: Any, out_dir: str | Path, dpi: int = 110) -> list[FigureInfo]:
    """Write every report figure as PNG into ``out_dir``; returns them in report order."""
    from gridverify.study.storage import write_bytes_atomic

    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos: list[FigureInfo] = []
    if not results.done:
        return infos
    df = results.constraints_frame()  # once: which cases have radii to draw
    radius_cases = set(df.case[df.radius.notna()]) if not df.empty else set()
    for key in _case_keys(results, None):
        if not any(r["job"]["case_key"] == key for r in results.done):
            continue
        specs = [
            ("grid", grid_figure, f"{key}: grid colored by certified worst violation",
             "Buses: largest certified upper bound (pu) of the balance, voltage and generator "
             "constraints at the bus; branches: certified max |S|/rate; outline and width: "
             "status (green certified, orange open, red violated)."),
            ("bound_time", bound_time_figure, f"{key}: bound and gap against time",
             "Worst power-balance bound, median gap (each family in its unit) and open "
             "constraints against job time; one point per method; thin grey steps: "
             "branch-and-bound traces, where certificates carry them."),
            ("gaps", gap_figure, f"{key}: gap distribution",
             "Histogram of log10(upper bound - attained) over all constraints, per method "
             "(gaps outside [1e-10, 1e2] are counted in the end bins)."),
        ]
        if key in radius_cases:
            specs.append((
                "radius", study_radius_figure, f"{key}: share certified against the radius",
                "Per model and region, the share of constraints certified on the box about "
                "the region's centre with that fraction of its half-widths (the constraint's "
                "radius; certified ones count up to 1, those without a radius nowhere)."))
        for stem, fn, title, caption in specs:
            fig = fn(results, key)
            data = save_figure(fig, "png", dpi)
            plt.close(fig)
            path = out / f"{stem}_{key}.png"
            write_bytes_atomic(path, data)
            infos.append(FigureInfo(title, path, caption))
    return infos
