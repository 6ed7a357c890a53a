"""Study output folder: one JSON and one HDF5 file per job, written atomically.

Layout of ``reports/NAME``::

    study.toml            the study file as run
    study.json            the jobs of the study (ids, hashes)
    jobs/ID.json          the job's record: state, error, certificate (without worst_load)
    jobs/ID.h5            the job's bounds: per-constraint arrays and worst loads
    events.jsonl          one line per finished job, run_start and run_end per run (append-only)
    study.lock            while a ``study run`` writes here: its pid and host
                          (:mod:`gridverify.study.lock`)

:meth:`StudyStore.job_record` is the one answer to "is this job finished, and
is its record readable", for ``study run`` (which skips finished jobs) and the
report alike.  A job is

* ``done`` (finished) when ``jobs/ID.json`` is a job record of state ``done``
  whose job hash equals the job's, whose certificate reads back
  (:meth:`~gridverify.certify.certificate.Certificate.from_dict`) and whose
  ``jobs/ID.h5`` exists;
* ``failed`` when the record is a readable ``failed`` one of the job's hash;
* ``pending`` when there is no record, or one of another job hash (the job
  changed since; it runs again);
* ``damaged`` otherwise: a record that is not UTF-8 JSON (truncated, empty,
  overwritten), not a job record, whose certificate does not read back, or a
  ``done`` one whose HDF5 file is gone or does not open as the job's bounds.
  ``study run`` runs it again (with a warning naming the file); the report
  refuses to show it (naming the file).

The HDF5 file is written first, the JSON last, each through a temporary file
and ``os.replace``, so a study killed at any point leaves either a complete
job or none.

The JSON keeps the certificate's contract form without the ``worst_load`` key
(the ``witness`` of a violated constraint stays); every constraint's worst load
is in the HDF5 file (dataset ``worst_load``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import GridverifyError, StudyError
from gridverify.fileio import atomic_path, atomic_write_bytes, atomic_write_json, json_loads
from gridverify.study.jobs import DONE, FAILED, RECORD_FORMAT, Job

__all__ = ["DAMAGED", "PENDING", "JobRecord", "StudyStore", "write_bytes_atomic",
           "write_json_atomic"]

PENDING = "pending"
DAMAGED = "damaged"
#: how a folder whose study.json is damaged gets its report again
_REMOVE_HINT = ("if the folder holds that study's results, remove study.json and run "
                "'gridverify study run' again: its finished jobs are kept")
_STUDY_FORMAT = "gridverify-study"
_FILE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")  # a job id names files in jobs/

_FILE_MODE = 0o644  # readable reports (mkstemp creates 0600)
_STATUS_CODE = {"certified": 0, "violated": 1, "open": 3}


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    atomic_write_bytes(path, data, mode=_FILE_MODE)


def write_json_atomic(path: Path, obj: Any, indent: int | None = None) -> None:
    """Strict JSON (no NaN) written atomically."""
    atomic_write_json(path, obj, indent=indent, mode=_FILE_MODE)


def _write_h5_atomic(path: Path, cert: dict[str, Any], job: dict[str, Any],
                     job_hash: str) -> None:
    import h5py

    from gridverify.certify.certificate import null_attained

    with atomic_path(path, mode=_FILE_MODE) as tmp:
        cons = cert["constraints"]
        n_in = len(cert["region"]["lower"])

        def arr(key: str, missing: float) -> np.ndarray:
            return np.array([missing if c.get(key) is None else c[key] for c in cons],
                            dtype=np.float64)

        wl = np.full((len(cons), n_in), np.nan)
        for i, c in enumerate(cons):
            if c.get("worst_load") is not None:
                wl[i] = c["worst_load"]
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = _H5_FORMAT
            f.attrs["version"] = 1
            f.attrs["job_id"] = job["id"]
            f.attrs["job_hash"] = job_hash  # of the run that wrote it (its record's)
            f.attrs["case"] = cert["case"]
            f.attrs["model"] = cert["model"]
            f.attrs["method"] = cert["method"]
            str_t = h5py.string_dtype()
            f.create_dataset("family", data=np.array([c["family"] for c in cons], dtype=object),
                             dtype=str_t)
            f.create_dataset("component", data=np.array([c["component"] for c in cons],
                                                        dtype=np.int64))
            f.create_dataset("upper_bound", data=arr("upper_bound", np.inf))
            f.create_dataset("attained", data=np.array(
                [null_attained(c) if c.get("attained") is None else c["attained"]
                 for c in cons], dtype=np.float64))
            f.create_dataset("threshold", data=arr("threshold", np.nan))
            f.create_dataset("status", data=np.array([_STATUS_CODE[c["status"]] for c in cons],
                                                     dtype=np.int8))
            f["status"].attrs["codes"] = "0 certified, 1 violated, 3 open"
            f.create_dataset("worst_load", data=wl, compression="gzip", shuffle=True)
            f.create_dataset("region_lower", data=np.asarray(cert["region"]["lower"]))
            f.create_dataset("region_upper", data=np.asarray(cert["region"]["upper"]))


_H5_FORMAT = "gridverify-study-bounds"


#: the arrays of a bounds file: name -> shape, ``n`` one row per constraint and ``i``
#: one entry per load of the region (``_write_h5_atomic`` writes them)
_H5_ARRAYS = {"family": ("n",), "component": ("n",), "upper_bound": ("n",),
              "attained": ("n",), "threshold": ("n",), "status": ("n",),
              "worst_load": ("n", "i"), "region_lower": ("i",), "region_upper": ("i",)}


def _h5_problem(path: Path, job_id: str, n_constraints: int, n_inputs: int,
                job_hash: str) -> str:
    """What is wrong with a done job's HDF5 file ("" when it opens as the bounds file
    of ``job_id`` written by the run of ``job_hash``, its record's, with one row per
    constraint of the record's ``n_constraints`` and one column per load of its
    region's ``n_inputs`` in each of its arrays: a truncated or overwritten file, a
    record edited apart from it, or the file of another run of the job (a run killed
    between writing the two, the study's file changed back) does not).  Files of
    studies made before the hash was recorded have none and pass that check."""
    import h5py

    sizes = {"n": n_constraints, "i": n_inputs}
    try:
        with h5py.File(path, "r") as f:
            fmt, jid = f.attrs.get("format"), f.attrs.get("job_id")
            jh = f.attrs.get("job_hash")
            shapes = {k: ((f[k].shape, f[k].dtype.kind) if isinstance(f.get(k), h5py.Dataset)
                          else None) for k in _H5_ARRAYS}
    except Exception as exc:  # noqa: BLE001 (h5py raises OSError, KeyError, RuntimeError...)
        return f"not a readable HDF5 file ({' '.join(str(exc).split())[:120]})"
    if fmt != _H5_FORMAT:
        return f"not a study bounds file (format {_H5_FORMAT!r})"
    if jid != job_id:
        return f"the bounds of another job ({jid!r})"
    if jh is not None and jh != job_hash:
        return "the bounds of another run of the job (its job hash differs from the record's)"
    for name, dims in _H5_ARRAYS.items():
        want = tuple(sizes[d] for d in dims)
        if shapes[name] is None:
            return f"no {name} array"
        shape, kind = shapes[name]
        if shape != want:
            if name == "upper_bound" and len(shape) == 1:
                return (f"{shape[0]} rows of bounds, but its job record has "
                        f"{n_constraints} constraints")
            return f"its {name} array is of shape {shape}, not {want}"
        if name != "family" and kind not in "fiu":
            return f"its {name} array is not numeric"
    return ""


def _slim_certificate(cert: dict[str, Any]) -> dict[str, Any]:
    """The certificate without ``worst_load`` (in the HDF5 file; ``witness`` stays)."""
    out = dict(cert)
    out["constraints"] = [{k: v for k, v in c.items() if k != "worst_load"}
                          for c in cert["constraints"]]
    return out


@dataclass(frozen=True)
class JobRecord:
    """What a study folder holds for one job (see the module docstring).

    ``state``: ``done``, ``failed``, ``pending`` or ``damaged``.  ``record``: the
    stored record of a ``done`` or ``failed`` job (None otherwise); a done one's
    ``certificate`` is the certificate as it reads back (summary form, without
    worst loads) and its ``exit_status`` the certificate's.  ``problem``: a
    damaged job's file and what is wrong with it, in one line.
    """

    job_id: str
    state: str
    record: dict[str, Any] | None = None
    problem: str = ""

    @property
    def finished(self) -> bool:
        """Whether the job is done (``study run`` skips it)."""
        return self.state == DONE


def _json_problem(raw: bytes) -> tuple[Any, str]:
    """``(value, "")`` of UTF-8 JSON bytes, or ``(None, why not)``."""
    try:
        return json_loads(raw.decode("utf-8")), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        if not raw.strip():
            return None, "empty"
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"


def _read_certificate(cert: Any) -> tuple[dict[str, Any] | None, int | None, str]:
    """A stored certificate read back: ``(its summary form, exit status, "")`` or
    ``(None, None, why not)``."""
    from gridverify.certify.certificate import Certificate

    if not isinstance(cert, dict):
        return None, None, "a done record without a certificate"
    try:
        c = Certificate.from_dict(cert)
        return _slim_certificate(c.to_dict()), c.exit_status, ""
    except GridverifyError as exc:
        why = str(exc).removeprefix("certificate: ")
    # from_dict's SpecError covers what it checks; a value of another type inside
    # (a constraint that is not an object, an unknown family) fails on reading
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        why = f"malformed ({type(exc).__name__}: {exc})"
    return None, None, f"its certificate does not read back: {why}"


def _damaged(path: Path, why: str) -> StudyError:
    """The error for a damaged ``study.json``, with how to get the report back."""
    return StudyError(f"{path}: damaged: {why} ({_REMOVE_HINT})")


class StudyStore:
    """The output folder of one study (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"

    def json_path(self, job_id: str) -> Path:
        """Path of a job's JSON record."""
        return self.jobs_dir / f"{job_id}.json"

    def h5_path(self, job_id: str) -> Path:
        """Path of a job's HDF5 bounds."""
        return self.jobs_dir / f"{job_id}.h5"

    def check_owner(self, name: str) -> None:
        """Raise StudyError unless this folder is new or holds the results of study ``name``.

        A study is identified by its name (``study.json``), as resume identifies its
        jobs by their ids within it: the same study run again, even edited (its
        changed jobs run again), resumes here; another study would overwrite the
        job files and ``study.json`` of this one, so it is refused.
        """
        p = self.root / "study.json"
        if not p.exists():
            return
        try:
            data = json_loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StudyError(f"{self.root}: its study.json is unreadable ({exc}); not "
                             f"writing study {name!r} over it ({_REMOVE_HINT})") from None
        if not isinstance(data, dict) or data.get("format") != _STUDY_FORMAT:
            raise StudyError(f"{self.root}: its study.json is not a gridverify study's; not "
                             f"writing study {name!r} over it")
        old = data.get("name")
        if old != name:
            raise StudyError(f"{self.root}: holds the results of study {old!r}, not of study "
                             f"{name!r}; give another output folder (--out) or remove it")

    def write_study(self, text: str, name: str, jobs: Iterable[Job], source: str) -> None:
        """Record the study file and its job list (atomically)."""
        self.root.mkdir(parents=True, exist_ok=True)
        jobs = list(jobs)
        write_bytes_atomic(self.root / "study.toml", text.encode())
        write_json_atomic(self.root / "study.json", {
            "format": _STUDY_FORMAT, "version": 1, "name": name, "source": source,
            "jobs": [{"id": j.id, "hash": j.digest, "job": j.to_dict()} for j in jobs],
        })

    def job_record(self, job_id: str, job_hash: str) -> JobRecord:
        """The one answer to "is this job finished, and is its record readable": the
        state of job ``job_id`` of hash ``job_hash`` in this folder (see the module
        docstring), for ``study run`` and the report alike."""
        p = self.json_path(job_id)

        def damaged(why: str, path: Path = p) -> JobRecord:
            return JobRecord(job_id, DAMAGED, None, f"{path}: {why}")

        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return JobRecord(job_id, PENDING)
        except OSError as exc:
            return damaged(f"cannot be read ({exc.strerror or exc})")
        rec, why = _json_problem(raw)
        if why:
            return damaged(why)
        if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
            return damaged(f"not a study job record (format {RECORD_FORMAT!r})")
        if not isinstance(rec.get("job_hash"), str):
            return damaged("a job record without its job hash")
        if rec["job_hash"] != job_hash:  # of the job before it changed: it runs again
            return JobRecord(job_id, PENDING)
        if rec.get("job_id") != job_id:
            return damaged(f"the record of another job ({rec.get('job_id')!r})")
        secs = rec.get("seconds")
        if secs is not None and (isinstance(secs, bool) or not isinstance(secs, (int, float))):
            return damaged(f"seconds {secs!r} is not a number")
        state = rec.get("state")
        if rec.get("error") is not None and not isinstance(rec["error"], dict):
            return damaged("a record whose error is not an object")
        if state == FAILED:
            return JobRecord(job_id, FAILED, {**rec, "certificate": None, "exit_status": None})
        if state != DONE:
            return damaged(f"unknown state {state!r} (expected {DONE} or {FAILED})")
        cert, status, why = _read_certificate(rec.get("certificate"))
        if why:
            return damaged(why)
        h5 = self.h5_path(job_id)
        if not h5.is_file():
            return damaged("missing (the bounds of the done job)", h5)
        why = _h5_problem(h5, job_id, len(cert["constraints"]),
                          len(cert["region"]["lower"]), job_hash)
        if why:
            return damaged(why, h5)
        return JobRecord(job_id, DONE, {**rec, "certificate": cert, "exit_status": status})

    def is_finished(self, job: Job) -> bool:
        """Whether the job is done here (:meth:`job_record`)."""
        return self.job_record(job.id, job.digest).finished

    def write_record(self, rec: dict[str, Any]) -> None:
        """Store a finished job: HDF5 bounds first (done jobs), then the JSON record."""
        job_id = rec["job_id"]
        out = dict(rec)
        out["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if rec.get("certificate") is not None:
            _write_h5_atomic(self.h5_path(job_id), rec["certificate"], rec["job"],
                             rec["job_hash"])
            out["certificate"] = _slim_certificate(rec["certificate"])
        else:
            h5 = self.h5_path(job_id)
            if h5.exists():
                h5.unlink()
        write_json_atomic(self.json_path(job_id), out)

    def append_event(self, event: dict[str, Any]) -> None:
        """Append one JSON line to ``events.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **event},
                          allow_nan=False)
        with open(self.root / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[dict[str, Any]]:
        """The parsed event log (a torn last line is skipped)."""
        p = self.root / "events.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def job_list(self) -> list[dict[str, Any]]:
        """The jobs recorded in ``study.json``: ``{"id", "hash", "job"}`` each.

        :class:`~gridverify.errors.StudyError` naming the file when it is missing,
        unreadable or not a study's job list.
        """
        p = self.root / "study.json"
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise StudyError(f"{self.root}: not a study output folder (no study.json)") from None
        except OSError as exc:
            raise StudyError(f"{p}: cannot be read ({exc.strerror or exc})") from None
        data, why = _json_problem(raw)
        if why:
            raise _damaged(p, why)
        if not isinstance(data, dict) or data.get("format") != _STUDY_FORMAT:
            raise _damaged(p, "not a gridverify study's study.json")
        jobs = data.get("jobs")
        if not isinstance(jobs, list):
            raise _damaged(p, f"'jobs' is {jobs!r:.40}, not a list of the study's jobs")
        if not jobs:
            raise _damaged(p, "'jobs' is empty (a study has at least one job)")
        seen: set[str] = set()
        for i, e in enumerate(jobs):
            why = _entry_problem(e)
            if not why and e["id"] in seen:
                why = f"job id {e['id']!r} repeated"
            if why:
                raise _damaged(p, f"jobs[{i}]: {why}")
            seen.add(e["id"])
        return jobs

    def _study_json(self) -> dict[str, Any]:
        try:
            data = json_loads((self.root / "study.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def study_name(self) -> str:
        """The study's name from ``study.json``."""
        return str(self._study_json().get("name", self.root.name))

    def study_description(self) -> str:
        """The ``[study] description`` of the study file kept here (``study.toml``);
        empty when there is none or the file cannot be read."""
        import tomllib

        try:
            text = (self.root / "study.toml").read_text(encoding="utf-8-sig")
            desc = tomllib.loads(text).get("study", {}).get("description", "")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            return ""
        return desc.strip() if isinstance(desc, str) else ""

    def study_source(self) -> str | None:
        """The study file the study was run from, as ``study.json`` records it (None
        when unknown)."""
        src = self._study_json().get("source")
        return src if isinstance(src, str) and src and not src.startswith("<") else None

    def read_bounds(self, job_id: str) -> dict[str, np.ndarray]:
        """The arrays of a job's HDF5 file."""
        import h5py

        with h5py.File(self.h5_path(job_id), "r") as f:
            out = {k: f[k][()] for k in f}
        out["family"] = np.array([s.decode() if isinstance(s, bytes) else s
                                  for s in out["family"]])
        return out


def _entry_problem(e: Any) -> str:
    """What is wrong with an entry of ``study.json``'s job list ("" when nothing)."""
    if not isinstance(e, dict):
        return "not an object"
    jid = e.get("id")
    if not isinstance(jid, str) or not _FILE_ID.match(jid) or jid in (".", ".."):
        return f"id {jid!r} is not a job id"
    if not isinstance(e.get("hash"), str):
        return "no job hash"
    try:
        job = Job.from_dict(e.get("job"))
    except StudyError as exc:
        return str(exc).replace("a job: ", "job: ", 1)
    if job.id != jid:
        return f"the job of id {jid!r} is job {job.id!r}"
    return ""
