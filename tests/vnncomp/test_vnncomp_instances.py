"""Our own ACOPF instances: the exported graph against the grid equations, and answers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from vnncomp_fixtures import tiny_acopf_proxy  # noqa: E402

from gridverify.grid import balance_residuals, branch_flows, load_compiled, thermal_residuals
from gridverify.vnncomp.instances import acopf_graph, export_onnx, make_benchmark
from gridverify.vnncomp.runner import RunOptions, run_instance
from gridverify.vnncomp.vnnlib import parse_vnnlib

_proxy = tiny_acopf_proxy


@pytest.fixture(scope="module")
def case5():
    return load_compiled("pglib_opf_case5_pjm", emit_warnings=False)


def test_onnx_outputs_match_the_grid_equations(case5, tmp_path: Path) -> None:
    """Y from onnxruntime equals proxy + grid.flows (an independent numpy implementation)."""
    proxy = _proxy(case5)
    graph, lay = acopf_graph(case5, proxy)
    path = export_onnx(graph, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "X" and inp.shape == [1, 2 * case5.n_load]
    x0 = np.concatenate([case5.pd, case5.qd])
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = x0 * rng.uniform(0.8, 1.2, size=x0.size)
        x32 = x.astype(np.float32).astype(np.float64)
        y = sess.run(None, {"X": x32.astype(np.float32)[None]})[0][0].astype(np.float64)
        with torch.no_grad():
            sol = proxy(torch.tensor(x32)[None])[0].numpy()
        G, N = case5.n_gen, case5.n_bus
        pg, qg, vm, va = sol[:G], sol[G : 2 * G], sol[2 * G : 2 * G + N], sol[2 * G + N :]
        fl = branch_flows(case5, vm, va)
        rp, rq = balance_residuals(case5, pg, qg, vm, va, x32[: case5.n_load], x32[case5.n_load :])
        sf, st = thermal_residuals(case5, fl)
        ref = {
            "pg": pg,
            "qg": qg,
            "vm": vm,
            "va": va,
            "pf": fl.pf,
            "pt": fl.pt,
            "qf": fl.qf,
            "qt": fl.qt,
            "sf": sf[lay.thermal_branches],
            "st": st[lay.thermal_branches],
            "rp": rp,
            "rq": rq,
        }
        for name, want in ref.items():
            got = y[lay.block(name)]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
        # the clamp head keeps pg, qg, vm inside their limits
        assert np.all(pg >= case5.pmin - 1e-6) and np.all(vm <= case5.vmax + 1e-6)


def test_benchmark_answers_match_expected(case5, tmp_path: Path) -> None:
    specs = make_benchmark(
        case5,
        _proxy(case5),
        tmp_path,
        widths=(0.05,),
        kinds=("thermal_one", "gen_limits", "balance_one"),
        timeout=30,
    )
    assert {s.kind for s in specs} == {"thermal_one", "gen_limits", "balance_one"}
    assert {s.expected for s in specs} == {"sat", "unsat"}
    rows = list(csv.reader((tmp_path / "instances.csv").open()))
    exp = list(csv.reader((tmp_path / "expected.csv").open()))
    assert len(rows) == len(specs) and len(exp) == len(specs) + 1
    model = tmp_path / rows[0][0]
    rng = np.random.default_rng(1)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for (onnx_rel, vnn_rel, _), (_, _, want) in zip(rows, exp[1:]):
        prop = parse_vnnlib(tmp_path / vnn_rel)
        case = prop.cases[0]
        out = run_instance(
            tmp_path / onnx_rel,
            tmp_path / vnn_rel,
            RunOptions(timeout=60, extend_attack=False, bound_method="crown"),
        )
        assert out.result in (want, "unknown"), (vnn_rel, out)
        if want == "unsat":  # sampling never violates a holding property
            xs = rng.uniform(case.lower, case.upper, size=(200, case.lower.size))
            ys = np.concatenate(
                [sess.run(None, {"X": x.astype(np.float32)[None]})[0] for x in xs]
            ).astype(np.float64)
            for A, b in case.output:
                assert not np.any(np.all(ys @ A.T <= b, axis=1)), vnn_rel
        if out.result == "sat":
            assert np.all(out.x >= case.lower) and np.all(out.x <= case.upper)
    assert sum(1 for s in specs if s.expected == "sat") >= 2


def test_make_instances_command(tmp_path: Path, capsys) -> None:
    from gridverify.cli import main

    rc = main(
        [
            "vnncomp",
            "make-instances",
            "pglib_opf_case5_pjm",
            "--out",
            str(tmp_path),
            "--hidden",
            "4",
            "--kinds",
            "thermal_one",
            "--widths",
            "0.05",
            "--open",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "1 open" in out, out
    names = sorted(p.name for p in (tmp_path / "vnnlib").iterdir())
    assert [n.rsplit("_", 1)[-1] for n in names] == [
        "holds.vnnlib",
        "open.vnnlib",
        "violated.vnnlib",
    ]
    exp = (tmp_path / "expected.csv").read_text()
    assert "open" not in exp  # unknown answers are not scored
    assert len((tmp_path / "instances.csv").read_text().splitlines()) == 3
    rc = main(
        [
            "vnncomp",
            "make-instances",
            "pglib_opf_case5_pjm",
            "--out",
            str(tmp_path),
            "--kinds",
            "thermal_two",
        ]
    )
    assert rc == 2 and "unknown kind 'thermal_two'" in capsys.readouterr().err


def test_exact_check_agrees_and_decides_open_variants(case5, tmp_path: Path) -> None:
    """SCIP brackets the worst case: it agrees with the thresholds and scores 'open'."""
    pytest.importorskip("pyscipopt")
    proxy = _proxy(case5, hidden=(4,), activation="relu")
    specs = make_benchmark(
        case5,
        proxy,
        tmp_path,
        widths=(0.05,),
        kinds=("thermal_one",),
        open_variant=True,
        exact=True,
        exact_time=60,
    )
    by_variant = {s.variant: s for s in specs}
    assert set(by_variant) == {"violated", "holds", "open"}
    assert "exact in [" in by_variant["open"].text.splitlines()[0]
    assert by_variant["open"].expected in ("sat", "unsat")  # decided by SCIP here
    for s in specs:
        out = run_instance(
            tmp_path / "onnx" / f"{case5.name}.onnx",
            tmp_path / "vnnlib" / s.name,
            RunOptions(timeout=60, extend_attack=False),
        )
        assert out.result in (s.expected, "unknown", "timeout"), (s.name, out)


@pytest.mark.parametrize("kind", ["onnx", "pt2"])
def test_make_instances_from_a_proxy_file(tmp_path: Path, capsys, kind: str) -> None:
    """A proxy read from a file (its module evaluates a graph) is exported as that
    graph: the written model computes what the proxy computes."""
    from gridverify.cli import main
    from gridverify.proxy.load import load_proxy

    case14 = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    proxy = load_proxy("case14_relu")
    path = tmp_path / f"proxy.{kind}"
    if kind == "onnx":
        path.write_bytes((Path("models") / "case14_relu" / "model.onnx").read_bytes())
    else:
        ep = torch.export.export(proxy.module, (torch.zeros(3, 22, dtype=torch.float64),),
                                 dynamic_shapes=({0: torch.export.Dim("b")},))
        torch.export.save(ep, path)
    out = tmp_path / "bench"
    assert main(["vnncomp", "make-instances", case14.name, "--model", str(path), "--out",
                 str(out), "--kinds", "balance_one", "--widths", "0.01"]) == 0
    capsys.readouterr()
    (model,) = (out / "onnx").iterdir()
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.concatenate([case14.pd, case14.qd]).astype(np.float32)[None]
    y = sess.run(None, {"X": x})[0][0]
    with torch.no_grad():
        want = proxy.module(torch.from_numpy(x.astype(np.float64)))[0].numpy()
    np.testing.assert_allclose(y[: want.size], want, rtol=1e-4, atol=1e-5)


def _make(out: Path, *extra: str) -> int:
    from gridverify.cli import main

    return main(["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out", str(out),
                 "--widths", "0.05", *extra])


def test_appending_never_replaces_a_graph(case5, tmp_path: Path, capsys) -> None:
    """Two proxies both called model.onnx into one folder: both graphs stay, each row of
    instances.csv and expected.csv names the graph its property was made for, and the
    same graph again reuses its file."""
    import hashlib

    from gridverify.proxy.onnx_export import export_onnx as proxy_to_file

    paths = []
    for seed in (0, 1):
        p = tmp_path / f"proxy{seed}" / "model.onnx"
        p.parent.mkdir()
        proxy_to_file(_proxy(case5, hidden=(4,), activation="relu", seed=seed), p)
        paths.append(p)
    kinds = ("--kinds", "balance_one")
    # each proxy alone: the reference graph and properties
    refs = []
    for k, p in enumerate(paths):
        assert _make(tmp_path / f"ref{k}", "--model", str(p), *kinds) == 0
        (model,) = (tmp_path / f"ref{k}" / "onnx").iterdir()
        props = {f.name: f.read_text() for f in (tmp_path / f"ref{k}" / "vnnlib").iterdir()}
        refs.append((model.stem, model.read_bytes(), props))
    assert refs[0][0] == refs[1][0] and refs[0][1] != refs[1][1]  # same name, other graph
    out = tmp_path / "bench"
    for p in (*paths, paths[0]):
        assert _make(out, "--model", str(p), *kinds) == 0
    printed = capsys.readouterr().out.splitlines()
    models = sorted(p.name for p in (out / "onnx").iterdir())
    sha8 = hashlib.sha256(refs[1][1]).hexdigest()[:8]
    stem = refs[0][0]
    assert models == [f"{stem}.onnx", f"{stem}_{sha8}.onnx"]
    assert [line.split(" for ")[1].split()[0] for line in printed[-3:]] == [
        f"onnx/{stem}.onnx", f"onnx/{stem}_{sha8}.onnx", f"onnx/{stem}.onnx"]
    rows = list(csv.reader((out / "instances.csv").open()))
    exp = list(csv.reader((out / "expected.csv").open()))[1:]
    assert len(rows) == len(exp) == sum(len(r[2]) for r in refs)  # the rerun replaced its rows
    assert {r[0] for r in rows} == {f"onnx/{m}" for m in models}
    for onnx_rel, vnn_rel, *_ in rows + exp:
        graph = (out / onnx_rel).read_bytes()
        (ref,) = [r for r in refs if r[1] == graph]  # the graph the row points to
        mine = Path(onnx_rel).stem
        assert Path(vnn_rel).name.startswith(mine + "_")
        ref_name = ref[0] + Path(vnn_rel).name[len(mine):]
        text = (out / vnn_rel).read_text().replace(mine, ref[0])
        assert text == ref[2][ref_name], vnn_rel  # the property made for that graph


def test_folder_mode_and_skipped_kind_warning(tmp_path: Path, capsys) -> None:
    """The benchmark folder gets the umask's permissions (not mkdtemp's 0700); a kind
    the case cannot have (thermal_one without a rated branch) is named on stderr."""
    import os
    import re

    src = (Path("cases") / "pglib_opf_case5_pjm.m").read_text()
    head, rest = src.split("mpc.branch = [", 1)
    table, tail = rest.split("];", 1)
    lines = [re.sub(r"^(\s*(?:\S+\s+){5})\S+", r"\g<1>0.0", ln) if ln.strip() else ln
             for ln in table.splitlines()]  # rateA := 0 (unrated) on every branch
    norate = tmp_path / "case5_norate.m"
    norate.write_text(head + "mpc.branch = [" + "\n".join(lines) + "];" + tail)
    old = os.umask(0o022)
    try:
        out = tmp_path / "bench"
        from gridverify.cli import main

        rc = main(["vnncomp", "make-instances", str(norate), "--out", str(out), "--hidden", "4",
                   "--kinds", "thermal_one,gen_limits", "--widths", "0.01"])
    finally:
        os.umask(old)
    cap = capsys.readouterr()
    assert rc == 0
    assert {(out / d).stat().st_mode & 0o777 for d in ("", "onnx", "vnnlib")} == {0o755}
    warn = [ln for ln in cap.err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "thermal_one" in warn[0] and "thermal rating" in warn[0]
    assert not any("thermal_one" in p.name for p in (out / "vnnlib").iterdir())
    assert any("gen_limits" in p.name for p in (out / "vnnlib").iterdir())


def test_instance_lists_merge_graphs_and_stay_free_of_blank_lines(tmp_path):
    """Writing a graph's instances again replaces its rows, keeps the other graphs'
    rows, and leaves no blank line (a rerun into the same folder)."""
    from gridverify.vnncomp.instances import InstanceSpec, _write_csvs

    specs = [InstanceSpec(f"p{i}.vnnlib", "balance_one", 0.1, "holds", "unsat", "", 0.0)
             for i in range(2)]
    for _ in range(3):
        _write_csvs(tmp_path, "onnx/a.onnx", specs, 30.0)
    _write_csvs(tmp_path, "onnx/b.onnx", specs[:1], 30.0)
    _write_csvs(tmp_path, "onnx/a.onnx", specs, 30.0)
    inst = (tmp_path / "instances.csv").read_text().splitlines()
    exp = (tmp_path / "expected.csv").read_text().splitlines()
    assert "" not in inst and "" not in exp
    assert sorted(inst) == ["onnx/a.onnx,vnnlib/p0.vnnlib,30", "onnx/a.onnx,vnnlib/p1.vnnlib,30",
                            "onnx/b.onnx,vnnlib/p0.vnnlib,30"]
    assert exp[0] == "onnx,vnnlib,result" and len(exp) == 4


def test_a_kind_or_width_given_twice_counts_once(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    assert _make(out, "--kinds", "thermal_one,thermal_one", "--widths", "0.05,0.05,0.050",
                 "--hidden", "4") == 0
    rows = (out / "instances.csv").read_text().splitlines()
    assert rows and len(rows) == len(set(rows)) == len(list((out / "vnnlib").glob("*")))
    assert f"wrote {len(rows)} properties" in capsys.readouterr().out


def test_make_instances_failing_merge_leaves_the_csvs_listing_existing_files(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """A second run into the same folder whose files cannot all be moved in (a read-only
    ``vnnlib/``) keeps the CSV files as they were, and names that folder, not the
    staging one."""
    import errno

    from gridverify.cli import main
    from gridverify.cli import vnncomp as cli_vnncomp

    argv = ["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out", str(tmp_path),
            "--hidden", "4", "--widths", "0.05"]
    assert main([*argv, "--kinds", "thermal_one"]) == 0
    before = {n: (tmp_path / n).read_text() for n in ("instances.csv", "expected.csv")}
    real_replace = os.replace

    def replace(src, dst, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if Path(dst).parent == tmp_path / "vnnlib":
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(cli_vnncomp.os, "replace", replace)
    capsys.readouterr()
    assert main([*argv, "--kinds", "gen_limits"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'vnnlib'}: Permission denied" in err and ".tmp" not in err, err
    for name, text in before.items():
        assert (tmp_path / name).read_text() == text
    listed = [line.split(",")[1] for line in before["instances.csv"].splitlines() if line]
    assert all((tmp_path / rel).is_file() for rel in listed)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path, capsys) -> None:
    """Two runs merging into one folder at once would each rewrite its CSV files (the
    last one's rows win) and could give two graphs one name: while one holds the
    folder's lock (``.OUT.lock`` beside it) another is refused, one line, exit 2."""
    import os

    from gridverify._lock import lock_beside, run_lock
    from gridverify.errors import OutputPathError

    out = tmp_path / "bench"
    with run_lock(lock_beside(out), out, "vnncomp make-instances", OutputPathError):
        capsys.readouterr()
        assert _make(out, "--kinds", "balance_one", "--hidden", "4") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}" in err[0] and str(out) in err[0]
        assert not out.exists()
    assert _make(out, "--kinds", "balance_one", "--hidden", "4") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]  # lock released
