"""Bad-input corpus: every command, every kind of bad input.

Each entry must end with exit status 2, exactly one line on stderr that starts
with ``gridverify: error:`` and names the flag, key or file (``expect``), no
traceback, and no file or folder left behind.  They run in-process through
:func:`gridverify.cli.main` (fast); the permission cases run the real command as
an unprivileged user (root reads any file whatever its mode).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vnncomp"))
from cli_run import run  # noqa: E402
from vnncomp_fixtures import mlp_onnx, tiny_relu_weights, vnnlib_text  # noqa: E402

from gridverify.cli import main, run_handler  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CASE = "pglib_opf_case14_ieee"
MODEL = str(REPO / "models" / "case14_relu")
SEED_MAX = 2**32 - 1


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of inputs, good and bad; the commands run in it."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.toml").mkdir()
    (tmp_path / "adir.h5").mkdir()
    (tmp_path / "notes.txt").write_text("not a case\n")
    (tmp_path / "empty.m").write_text("")
    (tmp_path / "garbage.m").write_text("function mpc = garbage\nmpc.bus = [1 2;\n")
    (tmp_path / "garbage.h5").write_text("not hdf5\n")
    (tmp_path / "garbage.onnx").write_text("not onnx\n")
    (tmp_path / "garbage.pt2").write_text("not a torch.export program\n")
    (tmp_path / "bad.toml").write_text("[region\nbox = 1\n")
    (tmp_path / "conflict.toml").write_text("[region]\nbox = [0.9, 1.1]\nlower = [1.0]\n")
    (tmp_path / "unknown.toml").write_text("[regoin]\nbox = [0.9, 1.1]\n")
    (tmp_path / "nan.json").write_text('{"region": {"box": [NaN, 1.1]}}')
    (tmp_path / "readonly.json").write_text("{}\n")
    (tmp_path / "readonly.json").chmod(0o444)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"state": np.zeros(3), "fn": os.getcwd}, fh)
    mlp_onnx(tmp_path / "tiny.onnx", tiny_relu_weights())
    (tmp_path / "junk.pt").write_text("a text file named like a checkpoint\n")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    _onnx_with(tmp_path / "einsum.onnx", "Einsum", ["x", "x"], equation="bi,bi->bi")
    _onnx_with(tmp_path / "dangling.onnx", "Relu", ["nope"])
    lo, hi = np.zeros(2), np.ones(2)
    (tmp_path / "prop.vnnlib").write_text(vnnlib_text(lo, hi, 2, [["(>= Y_0 1.9)"]]))
    (tmp_path / "bad.vnnlib").write_text("(declare-const X_0 Real)\n(assert (<= X_0 oops))\n")
    (tmp_path / "study.toml").write_text(
        '[study]\nname = "s"\nmethods = ["ibp"]\n\n[cases.c]\ncase = "pglib_opf_case14_ieee"\n'
        f'models = ["{MODEL}"]\n\n[regions.r]\nbox = [0.99, 1.01]\n\n'
        '[constraints.all]\nfamilies = ["all"]\n')
    (tmp_path / "badstudy.toml").write_text('[study]\nname = "s"\nmethods = ["nope"]\n')
    (tmp_path / "seedstudy.toml").write_text(
        (tmp_path / "study.toml").read_text().replace('methods', 'seed = -1\nmethods'))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _onnx_with(path: Path, op: str, inputs: list[str], **attrs: object) -> None:
    """A one-node ONNX model ``x (1, 2) -> y (1, 2)`` (unsupported or malformed)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op, inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


C = ["certify", CASE, "--model", MODEL, "--quiet"]
VR = ["vnncomp", "run", "tiny.onnx", "prop.vnnlib", "--timeout", "5", "--out", "r.txt"]
MK = ["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out", "bench"]
DM = ["dataset", "make", "pglib_opf_case5_pjm", "--samples", "2", "--out", "d.h5"]
TR = ["train", "garbage.h5", "--out", "m"]

# (argv, text the error line must contain)
CORPUS: list[tuple[list[str], str]] = [
    # case
    (["case", "info", "nosuch.m"], "nosuch.m"),
    (["case", "info", "adir"], "adir"),
    (["case", "info", "notes.txt/x.m"], "notes.txt/x.m"),
    (["case", "info", "empty.m"], "empty.m"),
    (["case", "info", "garbage.m"], "garbage.m"),
    # opf
    (["opf", "solve", "nosuch"], "nosuch"),
    (["opf", "solve", "pglib_opf_case5_pjm", "--max-iter", "0"], "--max-iter"),
    (["opf", "solve", "pglib_opf_case5_pjm", "--tol", "-1"], "--tol"),
    (["opf", "solve", "pglib_opf_case5_pjm", "--time-limit", "0"], "--time-limit"),
    (["opf", "solve", "pglib_opf_case5_pjm", "--print-level", "-1"], "--print-level"),
    (["opf", "solve", "pglib_opf_case5_pjm", "--solver", "nope"], "--solver"),
    # dataset
    (DM[:3] + ["--samples", "0", "--out", "d.h5"], "--samples"),
    (DM[:3] + ["--samples", "x", "--out", "d.h5"], "--samples"),
    (DM + ["--seed", "-1"], "--seed"),
    (DM + ["--seed", str(SEED_MAX + 1)], "--seed"),
    (DM + ["--workers", "0"], "--workers"),
    (DM[:-1] + ["adir.h5"], "adir.h5"),
    (DM + ["--region", "box:1.2,0.9"], "--region 'box:1.2,0.9'"),
    (TR + ["--val-fraction", "0.7"], "--val-fraction must be in (0, 0.5)"),
    (TR + ["--hidden", "8,,8"], "--hidden"),
    (["model", "info", "junk.pt", "--case", CASE], "junk.pt: not a readable torch checkpoint"),
    (C[:3] + ["noise.pt", "--quiet"], "noise.pt: not a readable torch checkpoint"),
    (["train", "adir", "--out", "m"], "adir: Is a directory"),
    (DM[:-1] + ["notes.txt/d.h5"], "notes.txt"),
    (DM + ["--region", "box:1.1"], "box:1.1"),
    (DM + ["--region", "nope:1"], "nope"),
    (DM + ["--max-iter", "-5"], "--max-iter"),
    (["dataset", "info", "nosuch.h5"], "nosuch.h5"),
    (["dataset", "info", "adir"], "adir"),
    (["dataset", "info", "garbage.h5"], "garbage.h5"),
    # train and model
    (["train", "nosuch.h5", "--out", "m"], "nosuch.h5"),
    (TR, "garbage.h5"),
    (TR + ["--epochs", "0"], "--epochs"),
    (TR + ["--lr", "-1"], "--lr"),
    (TR + ["--batch-size", "0"], "--batch-size"),
    (TR + ["--val-fraction", "1.5"], "--val-fraction"),
    (TR + ["--hidden", "0,3"], "--hidden"),
    (TR + ["--seed", "-1"], "--seed"),
    (TR + ["--weight-decay", "nan"], "--weight-decay"),
    (["train", "garbage.h5", "--out", "notes.txt"], "notes.txt"),
    (["train", "garbage.h5", "--out", "full"], "full"),
    (["model", "info", "nosuch"], "nosuch"),
    (["model", "info", "notes.txt"], "notes.txt"),
    (["model", "info", "adir"], "adir"),
    (["model", "info", "garbage.pt2", "--case", CASE], "garbage.pt2"),
    (["model", "info", "garbage.onnx", "--case", CASE], "garbage.onnx"),
    # certify
    (C + ["--seed", "-1"], "--seed"),
    (C + ["--seed", str(SEED_MAX + 1)], "--seed"),
    (C + ["--memory-cap", "0"], "--memory-cap"),
    (C + ["--bab-timeout", "-1"], "--bab-timeout"),
    (C + ["--timeout", "0"], "--timeout"),
    (C + ["--timeout", "nan"], "--timeout"),
    (C + ["--samples", "-1"], "--samples"),
    (C + ["--threads", "0"], "--threads"),
    (C + ["--jobs", "0"], "--jobs"),
    (C + ["--constraints", ""], "--constraints"),
    (C + ["--constraints", "nosuch"], "nosuch"),
    (C + ["--constraints", "thermal_fr[999]"], "999"),
    (C + ["--spec", "adir"], "adir"),
    (C + ["--spec", "nosuch.toml"], "nosuch.toml"),
    (C + ["--spec", "bad.toml"], "bad.toml"),
    (C + ["--spec", "conflict.toml"], "conflicting"),
    (C + ["--spec", "unknown.toml"], "regoin"),
    (C + ["--spec", "nan.json"], "nan.json"),
    (C + ["--region", "adir.toml"], "adir.toml"),
    (C + ["--region", "box:2,1"], "box"),
    (C + ["--region", "dataset:nosuch.h5"], "nosuch.h5"),
    (C + ["--threshold", "abc"], "abc"),
    (C + ["--threshold", "p_balance=-1"], "threshold"),
    (C + ["--method", "nope"], "--method"),
    (C + ["--out", "adir"], "adir"),
    (C + ["--out", "notes.txt/c.json"], "notes.txt"),
    (C + ["--out", "readonly.json"], "readonly.json"),
    (["certify", CASE, "--model", "nosuch", "--quiet"], "nosuch"),
    (["certify", CASE, "--model", "garbage.onnx", "--quiet"], "garbage.onnx"),
    (["certify", CASE, "--model", "evil.pt", "--quiet"], "evil.pt"),
    (["certify", CASE, "--model", "garbage.pt2", "--quiet"], "garbage.pt2"),
    (["certify", CASE, "--model", "adir", "--quiet"], "adir"),
    (["certify", CASE, "--model", str(REPO / "models" / "case57_relu"), "--quiet"],
     "case57"),
    (["certify", "nosuch", "--model", MODEL], "nosuch"),
    # vnncomp
    (VR[:-4] + ["--timeout", "0", "--out", "r.txt"], "--timeout"),
    (VR[:-1] + ["adir"], "adir"),
    (VR[:-1] + ["notes.txt/r.txt"], "notes.txt"),
    (VR + ["--seed", "-1"], "--seed"),
    (VR + ["--attack-steps", "-1"], "--attack-steps"),
    (["vnncomp", "run", "nosuch.onnx", "prop.vnnlib", "--timeout", "5", "--out", "r.txt"],
     "nosuch.onnx"),
    (["vnncomp", "run", "garbage.onnx", "prop.vnnlib", "--timeout", "5", "--out", "r.txt"],
     "garbage.onnx"),
    (["vnncomp", "run", "einsum.onnx", "prop.vnnlib", "--timeout", "5", "--out", "r.txt"],
     "einsum.onnx: unsupported op 'Einsum'"),
    (["vnncomp", "run", "dangling.onnx", "prop.vnnlib", "--timeout", "5", "--out", "r.txt"],
     "dangling.onnx: node"),
    (["certify", CASE, "--model", "dangling.onnx", "--quiet"], "dangling.onnx"),
    (["vnncomp", "run", "tiny.onnx", "bad.vnnlib", "--timeout", "5", "--out", "r.txt"],
     "bad.vnnlib"),
    (["vnncomp", "run", "tiny.onnx", "adir", "--timeout", "5", "--out", "r.txt"], "adir"),
    (["vnncomp", "batch", "nosuch", "--out", "r.csv"], "nosuch"),
    (["vnncomp", "batch", "adir", "--out", "r.csv", "--timeout-scale", "0"], "--timeout-scale"),
    (["vnncomp", "batch", "adir", "--out", "adir"], "adir"),
    (MK + ["--seed", "-1"], "--seed"),
    (MK + ["--widths", "2"], "--widths"),
    (MK + ["--widths", ""], "--widths"),
    (MK + ["--kinds", "nope"], "--kinds"),
    (MK + ["--kinds", ""], "--kinds: empty list"),
    (MK + ["--normalization", "nosuch.npz"], "--normalization: only with --model"),
    (MK + ["--inputs", "qd,pd"], "--inputs: only with --model"),
    (MK + ["--keep-outputs"], "--keep-outputs: only with --model"),
    (MK + ["--model", MODEL, "--hidden", "8"], "--hidden: only without --model"),
    (MK + ["--model", MODEL, "--activation", "tanh"], "--activation: only without --model"),
    (MK + ["--hidden", "0"], "--hidden"),
    (MK + ["--activation", "nope"], "--activation"),
    (MK + ["--timeout", "-1"], "--timeout"),
    (MK[:-1] + ["notes.txt"], "notes.txt"),
    (MK + ["--model", "nosuch"], "nosuch"),
    # study, report, completion
    (["study", "run", "nosuch.toml"], "nosuch.toml"),
    (["study", "run", "study.toml", "--out", "notes.txt"], "notes.txt"),
    (["study", "run", "study.toml", "--workers", "0"], "--workers"),
    (["study", "run", "study.toml", "--executor", "nope"], "--executor"),
    (["study", "run", "badstudy.toml"], "badstudy.toml"),
    (["study", "check", "bad.toml"], "bad.toml"),
    (["study", "check", "seedstudy.toml"], "study.seed"),
    (["study", "check", "adir"], "adir"),
    (["report", "notes.txt"], "notes.txt"),
    (["report", "nosuch"], "nosuch"),
    (["completion", "fish"], "fish"),
]


def test_corpus_is_large() -> None:
    assert len(CORPUS) >= 60
    commands = {argv[0] for argv, _ in CORPUS}
    assert commands >= {"case", "opf", "dataset", "train", "model", "certify", "vnncomp",
                        "study", "report", "completion"}


@pytest.mark.parametrize("argv,expect", CORPUS, ids=[" ".join(a) for a, _ in CORPUS])
def test_bad_input_is_one_clean_line(argv: list[str], expect: str, work: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(work)
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("gridverify: error: "), err
    assert expect in lines[0], err
    assert "Traceback" not in err and "weights_only" not in err
    assert _files(work) == before, "something was written"


def test_control_characters_in_a_name_are_escaped(work: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name = "bad\nname\x1b[31m\x07.m"
    (work / name).write_text("function mpc = x\nmpc.baseMVA = 100;\n")
    for argv in (["case", "info", name], ["case", "bogus\x1b[2J"]):
        code, _, err = run(capsys, *argv)
        assert code == 2, err
        assert err.count("\n") == 1 and err.endswith("\n"), err
        assert not any(c != "\n" and not c.isprintable() for c in err), repr(err)
        assert "\\x1b[" in err, err
    code, _, err = run(capsys, "case", "info", "bad\u00e9.m")
    assert "bad\u00e9.m" in err, err  # printable text is kept as it is


def test_make_instances_failure_writes_nothing(work: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in the middle of make-instances leaves no folder behind."""
    import gridverify.vnncomp.instances as inst

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "bench/onnx/x.onnx")

    monkeypatch.setattr(inst, "make_benchmark", boom)
    before = _files(work)
    code, _, err = run(capsys, *MK + ["--kinds", "thermal_one"])
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err
    assert _files(work) == before


@pytest.mark.parametrize("exc,expect", [
    (OSError(errno.ENOSPC, "No space left on device", "out.json"),
     "out.json: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "case.m"), "case.m: Permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out"), "out: Is a directory"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b"), "a/b: Not a directory"),
    (FileExistsError(errno.EEXIST, "File exists", "reports/x"), "reports/x: File exists"),
    (FileNotFoundError(errno.ENOENT, "No such file", "x.m"), "file not found: x.m"),
])
def test_every_os_error_is_one_line(exc: OSError, expect: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: object) -> int:
        raise exc

    assert run_handler(handler, None) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err == f"gridverify: error: {expect}\n"


def test_a_bug_exits_4_with_its_traceback_never_1(capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected exception is an internal error (exit 4, traceback, one closing
    line), not Python's exit status 1, which says a violation was found."""
    def handler(args: object) -> int:
        return {"a": 1}["b"]

    assert run_handler(handler, None) == 4  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'b'" in err
    assert err.rstrip().splitlines()[-1].startswith("gridverify: internal error (a bug")


def test_a_bug_building_the_parser_exits_4(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import gridverify.cli as cli

    def broken() -> None:
        raise ImportError("a command module failed to import")

    monkeypatch.setattr(cli, "build_parser", broken)
    assert main(["case", "list"]) == 4
    err = capsys.readouterr().err
    assert "ImportError: a command module" in err and "internal error" in err


def test_out_of_memory_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: object) -> int:
        raise MemoryError

    assert run_handler(handler, None) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err.startswith("gridverify: error: out of memory (") and err.count("\n") == 1


_TORCH_OOM = ("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't "
              "allocate memory: you tried to allocate 80000000000 bytes. Error code 12 "
              "(Cannot allocate memory)")


@pytest.mark.parametrize("exc, shown", [
    (RuntimeError(_TORCH_OOM), "DefaultCPUAllocator: can't allocate memory"),
    (RuntimeError("std::bad_alloc"), "std::bad_alloc"),
    (ImportError("libtorch_cpu.so: failed to map segment from shared object"),
     "failed to map segment"),
    (OSError(12, "Cannot allocate memory"), "Cannot allocate memory"),  # ENOMEM of mmap
])
def test_an_allocation_torch_or_the_loader_could_not_make_is_one_line(
        capsys: pytest.CaptureFixture[str], exc: Exception, shown: str) -> None:
    """torch's allocator fails with RuntimeError, a library mapped under an
    address-space limit with ImportError: out of memory, not a bug (exit 4)."""
    def handler(args: object) -> int:
        raise exc

    assert run_handler(handler, None) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err.startswith("gridverify: error: out of memory: ") and err.count("\n") == 1
    assert shown in err


def test_other_runtime_errors_are_still_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: object) -> int:
        raise RuntimeError("shape mismatch")

    assert run_handler(handler, None) == 4  # type: ignore[arg-type]
    assert "internal error" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS as Linux enforces it")
def test_a_real_torch_allocation_failure_is_one_line(tmp_path: Path) -> None:
    """Under an address-space limit torch's own allocation fails: one line, exit 2."""
    code = ("import resource, sys, torch\n"
            "from gridverify.cli import run_handler\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
            "with open('/proc/self/statm') as f: vsz = int(f.read().split()[0]) * 4096\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vsz + 2**28, hard))\n"
            "sys.exit(run_handler(lambda a: torch.empty(10**10).sum(), None))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("gridverify: error: out of memory: ")
    assert run.stderr.count("\n") == 1


def _unprivileged() -> list[str] | None:
    """A command prefix that runs as an unprivileged user, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_dir() -> Path:
    """A world-readable temporary folder (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="gv-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _unreadable_inputs(d: Path) -> dict[str, list[str]]:
    case = d / "case.m"
    shutil.copy(REPO / "cases" / f"{CASE}.m", case)
    model = d / "model"
    shutil.copytree(REPO / "models" / "case14_relu", model)
    spec = d / "spec.toml"
    spec.write_text("[region]\nbox = [0.9, 1.1]\n")
    prop = d / "prop.vnnlib"
    prop.write_text(vnnlib_text(np.zeros(2), np.ones(2), 2, [["(>= Y_0 1.9)"]]))
    mlp_onnx(d / "tiny.onnx", tiny_relu_weights())
    for p in (case, model / "weights.npz", spec, prop):
        p.chmod(0)
    out = d / "out"
    out.mkdir()
    out.chmod(0o555)  # not writable
    writable = d / "w"
    writable.mkdir()
    writable.chmod(0o777)
    return {
        "case.m": ["case", "info", str(case)],
        "weights.npz": ["certify", CASE, "--model", str(model), "--quiet"],
        "spec.toml": ["certify", CASE, "--model", str(REPO / "models" / "case14_relu"),
                      "--spec", str(spec), "--quiet"],
        "prop.vnnlib": ["vnncomp", "run", str(d / "tiny.onnx"), str(prop), "--timeout", "5",
                        "--out", str(writable / "r.txt")],
        "out": ["certify", CASE, "--model", str(REPO / "models" / "case14_relu"), "--quiet",
                "--out", str(out / "c.json")],
    }


def _run_unprivileged(d: Path, names: tuple[str, ...] | None) -> None:
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HOME=str(d))
    for name, argv in _unreadable_inputs(d).items():
        if names is not None and name not in names:
            continue
        proc = subprocess.run(prefix + [sys.executable, "-m", "gridverify", *argv],
                              capture_output=True, text=True, env=env, cwd=d, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("gridverify: error: "), proc.stderr
        assert name in lines[0], proc.stderr
        assert not any((d / "w").iterdir())


def test_unreadable_case_is_one_line(shared_dir: Path) -> None:
    _run_unprivileged(shared_dir, ("case.m",))


@pytest.mark.slow
def test_permission_errors_are_one_line(shared_dir: Path) -> None:
    """Unreadable case, weights, spec and VNN-LIB files; an unwritable output folder."""
    _run_unprivileged(shared_dir, None)


_WITHOUT_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
from gridverify.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_installation_without_torch_says_how_to_install_it() -> None:
    """torch comes with the `cpu` extra (or the user's CUDA build): without it a command
    that needs it says so in one line (it was an internal error with a traceback)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "model", "info",
                          "case14_relu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "gridverify[cpu]" in run.stderr, run.stderr
