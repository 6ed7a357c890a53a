"""Ctrl-C and SIGTERM in a command's process: the first unwinds the command, a second
while it unwinds is ignored (said), a third ends the process at once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_THREE_CTRL_C = """
import os, signal
from gridverify.cli import _Signals
signals = _Signals()
try:
    os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit("the first Ctrl-C raised nothing")
except KeyboardInterrupt:
    print("unwinding", flush=True)
os.kill(os.getpid(), signal.SIGINT)
print("second ignored", flush=True)
os.kill(os.getpid(), signal.SIGINT)
print("third ignored too", flush=True)
"""

_RESTORE = """
import os, signal
from gridverify.cli import Terminated, _Signals
quiet = _Signals()
quiet.restore()
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
signals = _Signals()
try:
    os.kill(os.getpid(), signal.SIGTERM)
except Terminated:
    pass
signals.restore()  # the process goes on (Jupyter, tests): its own handlers are back
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
print("ok")
"""

_CONSOLE = """
import signal
import gridverify.cli as cli
cli.main = lambda: 130  # a command Ctrl-C ended
assert cli.console_main() == 130
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # while the process exits
assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
cli.main = lambda: 3
signal.signal(signal.SIGINT, signal.default_int_handler)
assert cli.console_main() == 3
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
print("ok")
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_a_second_ctrl_c_is_ignored_and_a_third_ends_the_process() -> None:
    run = _python(_THREE_CTRL_C)
    assert run.returncode == 128 + signal.SIGINT, run.stderr
    assert run.stdout.split("\n")[:2] == ["unwinding", "second ignored"], run.stdout
    assert "third ignored too" not in run.stdout
    assert "once more to quit at once" in run.stderr and "Traceback" not in run.stderr


def test_handlers_are_restored_after_a_command_interrupted_or_not() -> None:
    """An interrupted command called in-process leaves the caller's Ctrl-C working."""
    run = _python(_RESTORE)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_the_console_script_ignores_signals_while_it_exits_after_an_interrupt() -> None:
    """(a second Ctrl-C in multiprocessing's exit clean-up printed a traceback)"""
    run = _python(_CONSOLE)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_ctrl_c_while_the_commands_are_imported_is_one_line(monkeypatch, capsys) -> None:
    """Ctrl-C in the first half second (the command modules importing numpy, torch...)
    was a traceback: now the same line and status as later."""
    import gridverify.cli as cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["case", "list"]) == 128 + signal.SIGINT
    assert capsys.readouterr().err == "gridverify: interrupted\n"
