"""Split constraints dualized in the bounds (beta-CROWN style, ``optimize_alpha(splits=...)``).

Soundness for *any* multipliers: random, large multipliers (as warm starts, one
evaluation) never give a bound that a sampled point of the split domain beats;
optimized multipliers never loosen CROWN's bound and tighten it on a split
relu network; the clipped input boxes hold every point of the domain.
"""

from __future__ import annotations

import pytest
import torch
from engine_graphs import mlp_physics_graph, sample_box

from gridverify.bounds import BoundOptions
from gridverify.bounds.alpha import _init_alphas, optimize_alpha
from gridverify.bounds.clip import clip_halfspaces, clip_union
from gridverify.bounds.crown import Engine
from gridverify.ir import OPS


def _split_nodes(g) -> list[int]:  # noqa: ANN001
    """Inputs of nonlinear ops that are neither inputs nor constants."""
    out: list[int] = []
    for n in g.nodes:
        if OPS[n.op].nonlinear:
            for i in n.inputs:
                if g.nodes[i].op not in ("input", "constant") and i not in out:
                    out.append(i)
    return sorted(out)


def _domain(g, xs: torch.Tensor, seed: int):  # noqa: ANN001, ANN202
    """Random split constraints: one entry of three split nodes narrowed to one side
    of a sampled quantile of its values among the points kept so far."""
    gen = torch.Generator().manual_seed(seed)
    every = g.evaluate_all(xs)
    splits = {}
    nodes = _split_nodes(g)
    inside = torch.ones(xs.shape[0], dtype=torch.bool)
    for j in torch.randperm(len(nodes), generator=gen)[:3].tolist():
        nid = nodes[j]
        v = every[nid][inside]
        size = v.shape[-1]
        k = int(torch.randint(size, (1,), generator=gen))
        q = float(0.3 + 0.4 * torch.rand(1, generator=gen))
        p = float(v[:, k].quantile(q))
        nl = torch.full((1, size), -torch.inf, dtype=torch.float64)
        nu = torch.full((1, size), torch.inf, dtype=torch.float64)
        if bool(torch.rand(1, generator=gen) < 0.5):
            nl[0, k] = p
        else:
            nu[0, k] = p
        splits[nid] = (nl, nu)
        inside &= ((every[nid] >= nl) & (every[nid] <= nu)).all(-1)
    return splits


def _inside(g, xs: torch.Tensor, splits) -> torch.Tensor:  # noqa: ANN001
    every = g.evaluate_all(xs)
    ok = torch.ones(xs.shape[0], dtype=torch.bool)
    for nid, (nl, nu) in splits.items():
        v = every[nid]
        ok &= ((v >= nl) & (v <= nu)).all(-1)
    return ok


def _bounds(g, lo, hi, splits, warm=None, iterations=1, spec=None,  # noqa: ANN001, ANN202
            warm_alphas=None):
    eng = Engine(g, {g.inputs[0]: (lo, hi)}, torch.float64, torch.device("cpu"),
                 BoundOptions(alpha_iterations=iterations), splits)
    with torch.no_grad():
        eng.compute_intermediate(use_crown=True)
    starts, m = eng.output_starts(spec)
    with torch.no_grad():
        cl, cu, _ = eng.crown_spec(starts, m, eng.default_relax)
    if callable(warm_alphas):  # built from the engine's alpha shapes
        warm_alphas = warm_alphas(_init_alphas(eng, list(starts)))
    with torch.enable_grad():
        bl, bu, _ = optimize_alpha(eng, starts, cl, cu, splits=splits, warm=warm,
                                   iterations=iterations, warm_alphas=warm_alphas)
    return cl, cu, bl, bu, eng


@pytest.mark.parametrize("seed", range(4))
def test_any_multipliers_sound(seed: int) -> None:
    g = mlp_physics_graph(4, (8, 8), 8, 4, seed=seed,
                          activation="relu" if seed % 2 == 0 else "tanh")
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(1, g.input_size, generator=gen, dtype=torch.float64)
    lo, hi = c - 0.4, c + 0.4
    xs = sample_box(lo, hi, 40_000)[0]
    splits = _domain(g, xs, seed)
    ok = _inside(g, xs, splits)
    assert int(ok.sum()) > 10
    vals = g.evaluate_flat(xs[ok])
    for scale in (0.1, 10.0):
        warm = {n: scale * torch.rand(4, *nl.shape, generator=gen, dtype=torch.float64)
                for n, (nl, _) in splits.items()}
        _, _, bl, bu, _ = _bounds(g, lo, hi, splits, warm=warm, iterations=1)
        slack = 1e-9 * (1 + vals.abs())
        assert bool((bl[0] <= vals + slack).all()), float((bl[0] - vals).max())
        assert bool((bu[0] >= vals - slack).all()), float((vals - bu[0]).max())


@pytest.mark.parametrize("seed", range(4))
def test_any_warm_alphas_sound(seed: int) -> None:
    """Warm-started alphas (a parent's, here random: out of [0, 1], NaN for "default")
    give bounds that every sampled point of the split domain respects, and the
    optimization leaves its final alphas in [0, 1] for the children."""
    g = mlp_physics_graph(4, (8, 8), 8, 4, seed=seed,
                          activation=("relu", "tanh", "sigmoid", "relu")[seed])
    gen = torch.Generator().manual_seed(100 + seed)
    c = torch.randn(1, g.input_size, generator=gen, dtype=torch.float64)
    lo, hi = c - 0.4, c + 0.4
    xs = sample_box(lo, hi, 40_000)[0]
    splits = _domain(g, xs, seed)
    vals = g.evaluate_flat(xs[_inside(g, xs, splits)])

    def random_alphas(init):  # noqa: ANN001, ANN202
        out = {}
        for (nid, stream), a in init.items():
            if stream == 1:
                w = 2.0 * torch.rand(a.shape, generator=gen, dtype=torch.float64) - 0.5
                w[torch.rand(a.shape, generator=gen) < 0.2] = torch.nan
                out[nid] = w
        assert out
        return out

    for iterations in (1, 5):
        _, _, bl, bu, eng = _bounds(g, lo, hi, splits, iterations=iterations,
                                    warm_alphas=random_alphas)
        slack = 1e-9 * (1 + vals.abs())
        assert bool((bu[0] >= vals - slack).all()), float((vals - bu[0]).max())
        assert bool((bl[0] <= vals + slack).all()), float((bl[0] - vals).max())
        assert eng.warm_alphas
        for a in eng.warm_alphas.values():
            assert bool(((a >= 0) & (a <= 1)).all())


def test_optimized_multipliers_tighten_relu_splits() -> None:
    g = mlp_physics_graph(6, (16, 16), 8, 4, seed=7)
    lo = torch.full((1, 6), -1.0, dtype=torch.float64)
    hi = torch.full((1, 6), 1.0, dtype=torch.float64)
    eng = Engine(g, {g.inputs[0]: (lo, hi)}, torch.float64, torch.device("cpu"), BoundOptions())
    eng.compute_intermediate(use_crown=True)
    # split every unstable relu input of the first layer at 0, on the side of the centre
    first = _split_nodes(g)[0]
    l, u = eng.bounds[first]
    at_c = g.evaluate_all((lo + hi) / 2)[first]
    unstable = (l < 0) & (u > 0)
    nl = torch.where(unstable & (at_c >= 0), torch.zeros_like(l), torch.full_like(l, -torch.inf))
    nu = torch.where(unstable & (at_c < 0), torch.zeros_like(u), torch.full_like(u, torch.inf))
    splits = {first: (nl, nu)}
    cl, cu, bl, bu, _ = _bounds(g, lo, hi, splits, iterations=30)
    assert bool((bu <= cu + 1e-12).all()) and bool((bl >= cl - 1e-12).all())
    assert float((cu - bu).sum()) > 1e-3
    xs = sample_box(lo, hi, 40_000)[0]
    ok = _inside(g, xs, splits)
    vals = g.evaluate_flat(xs[ok])
    assert bool((bu[0] >= vals - 1e-9).all()) and bool((bl[0] <= vals + 1e-9).all())


def test_clip_keeps_every_point() -> None:
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        n = 5
        lo = torch.randn(3, n, generator=gen, dtype=torch.float64)
        hi = lo + torch.rand(3, n, generator=gen, dtype=torch.float64) * 2
        a = torch.randn(3, 4, n, generator=gen, dtype=torch.float64)
        a[:, :, 0] = 0.0  # a coordinate no halfspace reads
        x = lo[:, None] + (hi - lo)[:, None] * torch.rand(3, 20_000, n, generator=gen,
                                                            dtype=torch.float64)
        ax = torch.einsum("bkn,bsn->bsk", a, x)
        t = ax.quantile(0.8, dim=1)  # keeps about a fifth of the box per halfspace
        # intersection
        clo, chi, empty = clip_halfspaces(lo, hi, a, t)
        keep = (ax >= t[:, None]).all(-1)
        for b in range(3):
            pts = x[b][keep[b]]
            if pts.numel():
                assert not bool(empty[b])
                assert bool((pts >= clo[b]).all()) and bool((pts <= chi[b]).all())
        assert bool(((chi - clo >= -1e-12) | empty[:, None]).all())
        # union
        ulo, uhi, uempty = clip_union(lo, hi, a, t)
        anyk = (ax >= t[:, None]).any(-1)
        for b in range(3):
            pts = x[b][anyk[b]]
            assert not bool(uempty[b])
            assert bool((pts >= ulo[b]).all()) and bool((pts <= uhi[b]).all())
        assert bool((ulo[:, 0] == lo[:, 0]).all()) and bool((uhi[:, 0] == hi[:, 0]).all())
    # a halfspace that misses the box empties it
    lo = torch.zeros(1, 2, dtype=torch.float64)
    hi = torch.ones(1, 2, dtype=torch.float64)
    a = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
    _, _, empty = clip_halfspaces(lo, hi, a, torch.tensor([[2.5]], dtype=torch.float64))
    assert bool(empty[0])
    clo, chi, empty = clip_halfspaces(lo, hi, a, torch.tensor([[1.5]], dtype=torch.float64))
    assert not bool(empty[0])
    assert torch.allclose(clo, torch.full((1, 2), 0.5, dtype=torch.float64))


def test_clip_skips_only_halfspaces_that_cut_nothing() -> None:
    """The box from the halfspaces that cut some box of the batch equals the box from
    every halfspace applied in turn (one that holds on a box holds on its sub-boxes)."""
    from gridverify.bounds.clip import _clip_one

    gen = torch.Generator().manual_seed(5)
    for trial in range(20):
        B, K, n = 4, 12, 5
        lo = torch.rand(B, n, generator=gen, dtype=torch.float64)
        hi = lo + torch.rand(B, n, generator=gen, dtype=torch.float64)
        a = torch.randn(B, K, n, generator=gen, dtype=torch.float64)
        top = torch.maximum(a * lo[:, None], a * hi[:, None]).sum(-1)
        low = torch.minimum(a * lo[:, None], a * hi[:, None]).sum(-1)
        frac = torch.rand(B, K, generator=gen, dtype=torch.float64) * 1.4 - 0.7
        t = low + frac.clamp(min=-0.5) * (top - low)  # about half cut nothing
        t[:, 0] = -torch.inf
        ref_lo, ref_hi = lo, hi
        ref_empty = torch.zeros(B, dtype=torch.bool)
        for _ in range(2):
            for k in range(K):
                ref_lo, ref_hi, e = _clip_one(ref_lo, ref_hi, a[:, k], t[:, k])
                ref_empty |= e
        clo, chi, empty = clip_halfspaces(lo, hi, a, t)
        assert torch.equal(empty, ref_empty)
        assert torch.equal(clo, ref_lo) and torch.equal(chi, ref_hi), trial


def test_clip_float32_keeps_a_tight_vertex() -> None:
    """A halfspace met only at a vertex of the box, in float32: the vertex stays.

    The level is the exact (float64) value of ``a . x`` at the best vertex,
    rounded down to float32; a float32 sum may round the box's maximum below
    it, so the slack needs a float32 pad, not a float64 one."""
    gen = torch.Generator().manual_seed(11)
    for trial in range(200):
        n = 40
        lo = (torch.randn(1, n, generator=gen, dtype=torch.float64) * 10).float()
        hi = lo + (torch.rand(1, n, generator=gen, dtype=torch.float64) * 10).float()
        a = torch.randn(1, 1, n, generator=gen, dtype=torch.float64).float()
        vertex = torch.where(a[0, 0] > 0, hi[0], lo[0])
        exact = (a[0, 0].double() * vertex.double()).sum()
        t32 = torch.tensor([[exact.item()]], dtype=torch.float32)
        if t32.double().item() > exact.item():
            t32 = torch.nextafter(t32, torch.tensor(-torch.inf))
        clo, chi, empty = clip_halfspaces(lo, hi, a, t32)
        assert not bool(empty[0]), trial
        assert bool((vertex >= clo[0]).all()) and bool((vertex <= chi[0]).all()), trial


def test_split_offsets_rounded_outward() -> None:
    """The split multipliers' constant offsets bound the exact (rational) sums:
    the upper stream's from above, the lower stream's from below, in float32 and
    float64, with terms that cancel."""
    from fractions import Fraction

    from gridverify.bounds.alpha import _beta_starts

    gen = torch.Generator().manual_seed(13)
    for dtype in (torch.float32, torch.float64):
        for trial in range(50):
            size = 64
            lo = torch.randn(1, size, generator=gen, dtype=torch.float64).to(dtype) * 1e3
            hi = lo + torch.rand(1, size, generator=gen, dtype=torch.float64).to(dtype)
            b = [torch.rand(1, size, generator=gen, dtype=torch.float64).to(dtype)
                 for _ in range(4)]
            _, cl, cu = _beta_starts({}, {7: (lo, hi, tuple(b))}, 1, 1)
            bl_l, bu_l, bl_u, bu_u = ([Fraction(float(v)) for v in x[0]] for x in b)
            los = [Fraction(float(v)) for v in lo[0]]
            his = [Fraction(float(v)) for v in hi[0]]
            exact_u = sum(p * h - q * lw for p, q, h, lw in zip(bu_u, bl_u, his, los))
            exact_l = sum(q * lw - p * h for p, q, h, lw in zip(bu_l, bl_l, his, los))
            assert Fraction(float(cu.reshape(-1)[0])) >= exact_u, (dtype, trial)
            assert Fraction(float(cl.reshape(-1)[0])) <= exact_l, (dtype, trial)
