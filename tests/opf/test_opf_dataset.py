"""OPF datasets: schema, failures recorded, validation, kill-and-resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from gridverify.errors import DatasetError
from gridverify.grid import balance_residuals, load_compiled
from gridverify.opf import SolverOptions
from gridverify.opf.dataset import DATASET_MAX_ITER, STATUS_CODES, load_dataset, make_dataset
from gridverify.opf.samplers import BoxSampler, PGLearnSampler

CASE14 = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
CASE5 = load_compiled("pglib_opf_case5_pjm", emit_warnings=False)
OPTS = SolverOptions(max_iter=DATASET_MAX_ITER)  # what `dataset make` uses by default
KEYS = {
    "inputs/pd": ("float64", "L"),
    "inputs/qd": ("float64", "L"),
    "outputs/pg": ("float64", "G"),
    "outputs/qg": ("float64", "G"),
    "outputs/vm": ("float64", "N"),
    "outputs/va": ("float64", "N"),
    "objective": ("float64", None),
    "solve_seconds": ("float64", None),
    "status": ("int8", None),
    "done": ("bool", None),
}


@pytest.fixture(scope="module")
def case14_20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ds") / "case14.h5"
    make_dataset(CASE14, 20, path, BoxSampler(0.9, 1.1), seed=11, workers=1, options=OPTS,
                 progress=False)
    return path


def test_schema_exact(case14_20: Path) -> None:
    dims = {"L": CASE14.n_load, "G": CASE14.n_gen, "N": CASE14.n_bus}
    with h5py.File(case14_20, "r") as f:
        found = set()
        f.visititems(lambda name, obj: found.add(name) if isinstance(obj, h5py.Dataset) else None)
        assert found == set(KEYS)
        for key, (dtype, dim) in KEYS.items():
            assert f[key].dtype == np.dtype(dtype), key
            assert f[key].shape == ((20, dims[dim]) if dim else (20,)), key
        a = dict(f.attrs)
    assert a["schema_version"] == 1 and a["n_samples"] == 20 and a["seed"] == 11
    assert a["case_name"] == "pglib_opf_case14_ieee" and a["case_hash"] == CASE14.content_hash
    assert a["solver_name"] == "pounce" and a["solver_version"]
    assert a["gridverify_version"]
    import json

    assert json.loads(a["sampler"]) == {"kind": "box", "low": 0.9, "high": 1.1}
    assert json.loads(a["status_codes"]) == STATUS_CODES


def test_case14_complete_and_physical(case14_20: Path) -> None:
    d = load_dataset(case14_20, CASE14)
    assert d.done.all() and d.solved.all()
    sampler = BoxSampler(0.9, 1.1)
    for i in range(d.n_samples):
        pd, qd = sampler.sample(CASE14, 11, i)
        assert np.array_equal(pd, d.pd[i]) and np.array_equal(qd, d.qd[i])
        rp, rq = balance_residuals(CASE14, pg=d.pg[i], qg=d.qg[i], vm=d.vm[i], va=d.va[i],
                                   pd=d.pd[i], qd=d.qd[i])
        assert max(np.abs(rp).max(), np.abs(rq).max()) <= 1e-6
        pg = d.pg[i]
        cost = np.sum(CASE14.cost_c2 * pg**2 + CASE14.cost_c1 * pg + CASE14.cost_c0)
        assert cost == pytest.approx(d.objective[i], rel=1e-12)
    assert np.all(d.solve_seconds > 0)
    assert len(set(np.round(d.objective, 6))) == 20  # every sample its own optimum


def test_rerun_complete_file_is_noop_and_mismatch_is_error(case14_20: Path) -> None:
    before = load_dataset(case14_20)
    again = make_dataset(CASE14, 20, case14_20, BoxSampler(0.9, 1.1), seed=11, options=OPTS,
                         progress=False)
    assert np.array_equal(before.pg, again.pg, equal_nan=True)
    with pytest.raises(DatasetError, match="seed"):
        make_dataset(CASE14, 20, case14_20, BoxSampler(0.9, 1.1), seed=12, progress=False)
    with pytest.raises(DatasetError, match="sampler"):
        make_dataset(CASE14, 20, case14_20, BoxSampler(0.8, 1.1), seed=11, progress=False)
    with pytest.raises(DatasetError, match="n_samples"):
        make_dataset(CASE14, 21, case14_20, BoxSampler(0.9, 1.1), seed=11, progress=False)
    with pytest.raises(DatasetError, match="case"):
        make_dataset(CASE5, 20, case14_20, BoxSampler(0.9, 1.1), seed=11, progress=False)
    # rows solved under another tolerance or iteration limit would be mixed in
    with pytest.raises(DatasetError, match=r"solver settings max_iter 3000 != 3, tol 1e-08 != "
                                           r"0.01"):
        make_dataset(CASE14, 20, case14_20, BoxSampler(0.9, 1.1), seed=11, progress=False,
                     options=replace(OPTS, max_iter=3, tol=1e-2))
    with pytest.raises(DatasetError, match="not of case 'pglib_opf_case5_pjm'"):
        load_dataset(case14_20, CASE5)


def _corrupt(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


@pytest.mark.parametrize(
    ("label", "edit", "match"),
    [
        ("missing", lambda f: f.__delitem__("outputs/vm"), "missing dataset 'outputs/vm'"),
        ("attr", lambda f: f.attrs.__delitem__("case_hash"), "missing attribute 'case_hash'"),
        ("shape", lambda f: (f.__delitem__("objective"),
                             f.create_dataset("objective", (7,), dtype="f8")), "shape"),
        ("naninput", lambda f: f["inputs/pd"].__setitem__((3, 0), np.nan), "NaN"),
        ("status", lambda f: f["status"].__setitem__(2, 9), "unknown status"),
        ("optnan", lambda f: f["outputs/vm"].__setitem__((4, 1), np.nan),
         "sample 4 is optimal but holds NaN"),
        ("schema", lambda f: f.attrs.__setitem__("schema_version", 7), "schema_version"),
        ("samplerjson", lambda f: f.attrs.__setitem__("sampler", "{not json"),
         "attribute 'sampler' is not valid JSON"),
        ("samplerint", lambda f: f.attrs.__setitem__("sampler", np.int64(3)),
         "attribute 'sampler' is not a string: 3"),
        ("samplerlist", lambda f: f.attrs.__setitem__("sampler", "[1, 2]"),
         "attribute 'sampler' is not a JSON object"),
        ("settings", lambda f: f.attrs.__setitem__("solver_settings", "[1,2"),
         "attribute 'solver_settings' is not valid JSON"),
        ("seed", lambda f: f.attrs.__setitem__("seed", "abc"),
         "attribute 'seed' is not an integer: 'abc'"),
        ("bytes", lambda f: (f.__delitem__("inputs/qd"),
                             f.__setitem__("inputs/qd", np.full((20, 11), b"a"))),
         r"dataset 'inputs/qd' is not numeric \(dtype \|S1\)"),
    ],
)
def test_validation_errors(case14_20: Path, tmp_path: Path, label: str, edit, match: str) -> None:  # noqa: ANN001
    bad = _corrupt(case14_20, tmp_path / f"{label}.h5", edit)
    with pytest.raises(DatasetError, match=match):
        load_dataset(bad)


def test_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        load_dataset(p)


def test_failed_samples_are_recorded(tmp_path: Path) -> None:
    # Demand at 3x nominal exceeds case5's generation: no sample can be optimal.
    out = tmp_path / "c5.h5"
    d = make_dataset(CASE5, 4, out, BoxSampler(3.0, 3.2), seed=0,
                     options=SolverOptions(max_iter=150), progress=False)
    assert d.done.all()
    assert not d.solved.any()
    assert set(d.status.tolist()) <= {2, 3, 4} and len(d.status) == 4
    assert np.isnan(d.pg).all() and np.isnan(d.objective).all()
    assert np.isfinite(d.pd).all()


def _ref_run(path: Path, n: int, seed: int) -> object:
    return make_dataset(CASE14, n, path, PGLearnSampler(0.85, 1.1, 0.05), seed=seed, workers=1,
                        options=OPTS, progress=False)


def _done_count(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["done"][...].sum())
    except (OSError, KeyError):
        return -1


# The run under test, as a real process.  It calls make_dataset directly rather than
# the full CLI (whose parser imports every command module) to keep the test fast;
# the CLI's own resume path is covered in test_opf_cli.py.
RUN_SCRIPT = """
import sys
from gridverify.grid import load_compiled
from gridverify.opf import SolverOptions
from gridverify.opf.dataset import make_dataset
from gridverify.opf.samplers import sampler_from_spec
if __name__ == "__main__":
    n, seed, out, workers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    make_dataset(case, n, out, sampler_from_spec("pglearn:0.85,1.1,0.05"), seed=seed,
                 workers=workers, options=SolverOptions(max_iter=200), progress=False)
"""


def test_kill_and_resume(tmp_path: Path) -> None:
    n, seed = 150, 5
    out = tmp_path / "killed.h5"
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    cmd = [sys.executable, str(script), str(n), str(seed), str(out)]
    proc = subprocess.Popen([*cmd, "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None or _done_count(out) >= 20:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = load_dataset(out, CASE14)  # readable and consistent after SIGKILL
    k = int(partial.done.sum())
    assert 20 <= k < n
    assert (partial.status[~partial.done] == 0).all()

    ref = _ref_run(tmp_path / "ref.h5", n, seed)
    done = partial.done
    np.testing.assert_allclose(partial.vm[done], ref.vm[done], rtol=1e-9, atol=1e-12)

    rerun = subprocess.run([*cmd, "1"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    full = load_dataset(out, CASE14)
    assert full.done.all() and (full.status != 0).all()
    assert np.array_equal(full.pd, ref.pd) and np.array_equal(full.qd, ref.qd)
    assert np.array_equal(full.status, ref.status)
    # rows written before the kill are untouched by the resume
    assert np.array_equal(full.vm[done], partial.vm[done])
    for key in ("pg", "qg", "vm", "va", "objective"):
        np.testing.assert_allclose(getattr(full, key), getattr(ref, key), rtol=1e-9,
                                   atol=1e-12, err_msg=key)


@pytest.mark.slow
def test_case118_200_samples_cli(tmp_path: Path) -> None:
    out = tmp_path / "c118.h5"
    r = subprocess.run(
        [sys.executable, "-m", "gridverify", "dataset", "make", "pglib_opf_case118_ieee",
         "--samples", "200", "--out", str(out), "--workers", "2", "--no-progress"],
        capture_output=True, text=True, timeout=1200,
    )
    assert r.returncode == 0, r.stderr
    d = load_dataset(out, load_compiled("pglib_opf_case118_ieee", emit_warnings=False))
    assert d.done.all() and d.solved.sum() >= 190


def test_file_in_use_by_another_run(tmp_path: Path) -> None:
    out = tmp_path / "busy.h5"
    make_dataset(CASE5, 2, out, BoxSampler(), seed=0, options=OPTS, progress=False)
    with h5py.File(out, "r+") as f:  # make one row pending again
        f["done"][1] = False
        f["status"][1] = 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r+'); "
         "print('open', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert load_dataset(out).done.tolist() == [True, False]  # readers are not blocked
        with pytest.raises(DatasetError, match="another run"):
            make_dataset(CASE5, 2, out, BoxSampler(), seed=0, options=OPTS, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert make_dataset(CASE5, 2, out, BoxSampler(), seed=0, options=OPTS,
                        progress=False).done.all()


def test_missing_output_folders_are_created(tmp_path: Path) -> None:
    """As every other output (and as ``dataset make``'s path check promises): the
    dataset is written into folders created for it."""
    path = tmp_path / "a" / "b" / "d.h5"
    ds = make_dataset(CASE5, 2, path, BoxSampler(0.95, 1.05), seed=1, options=OPTS,
                      progress=False)
    assert path.is_file() and ds.done.all()
    assert [p.name for p in path.parent.iterdir()] == ["d.h5"]  # no temporary left


class _RacedSampler(BoxSampler):
    """A box sampler that, while this run creates its file, has another run create it
    first (a real dataset of that other run)."""

    def sample(self, case, seed, index):  # noqa: ANN001, ANN201
        if index == 0 and not self.other.exists():
            make_dataset(CASE5, 2, self.other, BoxSampler(0.95, 1.05), seed=7, options=OPTS,
                         progress=False)
        return super().sample(case, seed, index)


def test_two_runs_creating_one_file_never_replace_each_other(tmp_path: Path) -> None:
    """The run that loses the race to create the file is refused (one line naming the
    file) and the winner's dataset is left as it was, never replaced by an empty one."""
    path = tmp_path / "d.h5"
    sampler = _RacedSampler(0.9, 1.1)
    object.__setattr__(sampler, "other", path)
    with pytest.raises(DatasetError, match="another run created this dataset"):
        make_dataset(CASE5, 3, path, sampler, seed=1, options=OPTS, progress=False)
    ds = load_dataset(path)
    assert ds.n_samples == 2 and ds.done.all() and ds.attrs["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_a_file_in_the_way_of_the_folder_is_not_called_another_run(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(OSError, match="afile") as err:
        make_dataset(CASE5, 2, tmp_path / "afile" / "b.h5", BoxSampler(0.95, 1.05), seed=1,
                     options=OPTS, progress=False)
    assert "another run" not in str(err.value)


def test_counts_and_mean_time_read_only_the_samples_done(tmp_path: Path) -> None:
    """A file killed between two flushes (status written, ``done`` not yet): those
    samples count as pending and their solve times stay out of the mean; a rerun with
    fewer samples than the file holds is refused like one with more."""
    p = tmp_path / "a.h5"
    make_dataset(CASE5, 4, p, BoxSampler(0.95, 1.05), seed=1, options=OPTS, progress=False)
    with h5py.File(p, "r+") as f:
        f["done"][2] = False
        f["done"][3] = False
        f["solve_seconds"][3] = 1000.0
        secs = np.asarray(f["solve_seconds"][:2])
    d = load_dataset(p)
    assert d.status_counts()["pending"] == 2
    assert sum(v for k, v in d.status_counts().items() if k != "pending") == 2
    assert d.summary()["mean_solve_seconds"] == pytest.approx(float(secs.mean()))
    with pytest.raises(DatasetError, match="n_samples"):
        make_dataset(CASE5, 3, p, BoxSampler(0.95, 1.05), seed=1, options=OPTS, progress=False)
