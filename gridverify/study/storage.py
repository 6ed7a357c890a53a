"""Study output folder: one JSON and one HDF5 file per job, written atomically.

Layout of ``reports/NAME``::

    study.toml            the study file as run
    study.json            the jobs of the study (ids, hashes)
    jobs/ID.json          the job's record: state, error, certificate (summary form)
    jobs/ID.h5            the job's bounds: per-constraint arrays and worst loads
    events.jsonl          one line per finished job and run (append-only log)

A job counts as finished when ``jobs/ID.json`` exists with state ``done``, its
job hash equals the job's, and ``jobs/ID.h5`` exists: the HDF5 file is written
first, the JSON last, each through a temporary file and ``os.replace``, so a
study killed at any point leaves either a complete job or none.

The JSON keeps the certificate's contract form without the ``worst_load`` key
(the ``witness`` of a violated constraint stays); every constraint's worst load
is in the HDF5 file (dataset ``worst_load``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import StudyError
from gridverify.fileio import atomic_path, atomic_write_bytes, atomic_write_json
from gridverify.study.jobs import DONE, Job

__all__ = ["StudyStore", "write_bytes_atomic", "write_json_atomic"]

_FILE_MODE = 0o644  # readable reports (mkstemp creates 0600)
_STATUS_CODE = {"certified": 0, "violated": 1, "open": 3}


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    atomic_write_bytes(path, data, mode=_FILE_MODE)


def write_json_atomic(path: Path, obj: Any, indent: int | None = None) -> None:
    """Strict JSON (no NaN) written atomically."""
    atomic_write_json(path, obj, indent=indent, mode=_FILE_MODE)


def _write_h5_atomic(path: Path, cert: dict[str, Any], job: dict[str, Any]) -> None:
    import h5py

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
            f.attrs["format"] = "gridverify-study-bounds"
            f.attrs["version"] = 1
            f.attrs["job_id"] = job["id"]
            f.attrs["case"] = cert["case"]
            f.attrs["model"] = cert["model"]
            f.attrs["method"] = cert["method"]
            str_t = h5py.string_dtype()
            f.create_dataset("family", data=np.array([c["family"] for c in cons], dtype=object),
                             dtype=str_t)
            f.create_dataset("component", data=np.array([c["component"] for c in cons],
                                                        dtype=np.int64))
            f.create_dataset("upper_bound", data=arr("upper_bound", np.inf))
            f.create_dataset("attained", data=arr("attained", -np.inf))
            f.create_dataset("threshold", data=arr("threshold", np.nan))
            f.create_dataset("status", data=np.array([_STATUS_CODE[c["status"]] for c in cons],
                                                     dtype=np.int8))
            f["status"].attrs["codes"] = "0 certified, 1 violated, 3 open"
            f.create_dataset("worst_load", data=wl, compression="gzip", shuffle=True)
            f.create_dataset("region_lower", data=np.asarray(cert["region"]["lower"]))
            f.create_dataset("region_upper", data=np.asarray(cert["region"]["upper"]))


def _slim_certificate(cert: dict[str, Any]) -> dict[str, Any]:
    """The certificate without ``worst_load`` (in the HDF5 file; ``witness`` stays)."""
    out = dict(cert)
    out["constraints"] = [{k: v for k, v in c.items() if k != "worst_load"}
                          for c in cert["constraints"]]
    return out


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
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StudyError(f"{self.root}: its study.json is unreadable ({exc}); not "
                             f"writing study {name!r} over it") from None
        if not isinstance(data, dict) or data.get("format") != "gridverify-study":
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
            "format": "gridverify-study", "version": 1, "name": name, "source": source,
            "jobs": [{"id": j.id, "hash": j.digest, "job": j.to_dict()} for j in jobs],
        })

    def read_record(self, job_id: str) -> dict[str, Any] | None:
        """A job's record, or None when absent or unreadable (a partial write never is)."""
        p = self.json_path(job_id)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None

    def is_finished(self, job: Job) -> bool:
        """Whether the job has a stored ``done`` record of the same job hash and its bounds."""
        rec = self.read_record(job.id)
        return bool(
            rec is not None and rec.get("state") == DONE and rec.get("job_hash") == job.digest
            and self.h5_path(job.id).exists()
        )

    def write_record(self, rec: dict[str, Any]) -> None:
        """Store a finished job: HDF5 bounds first (done jobs), then the JSON record."""
        job_id = rec["job_id"]
        out = dict(rec)
        out["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if rec.get("certificate") is not None:
            _write_h5_atomic(self.h5_path(job_id), rec["certificate"], rec["job"])
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
        """The jobs recorded in ``study.json``."""
        p = self.root / "study.json"
        if not p.exists():
            raise StudyError(f"{self.root}: not a study output folder (no study.json)")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return list(data["jobs"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise StudyError(f"{p}: malformed ({exc})") from None

    def _study_json(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "study.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def study_name(self) -> str:
        """The study's name from ``study.json``."""
        return str(self._study_json().get("name", self.root.name))

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
