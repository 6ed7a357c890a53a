"""Training a proxy MLP from an OPF dataset (deterministic on CPU for a given seed).

Loss: mean squared error of the outputs normalized by the training-set
statistics, plus ``balance_weight`` times the mean squared power-balance
residual (pu^2) of the predicted solution, computed with
:func:`gridverify.grid.flows.balance_residuals` on torch tensors, plus
``stability_weight`` times :func:`relaxation_gap` over the training region (a
verification-friendly proxy: most neurons stable over the region, so bound
propagation over the region is tight).  The data is
split into train/validation/test with the seed; Adam with plateau learning-rate
halving; early stopping on the validation loss keeps the best weights.

Determinism: the split, the initialization and the batch order come from the
seed only; training runs single-threaded with ``torch.use_deterministic_algorithms``
(both settings are restored afterwards).

Resuming: with a progress file (:class:`TrainProgress`; ``gridverify train``
keeps one beside ``--out``), the state at the end of an epoch (weights,
optimizer, learning-rate schedule, batch-order generator, best weights so far,
history) is saved at most every :data:`SAVE_EVERY_S` seconds, on Ctrl-C (the state
copied at most :data:`CAPTURE_EVERY_S` before) and when training ends.  A run
with the same case, data and options starts from it and ends with the model an
uninterrupted run gives, to the bit; a file of another run is ignored (and
replaced) with a note.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify._progress import progress_wanted
from gridverify.errors import ProxyError
from gridverify.fileio import atomic_write_bytes
from gridverify.proxy.data import ProxyData, region_from_sampler
from gridverify.proxy.metrics import (
    ProxyMetrics,
    baseline_metrics,
    beats_baseline,
    evaluate_predictions,
    nominal_baseline,
)
from gridverify.proxy.model import LEAKY_SLOPE, ProxyArch, ProxyMLP, case_limits
from gridverify.proxy.options import TrainOptions

_STD_FLOOR = 1e-6
_LOGIT_CLIP = 1e-3
#: seconds between two saves of the training progress (also saved on Ctrl-C and at the end)
SAVE_EVERY_S = 30.0
#: seconds between two copies of the state at an epoch's end (what Ctrl-C saves: a copy
#: every epoch would cost ~5 % of a small proxy's training)
CAPTURE_EVERY_S = 1.0
_PROGRESS_FORMAT = "gridverify-train-progress-1"


@dataclass(frozen=True)
class Split:
    """Row positions (into the dataset's optimal samples) of each split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_proxy`: the deployed module and everything for the card."""

    module: ProxyMLP
    metrics: ProxyMetrics
    baseline: ProxyMetrics | None
    split: Split
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    train_seconds: float
    history: list[dict[str, float]] = field(repr=False)
    card: dict[str, Any] = field(repr=False)


def split_indices(n: int, seed: int, val_fraction: float, test_fraction: float) -> Split:
    """Seeded random split of ``n`` samples; each part gets at least one sample."""
    if n < 3:
        raise ProxyError(f"need at least 3 optimal samples to split, got {n}")
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_test - n_val < 1:
        raise ProxyError(f"{n} samples are too few for the validation/test fractions")
    return Split(
        train=np.sort(perm[n_test + n_val :]),
        val=np.sort(perm[n_test : n_test + n_val]),
        test=np.sort(perm[:n_test]),
    )


@contextlib.contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """Single-threaded, deterministic torch inside the block; settings restored after."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def output_scales(case: Any, y_train: np.ndarray, rel_floor: float) -> np.ndarray:
    """Per-output loss scales: the training std, floored per output group.

    The floor of a group (pg, qg, vm, va) is ``rel_floor`` times the 90th
    percentile of the group's stds, so that outputs that barely move (a generator
    at a limit with solver noise) do not dominate the normalized loss.  Outputs
    with no spread at all get the floor (or 1 when the whole group is constant).
    """
    std = y_train.std(axis=0)
    g, n = case.n_gen, case.n_bus
    out = np.empty_like(std)
    for sl in (slice(0, g), slice(g, 2 * g), slice(2 * g, 2 * g + n), slice(2 * g + n, None)):
        s = std[sl]
        floor = rel_floor * float(np.percentile(s, 90)) if s.size else 0.0
        if floor <= _STD_FLOOR:
            floor = float(s.max()) if s.size and s.max() > _STD_FLOOR else 1.0
            floor = rel_floor * floor if rel_floor > 0 and floor != 1.0 else floor
        out[sl] = np.maximum(s, max(floor, _STD_FLOOR))
    return out


def build_training_module(
    case: Any, x_train: np.ndarray, y_train: np.ndarray, options: TrainOptions
) -> tuple[ProxyMLP, np.ndarray, np.ndarray]:
    """The training-form module (normalizations from the training data).

    Returns ``(module, out_mean, out_std)``: the statistics define the normalized
    loss.  Call inside ``torch.random.fork_rng`` with the seed set.
    """
    arch = ProxyArch(
        n_load=case.n_load,
        n_gen=case.n_gen,
        n_bus=case.n_bus,
        hidden=tuple(int(h) for h in options.hidden),
        activation=options.activation,
        clamp_head=options.clamp_head,
    )
    in_mean = x_train.mean(axis=0)
    in_std = x_train.std(axis=0)
    in_std = np.where(in_std > _STD_FLOOR, in_std, 1.0)
    out_mean = y_train.mean(axis=0)
    out_std = output_scales(case, y_train, options.std_floor)
    nc = arch.n_clamped
    lo = hi = None
    if options.clamp_head:
        lo, hi = case_limits(case)
    module = ProxyMLP(
        arch,
        head_lo=lo,
        head_hi=hi,
        in_shift=in_mean,
        in_scale=in_std,
        out_shift=out_mean[nc:],
        out_scale=out_std[nc:],
    )
    with torch.no_grad():
        last = module.layers[-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
        if nc:
            span = hi - lo
            frac = np.where(span > 0, (out_mean[:nc] - lo) / np.where(span > 0, span, 1.0), 0.5)
            frac = np.clip(frac, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
            last.bias[:nc] = torch.tensor(np.log(frac / (1 - frac)), dtype=last.bias.dtype)
    return module, out_mean, out_std


def _flags(options: TrainOptions) -> str:
    """The flags a memory message names: ``--hidden 64,64 (--batch-size 64)``."""
    hidden = ",".join(str(int(h)) for h in options.hidden)
    return f"--hidden {hidden} (--batch-size {options.batch_size})"


def training_memory_bytes(case: Any, options: TrainOptions, n_train: int) -> tuple[int, int]:
    """``(weights, bytes)``: the network's parameter count and a lower estimate of the
    memory training it takes (float32 weights, their gradients, Adam's two moments,
    the best weights kept and the deployed copy; the activations of a batch)."""
    sizes = [2 * case.n_load, *(int(h) for h in options.hidden),
             2 * case.n_gen + 2 * case.n_bus]
    weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = max(1, min(int(options.batch_size), int(n_train)))
    activations = 3 * batch * sum(sizes)
    return weights, 4 * (8 * weights + activations)


def check_training_memory(case: Any, options: TrainOptions, n_train: int) -> None:
    """ProxyError naming ``--hidden`` (and ``--batch-size``) when training cannot fit
    this machine's memory; checked before any tensor is allocated."""
    from gridverify.sysmem import memory_shortfall

    weights, need = training_memory_bytes(case, options, n_train)
    short = memory_shortfall(need)
    if short is not None:
        raise ProxyError(
            f"{_flags(options)}: the network has {weights:.3g} weights and training it "
            f"at least {short}; use smaller hidden layers"
        )


@contextlib.contextmanager
def _out_of_memory(options: TrainOptions) -> Iterator[None]:
    """A failed allocation (MemoryError, torch's allocator RuntimeError) as a ProxyError."""
    try:
        yield
    except MemoryError:
        raise ProxyError(f"{_flags(options)}: out of memory while training") from None
    except RuntimeError as exc:
        text = str(exc)
        if "allocate" not in text and "out of memory" not in text.lower():
            raise
        raise ProxyError(f"{_flags(options)}: out of memory while training "
                         f"({' '.join(text.split())[-120:]})") from None


def progress_key(case: Any, data: ProxyData, options: TrainOptions) -> str:
    """sha256 of what makes two training runs the same run (case, data, options)."""
    ident = {"format": _PROGRESS_FORMAT, "case": str(case.content_hash),
             "data": data.content_sha256, "options": options.to_dict(),
             "torch": torch.__version__}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TrainProgress:
    """The progress file of a training run (see the module docstring).

    ``path``: the file (written to a temporary name and renamed); ``say``: receives
    one-line notes (resuming, a file of another run ignored, progress saved on
    Ctrl-C); default: none.
    """

    path: Path
    say: Callable[[str], None] = field(default=lambda message: None)

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved state of the run ``key``; None (with a note) for none or another."""
        if not self.path.exists():
            return None
        try:
            snap = torch.load(self.path, map_location="cpu", weights_only=True)
            ok = isinstance(snap, dict) and snap.get("format") == _PROGRESS_FORMAT
        except Exception as exc:  # noqa: BLE001 - a damaged file: start afresh
            self.say(f"{self.path}: training progress unreadable ({type(exc).__name__}); "
                     "starting afresh")
            return None
        if not ok or snap.get("key") != key:
            self.say(f"{self.path}: training progress of another run (other case, data or "
                     "options); starting afresh")
            return None
        return snap

    def save(self, snap: dict[str, Any]) -> None:
        """Write the state ``snap`` (its history cut to the epochs it covers)."""
        snap = {**snap, "hist": snap["hist"][: snap.pop("n_hist", len(snap["hist"]))]}
        buf = io.BytesIO()
        torch.save(snap, buf)
        atomic_write_bytes(self.path, buf.getvalue())

    def remove(self) -> None:
        """Delete the file (once the model it leads to is written)."""
        self.path.unlink(missing_ok=True)


def train_proxy(
    case: Any,
    data: ProxyData,
    options: TrainOptions = TrainOptions(),  # noqa: B008 (frozen)
    *,
    baseline: np.ndarray | None = None,
    compute_baseline: bool = True,
    resume: TrainProgress | None = None,
) -> TrainResult:
    """Train a proxy for ``case`` on ``data``; see module docstring.

    ``baseline``: the nominal AC-OPF output vector; when None and
    ``compute_baseline``, it is solved here with :func:`solve_opf`.  ``resume``:
    the run's progress file; training starts from the state saved there by an
    interrupted run of the same case, data and options, and saves its own.  The
    file stays when training ends (a rerun then finishes at once); remove it
    (:meth:`TrainProgress.remove`) once the model is written.
    """
    if data.case_hash != case.content_hash:
        raise ProxyError(f"dataset {data.path} is not of case {case.name!r}")
    try:
        split = split_indices(data.n_samples, options.seed, options.val_fraction,
                              options.test_fraction)
    except ProxyError as exc:  # name the dataset
        raise ProxyError(f"{data.path}: {exc}") from None
    x, y = data.x, data.y
    check_training_memory(case, options, len(split.train))
    t0 = time.perf_counter()
    c0 = time.process_time()
    with deterministic_torch(1), torch.random.fork_rng(devices=[]), _out_of_memory(options):
        torch.manual_seed(options.seed)
        module, out_mean, out_std = build_training_module(
            case, x[split.train], y[split.train], options
        )
        region = training_region(case, data)
        box = (torch.tensor(np.asarray(region["lower"]), dtype=torch.float32),
               torch.tensor(np.asarray(region["upper"]), dtype=torch.float32))
        key = progress_key(case, data, options)
        best_state, hist, best_epoch, best_val, epochs_run, before = _fit(
            case, module, x, y, split, out_mean, out_std, options, box,
            resume, key, (time.perf_counter() - t0, time.process_time() - c0)
        )
        module.load_state_dict(best_state)
        module.eval()
        deployed = module.folded(torch.float32)
    train_seconds = time.perf_counter() - t0 + before[0]  # earlier runs' time included
    cpu_seconds = time.process_time() - c0 + before[1]
    with torch.no_grad():
        pred = copy.deepcopy(deployed).double()(torch.from_numpy(x[split.test])).numpy()
    metrics = evaluate_predictions(case, x[split.test], y[split.test], pred)
    base_m = None
    if baseline is None and compute_baseline:
        baseline = nominal_baseline(case)
    if baseline is not None:
        base_m = baseline_metrics(case, x[split.test], y[split.test], baseline)
    card = make_card(case, data, options, split, metrics, base_m, train_seconds, epochs_run,
                     best_epoch, best_val, region=region)
    card["training"]["cpu_seconds"] = round(cpu_seconds, 3)
    return TrainResult(
        module=deployed,
        metrics=metrics,
        baseline=base_m,
        split=split,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        train_seconds=train_seconds,
        history=hist,
        card=card,
    )


#: largest |f''| of the smooth activations (their chord/tangent relaxation gap over
#: an interval of width w is at most ``w**2 / 8 * max|f''|``)
_CURVATURE = {"tanh": 0.7699, "sigmoid": 0.0963, "silu": 0.5, "elu": 1.0, "softplus": 0.25}
#: the non-monotone activations: (argmin, min) of the one valley of each
_VALLEY = {"gelu": (-0.751791524693564, -0.16997120747),
           "silu": (-1.278464542761074, -0.2784645427610738)}


def hidden_intervals(
    module: ProxyMLP, lo: torch.Tensor, hi: torch.Tensor, *, head: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Interval bounds of every hidden layer's pre-activations over the box ``[lo, hi]``.

    ``head``: also the pre-activations of the clamp head's sigmoids (last entry;
    nothing more without a clamp head).
    Interval arithmetic through the module (input normalization, then each
    ``Linear`` in centre/radius form and the activation's range); sound for every
    input of the box, and differentiable in the weights.
    """
    def affine(lin: torch.nn.Linear, zl: torch.Tensor, zh: torch.Tensor) -> tuple:
        c = torch.nn.functional.linear((zh + zl) / 2, lin.weight, lin.bias)
        r = torch.nn.functional.linear((zh - zl) / 2, lin.weight.abs())
        return c - r, c + r

    zl, zh = lo, hi
    if module.in_norm:
        zl = (zl - module.in_shift) * module.in_gain
        zh = (zh - module.in_shift) * module.in_gain
    out = []
    for lin in module.layers[:-1]:
        pl, ph = affine(lin, zl, zh)
        out.append((pl, ph))
        zl, zh = module.act(pl), module.act(ph)
        valley = _VALLEY.get(module.arch.activation)
        if valley is not None:  # decreasing up to its minimum, then increasing
            zl, zh = torch.minimum(zl, zh), torch.maximum(zl, zh)
            inside = (pl < valley[0]) & (ph > valley[0])
            zl = torch.where(inside, torch.full_like(zl, valley[1]), zl)
    if head and module.n_clamped:
        pl, ph = affine(module.layers[-1], zl, zh)
        out.append((pl[..., :module.n_clamped], ph[..., :module.n_clamped]))
    return out


def relaxation_gap(module: ProxyMLP, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Mean over hidden neurons of their relaxation gap over the input box ``[lo, hi]``.

    With the pre-activation intervals ``[l, u]`` of :func:`hidden_intervals`, a
    relu (or gelu) neuron contributes the height of its triangle relaxation,
    ``relu(-l) relu(u) / (u - l)`` (0 when stable over the box; gelu's kink is
    smoothed but the measure is the same; leaky relu's is ``1 - slope`` times
    it); tanh, sigmoid, silu, elu and softplus contribute ``(u - l)^2 / 8 * max|f''|``,
    and so do the clamp head's sigmoids.
    Differentiable in the weights: the term of
    ``TrainOptions.stability_weight``.
    """
    name = module.arch.activation
    gaps = []
    iv = hidden_intervals(module, lo, hi, head=True)
    for k, (pl, ph) in enumerate(iv):
        if k == len(module.layers) - 1:  # past the hidden layers: the clamp head's sigmoids
            gaps.append(((ph - pl) ** 2 / 8 * _CURVATURE["sigmoid"]).flatten())
        elif name in _CURVATURE:
            gaps.append(((ph - pl) ** 2 / 8 * _CURVATURE[name]).flatten())
        else:  # relu and gelu; leaky relu's kink is (1 - slope) times relu's
            kink = 1.0 - LEAKY_SLOPE if name == "leaky_relu" else 1.0
            gaps.append((kink * torch.relu(-pl) * torch.relu(ph)
                         / (ph - pl).clamp_min(1e-12)).flatten())
    return torch.cat(gaps).mean()


def _loss_fn(case: Any, options: TrainOptions, out_mean: np.ndarray, out_std: np.ndarray) -> Any:
    from gridverify.grid.flows import balance_residuals

    inv_std = torch.tensor(1.0 / out_std, dtype=torch.float32)
    g, n, L = case.n_gen, case.n_bus, case.n_load
    w = float(options.balance_weight)

    def loss(xb: torch.Tensor, pred: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        err = (pred - yb) * inv_std
        val = torch.mean(err * err)
        if w > 0:
            rp, rq = balance_residuals(
                case, pred[:, :g], pred[:, g : 2 * g], pred[:, 2 * g : 2 * g + n],
                pred[:, 2 * g + n :], xb[:, :L], xb[:, L:],
            )
            val = val + w * torch.mean(rp * rp + rq * rq)
        return val

    return loss


def _fit(
    case: Any,
    module: ProxyMLP,
    x: np.ndarray,
    y: np.ndarray,
    split: Split,
    out_mean: np.ndarray,
    out_std: np.ndarray,
    options: TrainOptions,
    box: tuple[torch.Tensor, torch.Tensor],
    resume: TrainProgress | None = None,
    key: str = "",
    spent: tuple[float, float] = (0.0, 0.0),
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]], int, float, int,
           tuple[float, float]]:
    """The epochs; returns the best weights, the history, the best epoch and loss, the
    epochs run and the (wall, CPU) seconds of earlier runs resumed from."""
    data_loss = _loss_fn(case, options, out_mean, out_std)
    ws = float(options.stability_weight)

    def loss_fn(xb: torch.Tensor, pred: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        val = data_loss(xb, pred, yb)
        if ws > 0:
            val = val + ws * relaxation_gap(module, box[0][None], box[1][None])
        return val

    xt = torch.tensor(x[split.train], dtype=torch.float32)
    yt = torch.tensor(y[split.train], dtype=torch.float32)
    xv = torch.tensor(x[split.val], dtype=torch.float32)
    yv = torch.tensor(y[split.val], dtype=torch.float32)
    opt = torch.optim.Adam(module.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=max(2, options.patience // 4), min_lr=options.lr * 1e-3
    )
    gen = torch.Generator().manual_seed(options.seed)
    n = xt.shape[0]
    bs = min(options.batch_size, n)
    best_val = math.inf
    best_state = copy.deepcopy(module.state_dict())
    best_epoch = 0
    hist: list[dict[str, float]] = []
    epochs_run = 0
    finished = False
    before = (0.0, 0.0)  # seconds of the earlier runs this one resumes
    t0, c0 = time.perf_counter() - spent[0], time.process_time() - spent[1]
    snap = resume.load(key) if resume is not None else None
    if snap is not None:
        module.load_state_dict(snap["module"])
        opt.load_state_dict(snap["opt"])
        sched.load_state_dict(snap["sched"])
        gen.set_state(snap["gen"])
        best_state, best_val, best_epoch = snap["best_state"], snap["best_val"], snap["best"]
        hist, epochs_run, finished = snap["hist"], snap["epoch"], snap["finished"]
        before = snap["seconds"]
        assert resume is not None
        resume.say(f"{resume.path}: resuming training after epoch {epochs_run} (delete the "
                   "file to start afresh)")

    def capture(done: bool) -> dict[str, Any]:
        # copies of what the next epoch changes in place; best_state is replaced, never
        # changed, and hist only grows (a slice of it is taken when saving)
        return {"format": _PROGRESS_FORMAT, "key": key, "epoch": epochs_run, "finished": done,
                "module": copy.deepcopy(module.state_dict()),
                "opt": copy.deepcopy(opt.state_dict()), "sched": copy.deepcopy(sched.state_dict()),
                "gen": gen.get_state(), "best_state": best_state, "best_val": best_val,
                "best": best_epoch, "hist": hist, "n_hist": len(hist),
                "seconds": (before[0] + time.perf_counter() - t0,
                            before[1] + time.process_time() - c0)}

    last_save = last_capture = time.monotonic()
    epoch_end = capture(finished) if resume is not None else None  # what Ctrl-C saves
    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(_progress(progress_wanted(options.progress),
                                                      options.epochs, case.name))
        if resume is not None:
            stack.enter_context(_saved_on_interrupt(resume, lambda: epoch_end))
        for epoch in range(epochs_run + 1, 0 if finished else options.epochs + 1):
            module.train()
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad(set_to_none=True)
                lv = loss_fn(xb, module(xb), yb)
                lv.backward()
                try:
                    opt.step()
                except RuntimeError as exc:  # a step size beyond float32 (a huge --lr)
                    if "overflow" not in str(exc):
                        raise
                    raise ProxyError(f"training diverged at epoch {epoch}: the optimizer's "
                                     "step overflows float32 (lower --lr or --weight-decay)"
                                     ) from None
                total += float(lv.detach()) * idx.shape[0]
            module.eval()
            with torch.no_grad():
                val = float(loss_fn(xv, module(xv), yv))
            if not math.isfinite(val):
                raise ProxyError(f"training diverged at epoch {epoch} (validation loss {val})")
            sched.step(val)
            epochs_run = epoch
            hist.append({"epoch": epoch, "train_loss": total / n, "val_loss": val})
            if val < best_val:
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(module.state_dict())
            advance(epoch, total / n, val, best_val)
            if epoch - best_epoch >= options.patience:
                break
            now = time.monotonic()
            if resume is not None and now - last_capture >= CAPTURE_EVERY_S:
                epoch_end, last_capture = capture(False), now
                if now - last_save >= SAVE_EVERY_S:
                    resume.save(epoch_end)
                    last_save = now
    if resume is not None:
        resume.save(capture(True))
    return best_state, hist, best_epoch, best_val, epochs_run, before


@contextlib.contextmanager
def _saved_on_interrupt(resume: TrainProgress,
                        last: Callable[[], dict[str, Any] | None]) -> Iterator[None]:
    """On Ctrl-C, save the state at the end of the last whole epoch (``last()``)."""
    try:
        yield
    except KeyboardInterrupt:
        snap = last()
        if snap is not None:
            resume.save(snap)
            resume.say(f"{resume.path}: training progress saved after epoch {snap['epoch']}; "
                       "the same command resumes from there")
        raise


@contextlib.contextmanager
def _progress(enabled: bool, total: int, name: str) -> Iterator[Any]:
    if not enabled:
        yield lambda *a: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gridverify._progress import progress_console

    with Progress(
        TextColumn("[bold]train[/] {task.description}"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=progress_console(),
        transient=False,
    ) as prog:
        task = prog.add_task(name, total=total, info="")

        def advance(epoch: int, tr: float, val: float, best: float) -> None:
            prog.update(task, completed=epoch,
                        info=f"train {tr:.3e} val {val:.3e} best {best:.3e}")

        yield advance


def training_region(case: Any, data: ProxyData) -> dict[str, Any]:
    """The load region of a dataset: its sampler's box, else the hull of its loads."""
    try:
        lo, hi = region_from_sampler(case, data.sampler)
        return {"kind": "sampler", "sampler": data.sampler, "lower": lo, "upper": hi}
    except Exception:  # no usable sampler attribute: fall back to the data's hull
        return {"kind": "empirical", "sampler": data.sampler,
                "lower": data.x.min(axis=0), "upper": data.x.max(axis=0)}


def make_card(
    case: Any,
    data: ProxyData,
    options: TrainOptions,
    split: Split,
    metrics: ProxyMetrics,
    base: ProxyMetrics | None,
    seconds: float,
    epochs_run: int,
    best_epoch: int,
    best_val: float,
    region: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model-card fields a training run knows (files/arch are added on write)."""
    import h5py
    import onnx
    import onnxruntime

    import gridverify

    if region is None:
        region = training_region(case, data)
    return {
        "case_name": case.name,
        "case_hash": case.content_hash,
        "region": region,
        "dataset": {
            "parts": list(data.parts),
            "path": str(data.path),
            "file_sha256": data.file_sha256,
            "content_sha256": data.content_sha256,
            "case_name": data.case_name,
            "seed": data.seed,
            "sampler": data.sampler,
            "n_rows": data.n_rows,
            "n_optimal": data.n_samples,
            "n_train": int(split.train.size),
            "n_val": int(split.val.size),
            "n_test": int(split.test.size),
        },
        "training": {
            "options": options.to_dict(),
            "seconds": round(seconds, 3),
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
            "best_val_loss": best_val,
            "loss": "mse(normalized outputs) + balance_weight * mean(res_p^2 + res_q^2)"
            " + stability_weight * mean relaxation gap of the hidden neurons over the region",
            "dtype": "float32",
            "threads": 1,
        },
        "metrics": {
            "test": metrics.to_dict(),
            "baseline_nominal": base.to_dict() if base else None,
            "beats_baseline_mae": beats_baseline(metrics, base) if base else None,
        },
        "versions": {
            "gridverify": gridverify.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "h5py": h5py.__version__,
        },
    }
