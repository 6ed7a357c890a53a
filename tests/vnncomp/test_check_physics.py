"""check-physics: our ACOPF exports agree with the grid equations; known mistakes are named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gridverify.cli import main
from gridverify.errors import GraphError, SpecError
from gridverify.grid.case import BR_B, BR_R, BS, F_BUS, GS, RATE_A, SHIFT, T_BUS, TAP, load_case
from gridverify.grid.compile import compile_case
from gridverify.grid.flows import branch_flows
from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits
from gridverify.vnncomp.check_physics import (
    CheckOptions,
    check_physics,
    onnx_float64,
    with_branch_mistake,
)
from gridverify.vnncomp.instances import acopf_graph, export_onnx

OPTS = CheckOptions(samples=8, seed=3)


def _proxy(case, seed: int = 0) -> ProxyMLP:
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (8,), "tanh", True)
    lo, hi = case_limits(case)
    torch.manual_seed(seed)
    return ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()


def _export(case_for_graph, proxy, path: Path) -> Path:
    graph, _ = acopf_graph(case_for_graph, proxy)
    return export_onnx(graph, path)


def _modified(raw, table: str, row: int, col: int, value: float):
    arr = getattr(raw, table).copy()
    arr[row, col] = value
    return dataclasses.replace(raw, **{table: arr})


@pytest.fixture(scope="module")
def shifted():
    """case14 with a phase shift of 8 degrees on its first transformer: (raw, compiled, row)."""
    raw = load_case("pglib_opf_case14_ieee")
    row = int(np.nonzero((raw.branch[:, TAP] != 0) & (raw.branch[:, TAP] != 1))[0][0])
    raw = _modified(raw, "branch", row, SHIFT, 8.0)
    case = compile_case(raw, emit_warnings=False)
    return raw, case, row


@pytest.fixture(scope="module")
def proxy14(shifted):
    return _proxy(shifted[1])


def _by_element(res):
    return {f.element: f for f in res.findings}


def test_unmodified_export_agrees(shifted, proxy14, tmp_path):
    _, case, _ = shifted
    res = check_physics(_export(case, proxy14, tmp_path / "m.onnx"), case, OPTS)
    assert res.ok, res.findings[:3]
    assert res.evaluator == "onnxruntime float64"
    assert {f.family for f in res.families} == {"pf", "pt", "qf", "qt", "sf", "st", "rp", "rq"}
    assert max(f.max_err for f in res.families) <= 1e-6
    assert res.families[0].size == case.n_branch


def _branch_name(case, row: int) -> str:
    e = int(np.nonzero(case.branch_row == row + 1)[0][0])
    return (f"branch {row + 1} (bus {case.bus_ids[case.f_bus[e]]} - "
            f"{case.bus_ids[case.t_bus[e]]})")


@pytest.mark.parametrize("mistake", ["shift_sign", "no_charging", "tap_inverted", "rating"])
def test_branch_mistake_is_named(shifted, proxy14, tmp_path, mistake):
    """A graph exported from a case with one branch changed: that branch and its cause."""
    raw, case, tr_row = shifted
    br = raw.branch
    if mistake == "shift_sign":
        row, col, value = tr_row, SHIFT, -br[tr_row, SHIFT]
    elif mistake == "no_charging":
        row = int(np.argmax(br[:, BR_B]))
        col, value = BR_B, 0.0
    elif mistake == "tap_inverted":  # a transformer without the shift
        row = int(np.nonzero((br[:, TAP] != 0) & (br[:, TAP] != 1))[0][1])
        col, value = TAP, 1.0 / br[row, TAP]
    else:
        row, col, value = 3, RATE_A, br[3, RATE_A] * 0.8
    bad = compile_case(_modified(raw, "branch", row, col, value), emit_warnings=False)
    res = check_physics(_export(bad, proxy14, tmp_path / "bad.onnx"), case, OPTS)
    assert not res.ok
    found = _by_element(res)
    name = _branch_name(case, row)
    assert name in found, list(found)
    key = "rating" if mistake == "rating" else mistake
    assert found[name].cause_key == key, found[name]
    assert found[name].max_err > 1e-4
    # everything else that disagrees is explained by that branch
    for f in res.findings:
        if f.element != name:
            assert f.kind == "bus" and f.cause_key == "via_branch" and name in f.cause, f


def test_tap_side_and_shunt_mistakes_are_named(shifted, proxy14, tmp_path):
    raw, case, tr_row = shifted
    e = int(np.nonzero(case.branch_row == tr_row + 1)[0][0])
    res = check_physics(
        _export(with_branch_mistake(case, [e], "tap_side"), proxy14, tmp_path / "a.onnx"), case,
        OPTS)
    assert _by_element(res)[_branch_name(case, tr_row)].cause_key == "tap_side"
    i = int(np.nonzero(raw.bus[:, BS])[0][0])
    bad = compile_case(_modified(raw, "bus", i, BS, 0.0), emit_warnings=False)
    res = check_physics(_export(bad, proxy14, tmp_path / "b.onnx"), case, OPTS)
    (only,) = res.findings
    assert only.element == f"bus {int(raw.bus[i, 0])}" and only.cause_key == "no_bs"
    assert only.families == ("rq",)


@pytest.mark.parametrize("mistake", ["shift_degrees", "charging_not_halved"])
def test_unit_and_charging_mistakes_are_named(shifted, proxy14, tmp_path, mistake):
    """Shift in degrees read as radians; b at each end instead of b/2."""
    raw, case, tr_row = shifted
    row = tr_row if mistake == "shift_degrees" else int(np.argmax(raw.branch[:, BR_B]))
    e = int(np.nonzero(case.branch_row == row + 1)[0][0])
    bad = with_branch_mistake(case, [e], mistake)
    res = check_physics(_export(bad, proxy14, tmp_path / "m.onnx"), case, OPTS)
    found = _by_element(res)
    name = _branch_name(case, row)
    assert found[name].cause_key == mistake, found[name]
    assert all(f.element == name or f.cause_key == "via_branch" for f in res.findings)


def _with_loads_in_mw(case, proxy, path: Path) -> Path:
    """The export whose balance rows subtract the loads in MW / MVAr (times the base)."""
    from gridverify.ir import GraphBuilder
    from gridverify.vnncomp.instances import acopf_layout

    graph, _ = acopf_graph(case, proxy)
    lay = acopf_layout(case)
    L, N = case.n_load, case.n_bus
    m = np.zeros((lay.size, 2 * L))
    for k, fam in enumerate(("rp", "rq")):
        rows = np.arange(lay.size)[lay.block(fam)]
        m[rows[np.asarray(case.load_bus)], k * L + np.arange(L)] -= case.base_mva - 1.0
    assert rows.size == N
    b = GraphBuilder(graph)
    y = b.add(graph.outputs[0], b.linear(graph.inputs[0], torch.tensor(m)), name="Y")
    b.output(y, "Y")
    g = b.build()
    g = dataclasses.replace(g, outputs=(y,), output_names=("Y",))
    return export_onnx(g, path)


def test_loads_in_mw_are_named(shifted, proxy14, tmp_path):
    _, case, _ = shifted
    res = check_physics(_with_loads_in_mw(case, proxy14, tmp_path / "mw.onnx"), case, OPTS)
    assert not res.ok
    buses = {int(case.bus_ids[i]) for i in np.unique(case.load_bus)}
    assert {f.element for f in res.findings} == {f"bus {i}" for i in buses}
    assert {f.cause_key for f in res.findings} == {"load_mw"}


def test_nan_outputs_are_named(shifted, proxy14, tmp_path):
    """A graph whose outputs are NaN: a note and the cause, not a bare 'off by inf'."""
    from gridverify.ir import GraphBuilder

    _, case, _ = shifted
    graph, _ = acopf_graph(case, proxy14)
    b = GraphBuilder(graph)
    y = graph.outputs[0]
    minus_one = b.linear(graph.inputs[0], torch.zeros(b.size(y), graph.input_size,
                                                      dtype=torch.float64),
                         torch.full((b.size(y),), -1.0, dtype=torch.float64))
    nan = b.sqrt(minus_one)
    y2 = b.add(y, nan, name="Y")
    b.output(y2, "Y")
    g = dataclasses.replace(b.build(), outputs=(y2,), output_names=("Y",))
    res = check_physics(export_onnx(g, tmp_path / "nan.onnx"), case, OPTS)
    assert not res.ok
    assert any("NaN or infinite at 8 of 8" in n for n in res.notes), res.notes
    assert res.findings and all(f.cause_key == "not_finite" for f in res.findings)


def test_unknown_branch_mistake_still_explains_its_buses(shifted, proxy14, tmp_path):
    """A resistance doubled: no known cause, but the buses' residuals follow from its flows."""
    raw, case, _ = shifted
    row = int(np.nonzero(raw.branch[:, TAP] == 0)[0][0])
    bad = compile_case(_modified(raw, "branch", row, BR_R, 2 * raw.branch[row, BR_R]),
                       emit_warnings=False)
    res = check_physics(_export(bad, proxy14, tmp_path / "r.onnx"), case, OPTS)
    found = _by_element(res)
    name = _branch_name(case, row)
    assert found[name].cause is None
    buses = [f for f in res.findings if f.kind == "bus"]
    assert len(buses) == 2 and all(f.cause_key == "via_branch" and name in f.cause
                                   for f in buses)
    assert len(res.findings) == 3


def test_tap_side_is_the_branch_seen_from_its_other_end(shifted):
    """with_branch_mistake('tap_side') == compiling the branch reversed (flows swapped back)."""
    raw, case, row = shifted
    br = raw.branch.copy()
    br[row, [F_BUS, T_BUS]] = br[row, [T_BUS, F_BUS]]
    rev = compile_case(dataclasses.replace(raw, branch=br), emit_warnings=False)
    e = int(np.nonzero(case.branch_row == row + 1)[0][0])
    rng = np.random.default_rng(0)
    vm = rng.uniform(0.9, 1.1, (5, case.n_bus))
    va = rng.uniform(-0.3, 0.3, (5, case.n_bus))
    got = branch_flows(with_branch_mistake(case, [e], "tap_side"), vm, va)
    want = branch_flows(rev, vm, va)
    for a, b in (("pf", "pt"), ("qf", "qt"), ("pt", "pf"), ("qt", "qf")):
        np.testing.assert_allclose(getattr(got, a)[:, e], getattr(want, b)[:, e], rtol=1e-12,
                                   atol=1e-12)
    other = np.arange(case.n_branch) != e
    np.testing.assert_array_equal(got.pf[:, other], branch_flows(case, vm, va).pf[:, other])


def test_case300_phase_shifter_sign(tmp_path):
    """The bundled case300's phase shifter with the sign flipped, from the CLI."""
    raw = load_case("pglib_opf_case300_ieee")
    case = compile_case(raw, emit_warnings=False)
    (row,) = np.nonzero(raw.branch[:, SHIFT])[0]
    proxy = _proxy(case)
    good = _export(case, proxy, tmp_path / "good.onnx")
    bad_case = compile_case(_modified(raw, "branch", int(row), SHIFT, -raw.branch[row, SHIFT]),
                            emit_warnings=False)
    bad = _export(bad_case, proxy, tmp_path / "bad.onnx")
    args = ["--samples", "4", "--json"]
    assert main(["check-physics", str(good), "pglib_opf_case300_ieee", *args]) == 0
    assert main(["check-physics", str(bad), "pglib_opf_case300_ieee", "--samples", "4"]) == 1
    res = check_physics(bad, case, OPTS)
    assert res.findings[0].element == _branch_name(case, int(row))
    assert res.findings[0].cause == "phase-shift sign flipped"
    # a shunt conductance left out
    i = int(np.nonzero(raw.bus[:, GS])[0][0])
    no_gs = compile_case(_modified(raw, "bus", i, GS, 0.0), emit_warnings=False)
    res = check_physics(_export(no_gs, proxy, tmp_path / "gs.onnx"), case, OPTS)
    (only,) = res.findings
    assert only.element == f"bus {int(raw.bus[i, 0])}" and only.cause_key == "no_gs"


def test_gelu_graph_runs_in_the_reference_evaluator(tmp_path):
    """onnxruntime has no float64 Erf: the ONNX reference evaluator takes over."""
    case = compile_case(load_case("pglib_opf_case5_pjm"), emit_warnings=False)
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (6,), "gelu", True)
    lo, hi = case_limits(case)
    torch.manual_seed(0)
    proxy = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
    res = check_physics(_export(case, proxy, tmp_path / "g.onnx"), case,
                        CheckOptions(samples=3))
    assert res.ok and res.evaluator == "onnx reference float64"
    assert "reference evaluator" in res.notes[0]


def test_cli_json_and_text(shifted, proxy14, tmp_path, capsys):
    raw, case, _ = shifted
    row = int(np.argmax(raw.branch[:, BR_B]))
    base = load_case("pglib_opf_case14_ieee")
    bad = compile_case(_modified(base, "branch", row, BR_B, 0.0), emit_warnings=False)
    path = _export(bad, proxy14, tmp_path / "bad.onnx.")
    rc = main(["check-physics", str(path), "pglib_opf_case14_ieee", "--samples", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["ok"] is False and out["samples"] == 3
    assert out["findings"][0]["cause_key"] == "no_charging"
    assert [f["family"] for f in out["families"]] == ["pf", "pt", "qf", "qt", "sf", "st", "rp",
                                                      "rq"]
    rc = main(["check-physics", str(path), "pglib_opf_case14_ieee", "--samples", "3"])
    text = capsys.readouterr().out
    assert rc == 1 and "DISAGREE" in text and "line charging missing" in text
    assert f"branch {row + 1} " in text
    assert max(len(line) for line in text.splitlines()[1:]) <= 80


def test_bad_input_is_one_line_exit_2(shifted, proxy14, tmp_path, capsys):
    raw, case, _ = shifted
    path = _export(case, proxy14, tmp_path / "m.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for argv in (
        ["check-physics", str(path), "pglib_opf_case5_pjm"],  # wrong sizes
        ["check-physics", str(tmp_path / "none.onnx"), "pglib_opf_case14_ieee"],
        ["check-physics", str(junk), "pglib_opf_case14_ieee"],
        ["check-physics", str(tmp_path), "pglib_opf_case14_ieee"],
        ["check-physics", str(path), "pglib_opf_case14_ieee", "--samples", "0"],
        ["check-physics", str(path), "pglib_opf_case14_ieee", "--tol", "-1"],
        ["check-physics", str(path), "pglib_opf_case14_ieee", "--seed", "-1"],
        ["check-physics", str(path), "pglib_opf_case14_ieee", "--samples", "100000000000"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    m = onnx.load(path)  # Y := its first 5 entries
    m.graph.node[-1].output[0] = "Y_full"
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.arange(5), "first5"))
    m.graph.node.append(onnx.helper.make_node("Gather", ["Y_full", "first5"], ["Y"], axis=1))
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5
    with pytest.raises(GraphError, match="has 5 outputs"):
        check_physics(m, case, OPTS)
    with pytest.raises(SpecError):
        CheckOptions(width=1.5)
    # no outputs; an integer input feeding float MatMuls (no runtime loads it; the lax
    # reference evaluator used to run it and say it agrees)
    none = onnx.load(path)
    del none.graph.output[:]
    with pytest.raises(GraphError, match="the ONNX graph has no outputs"):
        check_physics(none, case, OPTS)
    ints = onnx.load(path)
    ints.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    with pytest.raises(GraphError, match="input '.*' has element type INT64"):
        check_physics(ints, case, OPTS)
    typed = onnx.load(path)  # a float input whose first node expects another type
    typed.graph.node.insert(0, onnx.helper.make_node("Cast", [typed.graph.input[0].name],
                                                     ["X_int"], to=onnx.TensorProto.INT64))
    for node in typed.graph.node[1:]:
        node.input[:] = ["X_int" if i == typed.graph.input[0].name else i for i in node.input]
    with pytest.raises(GraphError, match="not a valid ONNX graph"):
        check_physics(typed, case, OPTS)


def test_float64_widening_keeps_the_graph(shifted, proxy14, tmp_path):
    import onnxruntime as ort

    _, case, _ = shifted
    m = onnx.load(_export(case, proxy14, tmp_path / "m.onnx"))
    w = onnx_float64(m)
    x = np.concatenate([case.pd, case.qd])[None]
    y32 = ort.InferenceSession(m.SerializeToString()).run(None, {"X": x.astype(np.float32)})[0]
    y64 = ort.InferenceSession(w.SerializeToString()).run(None, {"X": x})[0]
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-3, atol=1e-3)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # not touched


def test_float64_widening_of_constants_and_casts():
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=0.1),
        helper.make_node("Constant", [], ["v"], value_floats=[1.0, 2.0]),
        helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x32", "c"], ["y0"]),
        helper.make_node("Add", ["y0", "v"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    w = onnx_float64(m)
    x = np.array([[1.0 / 3.0, 3.0]])
    (y,) = ort.InferenceSession(w.SerializeToString()).run(None, {"x": x})
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, x * float(np.float32(0.1)) + [1.0, 2.0], rtol=1e-15)


def test_lookup_table_export_agrees_within_its_interpolation_error(shifted, proxy14, tmp_path,
                                                                    capsys):
    """sin/cos as lookup tables (make-instances --nonlinear lut): agree within h^2/8."""
    from gridverify.vnncomp.lut import lut_graph

    raw, case, _ = shifted
    x0 = np.concatenate([case.pd, case.qd])
    lo, hi = np.minimum(0.8 * x0, 1.2 * x0), np.maximum(0.8 * x0, 1.2 * x0)

    def lut_export(c, path):
        graph, _ = acopf_graph(c, proxy14)
        return export_onnx(lut_graph(graph, lo, hi, 32), path)

    path = lut_export(case, tmp_path / "lut.onnx")
    res = check_physics(path, case, OPTS)  # loads within 10%: inside the tables' 20% box
    lt = res.lookup_tables
    assert res.ok, res.findings[:3]
    assert lt is not None and lt.funcs == ("sin", "cos") and lt.points == 32
    assert lt.outside == 0 and lt.step**2 / 8 <= lt.error <= lt.step**2 / 8 + 1e-6
    assert res.tol == pytest.approx(OPTS.tol + lt.error)
    # the tables' error is above the plain tolerance: without them this would disagree
    assert OPTS.tol < max(f.max_err for f in res.families) <= res.tol
    assert any("lookup tables" in n and "32 points" in n for n in res.notes)
    # a smooth export has no tables and keeps the tolerance
    smooth = check_physics(_export(case, proxy14, tmp_path / "m.onnx"), case, OPTS)
    assert smooth.lookup_tables is None and smooth.tol == OPTS.tol
    # a modelling mistake in a table graph is still found and named
    row = int(np.argmax(raw.branch[:, BR_B]))
    bad = compile_case(_modified(raw, "branch", row, BR_B, 0.0), emit_warnings=False)
    res = check_physics(lut_export(bad, tmp_path / "bad.onnx"), case, OPTS)
    assert not res.ok and res.lookup_tables is not None
    assert _by_element(res)[_branch_name(case, row)].cause_key == "no_charging"
    # loads beyond the tables' box: the samples are counted and the disagreement put down
    # to the tables' range, not left unexplained
    res = check_physics(path, case, CheckOptions(samples=8, seed=3, width=0.9))
    assert not res.ok and res.lookup_tables.outside > 0
    assert all(f.cause is not None for f in res.findings)
    assert any("outside their grid" in n for n in res.notes)
    # the command: agree (exit 0) with a note naming the tables; --help says so
    plain = compile_case(load_case("pglib_opf_case14_ieee"), emit_warnings=False)
    path = lut_export(plain, tmp_path / "plain_lut.onnx")
    assert main(["check-physics", str(path), "pglib_opf_case14_ieee", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "note: sin and cos approximated by lookup tables" in out and "agree:" in out
    main(["check-physics", "--help"])
    assert "lookup tables" in " ".join(capsys.readouterr().out.split())
