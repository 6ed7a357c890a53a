"""Run single VNN-COMP instances built from small real ONNX models with known answers."""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vnncomp_fixtures import (  # noqa: E402
    forward,
    ibp_upper,
    mlp_onnx,
    random_weights,
    tiny_relu_weights,
    vnnlib_text,
)

from gridverify.errors import VnnlibError  # noqa: E402
from gridverify.vnncomp.result import read_result, write_result  # noqa: E402
from gridverify.vnncomp.runner import RunOptions, VnncompOptionError, run_instance  # noqa: E402
from gridverify.vnncomp.vnnlib import parse_vnnlib  # noqa: E402

QUICK = RunOptions(timeout=20.0, extend_attack=False)


def _bounds_available() -> bool:
    """The bound engine imports and bounds a one-ReLU graph (it may be work in progress)."""
    try:
        import torch

        from gridverify.bounds import compute_bounds
        from gridverify.ir import GraphBuilder

        b = GraphBuilder()
        b.output(b.relu(b.input("x", 1)), "y")
        res = compute_bounds(b.build(), torch.zeros(1), torch.ones(1), method="alpha-crown")
        return bool(res.upper.reshape(-1)[0] >= 1.0)
    except Exception:  # noqa: BLE001 - any failure means "not available yet"
        return False


needs_bounds = pytest.mark.skipif(not _bounds_available(), reason="bound engine not importable")


def _ort_check(onnx_path: Path, vnnlib_path: Path, x: np.ndarray) -> bool:
    """Independent check: x in a box of the property and the ONNX output in its polytope."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    y = sess.run(None, {inp.name: x.astype(np.float32).reshape(1, -1)})[0].reshape(-1)
    prop = parse_vnnlib(vnnlib_path)
    for case in prop.cases:
        if np.all(x >= case.lower) and np.all(x <= case.upper):
            for A, b in case.output:
                if np.all(A @ y.astype(np.float64) <= b):
                    return True
    return False


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return mlp_onnx(tmp_path / "tiny.onnx", tiny_relu_weights())


def _prop(tmp_path: Path, name: str, lo, hi, n_out, disjuncts) -> Path:
    p = tmp_path / name
    p.write_text(vnnlib_text(np.asarray(lo, float), np.asarray(hi, float), n_out, disjuncts))
    return p


def test_sat_at_known_point_confirmed(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(tmp_path, "sat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 1.9)", "(<= Y_1 0.1)"]])
    out = run_instance(tiny, prop, QUICK)
    assert out.result == "sat" and out.stage == "attack"
    assert np.all(out.x >= 0) and np.all(out.x <= 1)
    assert out.y[0] >= 1.9 and out.y[1] <= 0.1
    assert _ort_check(tiny, prop, out.x)
    res = tmp_path / "result.txt"
    write_result(res, out.result, out.x, out.y)
    word, values = read_result(res)
    assert word == "sat"
    x = np.array([values["X_0"], values["X_1"]])
    np.testing.assert_array_equal(x, out.x)  # repr round-trips exactly
    assert _ort_check(tiny, prop, x)


def test_sat_in_second_disjunct_and_second_box(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(tmp_path, "or.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 3)"], ["(>= Y_1 0.99)"]])
    out = run_instance(tiny, prop, QUICK)
    assert out.result == "sat" and out.y[1] >= 0.99
    text = (
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
        "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
        "(assert (or (and (>= X_0 0) (<= X_0 0.2) (>= X_1 0) (<= X_1 0.2) (>= Y_0 1))\n"
        "            (and (>= X_0 0.5) (<= X_0 1) (>= X_1 0.5) (<= X_1 1) (>= Y_0 1.5))))\n"
    )
    p2 = tmp_path / "boxes.vnnlib"
    p2.write_text(text)
    out = run_instance(tiny, p2, QUICK)
    assert out.result == "sat" and np.all(out.x >= 0.5)
    assert _ort_check(tiny, p2, out.x)


def test_whole_box_unsafe_when_no_output_constraint(tiny: Path, tmp_path: Path) -> None:
    lines = vnnlib_text(np.zeros(2), np.ones(2), 2, [["(>= Y_0 0)"]]).splitlines()[:-1]
    p = tmp_path / "box_only.vnnlib"
    p.write_text("\n".join(lines) + "\n")
    assert run_instance(tiny, p, QUICK).result == "sat"


@needs_bounds
def test_unsat_by_bounds(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(
        tmp_path,
        "unsat.vnnlib",
        [0, 0],
        [1, 1],
        2,
        [["(>= Y_0 2.5)"], ["(>= (- Y_0 Y_1) 2.1)"], ["(<= Y_1 -0.01)"]],
    )
    out = run_instance(tiny, prop, QUICK)
    assert out.result == "unsat" and out.stage == "bounds"


@needs_bounds
def test_bound_passes_get_the_instance_deadline(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """Every bound pass gets the instance's (soft) deadline, at which alpha-CROWN's
    optimization stops (it ran all its iterations past the timeout)."""
    import gridverify.bounds as bounds

    seen: dict[str, float | None] = {}
    real = bounds.compute_bounds

    def spy(*args, **kw):
        seen[kw.get("method", "ibp")] = kw.get("deadline")
        return real(*args, **kw)

    monkeypatch.setattr(bounds, "compute_bounds", spy)
    prop = _prop(tmp_path, "unsat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 2.5)"]])
    t0 = time.monotonic()
    out = run_instance(tiny, prop, RunOptions(timeout=20.0, extend_attack=False, use_bab=False))
    assert out.result == "unsat" and seen, seen
    assert all(d is not None and t0 + 15 < d <= t0 + 20.5 for d in seen.values()), seen


def test_unknown_without_bounds_and_timeout_respected(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(tmp_path, "unsat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 2.5)"]])
    out = run_instance(
        tiny, prop, RunOptions(timeout=5, bound_method="none", use_bab=False, extend_attack=False)
    )
    assert out.result == "unknown"
    t0 = time.monotonic()
    out = run_instance(tiny, prop, RunOptions(timeout=2.0, bound_method="none", use_bab=False))
    assert out.result == "timeout"
    assert time.monotonic() - t0 < 2.5


def test_attack_beyond_memory_finds_nothing_and_the_run_goes_on(tiny: Path,
                                                                tmp_path: Path) -> None:
    """Restarts whose starting points cannot be allocated: the attack stage fails (it
    proves nothing), the verdict comes from the stages after it, no traceback."""
    prop = _prop(tmp_path, "unsat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 2.5)"]])
    huge = RunOptions(timeout=10, attack_restarts=10**15, bound_method="none", use_bab=False)
    out = run_instance(tiny, prop, huge)
    assert out.result == "timeout" and "attack failed" in out.detail, out
    if _bounds_available():
        out = run_instance(tiny, prop, RunOptions(timeout=10, attack_restarts=10**15))
        assert out.result == "unsat", out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_networks_answers_are_consistent(tmp_path: Path, seed: int) -> None:
    """sat below the sampled maximum (confirmed); never unsat where sampling violates."""
    w = random_weights(seed, [4, 12, 12, 3])
    model = mlp_onnx(tmp_path / f"net{seed}.onnx", w)
    lo, hi = -np.ones(4), np.ones(4)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(lo, hi, size=(20000, 4))
    ys = forward(w, xs)
    top = ys[:, 0].max()
    sat = _prop(tmp_path, "s.vnnlib", lo, hi, 3, [[f"(>= Y_0 {float(top) - 0.01!r})"]])
    out = run_instance(model, sat, QUICK)
    assert out.result == "sat" and _ort_check(model, sat, out.x)
    bound = ibp_upper(w, lo, hi, np.array([1.0, 0.0, 0.0]))
    safe = _prop(tmp_path, "u.vnnlib", lo, hi, 3, [[f"(>= Y_0 {bound + 0.01!r})"]])
    out = run_instance(model, safe, QUICK)
    assert out.result in (("unsat",) if _bounds_available() else ("unknown",))
    # a threshold between: whatever the answer, it must agree with sampling
    mid = _prop(tmp_path, "m.vnnlib", lo, hi, 3, [[f"(>= Y_0 {float(top) + 1e-3!r})"]])
    out = run_instance(model, mid, QUICK)
    if out.result == "sat":
        assert _ort_check(model, mid, out.x)
    assert out.result in ("sat", "unsat", "unknown")


def test_gzip_inputs(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(tmp_path, "sat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 1.9)"]])
    gz_model = tmp_path / "tiny.onnx.gz"
    gz_model.write_bytes(gzip.compress(tiny.read_bytes()))
    gz_prop = tmp_path / "sat.vnnlib.gz"
    gz_prop.write_bytes(gzip.compress(prop.read_bytes()))
    assert run_instance(gz_model, gz_prop, QUICK).result == "sat"


def test_weights_in_a_side_file(tiny: Path, tmp_path: Path) -> None:
    """torch's exporter writes the weights to ``NAME.onnx.data`` beside the model."""
    import onnx

    side = tmp_path / "side"
    side.mkdir()
    onnx.save(onnx.load(tiny), side / "tiny.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="tiny.onnx.data", size_threshold=0)
    assert (side / "tiny.onnx.data").is_file()
    prop = _prop(tmp_path, "sat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 1.9)", "(<= Y_1 0.1)"]])
    out = run_instance(side / "tiny.onnx", prop, QUICK)
    assert out.result == "sat" and _ort_check(tiny, prop, out.x)


def test_dimension_mismatch_is_a_named_error(tiny: Path, tmp_path: Path) -> None:
    prop = _prop(tmp_path, "bad.vnnlib", [0, 0, 0], [1, 1, 1], 2, [["(>= Y_0 1)"]])
    with pytest.raises(VnnlibError, match="declares 3 inputs"):
        run_instance(tiny, prop, QUICK)
    prop = _prop(tmp_path, "bad2.vnnlib", [0, 0], [1, 1], 3, [["(>= Y_0 1)"]])
    with pytest.raises(VnnlibError, match="declares 3 outputs"):
        run_instance(tiny, prop, QUICK)


def test_branch_and_bound_decides_what_bounds_leave_open(tmp_path: Path) -> None:
    """Threshold just above the dense-grid maximum: alpha-CROWN alone cannot, BaB can."""
    w = random_weights(2, [2, 16, 16, 1])
    model = mlp_onnx(tmp_path / "n.onnx", w)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 301)] * 2), -1).reshape(-1, 2)
    top = float(forward(w, grid)[:, 0].max())
    lo, hi = -np.ones(2), np.ones(2)
    prop = _prop(tmp_path, "p.vnnlib", lo, hi, 1, [[f"(>= Y_0 {top + 0.01!r})"]])
    no_bab = run_instance(model, prop, RunOptions(timeout=20, extend_attack=False, use_bab=False))
    assert no_bab.result == "unknown"
    out = run_instance(model, prop, QUICK)
    assert out.result == "unsat" and out.stage == "bab"


def test_branch_and_bound_searches_open_rows_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two one-row disjuncts (output above its top, or below its bottom): each gets a
    search of its own (a joint search would have to prove both in every domain)."""
    import gridverify.vnncomp.runner as runner

    w = random_weights(2, [2, 16, 16, 1])
    model = mlp_onnx(tmp_path / "n.onnx", w)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 301)] * 2), -1).reshape(-1, 2)
    ys = forward(w, grid)[:, 0]
    top, bot = float(ys.max()), float(ys.min())
    prop = _prop(tmp_path, "p.vnnlib", -np.ones(2), np.ones(2), 1,
                 [[f"(>= Y_0 {top + 0.01!r})"], [f"(<= Y_0 {bot - 0.01!r})"]])
    no_bab = run_instance(model, prop, RunOptions(timeout=20, extend_attack=False, use_bab=False))
    assert no_bab.result == "unknown"
    seen: list[tuple[tuple[int, int], ...]] = []
    real = runner._bab_rows

    def counted(inst, opts, device, case, rows, seconds, budget):  # noqa: ANN001, ANN202
        seen.append(tuple(rows))
        return real(inst, opts, device, case, rows, seconds, budget)

    monkeypatch.setattr(runner, "_bab_rows", counted)
    out = run_instance(model, prop, QUICK)
    assert out.result == "unsat" and out.stage == "bab"
    assert seen and all(len(rows) == 1 for rows in seen)
    assert len(set(seen)) == len(seen)  # each row decided by its one search
    # more open one-row disjuncts than the cap: one joint search over them
    seen.clear()
    monkeypatch.setattr(runner, "_BAB_PER_ROW_MAX", 1)
    out = run_instance(model, prop, QUICK)
    assert out.result in ("unsat", "timeout", "unknown")
    assert seen and len(seen[0]) == 2


@needs_bounds
def test_memory_cap_sizes_bounds_and_rules_nothing_out_when_nothing_fits(
    tiny: Path, tmp_path: Path
) -> None:
    """A cap with room decides as the default does; one with none answers unknown, no crash."""
    prop = _prop(tmp_path, "unsat.vnnlib", [0, 0], [1, 1], 2, [["(>= Y_0 2.5)"]])
    roomy = run_instance(tiny, prop, RunOptions(timeout=20.0, extend_attack=False,
                                                memory_cap_mb=256.0))
    assert roomy.result == "unsat" and roomy.stage == "bounds"
    starved = run_instance(tiny, prop, RunOptions(timeout=20.0, extend_attack=False,
                                                  memory_cap_mb=1e-6))
    assert starved.result == "unknown"


def test_memory_cap_leaves_branch_and_bound_out_when_its_store_cannot_fit(
    tmp_path: Path,
) -> None:
    w = random_weights(2, [2, 16, 16, 1])
    model = mlp_onnx(tmp_path / "n.onnx", w)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 301)] * 2), -1).reshape(-1, 2)
    top = float(forward(w, grid)[:, 0].max())
    prop = _prop(tmp_path, "p.vnnlib", -np.ones(2), np.ones(2), 1,
                 [[f"(>= Y_0 {top + 0.01!r})"]])
    out = run_instance(model, prop, RunOptions(timeout=20, extend_attack=False,
                                               memory_cap_mb=1e-6))
    assert out.result == "unknown"
    out = run_instance(model, prop, RunOptions(timeout=20, extend_attack=False,
                                               memory_cap_mb=512.0))
    assert out.result == "unsat" and out.stage == "bab"


def test_memory_cap_must_be_positive() -> None:
    with pytest.raises(VnncompOptionError, match="memory cap"):
        RunOptions(memory_cap_mb=0.0)


def _one_reachable_disjunct(tmp_path: Path, seed: int, n_out: int, k: int, upper: bool):
    """An MLP with ``n_out`` outputs and one disjunct per output and sign, all out of
    reach (1 beyond the output's grid range) but the one on output ``k`` (the upper
    side when ``upper``), 5 % inside its range.  Returns the run outcome and the
    grid range of output ``k``."""
    w = random_weights(seed, [3, 24, 24, n_out])
    model = mlp_onnx(tmp_path / f"wide{n_out}.onnx", w)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 41)] * 3), -1).reshape(-1, 3)
    y = forward(w, grid)
    hi_y, lo_y = [float(v) for v in y.max(0)], [float(v) for v in y.min(0)]
    dis = []
    for j in range(n_out):
        dis.append([f"(>= Y_{j} {hi_y[j] + 1.0!r})"])
        dis.append([f"(<= Y_{j} {lo_y[j] - 1.0!r})"])
    margin = 0.05 * (hi_y[k] - lo_y[k])
    if upper:
        dis[2 * k] = [f"(>= Y_{k} {hi_y[k] - margin!r})"]
    else:
        dis[2 * k + 1] = [f"(<= Y_{k} {lo_y[k] + margin!r})"]
    prop = _prop(tmp_path, f"many{n_out}.vnnlib", -np.ones(3), np.ones(3), n_out, dis)
    out = run_instance(model, prop, RunOptions(timeout=20, bound_method="none", use_bab=False,
                                               extend_attack=False))
    return out, lo_y[k], hi_y[k]


def test_many_disjuncts_screened_then_searched_find_the_one_violated(tmp_path: Path) -> None:
    """40 disjuncts (one per output and sign), one reachable just below its grid maximum:
    the screened attack finds it (sat, confirmed by onnxruntime) without bounds or BaB."""
    out, lo, hi = _one_reachable_disjunct(tmp_path, 7, 20, 13, upper=True)
    assert out.result == "sat" and out.stage == "attack"
    assert out.y[13] >= hi - 0.05 * (hi - lo)


def test_hundreds_of_disjuncts_sampled_first_find_the_one_violated(tmp_path: Path) -> None:
    """200 disjuncts (above four times the screen size): the sample screen keeps the
    promising ones, the reachable one among them, and the attack finds it."""
    out, lo, hi = _one_reachable_disjunct(tmp_path, 8, 100, 77, upper=False)
    assert out.result == "sat" and out.stage == "attack"
    assert out.y[77] <= lo + 0.05 * (hi - lo)


@needs_bounds
def test_conjunction_infeasible_only_jointly_is_unsat(tiny: Path, tmp_path: Path) -> None:
    """``y0 >= 1.99 and y1 >= 0.5`` (y0 = relu(x0 + x1), y1 = relu(x0 - x1), x in
    [-1, 1]^2): each row holds somewhere, never both; no single row can be ruled out,
    the disjunct's least margin can."""
    prop = _prop(tmp_path, "and.vnnlib", [-1, -1], [1, 1], 2, [["(>= Y_0 1.99)", "(>= Y_1 0.5)"]])
    no_bab = run_instance(tiny, prop, RunOptions(timeout=10, extend_attack=False, use_bab=False))
    assert no_bab.result == "unknown"
    out = run_instance(tiny, prop, QUICK)
    assert out.result == "unsat" and out.stage == "bab"
    # the same with a reachable threshold: a counterexample, not unsat
    prop = _prop(tmp_path, "and2.vnnlib", [-1, -1], [1, 1], 2, [["(>= Y_0 1.2)", "(>= Y_1 0.5)"]])
    out = run_instance(tiny, prop, QUICK)
    assert out.result == "sat" and _ort_check(tiny, prop, out.x)


def test_input_pinned_off_float32_gets_the_nearest_float32(tmp_path: Path) -> None:
    """X_0 pinned to 0.3 (no float32 equals it): the counterexample carries float32(0.3),
    less than one float32 step off the box, as the only input the model can run on."""
    model = mlp_onnx(tmp_path / "lin.onnx", [(np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2))])
    prop = _prop(tmp_path, "pin.vnnlib", [0.3, 0.0], [0.3, 1.0], 2, [["(>= Y_0 0.5)"]])
    out = run_instance(model, prop, QUICK)
    assert out.result == "sat"
    assert out.x[0] == float(np.float32(0.3)) and 0.0 <= out.x[1] <= 1.0
    assert out.y[0] >= 0.5
    # a box that does hold float32 values still gets one inside it
    prop = _prop(tmp_path, "pin2.vnnlib", [0.3, 0.0], [0.31, 1.0], 2, [["(>= Y_0 0.5)"]])
    out = run_instance(model, prop, QUICK)
    assert out.result == "sat" and 0.3 <= out.x[0] <= 0.31


@needs_bounds
def test_floor_of_a_float32_product_is_not_proved_unsat(tmp_path: Path) -> None:
    """onnxruntime computes floor(10 * 0.7f) = 7 (the float32 product rounds up to 7);
    the property ``y >= 7`` on ``x in [9, 10]`` therefore has a counterexample and
    must not come out unsat, whatever the exact product of the stored weight says."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "c"], ["z"]), helper.make_node("Floor", ["z"], ["y"])],
        "floor", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(np.array([0.7], np.float32), "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "floor.onnx")
    sess = ort.InferenceSession(str(tmp_path / "floor.onnx"))
    assert sess.run(None, {"x": np.array([[10.0]], np.float32)})[0][0, 0] == 7.0
    (tmp_path / "p.vnnlib").write_text(
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
        "(assert (>= X_0 9.0))\n(assert (<= X_0 10.0))\n(assert (>= Y_0 7.0))\n")
    out = run_instance(tmp_path / "floor.onnx", tmp_path / "p.vnnlib",
                       RunOptions(timeout=10.0, extend_attack=False))
    assert out.result != "unsat", out


@needs_bounds
def test_runtime_saturating_to_infinity_is_not_unsat(tmp_path: Path) -> None:
    """``log(sigmoid(x))`` on x in [-30, -20]: onnxruntime's float32 sigmoid is 0
    there, so its output is -inf and ``Y_0 <= -1000`` holds everywhere; the graph
    (float64) says -30..-20.  The runner must not claim ``unsat``."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["q"]), helper.make_node("Log", ["q"], ["y"])],
        "logsig",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx_path = tmp_path / "logsig.onnx"
    onnx.save(m, onnx_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                    "(assert (>= X_0 -30))\n(assert (<= X_0 -20))\n(assert (<= Y_0 -1000))\n")
    res = run_instance(onnx_path, prop, QUICK)
    assert res.result != "unsat"
