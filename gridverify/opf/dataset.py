"""OPF datasets: sample loads in a region, solve each AC-OPF, store in HDF5.

HDF5 schema (``schema_version`` 1; S samples, L loads, G generators, N buses,
all in the compiled case's orders, per-unit on the case base, radians)::

    inputs/pd        (S, L) float64   active demand per load
    inputs/qd        (S, L) float64   reactive demand per load
    outputs/pg       (S, G) float64   NaN where not solved to optimality
    outputs/qg       (S, G) float64
    outputs/vm       (S, N) float64
    outputs/va       (S, N) float64   radians
    objective        (S,)   float64   $/h, NaN where not solved
    solve_seconds    (S,)   float64   solver wall time (NaN while pending)
    status           (S,)   int8      0 pending, 1 optimal, 2 infeasible,
                                      3 max_iter (iteration or time limit), 4 error
    done             (S,)   bool      the sample's row is final

    attrs: schema_version=1, case_name, case_hash (CompiledCase.content_hash),
           sampler (JSON: {"kind": "box", "low":..,"high":..} or
           {"kind": "pglearn", "a":..,"b":..,"r":..}), seed, n_samples,
           solver_name, solver_version, solver_settings (JSON), gridverify_version,
           status_codes (JSON: {"pending": 0, "optimal": 1, ...}),
           case_source (absent for a case built in memory)

The ``status`` codes are coarser than an :class:`~gridverify.opf.acopf.OPFSolution`'s
status (``_FROM_SOLUTION``, the one mapping): ``locally_infeasible`` is stored as
``infeasible`` and both ``max_iter`` and ``time_limit`` as ``max_iter`` (the solve
stopped at a limit: rerun with a larger one).

All inputs are written when the file is created (sample i's loads are a pure
function of (seed, i), see :mod:`gridverify.opf.samplers`).  Failed samples keep
their status; nothing is dropped.

Crash safety: the file is created complete (every dataset contiguous, fully
allocated and filled) under a temporary name and moved into place with
``os.replace``.  After that only raw data changes, in place, so HDF5 metadata is
never rewritten.  Results are written in batches: outputs, flush, then the
``done`` flags, flush.  A killed run therefore leaves a readable file in which
every ``done`` row is complete; re-running the same command resumes with the
rows not ``done``.  Every sample is warm-started from the nominal-load solution
(with its duals; retried from a flat start after a numerical error), so a
sample's result does not depend on which worker solved it or on an interruption.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridverify._progress import progress_wanted
from gridverify._signals import held_interrupts
from gridverify._worker import die_with_parent, spawn_context, terminate_pool
from gridverify.errors import DatasetError, SolverError
from gridverify.fileio import CreatedMeanwhileError, atomic_path, require_file
from gridverify.grid.compiled import CompiledCase
from gridverify.opf.samplers import (
    BoxSampler,
    LoadSampler,
    PGLearnSampler,
    SamplerError,
    sampler_from_json,
)
from gridverify.opf.solvers import SolverOptions, resolve_solver
from gridverify.sysmem import format_bytes, memory_shortfall

SCHEMA_VERSION = 1
# Iteration limit of dataset solves unless options say otherwise: the same default
# as every other solve (``SolverOptions.max_iter``; `opf solve` and `dataset make`
# share it).  Warm-started feasible samples take tens of iterations.
DATASET_MAX_ITER = SolverOptions().max_iter
STATUS_CODES: dict[str, int] = {
    "pending": 0,
    "optimal": 1,
    "infeasible": 2,
    "max_iter": 3,
    "error": 4,
}
#: OPFSolution.status (acopf.STATUSES) -> dataset status code: the one mapping
_FROM_SOLUTION = {
    "optimal": 1,
    "locally_infeasible": 2,
    "max_iter": 3,
    "time_limit": 3,
    "error": 4,
}
_DATASETS = (
    "inputs/pd",
    "inputs/qd",
    "outputs/pg",
    "outputs/qg",
    "outputs/vm",
    "outputs/va",
    "objective",
    "solve_seconds",
    "status",
    "done",
)
#: absent in files of older versions (solver_settings) or of a case built in memory
_OPTIONAL_ATTRS = ("case_source", "solver_settings")
_ATTRS = (
    "schema_version",
    "case_name",
    "case_hash",
    "sampler",
    "seed",
    "n_samples",
    "solver_name",
    "solver_version",
    "gridverify_version",
)


@dataclass(frozen=True)
class OPFDataset:
    """An OPF dataset read into memory (see the module docstring for the schema)."""

    path: str
    pd: np.ndarray
    qd: np.ndarray
    pg: np.ndarray
    qg: np.ndarray
    vm: np.ndarray
    va: np.ndarray
    objective: np.ndarray
    solve_seconds: np.ndarray
    status: np.ndarray
    done: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def solved(self) -> np.ndarray:
        """Boolean mask of samples solved to optimality."""
        return self.done & (self.status == STATUS_CODES["optimal"])

    @property
    def n_samples(self) -> int:
        """Number of load samples (rows), solved or not."""
        return int(self.pd.shape[0])

    @property
    def case_name(self) -> str:
        """Name of the case the dataset was made on."""
        return str(self.attrs["case_name"])

    @property
    def case_hash(self) -> str:
        """Content hash of that case (``CompiledCase.content_hash``)."""
        return str(self.attrs["case_hash"])

    @property
    def sampler(self) -> dict[str, Any]:
        """The load sampler's settings (its JSON, as written by ``to_json()``)."""
        return dict(json.loads(self.attrs["sampler"]))

    @property
    def seed(self) -> int:
        """Seed of the load sampling."""
        return int(self.attrs["seed"])

    def status_counts(self) -> dict[str, int]:
        """Number of samples per status name (``pending`` counts rows not done)."""
        counts = {name: 0 for name in STATUS_CODES}
        names = {code: name for name, code in STATUS_CODES.items()}
        for code, n in zip(*np.unique(np.where(self.done, self.status, 0), return_counts=True)):
            counts[names.get(int(code), "error")] += int(n)
        return counts

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (attributes, shapes, status counts, timings); the
        attributes holding JSON text (``sampler``, ``status_codes``,
        ``solver_settings``) as the objects they hold."""
        secs = self.solve_seconds[self.done]
        attrs = {k: _plain(v) for k, v in self.attrs.items()}
        return {
            "path": self.path,
            **{k: json.loads(v) if k in _JSON_ATTRS else v for k, v in attrs.items()},
            "n_load": int(self.pd.shape[1]),
            "n_gen": int(self.pg.shape[1]),
            "n_bus": int(self.vm.shape[1]),
            "n_done": int(self.done.sum()),
            "n_solved": int(self.solved.sum()),
            "status_counts": self.status_counts(),
            "mean_solve_seconds": float(secs.mean()) if secs.size else None,
        }


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------
# reading and validation
# --------------------------------------------------------------------------
#: what h5py raises on a damaged or unreadable file (RuntimeError: "Can't synchronously
#: read data", "Error iterating over attributes"...; OSError; KeyError of a bad link)
H5_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError, KeyError, ValueError,
                                              TypeError)


def read_error(path: str | os.PathLike[str], what: str, exc: BaseException) -> DatasetError:
    """The one-line DatasetError of an h5py failure: ``<file>: cannot read <what>: <why>``."""
    why = " ".join(str(exc).split()) or type(exc).__name__
    return DatasetError(f"{path}: cannot read {what}: {why}")


@contextmanager
def reading(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn an h5py/OS error raised in the block into :func:`read_error` naming ``what``."""
    try:
        yield
    except H5_ERRORS as exc:
        raise read_error(path, what, exc) from None


#: the attributes holding a JSON object (the rest are strings but for _INT_ATTRS)
_JSON_ATTRS = ("sampler", "status_codes", "solver_settings")
_INT_ATTRS = ("schema_version", "seed", "n_samples")


def check_attr(path: str, key: str, value: Any) -> None:
    """DatasetError unless the attribute ``key`` holds what this module writes there (an
    integer, a JSON object or a string), naming the file and the attribute."""
    if key in _INT_ATTRS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DatasetError(f"{path}: attribute {key!r} is not an integer: {value!r}")
        if key == "seed" and value < 0:  # as --seed: the sampler's seeds are >= 0
            raise DatasetError(f"{path}: attribute 'seed' is negative: {value}")
    elif not isinstance(value, str):
        raise DatasetError(f"{path}: attribute {key!r} is not a string: {value!r}")
    elif key in _JSON_ATTRS:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: attribute {key!r} is not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise DatasetError(f"{path}: attribute {key!r} is not a JSON object: {value!r}")
        if key == "sampler":  # a kind and its parameters, finite and in range
            try:
                sampler_from_json(value)
            except SamplerError as exc:
                raise DatasetError(f"{path}: attribute 'sampler': {exc}") from None


def read_attr(f: Any, path: str, key: str) -> Any:
    """The attribute ``key`` of the open file ``f`` as this module writes it (checked by
    :func:`check_attr`), or None when absent; undecodable bytes or another type name
    the file and the attribute in one line."""
    with reading(path, f"attribute {key!r}"):
        if key not in f.attrs:
            return None
        value = _plain(f.attrs[key])
    check_attr(path, key, value)
    return value


def _read_attrs(f: Any, path: str) -> dict[str, Any]:
    attrs = {}
    for key in (*_ATTRS, "status_codes", *_OPTIONAL_ATTRS):
        with reading(path, f"attribute {key!r}"):
            present = key in f.attrs
            if present:
                attrs[key] = _plain(f.attrs[key])
        if not present and key not in _OPTIONAL_ATTRS:  # optional: absent in older files
            raise DatasetError(f"{path}: missing attribute {key!r}")
        if present:
            check_attr(path, key, attrs[key])
        if key == "schema_version" and attrs[key] != SCHEMA_VERSION:  # before the others:
            raise DatasetError(  # another schema may store them otherwise
                f"{path}: schema_version {attrs['schema_version']} (this gridverify reads "
                f"{SCHEMA_VERSION})"
            )
    return attrs


#: the two datasets whose second axis is one count, and the name of that count
_WIDTHS = (
    (("inputs/pd", "inputs/qd"), "loads"),
    (("outputs/pg", "outputs/qg"), "generators"),
    (("outputs/vm", "outputs/va"), "buses"),
)


def _recorded_case_dims(
    f: Any, path: str, attrs: dict[str, Any]
) -> tuple[int, int, int] | None:
    """(loads, gens, buses) of the case the file says it was made from, when that case
    (its recorded file, else a bundled case of that name) is here with the recorded hash."""
    found = recorded_case(f, path, attrs)
    if found is None:
        return None
    case = found[1]
    return case.n_load, case.n_gen, case.n_bus


def recorded_case(f: Any, path: str, attrs: dict[str, Any]) -> tuple[str, CompiledCase] | None:
    """The case the open dataset file ``f`` was made from, as ``(reference, case)``:
    its recorded file (``case_source``), else the bundled case of its name, the first
    whose content has the recorded hash; ``None`` when neither is here."""
    from gridverify.grid import load_compiled

    with reading(path, "attribute 'case_source'"):
        source = _plain(f.attrs["case_source"]) if "case_source" in f.attrs else None
    for ref in (source, attrs.get("case_name")):
        if not ref:
            continue
        try:
            case = load_compiled(str(ref), emit_warnings=False)
        except Exception:  # noqa: BLE001 - no such case here: nothing to compare with
            continue
        if case.content_hash == attrs.get("case_hash"):
            return str(ref), case
    return None


def open_dataset(path: str) -> Any:
    """The dataset file at ``path`` open for reading (an ``h5py.File``), without HDF5's
    file lock: a reader may look at a file that a run is filling (rows change in place
    and only become visible through ``done``).  A file h5py cannot open is a one-line
    :class:`DatasetError`."""
    import h5py

    require_file(path)
    try:
        return h5py.File(path, "r", locking=False)
    except H5_ERRORS:
        try:  # this process holds the file open with locking
            return h5py.File(path, "r")
        except H5_ERRORS as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise DatasetError(f"{path}: not a readable HDF5 file ({why})") from None


def _check_structure(
    f: Any, path: str, attrs: dict[str, Any], dims: tuple[int, int, int] | None = None
) -> tuple[int, int, int, int]:
    """Check every dataset's shape; ``dims`` = the case's (loads, gens, buses) when known.

    Without ``dims`` the two datasets of one count must agree; when they do not, the
    recorded case (if it is here) tells which one is wrong.
    """
    import h5py

    shapes: dict[str, tuple[int, ...]] = {}
    for key in _DATASETS:
        with reading(path, f"dataset {key!r}"):
            if key not in f:
                raise DatasetError(f"{path}: missing dataset {key!r}")
            if not isinstance(f[key], h5py.Dataset):  # a group or a named datatype
                raise DatasetError(f"{path}: {key!r} is not a dataset but a "
                                   f"{type(f[key]).__name__.lower()}")
            shapes[key] = tuple(int(n) for n in f[key].shape)
    try:
        s = int(attrs["n_samples"])
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: attribute 'n_samples' is not an integer: "
                           f"{attrs['n_samples']!r}") from None
    if s < 0:
        raise DatasetError(f"{path}: attribute 'n_samples' is negative: {s}")
    counts: list[int | None] = []
    for k, (pair, noun) in enumerate(_WIDTHS):
        if dims is not None:
            counts.append(int(dims[k]))
            continue
        widths = {shapes[key][1] for key in pair if len(shapes[key]) == 2}
        if len(widths) > 1:  # which one is wrong: ask the case the file was made from
            dims = _recorded_case_dims(f, path, attrs)
            if dims is None:
                a, b = pair
                raise DatasetError(
                    f"{path}: datasets {a!r} {shapes[a]} and {b!r} {shapes[b]} disagree on "
                    f"the number of {noun}"
                )
            counts.append(int(dims[k]))
        else:
            counts.append(widths.pop() if widths else None)
    n_load, n_gen, n_bus = counts
    expect: dict[str, tuple[int | None, ...]] = {
        "inputs/pd": (s, n_load),
        "inputs/qd": (s, n_load),
        "outputs/pg": (s, n_gen),
        "outputs/qg": (s, n_gen),
        "outputs/vm": (s, n_bus),
        "outputs/va": (s, n_bus),
        "objective": (s,),
        "solve_seconds": (s,),
        "status": (s,),
        "done": (s,),
    }
    nouns = {key: noun for pair, noun in _WIDTHS for key in pair}
    for key, shape in expect.items():
        if shapes[key] != shape:
            want = ", ".join(f"number of {nouns[key]}" if n is None else str(n)
                             for n in shape)
            want = f"({want},)" if len(shape) == 1 else f"({want})"
            raise DatasetError(
                f"{path}: dataset {key!r} has shape {shapes[key]}, expected {want}"
            )
    assert n_load is not None and n_gen is not None and n_bus is not None
    return s, n_load, n_gen, n_bus


def checked_flags(path: str, status: np.ndarray, done: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The ``status`` (int8) and ``done`` (bool) columns as read from ``path``, after
    checking them: status an integer array of known codes and done one of 0/1 (a
    cast alone read an int16 257 as 1, optimal, a float 1.5 as optimal, a done of 0.5
    as true)."""
    if status.dtype.kind not in "biu":
        raise DatasetError(f"{path}: field status: dtype {status.dtype}, expected integers")
    odd = np.flatnonzero(~np.isin(status, list(STATUS_CODES.values())))
    if odd.size:
        r = int(odd[0])
        raise DatasetError(f"{path}: field status: row {r}: unknown status code "
                           f"{status[r].item()!r}")
    if done.dtype.kind not in "biu" or not np.isin(done, (0, 1)).all():
        raise DatasetError(f"{path}: field done: {done.dtype} values other than 0 and 1, "
                           "expected bool")
    return status.astype(np.int8), done.astype(bool)


def _check_rows(path: str, d: OPFDataset) -> None:
    if not (np.all(np.isfinite(d.pd)) and np.all(np.isfinite(d.qd))):
        bad = np.nonzero(~(np.isfinite(d.pd).all(1) & np.isfinite(d.qd).all(1)))[0]
        raise DatasetError(f"{path}: inputs contain NaN/inf (first sample {int(bad[0])})")
    pending_done = d.done & (d.status == 0)
    if pending_done.any():
        i = int(np.nonzero(pending_done)[0][0])
        raise DatasetError(f"{path}: sample {i} is marked done with status pending")
    sol = d.solved
    for key, a in (("outputs/pg", d.pg), ("outputs/qg", d.qg), ("outputs/vm", d.vm),
                   ("outputs/va", d.va), ("objective", d.objective[:, None])):
        bad = sol & ~np.isfinite(a).all(1)
        if bad.any():
            raise DatasetError(f"{path}: dataset {key!r}: sample {int(np.flatnonzero(bad)[0])} "
                               "is optimal but holds NaN/inf")


def load_dataset(path: str | Path, case: CompiledCase | None = None) -> OPFDataset:
    """Read and validate an OPF dataset; with ``case``, also check it is that case's.

    A file h5py cannot read (damaged, truncated, not HDF5) is a one-line
    :class:`DatasetError` naming the file and what could not be read.
    """
    path = str(path)
    f = open_dataset(path)
    with reading(path, "the file"), f:
        attrs = _read_attrs(f, path)
        dims = None  # the case's sizes, when the file says it is of that case
        if case is not None and attrs["case_hash"] == case.content_hash:
            dims = (case.n_load, case.n_gen, case.n_bus)
        _check_structure(f, path, attrs, dims)
        arrays = {}
        for key in _DATASETS:
            with reading(path, f"dataset {key!r}"):
                arrays[key.split("/")[-1]] = np.asarray(f[key][...])
            kind = arrays[key.split("/")[-1]].dtype.kind
            if kind not in "biuf":  # bytes, strings, objects, complex: not this module's
                raise DatasetError(f"{path}: dataset {key!r} is not numeric "
                                   f"(dtype {arrays[key.split('/')[-1]].dtype})")
    status, done = checked_flags(path, arrays["status"], arrays["done"])
    d = OPFDataset(
        path=path,
        pd=arrays["pd"].astype(np.float64, copy=False),
        qd=arrays["qd"].astype(np.float64, copy=False),
        pg=arrays["pg"].astype(np.float64, copy=False),
        qg=arrays["qg"].astype(np.float64, copy=False),
        vm=arrays["vm"].astype(np.float64, copy=False),
        va=arrays["va"].astype(np.float64, copy=False),
        objective=arrays["objective"].astype(np.float64, copy=False),
        solve_seconds=arrays["solve_seconds"].astype(np.float64, copy=False),
        status=status,
        done=done,
        attrs=attrs,
    )
    _check_rows(path, d)
    if case is not None:
        check_case(d, case)
    return d


def check_case(d: OPFDataset, case: CompiledCase) -> None:
    """DatasetError unless ``d`` was made from ``case`` (hash and dimensions)."""
    if d.case_hash != case.content_hash:
        raise DatasetError(
            f"{d.path}: dataset is of case {d.case_name!r} (hash {d.case_hash[:12]}), "
            f"not of case {case.name!r} (hash {case.content_hash[:12]})"
        )
    dims = (d.pd.shape[1], d.pg.shape[1], d.vm.shape[1])
    if dims != (case.n_load, case.n_gen, case.n_bus):
        raise DatasetError(
            f"{d.path}: dimensions (loads, gens, buses) {dims} do not match case "
            f"{case.name!r} {(case.n_load, case.n_gen, case.n_bus)}"
        )


# --------------------------------------------------------------------------
# file creation and resume
# --------------------------------------------------------------------------
def _create_file(
    path: str,
    case: CompiledCase,
    n_samples: int,
    sampler: LoadSampler,
    seed: int,
    solver_name: str,
    solver_version: str,
    settings: dict[str, Any],
) -> None:
    """Write a complete new dataset file (all inputs, nothing solved) atomically."""
    import h5py

    from gridverify import __version__

    s = n_samples
    pd = np.empty((s, case.n_load))
    qd = np.empty((s, case.n_load))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
        for i in range(s):
            pd[i], qd[i] = sampler.sample(case, seed, i)
    bad = np.flatnonzero(~(np.isfinite(pd).all(1) & np.isfinite(qd).all(1)))
    if bad.size:
        spec = ",".join(f"{v:g}" for v in sampler.params().values())
        raise SamplerError(f"region {sampler.kind}:{spec}: the loads of sample {int(bad[0])} "
                           "overflow (not finite); use smaller factors")
    # no fsync; the usual file permissions; created, never replacing a file another run
    # created meanwhile (that run fills it).  Ctrl-C in h5py's own code was lost (h5py
    # prints it as "Exception ignored"): held until the file is closed, then raised (the
    # temporary file removed)
    with atomic_path(os.path.abspath(path), fsync=False, exclusive=True) as tmp, \
            held_interrupts():
        with h5py.File(tmp, "w") as f:

            def put(name: str, data: np.ndarray) -> None:
                f.create_dataset(name, data=data, track_times=False)

            put("inputs/pd", pd)
            put("inputs/qd", qd)
            for name, n in (("pg", case.n_gen), ("qg", case.n_gen), ("vm", case.n_bus),
                            ("va", case.n_bus)):
                put(f"outputs/{name}", np.full((s, n), np.nan))
            put("objective", np.full(s, np.nan))
            put("solve_seconds", np.full(s, np.nan))
            put("status", np.zeros(s, dtype=np.int8))
            put("done", np.zeros(s, dtype=bool))
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["case_name"] = case.name
            f.attrs["case_hash"] = case.content_hash
            if Path(case.source).is_file():
                f.attrs["case_source"] = str(Path(case.source).resolve())
            f.attrs["sampler"] = sampler.to_json()
            f.attrs["seed"] = int(seed)
            f.attrs["n_samples"] = int(s)
            f.attrs["solver_name"] = solver_name
            f.attrs["solver_version"] = solver_version
            f.attrs["solver_settings"] = json.dumps(settings, sort_keys=True)
            f.attrs["gridverify_version"] = __version__
            f.attrs["status_codes"] = json.dumps(STATUS_CODES, sort_keys=True)


def _check_resume(
    path: str,
    case: CompiledCase,
    n_samples: int,
    sampler: LoadSampler,
    seed: int,
    solver_name: str,
    settings: dict[str, Any],
) -> OPFDataset:
    d = load_dataset(path)
    problems = []
    if d.case_hash != case.content_hash:
        problems.append(f"case {d.case_name!r} (hash {d.case_hash[:12]}) != {case.name!r} "
                        f"(hash {case.content_hash[:12]})")
    if json.loads(d.attrs["sampler"]) != json.loads(sampler.to_json()):
        problems.append(f"sampler {d.attrs['sampler']} != {sampler.to_json()}")
    if d.seed != int(seed):
        problems.append(f"seed {d.seed} != {seed}")
    if d.n_samples != int(n_samples):
        problems.append(f"n_samples {d.n_samples} != {n_samples}")
    if str(d.attrs["solver_name"]) != solver_name:
        problems.append(f"solver {d.attrs['solver_name']!r} != {solver_name!r}")
    if "solver_settings" in d.attrs:  # files of older versions did not record them
        old = json.loads(d.attrs["solver_settings"])
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            problems.append("solver settings " + ", ".join(
                f"{k} {old.get(k)!r} != {settings.get(k)!r}" for k in changed))
    if problems:
        raise DatasetError(
            f"{path}: exists and was made with other settings ({'; '.join(problems)}); "
            "use another --out or delete the file"
        )
    if d.pd.shape[1] != case.n_load or d.pg.shape[1] != case.n_gen or d.vm.shape[1] != case.n_bus:
        raise DatasetError(f"{path}: dimensions do not match case {case.name!r}")
    return d


# --------------------------------------------------------------------------
# solving (in-process or in worker processes)
# --------------------------------------------------------------------------
@dataclass
class _SolveState:
    """One process's model and the nominal-load solution every sample starts from."""

    model: Any
    start: Any


def _init_state(case: CompiledCase, options: SolverOptions) -> _SolveState:
    from gridverify.opf.acopf import ACOPFModel

    model = ACOPFModel(case, options)
    nominal = model.solve()
    return _SolveState(model, nominal if nominal.optimal else None)


# State of a pool worker process (set once by the pool's initializer; never used
# in the parent process, which passes its own _SolveState explicitly).
_POOL_STATE: list[_SolveState] = []


def _pool_init(case: CompiledCase, options: SolverOptions, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # no orphan when the command is killed
    _POOL_STATE[:] = [_init_state(case, options)]


def _pool_solve_batch(batch: list[tuple[int, np.ndarray, np.ndarray]]) -> list[tuple[int, dict]]:
    return _solve_batch(_POOL_STATE[0], batch)


def _solve_one(state: _SolveState, pd: np.ndarray, qd: np.ndarray) -> dict[str, Any]:
    model, start = state.model, state.start
    t0 = time.perf_counter()
    try:
        sol = model.solve(pd, qd, warm_start=start)
        if sol.status == "error" and start is not None:
            # numerical trouble from the warm start: retry once from a flat start
            sol = model.solve(pd, qd, warm_start=None)
    except Exception:  # noqa: BLE001 - a crashing sample is recorded, not fatal
        return {"status": STATUS_CODES["error"], "seconds": time.perf_counter() - t0}
    code = _FROM_SOLUTION.get(sol.status, STATUS_CODES["error"])
    if code == STATUS_CODES["optimal"] and not math.isfinite(sol.max_balance_residual_pu):
        code = STATUS_CODES["error"]
    out: dict[str, Any] = {"status": code, "seconds": time.perf_counter() - t0}
    if code == STATUS_CODES["optimal"]:
        out.update(pg=sol.pg, qg=sol.qg, vm=sol.vm, va=sol.va, objective=sol.objective)
    return out


def _solve_batch(
    state: _SolveState, batch: list[tuple[int, np.ndarray, np.ndarray]]
) -> list[tuple[int, dict]]:
    return [(i, _solve_one(state, pd, qd)) for i, pd, qd in batch]


class _Writer:
    """Buffers finished samples and writes them: outputs, flush, done flags, flush."""

    def __init__(self, f: Any, case: CompiledCase, flush_every: int, flush_seconds: float):
        self.f = f
        self.case = case
        self.buf: list[tuple[int, dict]] = []
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.last = time.monotonic()

    def add(self, items: list[tuple[int, dict]]) -> None:
        self.buf.extend(items)
        if len(self.buf) >= self.flush_every or time.monotonic() - self.last > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        self.buf.sort(key=lambda item: item[0])
        idx = [i for i, _ in self.buf]
        c, f = self.case, self.f
        n = len(idx)
        arrays = {
            "pg": np.full((n, c.n_gen), np.nan),
            "qg": np.full((n, c.n_gen), np.nan),
            "vm": np.full((n, c.n_bus), np.nan),
            "va": np.full((n, c.n_bus), np.nan),
        }
        objective = np.full(n, np.nan)
        seconds = np.empty(n)
        status = np.empty(n, dtype=np.int8)
        for row, (_, res) in enumerate(self.buf):
            status[row] = res["status"]
            seconds[row] = res["seconds"]
            if res["status"] == STATUS_CODES["optimal"]:
                for key in arrays:
                    arrays[key][row] = res[key]
                objective[row] = res["objective"]
        for key, val in arrays.items():
            f[f"outputs/{key}"][idx] = val
        f["objective"][idx] = objective
        f["solve_seconds"][idx] = seconds
        f["status"][idx] = status
        f.flush()
        f["done"][idx] = np.ones(n, dtype=bool)
        f.flush()
        self.buf = []
        self.last = time.monotonic()


def _batches(
    pending: list[int], pd: np.ndarray, qd: np.ndarray, size: int
) -> Iterator[list[tuple[int, np.ndarray, np.ndarray]]]:
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        yield [(i, pd[i], qd[i]) for i in chunk]


#: room a dataset file takes beyond its arrays: HDF5's superblock, object headers and
#: attributes (13 KB for every case measured), with a margin; a full disk in the
#: middle of HDF5's writes leaves h5py in a state that can crash the process
_FILE_HEADROOM = 64 * 1024


def dataset_bytes(case: CompiledCase, n_samples: int) -> int:
    """Size of a dataset's arrays (the file's data; what reading it back takes in memory)."""
    per_row = 8 * (2 * case.n_load + 2 * case.n_gen + 2 * case.n_bus + 2) + 2
    return int(n_samples) * per_row


def check_dataset_size(
    case: CompiledCase, n_samples: int, path: str | os.PathLike[str], what: str = "n_samples"
) -> None:
    """DatasetError (naming ``what``, e.g. ``--samples``) when a new dataset of
    ``n_samples`` rows cannot fit this machine's memory or the free space of the
    folder of ``path``; checked before anything is allocated or written."""
    need = dataset_bytes(case, n_samples)
    short = memory_shortfall(need)
    if short is not None:
        raise DatasetError(
            f"{what} {n_samples}: a dataset of case {case.name} that size {short}; use "
            "fewer samples (several files of one region with different seeds can be "
            "trained on together)"
        )
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:  # created on writing
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    need += _FILE_HEADROOM  # HDF5's own records (about 13 KB, measured)
    if need > free:
        raise DatasetError(
            f"{what} {n_samples}: a dataset of case {case.name} that size takes "
            f"{format_bytes(need)}, more than the {format_bytes(free)} free in {folder}"
        )


def max_workers() -> int:
    """The most worker processes a dataset run starts: the CPUs this process may use."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


def make_dataset(
    case: CompiledCase | str | Path,
    n_samples: int,
    out_path: str | Path,
    sampler: BoxSampler | PGLearnSampler | LoadSampler | None = None,
    seed: int = 0,
    workers: int = 1,
    options: SolverOptions | None = None,
    progress: bool | None = None,
    batch_size: int | None = None,
) -> OPFDataset:
    """Sample ``n_samples`` load vectors, solve each AC-OPF, write ``out_path``.

    An existing file made with the same case, sampler, seed, sample count,
    solver and solver settings (:meth:`SolverOptions.settings`, recorded as the
    ``solver_settings`` attribute) is resumed (only rows not ``done`` are solved);
    other settings raise DatasetError.  ``workers`` >= 1 processes (1 = in this
    process), capped at :func:`max_workers` (the CPUs here) and at the number of
    samples left.  A new file must fit this machine's memory and the free disk
    space (:func:`check_dataset_size`).  Default
    ``options``: ``SolverOptions(max_iter=DATASET_MAX_ITER)``.  Returns the
    finished dataset as read back from disk.
    """

    from gridverify.opf.acopf import _as_case

    if n_samples < 1:
        raise DatasetError(f"number of samples must be >= 1, got {n_samples}")
    if workers < 1:
        raise DatasetError(f"workers must be >= 1, got {workers}")
    if seed < 0:
        raise DatasetError(f"seed must be >= 0, got {seed}")
    case = _as_case(case)
    sampler = sampler or BoxSampler()
    options = options or SolverOptions(max_iter=DATASET_MAX_ITER)
    info = resolve_solver(options)
    path = str(out_path)
    settings = options.settings()
    if os.path.exists(path):
        existing = _check_resume(path, case, n_samples, sampler, seed, info.name, settings)
    else:
        check_dataset_size(case, n_samples, path)
        try:
            _create_file(path, case, n_samples, sampler, seed, info.name, info.version, settings)
        except CreatedMeanwhileError:
            raise DatasetError(
                f"{path}: another run created this dataset while this one was creating it "
                "(two runs into one file); let that run fill it, then run this command "
                "again to resume it"
            ) from None
        except MemoryError:
            raise DatasetError(
                f"{path}: not enough memory for {n_samples} samples of case {case.name} "
                f"({format_bytes(dataset_bytes(case, n_samples))}); nothing written"
            ) from None
        existing = load_dataset(path)
    pending = [int(i) for i in np.nonzero(~existing.done)[0]]
    if pending:
        # one process per CPU at most, and no more processes than samples to solve
        # (the results do not depend on the number of workers)
        workers = min(workers, max_workers(), len(pending))
        _run(case, existing, pending, path, workers, options, progress, batch_size)
    del existing  # not twice in memory
    return load_dataset(path, case)


def _run(
    case: CompiledCase,
    d: OPFDataset,
    pending: list[int],
    path: str,
    workers: int,
    options: SolverOptions,
    progress: bool | None,
    batch_size: int | None,
) -> None:
    import h5py

    size = batch_size or max(1, min(8, len(pending) // (4 * workers) or 1))
    bar = _progress(progress_wanted(progress), case.name, d.n_samples, d.n_samples - len(pending))
    try:
        handle = h5py.File(path, "r+")
    except H5_ERRORS as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(
            f"{path}: cannot open for writing; is another run filling it? ({why})"
        ) from None
    with handle as f, bar as (advance):
        writer = _Writer(f, case, flush_every=max(8, 4 * size * workers), flush_seconds=2.0)
        try:
            if workers == 1:
                state = _init_state(case, options)
                for batch in _batches(pending, d.pd, d.qd, size):
                    res = _solve_batch(state, batch)
                    writer.add(res)
                    advance(len(res))
            else:
                _run_pool(case, d, pending, workers, options, size, writer, advance)
        finally:
            writer.flush()


def _run_pool(
    case: CompiledCase,
    d: OPFDataset,
    pending: list[int],
    workers: int,
    options: SolverOptions,
    size: int,
    writer: _Writer,
    advance: Any,
) -> None:

    ctx = spawn_context()
    batches = _batches(pending, d.pd, d.qd, size)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_pool_init,
        initargs=(case, options, os.getpid())
    ) as pool:
        try:
            _drive_pool(pool, batches, workers, writer, advance)
        except BaseException:
            terminate_pool(pool)  # Ctrl-C or an error: do not wait for the solves under way
            raise


def _drive_pool(pool: ProcessPoolExecutor, batches: Any, workers: int, writer: _Writer,
                advance: Any) -> None:
    """Keep ``2 * workers`` batches in flight; write each result as it comes."""
    in_flight: set[Future] = set()
    exhausted = False
    while True:
        while not exhausted and len(in_flight) < 2 * workers:
            batch = next(batches, None)
            if batch is None:
                exhausted = True
                break
            in_flight.add(pool.submit(_pool_solve_batch, batch))
        if not in_flight:
            break
        finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
        for fut in finished:
            try:
                res = fut.result()
            except BrokenProcessPool:
                raise SolverError(
                    "a dataset worker process died (out of memory or a solver crash); "
                    "the finished samples are saved: re-run the same command to resume"
                ) from None
            writer.add(res)
            advance(len(res))


class _NoBar:
    def __enter__(self) -> Any:
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        return None


class _RichBar:
    def __init__(self, name: str, total: int, completed: int) -> None:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from gridverify._progress import progress_console

        self.progress = Progress(
            TextColumn(f"[bold]{escape(name)}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=progress_console(),
            transient=False,
        )
        self.task = self.progress.add_task("solve", total=total, completed=completed)

    def __enter__(self) -> Any:
        self.progress.__enter__()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)


def _progress(enabled: bool, name: str, total: int, completed: int) -> Any:
    return _RichBar(name, total, completed) if enabled else _NoBar()


__all__ = [
    "OPFDataset",
    "SCHEMA_VERSION",
    "STATUS_CODES",
    "check_attr",
    "check_case",
    "load_dataset",
    "make_dataset",
    "PGLearnSampler",
    "BoxSampler",
]
