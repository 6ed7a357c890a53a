"""Resumable branch-and-bound: the progress of ``certify(method="bab")`` in a file.

A long ``--method bab`` run (``--timeout 1200`` on case118) that is stopped
loses its searches.  With a checkpoint file, :func:`gridverify.certify` saves
what branch-and-bound has established (at most every :data:`SAVE_EVERY_S`
seconds and when the stage ends): every violation row's bound, every
constraint's worst load found, and which searches are done.  Run again with the
same file, it first recomputes the stages before branch-and-bound (sampling,
bounds, attack: deterministic for a seed), then folds the saved progress in
(:meth:`Checkpoint.restore`) and goes on with the searches not done yet.

Soundness: the saved bounds were computed on the same graph over the same
region (the file's run key, :func:`run_key`, covers the case, the proxy, the
region, the constraints, the thresholds, the seed and the rounding pad), so the
smaller of a saved and a new bound is a bound; saved worst loads are
re-evaluated on the proxy and the grid equations, never taken on trust (one
outside the region, or not finite, marks the file as damaged).  The
file is written to a temporary name and renamed (never half-written).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify.certify.state import State, update_attained
from gridverify.errors import SpecError
from gridverify.fileio import atomic_write_bytes

__all__ = ["SAVE_EVERY_S", "Checkpoint", "run_key"]

#: seconds between two saves during branch-and-bound (and one when it ends)
SAVE_EVERY_S = 20.0
_FORMAT = "gridverify-bab-checkpoint-1"


def run_key(case: Any, model_digest: str, region: Any, constraints: list[Any],
            thresholds: np.ndarray, seed: int, pad: tuple[float, float]) -> str:
    """sha256 of what makes two runs' bounds interchangeable."""
    ident = {
        "case": str(case.content_hash),
        "model": model_digest,
        # the whole region: a factor region's matrix, not only its bounding box (zones
        # of any count share the box of the system load level)
        "region": region.to_dict(),
        "constraints": [[c.family, int(c.component)] for c in constraints],
        "thresholds": np.asarray(thresholds, dtype=np.float64).tolist(),
        "seed": int(seed),
        "pad": [float(pad[0]), float(pad[1])],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


@dataclass
class Checkpoint:
    """The checkpoint file of one run: what it held when opened, and its saving."""

    path: Path
    key: str
    #: per constraint, decision searches done in earlier runs (None: a new file)
    searched: np.ndarray | None = None
    #: per constraint, whether an earlier run finished tightening it
    tightened: np.ndarray | None = None
    _saved: dict[str, np.ndarray] = field(default_factory=dict)
    _last: float = -np.inf

    @classmethod
    def open(cls, path: str | Path, key: str, n_constraints: int, n_rows: int) -> Checkpoint:
        """The checkpoint at ``path``: empty if there is no file yet, else the saved
        progress, which must be of the same run (:class:`SpecError` otherwise)."""
        path = Path(path)
        ck = cls(path, key)
        if not path.exists():
            return ck
        if path.is_dir():
            raise SpecError(f"checkpoint {path}: is a folder (give a file path)")
        try:
            with path.open("rb") as fh:
                if fh.read(4) != b"PK\x03\x04":  # an .npz archive is a zip file
                    raise SpecError(f"checkpoint {path}: not a gridverify checkpoint (not an "
                                    ".npz archive); remove it or give another file")
            with np.load(path, allow_pickle=False) as z:
                saved = {k: z[k] for k in z.files}
        except (OSError, SpecError):
            raise
        except Exception as exc:  # noqa: BLE001 - truncated, empty or corrupt: zip, npy, EOF
            reason = str(exc) or type(exc).__name__
            raise SpecError(f"checkpoint {path}: not a gridverify checkpoint, or a damaged "
                            f"one ({reason}); remove it or give another file") from None
        if str(saved.get("format", "")) != _FORMAT:
            raise SpecError(f"checkpoint {path}: not a gridverify checkpoint")
        if str(saved.get("key", "")) != key:
            raise SpecError(f"checkpoint {path}: saved by another run (case, proxy, region, "
                            "constraints, thresholds or seed differ); remove it or give "
                            "another file")
        _check_fields(path, saved, n_constraints, n_rows)
        ck._saved = saved
        ck.searched = saved["searched"].astype(np.int64)
        ck.tightened = saved["tightened"].astype(bool)
        return ck

    def restore(self, st: State, case: Any, module: torch.nn.Module, space: Any) -> int:
        """Fold the saved bounds and worst loads into ``st``; the number of
        constraints whose bound or worst found it changed.

        ``space``: the run's search box (``lower``, ``upper``); a saved worst load
        outside it, or not finite, marks the file as damaged (SpecError).
        """
        if not self._saved:
            return 0
        ub0, att0 = st.ub.copy(), st.att.copy()
        row_ub = self._saved["row_ub"].astype(np.float64)
        pts = self.worst_loads(space, st.worst.shape)
        if pts is not None:
            update_attained(st, case, module, pts)
        # a saved bound below a value attained (here, by its own worst loads or by
        # this run's samples) cannot come from the same run: refuse, never use it
        saved_ub = st.row_max(np.arange(row_ub.size), np.where(np.isnan(row_ub), np.inf,
                                                                row_ub))
        bad = np.flatnonzero(saved_ub < st.att - 1e-9 * (1.0 + np.abs(st.att)))
        if bad.size:
            c = st.physics.constraints[int(bad[0])]
            raise SpecError(f"checkpoint {self.path}: its bound of {c.family}[{c.component}] "
                            f"({saved_ub[bad[0]]:.6g}) lies below a value attained there "
                            f"({st.att[bad[0]]:.6g}): the file is damaged; remove it")
        st.row_ub = np.minimum(st.row_ub, np.where(np.isnan(row_ub), np.inf, row_ub))
        st.ub = np.minimum(st.ub, st.row_max(np.arange(st.row_ub.size), st.row_ub))
        return int(np.count_nonzero((st.ub < ub0) | (st.att > att0)))

    def worst_loads(self, space: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        """The saved worst loads found (float64), checked against this run: ``shape``
        (its worst-load array's) and ``space`` (its search box: a load outside it, or
        not finite, marks the file as damaged); SpecError otherwise.  ``None`` when
        the file holds none."""
        worst = self._saved.get("worst") if self._saved else None
        if worst is None:
            return None
        if worst.shape != tuple(shape):
            raise SpecError(f"checkpoint {self.path}: its worst loads are of shape "
                            f"{worst.shape}, this run's {tuple(shape)}: saved by another "
                            "run; remove it")
        pts = worst[np.isfinite(self._saved["att"])].astype(np.float64)
        lo, hi = np.asarray(space.lower), np.asarray(space.upper)
        out = ~(np.isfinite(pts) & (pts >= lo) & (pts <= hi)).all(axis=1)
        if out.any():
            raise SpecError(f"checkpoint {self.path}: {int(out.sum())} of its worst loads "
                            "lie outside the region or are not finite: the file is "
                            "damaged; remove it")
        return pts

    def save(self, st: State, searched: np.ndarray, tightened: np.ndarray, *,
             force: bool = False) -> None:
        """Write the progress (at most every :data:`SAVE_EVERY_S` s unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < SAVE_EVERY_S:
            return
        buf = io.BytesIO()
        np.savez(buf, format=np.array(_FORMAT), key=np.array(self.key),
                 row_ub=st.row_ub, att=st.att, worst=st.worst,
                 searched=np.asarray(searched, dtype=np.int64),
                 tightened=np.asarray(tightened, dtype=bool))
        atomic_write_bytes(self.path, buf.getvalue())
        self._last = now


#: the fields of a checkpoint: (numpy dtype kinds accepted, what they hold)
_FIELDS = {"row_ub": ("f", "numbers"), "att": ("f", "numbers"),
           "searched": ("iu", "integers"), "tightened": ("b", "booleans")}


def _check_fields(path: Path, saved: dict[str, np.ndarray], n_constraints: int,
                  n_rows: int) -> None:
    """SpecError naming the first field of ``saved`` that is missing, of the wrong kind
    or shape, or (``searched``) negative; ``worst``, when there, a float matrix."""
    size = {"row_ub": n_rows, "att": n_constraints, "searched": n_constraints,
            "tightened": n_constraints}
    for name, (kinds, what) in _FIELDS.items():
        a = saved.get(name)
        if a is None or a.ndim != 1 or a.shape[0] != size[name]:
            raise SpecError(f"checkpoint {path}: field {name} is missing or of the wrong "
                            f"size (expected {size[name]} entries); remove it")
        if a.dtype.kind not in kinds:
            raise SpecError(f"checkpoint {path}: field {name} holds {a.dtype} values, not "
                            f"{what}; remove it")
    if (saved["searched"] < 0).any():
        raise SpecError(f"checkpoint {path}: field searched holds a negative count; remove it")
    w = saved.get("worst")
    if w is not None and (w.ndim != 2 or w.dtype.kind != "f"):
        raise SpecError(f"checkpoint {path}: field worst is not a matrix of numbers; remove it")
