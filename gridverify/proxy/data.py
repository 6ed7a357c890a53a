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


def read_proxy_data(path: str | os.PathLike[str], case: Any) -> ProxyData:
    """Read ``path`` for ``case`` (compiled, or a name, path or network
    :func:`~gridverify.grid.compile_case` takes); see module docstring for the checks.

    The file is read and checked by :func:`gridverify.opf.dataset.load_dataset`
    (the reader of ``dataset info``: structure, dtypes, status codes, finite
    optimal rows, the case's hash and sizes), without HDF5's file lock, so that
    the finished rows of a dataset another run is still filling can be read.
    """
    from gridverify.fileio import require_file
    from gridverify.grid import compile_case
    from gridverify.opf.dataset import load_dataset

    case = compile_case(case)
    path = require_file(path)
    d = load_dataset(path, case)
    rows = np.flatnonzero(d.solved)  # done and optimal (docs/dataset.md)
    if rows.size == 0:
        raise DatasetError(f"{path}: no optimal rows (done, status == 1) to train on")
    x = np.concatenate([d.pd, d.qd], axis=1)[rows]
    y = np.concatenate([d.pg, d.qg, d.vm, d.va], axis=1)[rows]
    _check_spread(path, rows, x, ("inputs/pd", "inputs/qd"), case.n_load)
    _check_spread(path, rows, y, ("outputs/pg", "outputs/qg"), case.n_gen)
    _check_spread(path, rows, y[:, 2 * case.n_gen:], ("outputs/vm", "outputs/va"), case.n_bus)
    attrs = d.attrs
    sampler = json.loads(attrs["sampler"]) if "sampler" in attrs else None  # checked
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    seed = attrs.get("seed")
    return ProxyData(
        path=path,
        case_name=str(attrs.get("case_name")),
        case_hash=str(attrs.get("case_hash")),
        x=x,
        y=y,
        rows=rows,
        n_rows=int(d.pd.shape[0]),
        sampler=sampler,
        seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
        file_sha256=_sha256(path),
        content_sha256=h.hexdigest(),
        attrs=attrs,
    )


def _check_spread(path: Path, rows: np.ndarray, a: np.ndarray, fields: tuple[str, str],
                  width: int) -> None:
    """DatasetError naming the field and row of a value too large to normalize: the
    first ``2 * width`` columns of ``a`` are the two ``fields``, ``width`` each (a
    finite 1e300 overflowed the standard deviation, and training reported it as
    diverging)."""
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.std(a[:, :2 * width], axis=0)
    for col in np.flatnonzero(~np.isfinite(spread)):
        r = int(np.argmax(np.abs(a[:, col])))
        raise DatasetError(
            f"{path}: field {fields[col // width]}: row {int(rows[r])}: value "
            f"{a[r, col]:.3g} is too large to train on (its column's spread overflows)")


def read_proxy_data_many(paths: list[str | os.PathLike[str]], case: Any) -> ProxyData:
    """Several datasets of one case and one sampler, concatenated in the given order.

    Each file is checked as in :func:`read_proxy_data`; files with different
    samplers (regions) or duplicate (sampler, seed) pairs are a :class:`DatasetError`.
    ``rows`` then index the concatenated rows; ``parts`` describes each file.
    """
    if not paths:
        raise DatasetError("no dataset given")
    from gridverify.grid import compile_case

    case = compile_case(case)  # once for every file
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
