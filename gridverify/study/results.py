"""Stored study results: load a study output folder, tabulate it, combine methods.

:func:`load_results` reads ``reports/NAME`` (see :mod:`gridverify.study.storage`)
into :class:`StudyResults`, which turns into pandas DataFrames (jobs, families,
constraints, and the best-of-methods summary), shows as an HTML table in
Jupyter and plots with one call.

Combining methods is sound: for one case, model, region and constraint, every
method's upper bound holds, so the smallest of them holds; every attained value
is a real point of the region, so the largest of them is attained.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridverify.certify.certificate import UNDEFINED, final_status, null_attained
from gridverify.errors import StudyError
from gridverify.study.jobs import DONE, FAILED
from gridverify.study.storage import DAMAGED, PENDING, StudyStore

__all__ = ["StudyResults", "UnknownJobError", "load_results"]

_KEYS = ("case", "model", "region")
_JOB_COLUMNS = ("job_id", "case", "case_name", "model", "region", "constraint_set", "method",
                "state", "certified", "violated", "open", "total", "relus_unstable",
                "relus_total", "seconds", "error")


_S, _I, _F, _B = "object", "int64", "float64", "bool"
_ROW_KEYS = (("job_id", _S), ("case", _S), ("model", _S), ("region", _S),
             ("constraint_set", _S), ("method", _S))
# the columns (and their dtypes) of each frame, kept by frames without rows too
_CONSTRAINT_COLUMNS = dict((*_ROW_KEYS, ("family", _S), ("component", _I), ("index", _I),
                            ("upper_bound", _F), ("attained", _F), ("gap", _F),
                            ("threshold", _F), ("status", _S), ("unit", _S), ("seconds", _F),
                            ("rate", _F), ("loading_upper_bound", _F),
                            ("loading_attained", _F), ("radius", _F), ("reason", _S)))
_FAMILY_COLUMNS = dict((*_ROW_KEYS, ("family", _S), ("count", _I), ("certified", _I),
                        ("violated", _I), ("open", _I), ("max_upper_bound", _F),
                        ("max_attained", _F), ("gap", _F), ("unit", _S), ("radius", _F),
                        ("seconds", _F)))
_COMBINED_COLUMNS = {"case": _S, "model": _S, "region": _S, "family": _S, "component": _I,
                     "upper_bound": _F, "attained": _F, "threshold": _F, "unit": _S,
                     "index": _I, "rate": _F, "methods": _S, "radius": _F,
                     "best_method": _S, "gap": _F, "status": _S,
                     "loading_upper_bound": _F, "loading_attained": _F}
_SUMMARY_COLUMNS = {"case": _S, "model": _S, "region": _S, "family": _S, "count": _I,
                    "certified": _I, "violated": _I, "open": _I, "max_upper_bound": _F,
                    "max_attained": _F, "gap": _F, "unit": _S, "seconds": _F,
                    "open_radius": _F, "radius_known": _B}


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> Any:
    """A DataFrame of ``rows`` with ``columns`` (in that order); without rows, an empty
    frame that still has them, with their dtypes (a study whose jobs are all pending)."""
    import pandas as pd

    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return pd.DataFrame(rows, columns=list(columns))


def _f(v: Any, missing: float) -> float:
    return missing if v is None else float(v)


class UnknownJobError(StudyError, KeyError):
    """A job id that names no finished job of the study (a ``KeyError`` too, so code
    that catches ``KeyError`` keeps working); the message lists the valid ids."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _id_list(ids: list[str], most: int = 10) -> str:
    """``a, b, c`` (the first ``most`` ids, then how many more)."""
    if not ids:
        return "none"
    more = f" ... ({len(ids) - most} more)" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more


@dataclass(frozen=True)
class StudyResults:
    """Every stored job record of a study folder (missing jobs are ``pending``)."""

    root: Path
    name: str
    records: tuple[dict[str, Any], ...]
    #: the study file's ``[study] description`` ("" when none)
    description: str = ""

    @property
    def done(self) -> list[dict[str, Any]]:
        """Records of finished jobs."""
        return [r for r in self.records if r.get("state") == DONE]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of failed jobs."""
        return [r for r in self.records if r.get("state") == FAILED]

    def certificate(self, job_id: str, worst_loads: bool = True) -> Any:
        """The :class:`~gridverify.certify.Certificate` of a finished job.

        ``worst_loads``: attach every constraint's worst load from the job's HDF5
        file (the JSON holds only the witnesses of violated constraints).
        :class:`UnknownJobError` (a ``KeyError``) when ``job_id`` names no finished
        job; its message lists the finished jobs.
        """
        import dataclasses

        import numpy as np

        from gridverify.certify import Certificate

        for r in self.done:
            if r["job_id"] != job_id:
                continue
            cert = Certificate.from_dict(r["certificate"])
            store = StudyStore(self.root)
            if not worst_loads or not store.h5_path(job_id).exists():
                return cert
            wl = store.read_bounds(job_id)["worst_load"]
            cons = tuple(
                dataclasses.replace(c, worst_load=w.copy()) if np.isfinite(w).all() else c
                for c, w in zip(cert.constraints, wl)
            )
            return dataclasses.replace(cert, constraints=cons)
        done = [r["job_id"] for r in self.done]
        state = next((r.get("state", "pending") for r in self.records
                      if r["job_id"] == job_id), None)
        what = ("is not a job of the study" if state is None
                else f"is {state}, not done: it has no certificate")
        raise UnknownJobError(f"study {self.name}: job {job_id!r} {what} (finished jobs: "
                              f"{_id_list(done)})")

    def __repr__(self) -> str:
        n_done, n_failed = len(self.done), len(self.failed)
        totals = {k: 0 for k in ("certified", "violated", "open")}
        seconds = 0.0
        for r in self.done:
            summary = (r.get("certificate") or {}).get("summary") or {}
            for k in totals:
                totals[k] += int(summary.get(k) or 0)
            seconds += float(r.get("seconds") or 0.0)
        return (f"StudyResults(name={self.name!r}, root={str(self.root)!r}, "
                f"jobs={len(self.records)} ({n_done} done, {n_failed} failed, "
                f"{len(self.records) - n_done - n_failed} pending), "
                f"certified={totals['certified']}, violated={totals['violated']}, "
                f"open={totals['open']}, seconds={seconds:.1f})")

    def jobs_frame(self) -> Any:
        """One row per job: keys, state, status counts, the proxy's unstable relus, seconds, error.

        ``relus_unstable`` / ``relus_total``: the certificate's
        ``provenance.proxy_relus`` (``None`` for proxies without relus).
        """
        import pandas as pd

        rows = []
        for r in self.records:
            j = r["job"]
            cert = r.get("certificate") or {}
            s = cert.get("summary", {})
            relus = cert.get("provenance", {}).get("proxy_relus") or {}
            err = r.get("error") or {}
            rows.append({
                "job_id": r["job_id"], "case": j["case_key"], "case_name": j["case_name"],
                "model": j["model_label"], "region": j["region_name"],
                "constraint_set": j["constraint_set"], "method": j["method"],
                "state": r.get("state", "pending"), "certified": s.get("certified"),
                "violated": s.get("violated"), "open": s.get("open"), "total": s.get("total"),
                "relus_unstable": relus.get("unstable"), "relus_total": relus.get("total"),
                "seconds": r.get("seconds"),
                "error": f"{err.get('type')}: {err.get('message')}" if err else "",
            })
        return pd.DataFrame(rows, columns=list(_JOB_COLUMNS))  # the columns even without jobs

    def constraints_frame(self) -> Any:
        """One row per job and constraint: bound, attained, gap, threshold, status, loading,
        radius (``CertifyOptions.radius``; NaN where none; ``rate`` NaN for constraints
        other than thermal ones).  Without finished jobs (or
        constraints), an empty frame with the same columns, as for every frame."""
        rows = []
        for r in self.done:
            j = r["job"]
            for c in r["certificate"]["constraints"]:
                ub = _f(c.get("upper_bound"), math.inf)
                att = _f(c.get("attained"), null_attained(c))
                rows.append({
                    "job_id": r["job_id"], "case": j["case_key"], "model": j["model_label"],
                    "region": j["region_name"], "constraint_set": j["constraint_set"],
                    "method": j["method"], "family": c["family"],
                    "component": int(c["component"]), "index": int(c.get("index", -1)),
                    "upper_bound": ub, "attained": att, "gap": ub - att,
                    "threshold": float(c["threshold"]), "status": c["status"],
                    "unit": c.get("unit", ""), "seconds": float(c.get("seconds", 0.0)),
                    "rate": _f(c.get("rate"), math.nan),
                    "loading_upper_bound": _f(c.get("loading_upper_bound"), math.nan),
                    "loading_attained": _f(c.get("loading_attained"), math.nan),
                    "radius": _f(c.get("radius"), math.nan),
                    "reason": str(c.get("reason") or ""),
                })
        return _frame(rows, _CONSTRAINT_COLUMNS)

    def families_frame(self) -> Any:
        """One row per job and family (the certificate's family summary and the job time)."""
        rows = []
        for r in self.done:
            j = r["job"]
            for fam, d in r["certificate"]["families"].items():
                rows.append({
                    "job_id": r["job_id"], "case": j["case_key"], "model": j["model_label"],
                    "region": j["region_name"], "constraint_set": j["constraint_set"],
                    "method": j["method"], "family": fam, "count": d["count"],
                    "certified": d["certified"], "violated": d["violated"], "open": d["open"],
                    "max_upper_bound": _f(d.get("max_upper_bound"), math.inf),
                    # null with violations: an overflow found (+inf), else none found
                    "max_attained": _f(d.get("max_attained"),
                                       math.inf if d.get("violated") else -math.inf),
                    "gap": _f(d.get("gap"), math.inf), "unit": d["unit"],
                    "radius": _f(d.get("radius"), math.nan), "seconds": r.get("seconds"),
                })
        return _frame(rows, _FAMILY_COLUMNS)

    def combined_frame(self) -> Any:
        """Per case, model, region and constraint: the best of all methods.

        ``upper_bound`` is the smallest bound, ``attained`` the largest attained
        value over the jobs; ``status`` is decided again from them; ``methods``
        lists the methods that contributed, ``best_method`` the one whose bound
        is the smallest; ``radius`` is the largest over the jobs (each holds).  A
        constraint whose proxy some job found undefined (NaN or infinite) is never
        certified.
        """
        import pandas as pd

        df = self.constraints_frame()
        if df.empty:
            return _frame([], _COMBINED_COLUMNS)
        keys = list(_KEYS) + ["family", "component"]
        idx_ub = df.groupby(keys, sort=False)["upper_bound"].idxmin()
        g = df.groupby(keys, sort=False)
        out = pd.DataFrame({
            "upper_bound": g["upper_bound"].min(),
            "attained": g["attained"].max(),
            "threshold": g["threshold"].first(),
            "unit": g["unit"].first(),
            "index": g["index"].first(),
            "rate": g["rate"].first(),
            "methods": g["method"].agg(lambda s: ",".join(sorted(set(s)))),
            "radius": g["radius"].max(),  # every job's radius holds: the largest does
            # the proxy is NaN at some load (any job saw it): never certified
            "undefined": g["reason"].agg(lambda s: bool(s.str.startswith(UNDEFINED).any())),
        })
        out["best_method"] = df.loc[idx_ub.values, "method"].values
        out = out.reset_index()
        out["gap"] = out["upper_bound"] - out["attained"]
        out["status"] = [final_status(u, a, t, n)[0] for u, a, t, n in
                         zip(out["upper_bound"], out["attained"], out["threshold"],
                             out["undefined"])]
        out["loading_upper_bound"] = [_loading(u, r) for u, r in zip(out["upper_bound"],
                                                                     out["rate"])]
        out["loading_attained"] = [_loading(a, r) for a, r in zip(out["attained"], out["rate"])]
        return out[list(_COMBINED_COLUMNS)]

    def summary_frame(self) -> Any:
        """Per case, model, region and family: counts and worst values of the combined results.

        ``seconds`` is the total time of the jobs of that case, model and region;
        ``open_radius`` the smallest radius of the family's open constraints (every
        one of them is certified on the box about the region's centre with that
        fraction of its half-widths; NaN when none is open or one has no radius);
        ``radius_known`` whether the family has any radius (certificates made
        without ``CertifyOptions.radius`` have none).
        """
        comb = self.combined_frame()
        if comb.empty:
            return _frame([], _SUMMARY_COLUMNS)
        jobs = self.jobs_frame()
        secs = jobs[jobs.state == DONE].groupby(list(_KEYS))["seconds"].sum()
        rows = []
        for key, grp in comb.groupby(list(_KEYS) + ["family"], sort=False):
            case, model, region, fam = key
            open_r = [float(v) for v in grp.radius[grp.status == "open"]]
            rows.append({
                "case": case, "model": model, "region": region, "family": fam,
                "count": len(grp), "certified": int((grp.status == "certified").sum()),
                "violated": int((grp.status == "violated").sum()),
                "open": int((grp.status == "open").sum()),
                "max_upper_bound": float(grp.upper_bound.max()),
                "max_attained": float(grp.attained.max()),
                "gap": float(grp.upper_bound.max() - grp.attained.max()),
                "unit": grp.unit.iloc[0],
                "seconds": float(secs.get((case, model, region), math.nan)),
                "open_radius": min(open_r) if open_r and all(map(math.isfinite, open_r))
                else math.nan,
                "radius_known": bool(grp.radius.notna().any()),
            })
        return _frame(rows, _SUMMARY_COLUMNS)

    def to_dataframe(self, level: str = "summary") -> Any:
        """``summary``, ``jobs``, ``families``, ``constraints`` or ``combined`` as a DataFrame."""
        table = {"summary": self.summary_frame, "jobs": self.jobs_frame,
                 "families": self.families_frame, "constraints": self.constraints_frame,
                 "combined": self.combined_frame}
        if level not in table:
            raise ValueError(f"level: one of {', '.join(table)}, got {level!r}")
        return table[level]()

    def _repr_html_(self) -> str:
        jobs = self.jobs_frame()
        head = (f"<p><b>study {self.name}</b>: {len(self.done)} done, {len(self.failed)} failed, "
                f"{len(self.records) - len(self.done) - len(self.failed)} pending "
                f"of {len(self.records)} jobs</p>")
        cols = ["case", "model", "region", "constraint_set", "method", "state", "certified",
                "violated", "open", "seconds"]
        return head + jobs[cols].to_html(index=False, float_format=lambda v: f"{v:.3g}")

    def plot(self, kind: str = "grid", **kwargs: Any) -> Any:
        """One-call figures: ``grid`` (topology colored by worst violation), ``gaps``, ``time``,
        ``radius`` (share certified against the radius of the box about the centre).

        Returns the matplotlib Figure (keyword arguments go to the figure function;
        the figures are the report's, registered by :mod:`gridverify.display`).
        """
        from gridverify._html import plotter

        return plotter("study")(self, kind, **kwargs)


def _loading(v: float, rate: Any) -> float:
    """Apparent power over rating from a thermal violation ``|S|^2 - rate^2`` (NaN if unrated)."""
    if rate is None or not isinstance(rate, (int, float)) or not rate > 0:
        return math.nan
    if not math.isfinite(v):
        return math.inf if v > 0 else math.nan
    return math.sqrt(max(v + rate * rate, 0.0)) / rate


def load_results(root: str | os.PathLike[str]) -> StudyResults:
    """Read a study output folder (jobs without a record are ``pending``).

    Each job's state is :meth:`StudyStore.job_record`'s, as for ``study run``.
    :class:`~gridverify.errors.StudyError` (one line) naming the damaged files when
    ``study.json`` or some job's files are damaged (``study run`` runs those jobs
    again).
    """
    store = StudyStore(root)
    records = []
    damaged = []
    for entry in store.job_list():
        jr = store.job_record(entry["id"], entry["hash"])
        if jr.state == DAMAGED:
            damaged.append(jr.problem)
            continue
        rec = dict(jr.record) if jr.record is not None else {
            "job_id": entry["id"], "state": PENDING, "certificate": None, "error": None}
        rec["job"] = entry["job"]  # the job as the study records it (of the same hash)
        records.append(rec)
    if damaged:
        more = f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else ""
        raise StudyError(f"{store.root}: {len(damaged)} damaged job file(s): "
                         + "; ".join(damaged[:3]) + more
                         + "; `gridverify study run` runs those jobs again")
    return StudyResults(Path(root), store.study_name(), tuple(records),
                        store.study_description())
