"""The content of a study report, independent of its format (Markdown or HTML).

:func:`build_report` turns :class:`~gridverify.study.results.StudyResults` and
the written figures into a :class:`Report`: sections of text, tables (already
formatted strings) and figures.  :mod:`gridverify.report.markdown` and
:mod:`gridverify.report.html` render it.

Titles, table cells, notes and figure captions are plain text, shown as they are.
Paragraphs are inline markup, a small subset of Markdown that both renderers read
with :func:`inline`: code spans (between two runs of as many backticks, as in
CommonMark), emphasis (between two asterisks) and backslash escapes of a
backslash, backtick or asterisk.  User text (case names, model paths, ...) goes
into a paragraph through :func:`literal` or :func:`code`, so that it shows as it is.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from gridverify._html import value_text
from gridverify.report.figures import FigureInfo

__all__ = ["Report", "Section", "Table", "build_report", "code", "fmt", "inline", "literal"]

TOP_CONSTRAINTS = 12
#: the summary's note where no job finished (every one failed or is pending)
NO_FINISHED_JOBS = ("No finished jobs: every job failed or is pending, so there is nothing to "
                    "summarise (see Jobs for the errors).")


@dataclass(frozen=True)
class Table:
    """A formatted table: ``columns`` and ``rows`` of strings, optional ``note`` below it."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Section:
    """A report section: paragraphs (inline markup, see the module docstring), tables and
    figures, at heading ``level``."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[FigureInfo, ...] = ()
    level: int = 2


@dataclass(frozen=True)
class Report:
    """A whole report."""

    title: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


def fmt(v: Any) -> str:
    """Compact number formatting: :func:`gridverify._html.value_text`, as in the notebook
    views (``inf`` where there is no finite bound, ``-`` for missing)."""
    return value_text(v)


def literal(text: Any) -> str:
    """``text`` as inline markup that shows it as it is (backslashes, backticks and
    asterisks escaped with a backslash; line breaks as spaces)."""
    s = " ".join(str(text).splitlines())
    return re.sub(r"([\\`*])", r"\\\1", s)


def code(text: Any) -> str:
    """``text`` as a code span of inline markup (and of Markdown): fenced by one more
    backtick than its longest run of backticks, padded with a space where it starts or
    ends with a backtick (CommonMark's rule)."""
    s = " ".join(str(text).splitlines())
    if not s:
        return ""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[0] == "`" or s[-1] == "`" or (s[0] == s[-1] == " " and s.strip()) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


_INLINE = re.compile(r"\\([\\`*])"                       # an escaped character
                     r"|(?:(?<=\\`)|(?<!`))(`+)(?!`)(.*?[^`])\2(?!`)"  # a code span
                     r"|\*((?:\\.|[^*\\])+)\*", re.S)      # emphasis


def inline(text: str) -> list[tuple[str, str]]:
    """A paragraph's inline markup as ``(kind, text)`` pieces in order, ``kind`` one of
    ``text``, ``code`` and ``em``, each ``text`` unescaped (what is shown)."""
    out: list[tuple[str, str]] = []

    def add(kind: str, t: str) -> None:
        if out and out[-1][0] == kind == "text":
            out[-1] = (kind, out[-1][1] + t)
        elif t:
            out.append((kind, t))

    pos = 0
    for m in _INLINE.finditer(text):
        add("text", text[pos:m.start()])
        pos = m.end()
        if m.group(1) is not None:
            add("text", m.group(1))
        elif m.group(2) is not None:
            body = m.group(3)
            if len(body) > 1 and body[0] == body[-1] == " " and body.strip():
                body = body[1:-1]
            add("code", body)
        else:
            add("em", re.sub(r"\\([\\`*])", r"\1", m.group(4)))
    add("text", text[pos:])
    return out


def _regions_paragraph(results: Any) -> str:
    seen: dict[str, str] = {}
    for r in results.records:
        j = r["job"]
        reg = j["region"]
        params = ", ".join(f"{k}={v}" for k, v in sorted(reg.get("params", {}).items()))
        seen.setdefault(j["region_name"], f"{reg.get('kind', 'explicit')}({params})")
    return "Regions: " + "; ".join(f"{code(k)} = {literal(v)}" for k, v in seen.items()) + "."


def _overview(results: Any, command: str | None) -> Section:
    jobs = results.jobs_frame()
    n = len(jobs)
    done = int((jobs.state == "done").sum()) if n else 0
    failed = int((jobs.state == "failed").sum()) if n else 0
    pending = n - done - failed
    secs = float(jobs.seconds.astype(float).fillna(0).sum()) if n else 0.0
    methods = ", ".join(map(literal, dict.fromkeys(jobs.method))) if n else "-"
    cases = ", ".join(f"{literal(c)} ({literal(cn)})"
                      for c, cn in dict.fromkeys(zip(jobs.case, jobs.case_name)))
    paras = [
        f"Study {code(results.name)} — {n} jobs: {done} done, {failed} failed, {pending} pending; "
        f"total job time {secs:.1f} s (summed over jobs).",
        *([literal(results.description)] if getattr(results, "description", "") else []),
        f"Cases: {cases}. Methods: {methods}.",
        _regions_paragraph(results),
        "A constraint is *certified* when its sound upper bound on the violation is at most "
        "its threshold, *violated* when a load in the region attains more than the threshold "
        "(re-evaluated in float64 on the proxy and the AC equations), otherwise *open*. "
        "Summary and per-constraint tables combine the methods of a case, model and region: "
        "the smallest upper bound and the largest attained violation of each constraint "
        "(both remain valid), with the status decided again.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ]
    if command:
        paras.append(f"Reproduce with: {code(command)}")
    return Section("Overview", tuple(paras))


def _summary(results: Any) -> Section:
    summ = results.summary_frame()
    tables = []
    if not summ.empty:
        cols = ("model", "region", "family", "n", "certified", "violated", "open",
                "open: radius", "worst bound", "worst attained", "gap", "unit", "time (s)")
        for case, grp in summ.groupby("case", sort=False):
            rows = tuple(
                (r.model, r.region, r.family, str(r["count"]), str(r.certified),
                 str(r.violated), str(r.open), _open_radius(r.open, r.open_radius, r.radius_known),
                 fmt(r.max_upper_bound), fmt(r.max_attained), fmt(r.gap), r.unit,
                 fmt(r.seconds))
                for _, r in grp.iterrows()
            )
            tables.append(Table(f"{case}", cols, rows,
                                "open: radius: every open constraint of the family is "
                                "certified on the box about the region's centre with that "
                                "fraction of its half-widths (none: not every one; -: none "
                                "open, or no radius computed); time: total time of the jobs "
                                "of that model and region"))
    paras = ["Worst certified upper bound, worst attained violation and their gap per family "
             "(best of all methods), with status counts."]
    if not tables:
        paras.append(NO_FINISHED_JOBS if not results.done else
                     "No constraint results: the finished jobs certified no constraint.")
    return Section("Summary per case, model and family", tuple(paras), tuple(tables))


def _open_radius(n_open: Any, radius: Any, known: Any) -> str:
    """The family's open radius; ``-`` with no open constraint or no radius computed,
    ``none`` when some open constraint has none."""
    if not n_open or not known:
        return "-"
    from gridverify.certify.options import radius_text

    return "none" if radius != radius else radius_text(float(radius))


def _relus(unstable: Any, total: Any) -> str:
    """``"U of T"``, or ``-`` for a job without the count (failed, or a proxy without relus)."""
    try:
        return f"{int(unstable)} of {int(total)}"
    except (TypeError, ValueError):  # None, or NaN in a column with missing counts
        return "-"


def _jobs(results: Any) -> Section:
    jobs = results.jobs_frame()
    cols = ("case", "model", "region", "constraints", "method", "state", "certified",
            "violated", "open", "unstable relus", "time (s)")
    rows = tuple(
        (r.case, r.model, r.region, r.constraint_set, r.method, r.state, fmt(r.certified),
         fmt(r.violated), fmt(r.open), _relus(r.relus_unstable, r.relus_total),
         fmt(r.seconds))
        for _, r in jobs.iterrows()
    )
    tables = [Table("All jobs", cols, rows, "unstable relus: relus of the proxy whose input "
                    "interval (CROWN) contains zero over the region; bounds through them are "
                    "loose")]
    bad = jobs[jobs.state == "failed"]
    if len(bad):
        tables.append(Table("Failed jobs", ("job", "error"),
                            tuple((r.job_id, r.error) for _, r in bad.iterrows())))
    return Section("Jobs", (), tuple(tables))


def _constraints(results: Any) -> list[Section]:
    comb = results.combined_frame()
    if comb.empty:
        return []
    out = []
    cols = ("family", "component", "status", "upper bound", "attained", "gap", "threshold",
            "unit", "|S|/rate bound", "best method")
    for (case, model, region), grp in comb.groupby(["case", "model", "region"], sort=False):
        margin = grp.upper_bound - grp.threshold
        order = margin.sort_values(ascending=False, kind="stable").index[:TOP_CONSTRAINTS]
        rows = tuple(
            (r.family, str(int(r.component)), r.status, fmt(r.upper_bound), fmt(r.attained),
             fmt(r.gap), fmt(r.threshold), r.unit, fmt(r.loading_upper_bound), r.best_method)
            for _, r in grp.loc[order].iterrows()
        )
        counts = grp.status.value_counts()
        note = (f"{len(grp)} constraints: {int(counts.get('certified', 0))} certified, "
                f"{int(counts.get('violated', 0))} violated, {int(counts.get('open', 0))} open. "
                f"The {len(rows)} with the largest bound above threshold are shown; every "
                "constraint is in constraints.csv.")
        out.append(Table(f"{case} | {model} | {region}", cols, rows, note))
    return [Section("Worst constraints", (
        "Per case, model and region, the constraints whose certified upper bound exceeds "
        "the threshold by the most (components: bus id, 1-based branch or generator row).",
    ), tuple(out))]


def build_report(results: Any, figures: list[FigureInfo], command: str | None = None) -> Report:
    """The report of a study (``command``: how it was made, printed in the overview)."""
    sections = [_overview(results, command), _summary(results), _jobs(results)]
    sections += _constraints(results)
    if figures:
        sections.append(Section("Figures", (), (), tuple(figures)))
    return Report(f"gridverify study report: {results.name}", tuple(sections))
