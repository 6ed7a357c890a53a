"""Helpers of the study tests (a small study file; comparing two study folders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "case14_relu"

SMALL_STUDY = f"""
[study]
name = "small"
methods = ["ibp", "crown"]
samples = 64
seed = 3

[cases.c14]
case = "pglib_opf_case14_ieee"
models = ["{MODEL}"]

[regions.near]
box = [0.97, 1.03]

[regions.wide]
pglearn = [0.9, 1.1, 0.05]

[constraints.all]
families = ["all"]
"""

# one quick job (ibp, no sampling, one family)
ONE_JOB_STUDY = f"""
[study]
name = "tiny"
methods = ["ibp"]
samples = 0
attack = "none"
radius = false

[cases.c14]
case = "pglib_opf_case14_ieee"
models = ["{MODEL}"]

[regions.near]
box = [0.97, 1.03]

[constraints.some]
families = ["vm_max"]
"""


def write_small_study(folder: Path) -> Path:
    """Write the small study file (4 jobs) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "small.toml"
    p.write_text(SMALL_STUDY, encoding="utf-8")
    return p


def compare_outputs(a: Path, b: Path) -> list[str]:
    """Job ids of two study folders after checking their results are equal.

    Records are compared without timings, hosts and dates; the HDF5 bounds
    bitwise (NaN equal to NaN).
    """
    import h5py

    from gridverify.study.jobs import comparable_record

    ids_a = sorted(p.stem for p in (a / "jobs").glob("*.json"))
    ids_b = sorted(p.stem for p in (b / "jobs").glob("*.json"))
    assert ids_a == ids_b
    for jid in ids_a:
        ra = json.loads((a / "jobs" / f"{jid}.json").read_text())
        rb = json.loads((b / "jobs" / f"{jid}.json").read_text())
        assert ra["state"] == "done", (jid, ra.get("error"))
        assert comparable_record(ra) == comparable_record(rb), jid
        with h5py.File(a / "jobs" / f"{jid}.h5") as fa, h5py.File(b / "jobs" / f"{jid}.h5") as fb:
            assert sorted(fa) == sorted(fb)
            for k in fa:
                va, vb = fa[k][()], fb[k][()]
                if va.dtype.kind == "f":
                    np.testing.assert_array_equal(va, vb, err_msg=f"{jid}:{k}")
                else:
                    assert (va == vb).all(), f"{jid}:{k}"
    return ids_a
