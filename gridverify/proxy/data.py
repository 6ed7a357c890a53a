"""Reading OPF datasets (HDF5, schema version 1) as proxy training data.

Only rows that are ``done`` with ``status == 1`` (optimal) are used.  The dataset must belong to
the given case (name and content hash), have the case's dimensions, and hold no
NaN/inf in any optimal row; anything else is a :class:`DatasetError` naming the
dataset, field and row.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import DatasetError


@dataclass(frozen=True)
class ProxyData:
    """Optimal rows of a dataset in the proxy convention.

    ``x``: ``(S, 2L)`` = ``[pd, qd]``; ``y``: ``(S, 2G + 2N)`` = ``[pg, qg, vm, va]``;
    ``rows``: the dataset row of each sample.
    """

    path: Path
    case_name: str
    case_hash: str
    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    n_rows: int
    sampler: dict[str, Any] | None
    seed: int | None
    file_sha256: str
    content_sha256: str
    attrs: dict[str, Any]
    parts: tuple[dict[str, Any], ...] = ()

    @property
    def n_samples(self) -> int:
        """Number of optimal samples."""
        return int(self.x.shape[0])


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def read_proxy_data(path: str | os.PathLike[str], case: Any) -> ProxyData:
    """Read ``path`` for the compiled ``case``; see module docstring for the checks."""
    import h5py

    from gridverify.fileio import require_file
    from gridverify.opf.dataset import (
        H5_ERRORS,
        SCHEMA_VERSION,
        STATUS_CODES,
        check_attr,
        checked_flags,
        reading,
    )

    path = require_file(path)
    try:
        fh = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise DatasetError(f"{path}: not an HDF5 file ({_why(exc)})") from None
    with reading(path, "the file"), fh:
        with reading(path, "the attributes"):
            attrs = {k: _attr(v) for k, v in fh.attrs.items()}
        ver = attrs.get("schema_version")
        if ver != SCHEMA_VERSION:
            raise DatasetError(f"{path}: attribute schema_version: expected {SCHEMA_VERSION}, "
                               f"got {ver!r}")
        for key in ("sampler", "seed"):  # optional here; when present, as written
            if key in attrs:
                check_attr(str(path), key, attrs[key])
        name = attrs.get("case_name")
        chash = attrs.get("case_hash")
        if chash != case.content_hash:
            raise DatasetError(
                f"{path}: dataset is of case {name!r} (hash {str(chash)[:12]}...), not of case "
                f"{case.name!r} (hash {case.content_hash[:12]}...)"
            )
        want = {
            "inputs/pd": case.n_load,
            "inputs/qd": case.n_load,
            "outputs/pg": case.n_gen,
            "outputs/qg": case.n_gen,
            "outputs/vm": case.n_bus,
            "outputs/va": case.n_bus,
        }
        arrays: dict[str, np.ndarray] = {}
        n_rows = None
        for key, width in want.items():
            with reading(path, f"dataset {key!r}"):
                if key not in fh:
                    raise DatasetError(f"{path}: field {key}: missing")
                a = np.asarray(fh[key][()], dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != width:
                raise DatasetError(
                    f"{path}: field {key}: shape {a.shape}, case {case.name!r} needs (S, {width})"
                )
            if n_rows is None:
                n_rows = a.shape[0]
            elif a.shape[0] != n_rows:
                raise DatasetError(f"{path}: field {key}: {a.shape[0]} rows, expected {n_rows}")
            arrays[key] = a
        with reading(path, "dataset 'status'"):
            if "status" not in fh:
                raise DatasetError(f"{path}: field status: missing")
            status = np.asarray(fh["status"][()])
        if status.shape != (n_rows,):
            raise DatasetError(f"{path}: field status: shape {status.shape}, expected ({n_rows},)")
        with reading(path, "dataset 'done'"):
            if "done" not in fh:
                raise DatasetError(f"{path}: field done: missing")
            done = np.asarray(fh["done"][()])
        if done.shape != (n_rows,):
            raise DatasetError(f"{path}: field done: shape {done.shape}, expected ({n_rows},)")
    assert n_rows is not None
    status, done = checked_flags(path, status, done)
    # a row is final once ``done``: a run killed between writing a row's outputs
    # and its ``done`` flag leaves rows that are not (docs/dataset.md)
    rows = np.flatnonzero(done & (status == STATUS_CODES["optimal"]))
    x = np.concatenate([arrays["inputs/pd"], arrays["inputs/qd"]], axis=1)[rows]
    y = np.concatenate(
        [arrays[k] for k in ("outputs/pg", "outputs/qg", "outputs/vm", "outputs/va")], axis=1
    )[rows]
    for label, a in (("inputs", x), ("outputs", y)):
        bad = ~np.all(np.isfinite(a), axis=1)
        if np.any(bad):
            r = int(rows[np.flatnonzero(bad)[0]])
            raise DatasetError(
                f"{path}: field {label}: row {r} has status optimal but holds NaN/inf "
                f"({int(bad.sum())} such rows)"
            )
    if rows.size == 0:
        raise DatasetError(f"{path}: no optimal rows (done, status == 1) to train on")
    sampler = json.loads(attrs["sampler"]) if "sampler" in attrs else None  # checked above
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    seed = attrs.get("seed")
    return ProxyData(
        path=path,
        case_name=str(name),
        case_hash=str(chash),
        x=x,
        y=y,
        rows=rows,
        n_rows=int(n_rows),
        sampler=sampler,
        seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
        file_sha256=_sha256(path),
        content_sha256=h.hexdigest(),
        attrs=attrs,
    )


def read_proxy_data_many(paths: list[str | os.PathLike[str]], case: Any) -> ProxyData:
    """Several datasets of one case and one sampler, concatenated in the given order.

    Each file is checked as in :func:`read_proxy_data`; files with different
    samplers (regions) or duplicate (sampler, seed) pairs are a :class:`DatasetError`.
    ``rows`` then index the concatenated rows; ``parts`` describes each file.
    """
    if not paths:
        raise DatasetError("no dataset given")
    ds = [read_proxy_data(p, case) for p in paths]
    parts = tuple(
        {
            "path": str(d.path),
            "file_sha256": d.file_sha256,
            "content_sha256": d.content_sha256,
            "seed": d.seed,
            "n_rows": d.n_rows,
            "n_optimal": d.n_samples,
        }
        for d in ds
    )
    if len(ds) == 1:
        return ProxyData(**{**ds[0].__dict__, "parts": parts})
    first = ds[0]
    seen = set()
    for d in ds:
        if d.sampler != first.sampler:
            raise DatasetError(
                f"{d.path}: sampler {d.sampler} differs from {first.path}'s {first.sampler}"
            )
        if d.seed in seen:
            raise DatasetError(f"{d.path}: seed {d.seed} used by another dataset (same samples)")
        seen.add(d.seed)
    x = np.concatenate([d.x for d in ds])
    y = np.concatenate([d.y for d in ds])
    offsets = np.cumsum([0] + [d.n_rows for d in ds[:-1]])
    rows = np.concatenate([d.rows + off for d, off in zip(ds, offsets)])
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    files = hashlib.sha256("".join(d.file_sha256 for d in ds).encode()).hexdigest()
    return ProxyData(
        path=first.path,
        case_name=first.case_name,
        case_hash=first.case_hash,
        x=x,
        y=y,
        rows=rows,
        n_rows=int(sum(d.n_rows for d in ds)),
        sampler=first.sampler,
        seed=first.seed,
        file_sha256=files,
        content_sha256=h.hexdigest(),
        attrs=first.attrs,
        parts=parts,
    )


def region_from_sampler(case: Any, sampler: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Input box ``(lower, upper)`` of length ``2L`` of a box or pglearn sampler.

    Both samplers scale a load's pd and qd by one factor in the sampler's
    :meth:`~gridverify.opf.samplers.BoxSampler.factor_range`.
    """
    from gridverify.opf.samplers import sampler_from_json

    if not sampler:
        raise DatasetError("dataset has no sampler attribute to derive the region from")
    f_lo, f_hi = sampler_from_json(json.dumps(sampler)).factor_range()
    nom = np.concatenate([np.asarray(case.pd), np.asarray(case.qd)]).astype(np.float64)
    lo = np.minimum(f_lo * nom, f_hi * nom)
    hi = np.maximum(f_lo * nom, f_hi * nom)
    return lo, hi


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
