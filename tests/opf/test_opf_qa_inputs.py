"""QA findings on `dataset` / `opf` inputs: damaged HDF5 files, wrong shapes, huge
sizes, --print-level, solver logs and --json, --workers, 'acceptable' solves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_run import run

import gridverify.opf.dataset as ds
from gridverify.errors import DatasetError, SolverError
from gridverify.grid import load_compiled
from gridverify.opf import SolverOptions
from gridverify.opf.backends import RawResult, solver_output_to_stderr
from gridverify.opf.samplers import BoxSampler

CASE14 = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
CASE5 = load_compiled("pglib_opf_case5_pjm", emit_warnings=False)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def fresh14(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a new (nothing solved) 10-sample case14 dataset, as `dataset make`
    creates it (seed 0, box 0.9..1.1)."""
    path = tmp_path_factory.mktemp("fresh") / "f.h5"
    ds._create_file(str(path), CASE14, 10, BoxSampler(0.9, 1.1), 0, "pounce", "0",
                    SolverOptions().settings())
    return path.read_bytes()


def _damaged(tmp_path: Path, data: bytes, marker: bytes, offset: int, new: bytes) -> Path:
    b = bytearray(data)
    i = b.find(marker)
    assert i >= 0
    b[i + offset : i + offset + len(new)] = new
    path = tmp_path / "bad.h5"
    path.write_bytes(bytes(b))
    return path


# ------------------------------------------------------------- bugs 1 and 2
def test_damaged_attribute_header_is_one_line_naming_file(
    tmp_path: Path, fresh14: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    # a byte of the attribute message before the name: h5py raises RuntimeError
    path = _damaged(tmp_path, fresh14, b"status_codes", -8, b"\x7f")
    with pytest.raises(DatasetError, match=r"bad\.h5: cannot read attribute 'status_codes'"):
        ds.load_dataset(path)
    code, out, err = run(capsys, "dataset", "info", str(path))
    assert code == 2 and out == ""
    assert one_line(err).startswith(f"gridverify: error: {path}: cannot read attribute")


def test_damaged_global_heap_names_file(tmp_path: Path, fresh14: bytes,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # the variable-length strings' heap: "Can't synchronously read data (bad global heap
    # collection signature)" used to come without the file's name
    path = _damaged(tmp_path, fresh14, b"GCOL", 0, b"XXXX")
    code, _, err = run(capsys, "dataset", "info", str(path), "--json")
    line = one_line(err)
    assert code == 2 and str(path) in line and "cannot read attribute" in line
    assert "global heap" in line


def test_read_error_of_a_dataset_names_it(tmp_path: Path, fresh14: bytes,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.h5"
    path.write_bytes(fresh14)
    real = h5py.Dataset.__getitem__

    def failing(self, key):  # noqa: ANN001, ANN202
        if self.name == "/outputs/pg":
            raise RuntimeError("Can't synchronously read data (wrong B-tree signature)")
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", failing)
    with pytest.raises(DatasetError) as info:
        ds.load_dataset(path)
    assert str(info.value) == (f"{path}: cannot read dataset 'outputs/pg': Can't "
                               "synchronously read data (wrong B-tree signature)")


def test_resume_of_a_damaged_file_is_exit_2_and_leaves_it(
    tmp_path: Path, fresh14: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _damaged(tmp_path, fresh14, b"GCOL", 0, b"XXXX")
    before = path.read_bytes()
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case14_ieee", "--samples", "10",
                       "--out", str(path), "--no-progress")
    assert code == 2 and str(path) in one_line(err)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("marker", "offset", "new"),
                         [(b"GCOL", 0, b"XXXX"), (b"status_codes", -8, b"\x7f")])
def test_train_reads_damaged_file_as_dataset_error(
    tmp_path: Path, fresh14: bytes, capsys: pytest.CaptureFixture[str],
    marker: bytes, offset: int, new: bytes,
) -> None:
    from gridverify.proxy.data import read_proxy_data

    path = _damaged(tmp_path, fresh14, marker, offset, new)
    with pytest.raises(DatasetError, match="cannot read"):
        read_proxy_data(path, CASE14)
    for extra in ([], ["--case", "pglib_opf_case14_ieee"]):
        code, _, err = run(capsys, "train", str(path), "--out", str(tmp_path / "m"),
                           "--epochs", "2", "--no-progress", *extra)
        assert code == 2 and str(path) in one_line(err)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------- bug 3
def _reshape_pg(path: Path, n_gen: int) -> None:
    with h5py.File(path, "r+") as f:
        del f["outputs/pg"]
        f.create_dataset("outputs/pg", data=np.full((10, n_gen), np.nan))


def test_wrong_shape_names_the_wrong_dataset(tmp_path: Path, fresh14: bytes,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.h5"
    path.write_bytes(fresh14)
    _reshape_pg(path, 4)  # case14 has 5 generators
    msg = f"{path}: dataset 'outputs/pg' has shape (10, 4), expected (10, 5)"
    with pytest.raises(DatasetError) as info:
        ds.load_dataset(path)
    assert str(info.value) == msg
    with pytest.raises(DatasetError) as info:
        ds.load_dataset(path, CASE14)
    assert str(info.value) == msg
    code, _, err = run(capsys, "dataset", "info", str(path))
    assert code == 2 and one_line(err) == f"gridverify: error: {msg}"


def test_wrong_shape_of_an_unknown_case_names_both(tmp_path: Path, fresh14: bytes) -> None:
    path = tmp_path / "w.h5"
    path.write_bytes(fresh14)
    _reshape_pg(path, 4)
    with h5py.File(path, "r+") as f:
        f.attrs["case_name"] = "no_such_case_here"
        f.attrs["case_hash"] = "0" * 64
    with pytest.raises(DatasetError, match=r"datasets 'outputs/pg' \(10, 4\) and 'outputs/qg' "
                                           r"\(10, 5\) disagree on the number of generators"):
        ds.load_dataset(path)


# ------------------------------------------------------------------- bug 4
def test_huge_sample_count_is_refused_before_writing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case14_ieee", "--samples",
                       "99999999999999", "--out", str(out), "--no-progress")
    line = one_line(err)
    assert code == 2 and "--samples 99999999999999" in line and "memory" in line
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="n_samples 99999999999999"):
        ds.make_dataset(CASE14, 99999999999999, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_factors_that_overflow_are_refused_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case5_pjm", "--samples", "2",
                       "--region", "box:1e308,1e308", "--out", str(out), "--no-progress")
    line = one_line(err)
    assert code == 2 and "box:1e+308,1e+308" in line and "overflow" in line, line
    assert list(tmp_path.iterdir()) == []


def test_dataset_larger_than_free_disk_is_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**6, 0, 100_000))
    # 49.8 kB of arrays, but HDF5's own records come on top (a disk filling up
    # within HDF5's writes crashed h5py): refused
    assert ds.dataset_bytes(CASE14, 100) < 100_000
    with pytest.raises(DatasetError, match=r"--samples 100: .* free in"):
        ds.check_dataset_size(CASE14, 100, tmp_path / "x.h5", "--samples")
    ds.check_dataset_size(CASE14, 1, tmp_path / "x.h5", "--samples")  # 498 bytes fit


def test_memory_error_while_creating_is_a_dataset_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise MemoryError

    monkeypatch.setattr(ds, "_create_file", no_memory)
    with pytest.raises(DatasetError, match="not enough memory for 5 samples"):
        ds.make_dataset(CASE5, 5, tmp_path / "m.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- bug 5
@pytest.mark.parametrize("cmd", [["opf", "solve", "pglib_opf_case5_pjm"],
                                 ["dataset", "make", "pglib_opf_case5_pjm", "--samples", "2",
                                  "--out", "{tmp}/a.h5"]])
@pytest.mark.parametrize("level", ["13", "99", "-1"])
def test_print_level_out_of_range_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 cmd: list[str], level: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in cmd]
    code, out, err = run(capsys, *argv, "--print-level", level)
    assert code == 2 and out == ""
    assert "--print-level" in one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_print_level_bounds_in_options() -> None:
    assert SolverOptions(print_level=12).print_level == 12
    for bad in (-1, 13, 99):
        with pytest.raises(SolverError, match="print_level"):
            SolverOptions(print_level=bad)


# ------------------------------------------------------------------- bug 6
def test_solver_output_to_stderr_moves_descriptor_1(capfd: pytest.CaptureFixture[str]) -> None:
    with solver_output_to_stderr(True):
        os.write(1, b"native log\n")
        print("python log")
    os.write(1, b"after\n")
    with solver_output_to_stderr(False):
        os.write(1, b"kept\n")
    out, err = capfd.readouterr()
    assert out == "after\nkept\n"
    assert "native log" in err and "python log" in err


@pytest.mark.parametrize("solver", ["pounce", "pounce-cli"])
def test_json_with_print_level_is_valid_json(solver: str) -> None:
    r = subprocess.run([sys.executable, "-m", "gridverify", "opf", "solve",
                        "pglib_opf_case5_pjm", "--print-level", "5", "--json", "--solver", solver],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "optimal"
    assert "iter" in r.stderr  # the solver's log went to stderr


# ------------------------------------------------------------------- bug 7
def test_workers_capped_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "max_workers", lambda: 1)
    seen = []
    real_run = ds._run

    def spy(case, d, pending, path, workers, *rest):  # noqa: ANN001, ANN002, ANN202
        seen.append(workers)
        return real_run(case, d, pending, path, workers, *rest)

    monkeypatch.setattr(ds, "_run", spy)
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case5_pjm", "--samples", "2",
                       "--workers", "1000", "--out", str(tmp_path / "a.h5"), "--no-progress")
    assert code == 0 and seen == [1]
    assert "note: --workers 1000 is more than the 1 CPUs here and the 2 samples; using 1 " \
           "worker process" in err
    # the API caps too
    d = ds.make_dataset(CASE5, 2, tmp_path / "b.h5", workers=64, progress=False)
    assert seen == [1, 1] and d.done.all()


def test_workers_help_says_capped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dataset", "make", "--help")
    text = " ".join(out.split())
    assert code == 0 and "one per CPU" in text and "capped" in text


# --------------------------------------------------- 'acceptable' solves (review)
def test_max_limit_violation() -> None:
    from gridverify.opf.acopf import max_limit_violation, solve_opf

    sol = solve_opf(CASE14)
    base = max_limit_violation(CASE14, sol.vm, sol.va, sol.pg, sol.qg)
    assert 0 <= base <= 1e-6
    pg = sol.pg.copy()
    pg[0] = CASE14.pmax[0] + 1e-3
    assert max_limit_violation(CASE14, sol.vm, sol.va, pg, sol.qg) == pytest.approx(1e-3)
    va = sol.va.copy()
    va[int(CASE14.t_bus[0])] += 3.0  # far past any angle-difference limit
    assert max_limit_violation(CASE14, sol.vm, va, sol.pg, sol.qg) > 1.0
    assert max_limit_violation(CASE14, sol.vm * np.nan, sol.va, sol.pg, sol.qg) == np.inf


def test_acceptable_counts_only_when_every_limit_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    import gridverify.opf.acopf as acopf

    model = acopf.ACOPFModel(CASE14)
    sol = model.solve()
    assert sol.optimal

    def raw(**changes: np.ndarray) -> RawResult:
        values = {k: np.array(getattr(sol, a), dtype=float) for k, a in
                  (("vm", "vm"), ("va", "va"), ("pg", "pg"), ("qg", "qg"), ("p_fr", "pf"),
                   ("q_fr", "qf"), ("p_to", "pt"), ("q_to", "qt"))}
        values.update(changes)
        return RawResult("acceptable", "acceptable", "", values)

    pd, qd = np.asarray(CASE14.pd), np.asarray(CASE14.qd)
    assert model._solution(raw(), pd, qd, 0.0).status == "optimal"
    # a point whose balance is tight but that breaks an angle-difference limit
    monkeypatch.setattr(acopf, "max_balance_residual", lambda *a: 0.0)
    va = np.array(sol.va)
    va[int(CASE14.t_bus[0])] += 3.0
    assert model._solution(raw(va=va), pd, qd, 0.0).status == "error"
    qg = np.array(sol.qg)
    qg[0] = CASE14.qmax[0] + 1e-4  # a bound off by more than the tolerance
    assert model._solution(raw(qg=qg), pd, qd, 0.0).status == "error"


def test_make_over_a_file_with_a_damaged_attribute_is_one_line(
        tmp_path: Path, fresh14: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.h5"
    path.write_bytes(fresh14)
    with h5py.File(path, "r+") as f:
        f.attrs["sampler"] = "{not json"
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case14_ieee", "--samples", "10",
                       "--out", str(path))
    assert code == 2
    assert one_line(err).startswith(f"gridverify: error: {path}: attribute 'sampler' is not "
                                     "valid JSON")
    code, _, err = run(capsys, "dataset", "info", str(path))
    assert code == 2 and "attribute 'sampler'" in one_line(err)


# ------------------------------------- datasets edited by hand: types and values
def _replace(key: str, value: object) -> object:
    def edit(f: h5py.File) -> None:
        n = f[key].shape[0]
        del f[key]
        if value == "group":
            f.create_group(key)
        elif value == "datatype":
            f[key] = np.dtype("f8")
        else:
            data = np.zeros(n, dtype=np.asarray(value).dtype)
            data[2] = value
            f.create_dataset(key, data=data)
    return edit


def _retype(key: str, dtype: object) -> object:
    def edit(f: h5py.File) -> None:  # the same shape, zeros of another dtype
        shape = f[key].shape
        del f[key]
        f.create_dataset(key, data=np.zeros(shape, dtype=dtype))
    return edit


def _attr(key: str, value: object) -> object:
    def edit(f: h5py.File) -> None:
        f.attrs[key] = value
    return edit


EDITS = {  # what is done to a fresh dataset, what the one-line error says
    "a dataset made a group": (_replace("outputs/pg", "group"),
                               "'outputs/pg' is not a dataset but a group"),
    "a dataset made a named type": (_replace("done", "datatype"), "'done' is not a dataset"),
    "status 257 in int16 (wraps to 1)": (_replace("status", np.int16(257)),
                                         "unknown status code 257"),
    "status 1.5": (_replace("status", 1.5), "field status: dtype float64"),
    "done 0.5": (_replace("done", 0.5), "field done: float64"),
    # train's reader cast these to float64 (the imaginary part dropped, zeros read)
    "complex voltages": (_retype("outputs/vm", np.complex128),
                         "'outputs/vm' is not numeric (dtype complex128)"),
    "a compound type": (_retype("outputs/pg", [("a", "<f8")]), "'outputs/pg' is not numeric"),
    "sampler with NaN": (_attr("sampler", '{"high":1.1,"kind":"box","low":NaN}'),
                         "attribute 'sampler': sampler parameter low must be finite"),
    "sampler with strings": (_attr("sampler", '{"high":"b","kind":"box","low":"a"}'),
                             "parameter low is not a number"),
    "sampler of no kind": (_attr("sampler", '{"kind":"weird","x":1}'), "not a known sampler"),
    "a negative seed": (_attr("seed", -3), "attribute 'seed' is negative: -3"),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_hand_edited_dataset_is_one_line_for_info_and_train(
        tmp_path: Path, fresh14: bytes, capsys: pytest.CaptureFixture[str], what: str) -> None:
    """A dtype that a cast would wrap or round (status 257 read as optimal, done 0.5 as
    true), a group where a dataset belongs, a sampler no region can be made of: every
    reader refuses the file in one line (info crashed, or read another valid value)."""
    from gridverify.proxy.data import read_proxy_data

    edit, message = EDITS[what]
    path = tmp_path / "d.h5"
    path.write_bytes(fresh14)
    with h5py.File(path, "r+") as f:
        edit(f)
    code, _, err = run(capsys, "dataset", "info", str(path))
    line = one_line(err)
    assert code == 2 and str(path) in line and message in line, line
    with pytest.raises(DatasetError, match=str(path)):  # train's reader
        read_proxy_data(path, CASE14)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("case_name", np.void(b"\xff\xfe"), "attribute 'case_name'"),
    ("case_source", np.array([1.0, 2.0]), "attribute 'case_source' is not a string"),
    ("case_name", np.array([b"a", b"b"]), "attribute 'case_name' is not a string"),
])
def test_train_names_a_bad_case_attribute(tmp_path: Path, fresh14: bytes,
                                          capsys: pytest.CaptureFixture[str], key: str,
                                          value: object, message: str) -> None:
    path = tmp_path / "d.h5"
    path.write_bytes(fresh14)
    with h5py.File(path, "r+") as f:
        f.attrs[key] = value
    code, _, err = run(capsys, "train", str(path), "--out", str(tmp_path / "m"),
                       "--epochs", "1", "--no-progress")
    line = one_line(err)
    assert code == 2 and message in line, line


def test_every_solve_at_its_limit_blames_the_limit_not_the_case(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--max-iter 1``: no sample is optimal because of the limit; the warning said
    the case may be infeasible."""
    out = tmp_path / "mi.h5"
    code, _, err = run(capsys, "dataset", "make", "pglib_opf_case14_ieee", "--samples", "2",
                       "--out", str(out), "--max-iter", "1", "--no-progress")
    assert code == 0, err
    assert "iteration or time limit (raise --max-iter" in err and "infeasible" not in err, err


@pytest.mark.parametrize("user", [None, "debug"])
def test_pounce_log_is_warnings_only_unless_the_user_sets_it(tmp_path: Path, user) -> None:
    """At print_level 0, POUNCE's Rust INFO lines reached stderr (``--tol 1e-300``:
    "refusing an acceptable-level termination ..."); a RUST_LOG the user set is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    if user is not None:
        env["RUST_LOG"] = user
    code = ("import os; from gridverify.opf.solvers import import_pounce; import_pounce(); "
            "print(os.environ['RUST_LOG'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (user or "warn")
    if user is None:  # the solve that logged at INFO level
        proc = subprocess.run(
            [sys.executable, "-m", "gridverify", "dataset", "make", "pglib_opf_case14_ieee",
             "--samples", "1", "--out", str(tmp_path / "d.h5"), "--tol", "1e-300",
             "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0 and "INFO" not in proc.stderr, proc.stderr
