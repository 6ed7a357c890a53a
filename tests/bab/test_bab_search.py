"""Branch-and-bound: soundness against dense sampling, modes, anytime stops, bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from gridverify.bab import BabOptions, BabOptionsError, bab_maximize
from gridverify.bounds import compute_bounds
from gridverify.errors import GridverifyError, SpecError
from gridverify.ir import GraphBuilder


def mixed_graph(seed: int = 0, n_in: int = 3, hidden: int = 6):
    """A small graph with every kind of nonlinearity BaB splits: relu, tanh, sin, products."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", n_in)
    h = b.relu(b.linear(x, rng.normal(size=(hidden, n_in)), rng.normal(size=hidden) * 0.3))
    t = b.tanh(b.linear(h, rng.normal(size=(hidden, hidden)) * 0.6, rng.normal(size=hidden)))
    s = b.sin(b.linear(x, rng.normal(size=(hidden, n_in)), rng.normal(size=hidden)))
    p = b.mul(t, s)
    q = b.square(b.linear(x, rng.normal(size=(2, n_in)), None))
    out = b.concat([b.linear(p, rng.normal(size=(3, hidden)), rng.normal(size=3)), q])
    b.output(out, "y")
    return b.build()


def sampled_max(g, lo, hi, spec, n=200_000, seed=1) -> float:
    rng = np.random.default_rng(seed)
    x = lo + rng.random((n, lo.size)) * (hi - lo)
    corners = np.array([[lo[i] if (k >> i) & 1 else hi[i] for i in range(lo.size)]
                        for k in range(2 ** lo.size)])
    x = np.concatenate([x, corners])
    y = g.evaluate_flat(torch.from_numpy(x), dtype=torch.float64)
    return float((y @ torch.as_tensor(spec, dtype=torch.float64).reshape(-1, y.shape[1]).T)
                 .max(-1).values.max())


def value_at(g, x, spec) -> float:
    y = g.evaluate_flat(torch.as_tensor(x, dtype=torch.float64)[None], dtype=torch.float64)
    return float((y @ torch.as_tensor(spec, dtype=torch.float64).reshape(-1, y.shape[1]).T).max())


FAST = BabOptions(timeout=2.0, batch=16, root_alpha_iterations=5, attack_steps=10)


def assert_consistent(res) -> None:
    """A finite bound, never below the value attained: the search reports ``inf`` with
    an ``inconsistent`` reason when its bookkeeping lost part of the box, which the
    soundness checks (bound >= sampled maximum) alone would let pass."""
    assert math.isfinite(res.upper_bound), (res.upper_bound, res.reason)
    assert not res.reason.startswith(("inconsistent", "error")), res.reason
    assert res.attained <= res.upper_bound


def grid_max(g) -> float:  # noqa: ANN001
    """The largest value of a one-output graph on a 1001 x 1001 grid of [-1, 1]^2."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 1001)] * 2), -1).reshape(-1, 2)
    return float(g.evaluate_flat(torch.from_numpy(grid), dtype=torch.float64).max())


def relu_net(seed: int, n_in: int = 2, hidden: int = 10):
    """A two-layer relu network with one output: every relu unstable over [-1, 1]^2."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", n_in)
    h = b.relu(b.linear(x, rng.normal(size=(hidden, n_in)), rng.normal(size=hidden) * 0.2))
    h = b.relu(b.linear(h, rng.normal(size=(hidden, hidden)) / 2, rng.normal(size=hidden) * 0.2))
    b.output(b.linear(h, rng.normal(size=(1, hidden)), None), "y")
    return b.build()


@pytest.mark.parametrize("branching", ["input", "bbps", "babsr", "widest"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bound_is_sound_and_tighter(branching, seed):
    g = mixed_graph(seed)
    lo, hi = -np.ones(3), np.ones(3)
    rng = np.random.default_rng(seed)
    spec = rng.normal(size=(2, g.output_size))
    res = bab_maximize(g, lo, hi, spec, options=FAST.__class__(
        **{**FAST.__dict__, "branching": branching}))
    smax = sampled_max(g, lo, hi, spec)
    assert res.upper_bound >= smax - 1e-9, (res.upper_bound, smax)
    assert_consistent(res)
    # the witness is a point of the box whose float64 value is the attained value
    assert np.all(res.witness >= lo) and np.all(res.witness <= hi)
    assert value_at(g, res.witness, spec) == pytest.approx(res.attained, abs=1e-12)
    # never looser than the engine alone
    crown = compute_bounds(g, torch.from_numpy(lo), torch.from_numpy(hi), method="crown",
                           spec=torch.from_numpy(spec)).upper.max()
    assert res.upper_bound <= float(crown) + 1e-9
    assert res.domains_visited >= 1
    times = [h[0] for h in res.history]
    bounds = [h[1] for h in res.history]
    assert times == sorted(times)
    assert all(b2 <= b1 + 1e-12 for b1, b2 in zip(bounds, bounds[1:])), "bound went up"


def test_optimization_closes_gap_on_one_input():
    b = GraphBuilder()
    x = b.input("x", 1)
    y = b.mul(b.sin(b.scale(x, np.array([3.0]))), x)  # x sin(3x) on [-2, 2]
    b.output(y, "y")
    g = b.build()
    res = bab_maximize(g, np.array([-2.0]), np.array([2.0]), np.array([1.0]),
                       options=BabOptions(timeout=20.0, tolerance=1e-5))
    xs = np.linspace(-2, 2, 2_000_001)
    true = float(np.max(xs * np.sin(3 * xs)))
    assert res.status == "certified" and res.reason == "gap"
    assert res.attained <= true + 1e-9
    assert true <= res.upper_bound + 1e-12
    assert res.upper_bound - res.attained <= 1e-5


@pytest.mark.parametrize("branching", ["bbps", "babsr", "widest"])
def test_product_with_a_graph_input_operand(branching):
    """``x * sin(3 x)``: the product reads the graph input itself, whose interval in a
    domain is the domain's box (neuron scores used to fail on it)."""
    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.mul(b.sin(b.scale(x, np.array([3.0, -2.0]))), x), "y")
    g = b.build()
    lo, hi, spec = np.array([-2.0, -1.0]), np.array([2.0, 1.5]), np.array([1.0, 1.0])
    res = bab_maximize(g, lo, hi, spec, options=replace(FAST, branching=branching))
    assert res.upper_bound >= sampled_max(g, lo, hi, spec) - 1e-12
    assert_consistent(res)
    assert res.domains_visited > 1


@pytest.mark.parametrize("branching", ["input", "babsr"])
def test_floor_ends_the_search_once_below_it_and_stays_sound(branching):
    """A value attained elsewhere (another row of the same constraint): the search
    stops once its bound is within the tolerance of it, with a sound bound and its
    own attained value and witness; far below the floor it needs no split."""
    b = GraphBuilder()
    x = b.input("x", 1)
    b.output(b.mul(b.sin(b.scale(x, np.array([3.0]))), x), "y")  # x sin(3x) on [-2, 2]
    g = b.build()
    lo, hi, spec = np.array([-2.0]), np.array([2.0]), np.array([1.0])
    opts = BabOptions(timeout=20.0, tolerance=1e-5, branching=branching)
    xs = np.linspace(-2, 2, 2_000_001)
    true = float(np.max(xs * np.sin(3 * xs)))  # about 1.8
    exact = bab_maximize(g, lo, hi, spec, options=opts)
    floor = true + 0.05  # below the root bound, above the true maximum
    res = bab_maximize(g, lo, hi, spec, options=opts, floor=floor)
    assert res.status == "certified" and res.reason == "gap"
    assert true <= res.upper_bound <= floor + 1e-5
    assert res.domains_visited < exact.domains_visited
    assert res.attained <= true + 1e-9  # its own value, not the floor
    assert value_at(g, res.witness, spec) == pytest.approx(res.attained, abs=1e-12)
    high = bab_maximize(g, lo, hi, spec, options=opts, floor=100.0)
    assert high.domains_visited == 1 and high.upper_bound >= true
    low = bab_maximize(g, lo, hi, spec, options=opts, floor=-100.0)  # a floor below: no effect
    assert low.upper_bound - low.attained <= 1e-5
    with pytest.raises(SpecError, match="floor"):
        bab_maximize(g, lo, hi, spec, options=opts, floor=float("nan"))


def test_decision_modes():
    g = mixed_graph(2)
    lo, hi = -np.ones(3), np.ones(3)
    spec = np.eye(g.output_size)[0]
    smax = sampled_max(g, lo, hi, spec)
    crown = float(compute_bounds(g, torch.from_numpy(lo), torch.from_numpy(hi), method="crown",
                                 spec=torch.from_numpy(spec)[None]).upper.max())
    # threshold above the engine's own bound: certified at once
    r = bab_maximize(g, lo, hi, spec, threshold=crown + 1.0, options=FAST)
    assert r.status == "certified" and r.upper_bound <= crown + 1.0
    # threshold below a sampled value: violated, with a witness above the threshold
    r = bab_maximize(g, lo, hi, spec, threshold=smax - 0.05, options=FAST)
    assert r.status == "violated" and r.attained > smax - 0.05
    assert value_at(g, r.witness, spec) > smax - 0.05


@pytest.mark.parametrize("kw", [{"memory_mb": 1e-4}, {"timeout": 1e-3}, {"max_domains": 3}])
def test_anytime_stop_is_open_and_sound(kw):
    g = mixed_graph(3)
    lo, hi = -np.ones(3), np.ones(3)
    spec = np.eye(g.output_size)[:3]
    opts = BabOptions(**{**FAST.__dict__, "timeout": 30.0, **kw})
    res = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
    assert res.status == "open"
    assert res.reason in ("memory", "timeout", "max_domains")
    assert math.isfinite(res.upper_bound)
    assert res.upper_bound >= sampled_max(g, lo, hi, spec, n=50_000) - 1e-9


def test_keyword_overrides_and_progress():
    g = mixed_graph(4)
    seen = []
    res = bab_maximize(g, -np.ones(3), np.ones(3), np.eye(g.output_size)[1], timeout=0.5,
                       memory_mb=16, progress=seen.append)
    assert seen and {"open", "bound", "attained", "gap", "visited", "seconds"} <= set(seen[0])
    assert_consistent(res)


def test_bad_input_named_errors():
    g = mixed_graph(0)
    with pytest.raises(SpecError, match="box"):
        bab_maximize(g, np.zeros(2), np.ones(2), np.eye(g.output_size)[0])
    with pytest.raises(SpecError, match="lower > upper"):
        bab_maximize(g, np.ones(3), np.zeros(3), np.eye(g.output_size)[0])
    with pytest.raises(SpecError, match="spec"):
        bab_maximize(g, np.zeros(3), np.ones(3), np.ones(g.output_size + 1))
    with pytest.raises(BabOptionsError, match="decision"):
        bab_maximize(g, np.zeros(3), np.ones(3), np.eye(g.output_size)[0], mode="decision")
    with pytest.raises(BabOptionsError, match="branching"):
        BabOptions(branching="random")
    with pytest.raises(BabOptionsError, match="memory_mb"):
        BabOptions(memory_mb=0)
    assert issubclass(BabOptionsError, GridverifyError)


def test_beta_multipliers_keep_bounds_sound():
    g = mixed_graph(5)
    lo, hi = -np.ones(3), np.ones(3)
    spec = np.eye(g.output_size)[:2]
    opts = BabOptions(**{**FAST.__dict__, "branching": "bbps", "beta_iterations": 5,
                         "beta_lr": 0.01, "max_domains": 200})
    res = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
    assert res.upper_bound >= sampled_max(g, lo, hi, spec) - 1e-9
    assert_consistent(res)


def _two_rows_graph():
    """y0 = 0.5 - 0.1 x0 (largest at the centre), y1 = 2 (x0 + x1) - 3.2 (max 0.8 at (1, 1))."""
    b = GraphBuilder()
    x = b.input("x", 2)
    y = b.linear(x, np.array([[-0.1, 0.0], [2.0, 2.0]]), np.array([0.5, -3.2]))
    b.output(b.relu(b.add_const(y, np.array([10.0, 10.0]))), "y")
    return b.build()


def test_attack_targets_rows_not_only_the_largest_at_the_start() -> None:
    from gridverify.bab.search import _Falsifier

    g = _two_rows_graph()
    spec = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    lo = torch.zeros(1, 2, dtype=torch.float64)
    hi = torch.ones(1, 2, dtype=torch.float64)
    f = _Falsifier(g, spec, torch.device("cpu"), seed=0)
    # one restart from the centre: ascending the maximum of the rows follows row 0
    # (to x0 = 0); targeting row 1 reaches its maximum at the corner (1, 1)
    x = f.attack(lo, hi, restarts=1, steps=10, rows=torch.tensor([1]))
    assert torch.allclose(x, torch.ones(1, 2, dtype=torch.float64))
    assert f.offer(x, lo[0], hi[0]) and f.best == pytest.approx(10.8, abs=1e-12)
    r = bab_maximize(g, lo[0].numpy(), hi[0].numpy(), spec.numpy(), options=FAST)
    assert r.attained == pytest.approx(10.8, abs=1e-12)
    assert r.upper_bound >= r.attained - 1e-12


def test_root_intermediate_option() -> None:
    with pytest.raises(BabOptionsError, match="root_intermediate"):
        BabOptions(root_intermediate="ibp")
    g = mixed_graph(3)
    lo, hi = -np.ones(3), np.ones(3)
    spec = np.eye(g.output_size)[:2]
    truth = sampled_max(g, lo, hi, spec)
    for ri in ("crown", "alpha-crown"):
        r = bab_maximize(g, lo, hi, spec, options=replace(FAST, root_intermediate=ri,
                                                          max_domains=50))
        assert r.upper_bound >= max(truth, r.attained) - 1e-9
        assert value_at(g, r.witness, spec) == pytest.approx(r.attained, abs=1e-12)


@pytest.mark.parametrize("branching", ["input", "babsr"])
def test_gelu_network_sound(branching: str) -> None:
    """GELU lowers to ``x * (1 + erf(x / sqrt 2)) / 2``: erf and product splits stay sound."""
    from torch import nn

    from gridverify.ir import from_torch

    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 2)).double()
    g = from_torch(net, input_size=3)
    assert {"erf", "mul"} <= {n.op for n in g.nodes}
    lo, hi = -np.ones(3) * 1.5, np.ones(3) * 1.5
    spec = np.array([[1.0, -1.0], [0.0, 1.0]])
    truth = sampled_max(g, lo, hi, spec)
    r = bab_maximize(g, lo, hi, spec, options=replace(FAST, branching=branching))
    root = compute_bounds(g, lo, hi, method="crown", spec=spec)
    assert r.upper_bound >= max(truth, r.attained) - 1e-9
    assert r.upper_bound <= float(root.upper.max()) + 1e-9
    assert value_at(g, r.witness, spec) == pytest.approx(r.attained, abs=1e-12)


def test_focus_bounds_the_kept_rows_exactly_and_stays_sound():
    """Bounder.restrict_rows with the relevance map gives the same row bounds as the full
    spec; a search with focus (rows below the level dropped after the root) is sound and
    agrees with focus=False on a multi-row spec."""
    from gridverify.bab.bounding import Bounder

    g = mixed_graph(3, hidden=8)
    lo, hi = -np.ones(3), np.ones(3)
    spec = np.random.default_rng(3).normal(size=(5, g.output_size))
    spec[0] *= 4.0  # one dominant row
    lt, ht = torch.from_numpy(lo)[None].repeat(3, 1), torch.from_numpy(hi)[None].repeat(3, 1)
    ht = ht - torch.tensor([[0.0], [0.5], [1.0]], dtype=torch.float64)  # three domains
    full = Bounder(g, torch.from_numpy(spec), torch.device("cpu"), relevance=False)
    part = Bounder(g, torch.from_numpy(spec), torch.device("cpu"))
    part.restrict_rows(torch.tensor([0, 3]))
    a = full.bound(lt, ht, None, None, want_coef=False)
    b = part.bound(lt, ht, None, None, want_coef=False)
    assert b.row_upper.shape == (3, 2)
    torch.testing.assert_close(b.row_upper, a.row_upper[:, [0, 3]], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError):
        part.restrict_rows(torch.tensor([], dtype=torch.int64))
    smax = sampled_max(g, lo, hi, spec)
    res = {}
    for focus in (True, False):
        r = bab_maximize(g, lo, hi, spec, mode="optimization",
                         options=replace(FAST, focus=focus, timeout=None, max_domains=400))
        assert r.upper_bound >= smax - 1e-9 and r.attained <= smax + 1e-12
        assert_consistent(r)
        res[focus] = r
    assert res[True].upper_bound == pytest.approx(res[False].upper_bound, rel=0.05, abs=1e-3)


@pytest.mark.parametrize("branching", ["input", "babsr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clipped_parts_count_in_the_bound(branching: str, seed: int) -> None:
    """With a weak attack and a wide tolerance (clipping at a level far from the
    bounds), with clipping on and off: the reported bound is at least every sampled
    value, in optimization and in decision mode."""
    g = mixed_graph(seed, n_in=2)
    lo, hi = -np.ones(2), np.ones(2)
    spec = np.eye(g.output_size)[:1]
    smax = sampled_max(g, lo, hi, spec)
    for clip in (True, False):
        opts = BabOptions(timeout=3.0, batch=8, branching=branching, tolerance=0.3,
                          attack_every=0, attack_restarts=1, attack_steps=0, clip=clip,
                          root_alpha_iterations=0)
        r = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
        assert r.upper_bound >= smax - 1e-9, (clip, r.upper_bound, smax)
        assert_consistent(r)
    # decision mode: a bound never ties a threshold because of a clipped part
    thr = smax + 0.05
    r = bab_maximize(g, lo, hi, spec, threshold=thr,
                     options=BabOptions(timeout=3.0, batch=8, branching=branching))
    assert r.status in ("certified", "open") and r.upper_bound >= smax - 1e-9
    assert_consistent(r)
    if r.status == "certified":
        assert r.upper_bound <= thr


def test_an_overflowing_maximum_is_infinite_not_certified() -> None:
    """exp on [0, 1000] overflows every float: the bound and the value found are
    +inf, never the largest finite float, and a threshold below it is violated."""
    b = GraphBuilder()
    b.output(b.exp(b.input("x", 1)), "y")
    g = b.build()
    r = bab_maximize(g, [0.0], [1000.0], [1.0], options=BabOptions(timeout=3),
                     mode="optimization")
    assert r.upper_bound == float("inf") and r.status != "certified"
    r = bab_maximize(g, [0.0], [1000.0], [1.0], threshold=1e308, options=BabOptions(timeout=3))
    assert r.status == "violated"


def test_a_narrow_peak_beyond_an_overflow_is_not_certified():
    """``relu(2.001 - 2 cosh(x - 0.37))`` on [-720, 720]: exp overflows float64 at the
    box's ends; the peak 0.001 at x = 0.37 is above the claim 1e-4, which must not be
    certified (an overflowed interval once became a NaN read as a finite end)."""

    b = GraphBuilder()
    x = b.input("x", 1)
    t = b.add_const(x, -0.37)
    y = b.linear(b.concat([b.exp(t), b.exp(b.neg(t))]), [[-1.0, -1.0]])
    b.output(b.pwl(y, [-2.001], [1.0]), "z")
    g = b.build()
    r = bab_maximize(g, np.array([-720.0]), np.array([720.0]), np.array([1.0]), threshold=1e-4,
                     options=BabOptions(timeout=20.0))
    assert r.status != "certified" and r.upper_bound >= 0.001 - 1e-12


def test_a_bound_below_a_value_attained_is_reported_inconsistent(monkeypatch):
    """Fault injection: an engine whose upper bounds are 1 too low.  The search must
    say so (open, reason 'inconsistent', bound inf), never certify."""
    from gridverify.bounds import crown

    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.linear(b.relu(b.linear(x, [[1.0, -1.0], [0.5, 1.0]])), [[1.0, 1.0]]), "y")
    g = b.build()
    real = crown.Engine.backward

    def too_low(self, starts, relax, return_A=False):
        lo, up, lin = real(self, starts, relax, return_A)
        return lo, up - 1.0, lin

    monkeypatch.setattr(crown.Engine, "backward", too_low)
    for thr in (None, 10.0):
        r = bab_maximize(g, np.array([-1.0, -1.0]), np.array([1.0, 1.0]), np.array([1.0]),
                         threshold=thr, options=BabOptions(timeout=10.0))
        assert r.status == "open" and r.reason.startswith("inconsistent"), r
        assert r.upper_bound == math.inf


class _Features(torch.nn.Module):
    """``[x, sin x]`` into a dense layer: its first nn.Linear takes twice the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x, torch.sin(x)], 1))


def test_a_module_takes_its_input_size_from_the_box() -> None:
    """A module whose first nn.Linear does not take the input (features made first) is
    bounded over the box given, as compute_bounds does."""
    torch.manual_seed(0)
    m = _Features().double()
    lo, hi = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    res = bab_maximize(m, lo, hi, torch.ones(1, dtype=torch.float64), timeout=5)
    x = lo + (hi - lo) * torch.rand(2000, 3, dtype=torch.float64)
    with torch.no_grad():
        assert float(m(x).max()) <= res.upper_bound + 1e-9
    assert res.upper_bound <= float(compute_bounds(m, lo, hi, method="ibp").upper.max()) + 1e-9


@pytest.mark.parametrize("branching", ["babsr", "bbps", "widest", "input"])
@pytest.mark.parametrize("seed", [0, 1])
def test_search_closes_the_gap_to_the_true_maximum(branching: str, seed: int) -> None:
    """On a small relu network the search runs to a closed gap: the bound ends within
    the tolerance of the value attained and above the true maximum (dense grid), so
    a split that loses part of a domain, or a pruned or clipped part left out of the
    bound, shows as a bound below the maximum or an inconsistent search."""
    g = relu_net(seed)
    lo, hi, spec = -np.ones(2), np.ones(2), np.array([1.0])
    truth = grid_max(g)
    r = bab_maximize(g, lo, hi, spec, mode="optimization",
                     options=BabOptions(timeout=60.0, batch=8, branching=branching,
                                        tolerance=1e-6))
    assert_consistent(r)
    assert r.status == "certified" and r.reason == "gap", r.reason
    assert r.upper_bound >= truth - 1e-9
    assert r.upper_bound - r.attained <= 1e-6 + 1e-12
    assert r.domains_visited > 1


def test_rows_dropped_at_the_root_still_count() -> None:
    """Row 0 is the constant 1 (its root bound is exact, so the search drops it);
    row 1 is a relu network whose maximum is below 1 and whose root bound is far
    above.  The search closes row 1's gap under the level, and the reported bound
    still covers row 0's value (clipping off: the part it drops would cover it)."""
    b = GraphBuilder()
    x = b.input("x", 2)
    rng = np.random.default_rng(7)
    h = b.relu(b.linear(x, rng.normal(size=(12, 2)), rng.normal(size=12) * 0.2))
    y = b.linear(h, rng.normal(size=(1, 12)) * 0.4, np.array([-0.6]))
    b.output(b.concat([b.linear(x, np.zeros((1, 2)), np.array([1.0])), y]), "y")
    g = b.build()
    lo, hi, spec = -np.ones(2), np.ones(2), np.eye(2)
    root = compute_bounds(g, lo, hi, method="crown", spec=spec).upper
    truth = sampled_max(g, lo, hi, spec[1:])
    assert truth < 1.0 < float(root.reshape(-1)[1])  # the setting the test needs
    for focus in (True, False):
        r = bab_maximize(g, lo, hi, spec, mode="optimization",
                         options=BabOptions(timeout=30.0, batch=8, branching="babsr",
                                            tolerance=1e-6, focus=focus, clip=False))
        assert_consistent(r)
        assert r.attained == pytest.approx(1.0, abs=1e-12)
        assert r.upper_bound >= 1.0
        assert r.reason == "gap"


def test_the_bound_counts_every_part_of_the_box() -> None:
    """``bound_now`` is the largest of the open domains' bounds, the pruned and the
    unsplittable parts' and what the memory cap refused: each one alone sets it."""
    import time

    from gridverify.bab.search import _Search

    g = mixed_graph(0)
    lo, hi = torch.from_numpy(-np.ones(3)), torch.from_numpy(np.ones(3))
    c = torch.eye(g.output_size, dtype=torch.float64)[:1]
    s = _Search(g, lo, hi, c, None, FAST, "optimization", time.perf_counter())
    assert s.bound_now() == -math.inf
    for name, value in (("pruned_max", 3.0), ("stuck_max", 5.0)):
        setattr(s, name, value)
        assert s.bound_now() == value
    s.store.lost_upper = 7.0
    assert s.bound_now() == 7.0


@pytest.mark.parametrize("branching", ["babsr", "input"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_parts_clipped_after_a_better_value_count(branching: str, seed: int) -> None:
    """An attack that improves the value found round by round (no gradient steps, box
    centres only) raises the clipping level: the parts clipped in a round lie below
    the level of that round, not the root's, and the bound must still cover them."""
    g = relu_net(seed)
    lo, hi, spec = -np.ones(2), np.ones(2), np.array([1.0])
    truth = grid_max(g)
    r = bab_maximize(g, lo, hi, spec, mode="optimization",
                     options=BabOptions(timeout=20.0, batch=4, branching=branching,
                                        tolerance=1e-6, attack_steps=0, attack_restarts=1,
                                        attack_every=1, root_alpha_iterations=0))
    assert_consistent(r)
    assert r.upper_bound >= truth - 1e-9
    assert r.reason == "gap"
