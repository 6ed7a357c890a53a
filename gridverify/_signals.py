"""Interrupts held back while a library cannot take them.

h5py runs Python callbacks (weak-reference cleanups) inside its own C code; a
``KeyboardInterrupt`` raised there by Ctrl-C (or by the command's SIGTERM
handler) is printed as "Exception ignored" and lost, and the command ran on.
:func:`held_interrupts` records SIGINT and SIGTERM in such a block and delivers
them, to the handler that was in place, once the block ends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def held_interrupts() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM recorded, not delivered; deliver the first
    one received when the block ends (normally or by an exception).  Outside the main
    thread, where handlers cannot be set, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in _HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            _deliver(received[0], previous[received[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Act on ``signum`` as ``handler`` (the one the block replaced) would have."""
    if callable(handler):
        handler(signum, None)  # Python's SIGINT handler raises KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action, as if it came now
    # SIG_IGN: ignored, as it would have been
