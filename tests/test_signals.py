"""Interrupts held back in a block (h5py lost Ctrl-C raised inside its own code)."""

from __future__ import annotations

import os
import signal

import pytest

from gridverify._signals import held_interrupts


def test_ctrl_c_in_the_block_is_raised_when_it_ends() -> None:
    reached_end_of_block = False
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            reached_end_of_block = True  # not raised inside
    assert reached_end_of_block
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigterm_goes_to_the_handler_that_was_in_place() -> None:
    class Term(Exception):
        pass

    def on_term(signum, frame):  # noqa: ANN001, ANN202 - as the command's handler does
        raise Term(signum)

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(Term):
            with held_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_quiet_block_changes_nothing() -> None:
    with held_interrupts():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_dataset_file_interrupted_while_created_leaves_nothing(tmp_path) -> None:
    """Ctrl-C while the file is written: raised once h5py is done, the temporary
    file removed, no dataset left."""
    import h5py

    from gridverify.fileio import atomic_path

    target = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp, held_interrupts():
            with h5py.File(tmp, "w") as f:
                f.create_dataset("x", data=[1.0, 2.0])
                os.kill(os.getpid(), signal.SIGINT)
    assert list(tmp_path.iterdir()) == []
