"""Study jobs: one certify run of a (case, model, region, constraint set, method).

:func:`expand_jobs` turns a :class:`~gridverify.study.spec.StudySpec` into jobs;
:func:`run_job` runs one job in the current process and returns a JSON-ready
record (never raises for a failing job: the error is recorded instead).  Jobs
carry everything they need as plain data (absolute paths, the region box, the
selection and threshold tables), so they can run in another process or on
another machine with the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gridverify.errors import StudyError
from gridverify.study.spec import StudySpec

__all__ = ["DONE", "FAILED", "HOW_NOT_WHAT", "Job", "checkpoint_path", "comparable_record",
           "expand_jobs", "job_id", "run_job"]

DONE = "done"
FAILED = "failed"
RECORD_FORMAT = "gridverify-study-job"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, eq=True)
class Job:
    """One certify run, as plain data (see the module docstring)."""

    id: str
    case_key: str
    case: str
    case_name: str
    model_label: str
    model: str
    region_name: str
    region: dict[str, Any]
    constraint_set: str
    selection: dict[str, Any]
    method: str
    options: dict[str, Any]
    thresholds: dict[str, Any]
    case_hash: str = ""  # content hash of the compiled case when the study was checked
    model_digest: str = ""  # sha256 of the model's files when the study was checked
    layout: dict[str, Any] | None = None  # the model's layout (None: the convention)

    __hash__ = None  # type: ignore[assignment]  # dict fields: compare, do not hash

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without ``layout`` when it is the convention's, so that
        the jobs of studies stored before layouts existed keep their digest)."""
        d = asdict(self)
        if d["layout"] is None:
            del d["layout"]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Job:
        """Inverse of :meth:`to_dict`; :class:`~gridverify.errors.StudyError` naming the
        field when ``d`` is not a job's dict (a field missing or of the wrong type)."""
        if not isinstance(d, dict):
            raise StudyError(f"a job: expected an object, got {type(d).__name__}")
        for k in cls.__dataclass_fields__:
            if k not in d:
                if k in _REQUIRED:
                    raise StudyError(f"a job: no {k!r}")
                continue
            kinds = _FIELD_TYPES[k]
            if not isinstance(d[k], kinds):
                raise StudyError(f"a job: {k!r} is a {type(d[k]).__name__}, expected a "
                                 f"{' or '.join(t.__name__ for t in kinds if t is not _NONE)}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def digest(self) -> str:
        """sha256 of the job's canonical JSON (a changed job is re-run on resume).

        It covers the case and model content, so re-trained models run again.  It
        does not cover how the job is run, only what it computes: the options of
        :data:`HOW_NOT_WHAT` (``threads``) are hashed as their defaults whatever
        they are (as the memory cap, which is not in the job at all), so a study
        run again with other threads skips its finished jobs, and the hashes of
        jobs stored before stay.  Likewise the constraint selection is hashed in
        canonical order (families as in :data:`~gridverify.spec.constraints.FAMILIES`,
        component ids ascending) and the thresholds table only for the families the
        job selects (and ``default``): reordering a set, or changing another
        family's threshold, does not change what the job computes.
        """
        d = self.to_dict()
        opts = dict(d["options"])
        for k, default in HOW_NOT_WHAT.items():
            if k in opts:
                opts[k] = default
        d["options"] = opts
        d["selection"], d["thresholds"] = _canonical(d["selection"], d["thresholds"])
        text = json.dumps(d, sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        """``case / model / region / set / method``."""
        return (f"{self.case_key} / {self.model_label} / {self.region_name} / "
                f"{self.constraint_set} / {self.method}")


def _canonical(selection: dict[str, Any],
               thresholds: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job's selection in canonical order and the thresholds that apply to it."""
    from gridverify.spec.constraints import FAMILIES

    fams = list(selection.get("families", []))
    order = {f: i for i, f in enumerate(FAMILIES)}
    fams = sorted(fams, key=lambda f: (order.get(f, len(order)), str(f)))
    comps = {f: sorted(ids) for f, ids in dict(selection.get("components", {})).items()}
    sel = {**selection, "families": fams, "components": comps}
    keep = set(fams) | {"default"}
    return sel, {k: v for k, v in thresholds.items() if k in keep}


#: study options that say how a job runs, not what it computes, and the value each is
#: hashed as (:attr:`Job.digest`)
HOW_NOT_WHAT: dict[str, Any] = {"threads": 1}

_NONE = type(None)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **{k: (str,) for k in ("id", "case_key", "case", "case_name", "model_label", "model",
                           "region_name", "constraint_set", "method", "case_hash",
                           "model_digest")},
    **{k: (dict,) for k in ("region", "selection", "options", "thresholds")},
    "layout": (dict, _NONE),
}
_REQUIRED = tuple(k for k in _FIELD_TYPES if k not in ("case_hash", "model_digest", "layout"))


#: the longest job id: its files (``ID.json``, ``ID.h5``) and their temporary names
#: (``.ID.json.HOST-PID.XXXXXXXX.tmp``, the tag left out where it does not fit)
#: keep within the 255 bytes of a file name
MAX_ID_BYTES = 200


def job_id(case_key: str, model: str, region: str, cset: str, method: str) -> str:
    """File-safe job id (characters other than letters, digits, ``_ . -`` become ``-``;
    the parts are joined by ``__``).  Two jobs may get the same id: :func:`expand_jobs`
    refuses a study where they do."""
    return "__".join(_SAFE.sub("-", p) for p in (case_key, model, region, cset, method))


def _check_unique_ids(spec: StudySpec, jobs: list[Job]) -> None:
    """StudyError naming two jobs of ``spec`` that got the same id (their files would
    overwrite each other) or an id too long for a file name; the one check of the final
    ids."""
    seen: dict[str, Job] = {}
    for j in jobs:
        if len(j.id.encode("utf-8")) > MAX_ID_BYTES:
            raise StudyError(
                f"{spec.source}: job '{j.describe()}' gets an id of {len(j.id.encode('utf-8'))} "
                f"bytes, longer than the {MAX_ID_BYTES} its file names allow; shorten its "
                "case key, model folder name, region or constraint set name")
        other = seen.setdefault(j.id, j)
        if other is not j:
            raise StudyError(
                f"{spec.source}: jobs '{other.describe()}' and '{j.describe()}' get the same "
                f"job id {j.id!r} (ids keep letters, digits, _ . - of the case key, model "
                "folder name, region, constraint set and method, and join them with '__'); "
                "rename a case, model folder, region or constraint set")


def expand_jobs(spec: StudySpec) -> list[Job]:
    """Every job of a checked study, in a stable order (case, model, region, set, method).

    Raises :class:`~gridverify.errors.StudyError` naming two jobs that would get the
    same id (e.g. models ``m a`` and ``m-a``, or case ``a__b`` with model ``c`` and
    case ``a`` with model ``b__c``).
    """
    if not spec.region_boxes:
        raise ValueError("expand_jobs needs a study parsed with check=True")
    jobs = []
    for e in spec.cases:
        for (label, model), digest in zip(e.models, e.model_digests):
            for r in e.regions:
                for s in e.constraint_sets:
                    for m in spec.methods:
                        jobs.append(Job(
                            id=job_id(e.key, label, r, s, m), case_key=e.key, case=e.case,
                            case_name=e.case_name, model_label=label, model=model,
                            region_name=r, region=spec.region_box(e.key, r), constraint_set=s,
                            selection=spec.constraint_set(s), method=m,
                            options=_options_for(spec, m), thresholds=dict(spec.thresholds),
                            case_hash=e.case_hash, model_digest=digest, layout=e.layout,
                        ))
    _check_unique_ids(spec, jobs)
    return jobs


def _options_for(spec: StudySpec, method: str) -> dict[str, Any]:
    """The study options a job of ``method`` uses (bab_timeout only for bab jobs)."""
    o = spec.options.to_dict()
    if method != "bab":
        o.pop("bab_timeout", None)
    return o


def checkpoint_path(job: Job, checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where a branch-and-bound job saves its progress: one file per job and job hash."""
    return Path(checkpoint_dir) / f"{job.id}-{job.digest[:16]}.npz"


def run_job(job: Job | dict[str, Any], memory_cap_mb: float | None = None,
            checkpoint_dir: str | None = None) -> dict[str, Any]:
    """Run one job here; the record has ``state`` ``done`` (with ``certificate``) or ``failed``.

    ``memory_cap_mb`` caps the job's memory (certify's ``memory_cap_mb``; ``None``:
    its default).  It is how the job is run, not what it is: it is not part of the
    job's hash, and the record keeps it as ``memory_cap_mb``.
    ``checkpoint_dir``: a ``bab`` job saves its branch-and-bound progress there
    (:func:`checkpoint_path`) and a job run again after an interruption resumes
    from it (certify's ``checkpoint``); the file goes once the job is done.

    The record holds the certificate's full JSON form (worst loads included);
    :class:`~gridverify.study.storage.StudyStore` splits it into the job's JSON
    and HDF5 files.
    """
    if isinstance(job, dict):
        job = Job.from_dict(job)
    try:
        warm_up()  # imports are not part of the job's time
    except Exception:  # noqa: BLE001, S110 - the job itself reports the import error
        pass
    t0 = time.perf_counter()
    rec: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "version": 1,
        "job_id": job.id,
        "job_hash": job.digest,
        "job": job.to_dict(),
        "host": platform.node(),
        "pid": os.getpid(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "memory_cap_mb": memory_cap_mb,
    }
    ck = (checkpoint_path(job, checkpoint_dir)
          if checkpoint_dir is not None and job.method == "bab" else None)
    try:
        cert = _certify(job, memory_cap_mb, ck)
        if ck is not None:
            ck.unlink(missing_ok=True)
        rec["state"] = DONE
        rec["certificate"] = cert.to_dict()
        rec["exit_status"] = cert.exit_status
        rec["error"] = None
    except Exception as exc:  # noqa: BLE001 - a failing job is recorded, the study goes on
        rec["state"] = FAILED
        rec["certificate"] = None
        rec["exit_status"] = None
        rec["error"] = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(limit=20),
        }
    rec["seconds"] = time.perf_counter() - t0
    return rec


def warm_up() -> None:
    """Import what jobs need (a worker's first job then times only its own work)."""
    import torch  # noqa: F401

    import gridverify.certify  # noqa: F401
    import gridverify.grid  # noqa: F401
    import gridverify.proxy.load  # noqa: F401


def _certify(job: Job, memory_cap_mb: float | None, checkpoint: Path | None = None) -> Any:
    import warnings

    import torch

    from gridverify.certify import certify
    from gridverify.grid import load_compiled
    from gridverify.proxy.layout import ProxyLayout
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import ConstraintSelection
    from gridverify.spec.region import Region
    from gridverify.spec.thresholds import thresholds_from_mapping
    from gridverify.study.spec import StudyOptions, path_digest

    so = StudyOptions.from_dict(job.options)
    torch.set_num_threads(so.threads)
    if job.model_digest and path_digest(job.model) != job.model_digest:
        raise StudyError(f"model {job.model}: its files changed after the study was checked "
                         "(run the study again)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_compiled(job.case, emit_warnings=False)
        if job.case_hash and case.content_hash != job.case_hash:
            raise StudyError(f"case {job.case}: its content changed after the study was checked")
        layout = None if job.layout is None else ProxyLayout.from_dict(job.layout)
        proxy = load_proxy(job.model, case=case, layout=layout)
        reg = job.region
        region = Region.from_dict(reg)
        sel = ConstraintSelection(
            tuple(job.selection["families"]),
            tuple((f, tuple(v)) for f, v in job.selection["components"].items()),
        )
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        return certify(case, proxy, region, constraints=sel, method=job.method,
                       options=so.certify.with_memory_cap(memory_cap_mb),
                       thresholds=thresholds_from_mapping(job.thresholds),
                       checkpoint=checkpoint)


# fields that differ between two runs of the same job (timings, hosts, dates)
_VOLATILE_RECORD = ("seconds", "host", "pid", "started_utc", "memory_cap_mb", "run_id",
                    "attempts", "finished_utc", "executor")


def _without_memory_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Certify options without the memory cap and the domain store size derived from it
    (how much memory a run had, which depends on the machine, not what it computed)."""
    out = {k: v for k, v in options.items() if k != "memory_cap_mb"}
    if isinstance(out.get("bab"), dict):
        out["bab"] = {k: v for k, v in out["bab"].items() if k != "memory_mb"}
    return out


def comparable_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without timings, hosts, dates and memory settings: equal for equal results."""
    out = {k: v for k, v in rec.items() if k not in _VOLATILE_RECORD}
    cert = out.get("certificate")
    if cert is not None:
        cert = dict(cert)
        cert.pop("seconds", None)
        prov = dict(cert.get("provenance", {}))
        prov.pop("created_utc", None)
        prov.pop("stage_seconds", None)
        if isinstance(prov.get("options"), dict):
            prov["options"] = _without_memory_settings(prov["options"])
        cert["provenance"] = prov
        cert["constraints"] = [
            {k: v for k, v in c.items() if k != "seconds"} for c in cert["constraints"]
        ]
        out["certificate"] = cert
    err = out.get("error")
    if err is not None:
        out["error"] = {k: v for k, v in err.items() if k != "traceback"}
    return out

