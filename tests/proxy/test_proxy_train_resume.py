"""An interrupted training run resumes from its progress file and ends with the model
an uninterrupted run gives, to the bit (gridverify.proxy.train.TrainProgress)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import gridverify.proxy.train as T
from gridverify.proxy.data import read_proxy_data
from gridverify.proxy.train import TrainOptions, TrainProgress, train_proxy

OPTS = TrainOptions(hidden=(8, 8), epochs=9, patience=100, progress=False, seed=3)


def _stop_at(epoch_to_stop: int, exc: type[BaseException], seen: list[int]) -> Any:
    """A stand-in for the progress bar that raises ``exc`` when an epoch ends."""

    @contextlib.contextmanager
    def progress(enabled: bool, total: int, name: str) -> Iterator[Any]:
        def advance(epoch: int, *rest: float) -> None:
            seen.append(epoch)
            if epoch == epoch_to_stop:
                raise exc

        yield advance

    return progress


def _same(a: T.TrainResult, b: T.TrainResult) -> None:
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history == b.history and a.best_epoch == b.best_epoch
    assert a.epochs_run == b.epochs_run == OPTS.epochs


@pytest.fixture(scope="module")
def data(case14, case14_data):  # noqa: ANN001
    return read_proxy_data(case14_data, case14)


@pytest.fixture(scope="module")
def straight(case14, data):  # noqa: ANN001
    return train_proxy(case14, data, OPTS, compute_baseline=False)


def test_ctrl_c_saves_and_the_rerun_ends_with_the_same_model(
        case14, data, straight, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    notes: list[str] = []
    resume = TrainProgress(tmp_path / "p.pt", say=notes.append)
    seen: list[int] = []
    with monkeypatch.context() as m:
        m.setattr(T, "CAPTURE_EVERY_S", 0.0)  # the state of every epoch's end at hand
        m.setattr(T, "_progress", _stop_at(5, KeyboardInterrupt, seen))
        with pytest.raises(KeyboardInterrupt):
            train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume)
    assert resume.path.exists() and "saved after epoch 4" in notes[-1]
    seen.clear()
    with monkeypatch.context() as m:
        m.setattr(T, "_progress", _stop_at(-1, KeyboardInterrupt, seen))
        again = train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume)
    assert seen == list(range(5, OPTS.epochs + 1))  # epoch 5 again, from the saved state
    assert "resuming training after epoch 4" in notes[-1]
    _same(straight, again)
    # a finished run's file: the rerun trains no epoch and gives the same model
    seen.clear()
    with monkeypatch.context() as m:
        m.setattr(T, "_progress", _stop_at(-1, KeyboardInterrupt, seen))
        done = train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume)
    assert seen == []
    _same(straight, done)
    resume.remove()
    assert not resume.path.exists()


def test_periodic_saves_survive_a_crash(case14, data, straight, tmp_path: Path,  # noqa: ANN001
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    resume = TrainProgress(tmp_path / "p.pt")
    with monkeypatch.context() as m:
        m.setattr(T, "SAVE_EVERY_S", 0.0)
        m.setattr(T, "CAPTURE_EVERY_S", 0.0)
        m.setattr(T, "_progress", _stop_at(7, RuntimeError, []))
        with pytest.raises(RuntimeError):
            train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume)
    snap = torch.load(resume.path, weights_only=True)
    assert snap["epoch"] == 6 and not snap["finished"]
    _same(straight, train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume))


def test_a_file_of_another_run_or_a_damaged_one_is_ignored(
        case14, data, straight, tmp_path: Path) -> None:  # noqa: ANN001
    notes: list[str] = []
    resume = TrainProgress(tmp_path / "p.pt", say=notes.append)
    other = TrainOptions(hidden=(8, 8), epochs=3, patience=100, progress=False, seed=4)
    train_proxy(case14, data, other, compute_baseline=False, resume=resume)
    _same(straight, train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume))
    assert "of another run" in notes[-1]
    resume.path.write_bytes(b"not a torch file")
    _same(straight, train_proxy(case14, data, OPTS, compute_baseline=False, resume=resume))
    assert "unreadable" in notes[-1]


def test_the_cli_removes_the_progress_file_once_the_model_is_written(
        case14_data, tmp_path: Path) -> None:  # noqa: ANN001
    from gridverify.cli import main
    from gridverify.cli.train import progress_path

    out = tmp_path / "m"
    stale = progress_path(out)
    assert stale == tmp_path / ".m.train-progress.pt"
    stale.write_bytes(b"left by a crash")  # unreadable: ignored with a note
    assert main(["train", str(case14_data), "--out", str(out), "--epochs", "2",
                 "--hidden", "8", "--no-progress", "--json"]) == 0
    assert (out / "card.json").exists() and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # a folder in the progress file's place: refused before training, nothing written
    out2 = tmp_path / "m2"
    stale2 = progress_path(out2)
    stale2.mkdir()
    assert main(["train", str(case14_data), "--out", str(out2), "--epochs", "2",
                 "--hidden", "8", "--no-progress", "--json"]) == 2
    assert not out2.exists()


def test_a_second_train_into_the_same_out_is_refused(case14_data, tmp_path: Path,
                                                     capsys) -> None:  # noqa: ANN001
    """While a run trains into --out (it holds ``.OUT.lock`` beside it), another is
    refused at once, one line, exit 2, nothing written; a lock left by a killed run
    (a pid that no longer runs) is taken over with a warning."""
    import os
    import platform
    import subprocess
    import sys

    from gridverify._lock import lock_beside, run_lock
    from gridverify.cli import main
    from gridverify.errors import ProxyError

    out = tmp_path / "m"
    argv = ["train", str(case14_data), "--out", str(out), "--epochs", "2", "--hidden", "8",
            "--no-progress", "--json"]
    with run_lock(lock_beside(out), out, "train", ProxyError):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another train run" in err[0] and f"pid {os.getpid()}" in err[0]
        assert not out.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock_beside(out).write_text(f'{{"pid": {int(dead.stdout)}, "host": "{platform.node()}"}}')
    assert main(argv) == 0
    assert "took over the lock" in capsys.readouterr().err
    assert (out / "card.json").exists() and not lock_beside(out).exists()
