"""The ``gridverify`` command.

Each command group lives in its own module of this package and exposes
``register(subparsers)``; the handler it installs (``func``) receives the parsed
arguments and returns the exit status.

Exit status (all commands): 0 success / all certified, 1 a violation found,
3 some constraints open, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gridverify.errors import one_printable_line

# Command modules, in the order they appear in --help.  A module that is not
# present yet (work in progress) is skipped.
_COMMAND_MODULES = (
    "gridverify.cli.case",
    "gridverify.cli.opf",
    "gridverify.cli.dataset",
    "gridverify.cli.train",
    "gridverify.cli.certify",
    "gridverify.cli.compare",
    "gridverify.cli.vnncomp",
    "gridverify.cli.check_physics",
    "gridverify.cli.study",
)

EXIT_OK = 0
EXIT_VIOLATED = 1
EXIT_BAD_INPUT = 2
EXIT_OPEN = 3
#: an error of gridverify itself (a bug): the traceback is printed; never 1, which
#: says a violation was found
EXIT_INTERNAL = 4
#: stdout's reader went away (`| head`): 128 + SIGPIPE, as a command the signal ends
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit status 2, and whose
    ``--help`` shows every option's default (:class:`~gridverify.cli._args.HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from gridverify.cli._args import HelpFormatter

        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT,
                  f"gridverify: error: {one_printable_line(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by shell completion)."""
    parser = _Parser(
        prog="gridverify",
        description=(
            "Certify neural-network AC-OPF proxies against AC grid physics over a "
            "whole region of loads."
        ),
        epilog=(
            "examples:\n"
            "  gridverify case info pglib_opf_case14_ieee\n"
            "  gridverify opf solve pglib_opf_case14_ieee --json\n"
            "  gridverify certify pglib_opf_case14_ieee --model models/case14_relu\n"
            "\nexit status: 0 ok/all certified, 1 violation found, 2 bad input, 3 open, "
            "4 internal error"
        ),
    )
    from gridverify import __version__

    parser.add_argument("--version", action="version", version=f"gridverify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridverify`` console command: returns the exit status
    (usage errors, ``--help`` and ``--version`` included; it never raises
    ``SystemExit``)."""
    saved = sys.stdout
    _lenient(saved)
    sys.stdout = _NamedStdout(saved)  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        sys.stdout = saved


def _lenient(stream: Any) -> None:
    """A text stream whose encoding cannot write every character (an ASCII terminal,
    ``PYTHONIOENCODING=ascii``) writes what it cannot as escapes: a case or model name
    in another script is shown, not a crash."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding in ("utf8", "utf16", "utf32") or not hasattr(stream, "reconfigure"):
        return
    try:
        stream.reconfigure(errors="backslashreplace")
    except (ValueError, OSError):  # a stream that cannot be reconfigured now
        pass


#: exit statuses of a command ended by Ctrl-C or SIGTERM
_INTERRUPTED = (128 + signal.SIGINT, 128 + signal.SIGTERM)


def console_main() -> int:
    """The ``gridverify`` console script: :func:`main` on the command line's arguments;
    after an interrupt, Ctrl-C and SIGTERM are ignored while the process exits (a
    second Ctrl-C in multiprocessing's clean-up printed a traceback)."""
    status = main()
    if status in _INTERRUPTED:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
    return status


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2): a status too
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        try:
            sys.stdout.flush()  # --help into a full disk is an error, not a success
        except BrokenPipeError:
            return _quiet_stdout()
        except OSError as err:
            _error(os_error_message(err))
            return EXIT_BAD_INPUT
        return code
    except OSError as exc:  # --help written to a closed stdout
        _error(os_error_message(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C while the command modules are imported
        return _interrupted()
    except Exception:  # noqa: BLE001 - a bug (an import, a parser's type): never exit 1
        return _internal_error()
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    return run_handler(func, args)


class _NamedStdout:
    """``sys.stdout`` while :func:`main` runs: a failed write (a full disk, a closed
    descriptor) raises an ``OSError`` naming ``stdout``, so that the command's one
    error line says what could not be written; everything else is the stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        # the first failed write: a flush raises it again (argparse's --help and
        # --version swallow errors of their write)
        self._lost: OSError | None = None

    def _call(self, name: str, *args: Any) -> Any:
        import errno

        if self._stream is None:  # started with stdout closed (`>&-`)
            raise OSError(errno.EBADF, "closed, nothing can be printed", "stdout")
        try:
            result = getattr(self._stream, name)(*args)
        except OSError as exc:  # EPIPE stays a BrokenPipeError (a reader gone)
            self._lost = self._lost or OSError(exc.errno, exc.strerror or str(exc), "stdout")
            raise self._lost from None
        if name == "flush" and self._lost is not None:
            raise self._lost
        return result

    def write(self, text: str) -> int:
        return int(self._call("write", text))

    def writelines(self, lines: Any) -> None:
        self._call("writelines", lines)

    def flush(self) -> None:
        self._call("flush")

    def fileno(self) -> int:
        return int(self._call("fileno"))

    def isatty(self) -> bool:
        return self._stream is not None and bool(self._stream.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _quiet_stdout() -> int:
    """stdout's reader went away (`| head`): stdout goes nowhere from now on, so the
    exit's flush stays quiet; :data:`EXIT_BROKEN_PIPE`."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def run_handler(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command handler, mapping user errors to one stderr line and exit status 2.

    User errors are :class:`~gridverify.errors.GridverifyError` and every
    ``OSError`` (missing, unreadable or unwritable files, a folder where a file
    is expected, a full disk...): the line names the file and the reason.
    """
    from gridverify.errors import GridverifyError

    signals = _Signals()
    try:
        status = int(func(args) or 0)
        sys.stdout.flush()  # a reader gone (`| head`) shows here, not at exit
        return status
    except Terminated:
        print("gridverify: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except GridverifyError as exc:
        _error(str(exc))
    except BrokenPipeError:  # the reader of stdout went away: not the command's error
        return _quiet_stdout()
    except SystemExit as exc:
        if isinstance(exc.__context__, BrokenPipeError):  # rich's console met it first
            return EXIT_BROKEN_PIPE
        raise
    except OSError as exc:
        _error(_out_of_memory_line(exc) if out_of_memory(exc) is not None
               else os_error_message(exc))
    except KeyboardInterrupt:
        return _interrupted()
    except ModuleNotFoundError as exc:
        if (exc.name or "gridverify").partition(".")[0] == "gridverify":
            return _internal_error()  # our own module: a bug, not the installation
        _error(_missing_module(exc.name or ""))
    except Exception as exc:  # noqa: BLE001 - a bug: say so, never exit 1 (a violation)
        if out_of_memory(exc) is None:
            return _internal_error()
        _error(_out_of_memory_line(exc))
    finally:
        signals.restore()
    return EXIT_BAD_INPUT


#: what torch, the C++ runtime and the dynamic loader say when an allocation fails
#: (torch raises RuntimeError, CUDA's its OutOfMemoryError; a shared library that
#: cannot be mapped under an address-space limit raises ImportError)
_NO_MEMORY = ("can't allocate memory", "std::bad_alloc", "out of memory",
              "failed to map segment")


def out_of_memory(exc: BaseException) -> str | None:
    """Why ``exc`` is the machine running out of memory (``""`` for a bare
    ``MemoryError``), or ``None`` when it is not: ``MemoryError``, an ``OSError`` of
    errno ``ENOMEM`` (a failed ``mmap``), and the ``RuntimeError``/``ImportError`` of
    an allocation torch or the loader could not make (a message of
    :data:`_NO_MEMORY`)."""
    import errno

    if isinstance(exc, MemoryError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return os_error_message(exc)
    if not isinstance(exc, (RuntimeError, ImportError)):
        return None
    text = str(exc)
    found = next((k for k in _NO_MEMORY if k in text.lower()), None)
    if found is None:
        return None
    line = next((ln for ln in text.splitlines() if found in ln.lower()), text)
    return " ".join(line.split())[:200]


def _out_of_memory_line(exc: BaseException) -> str:
    """The one line of an exception :func:`out_of_memory` recognizes."""
    why = out_of_memory(exc)
    return (f"out of memory{': ' + why if why else ''} (a smaller problem, fewer samples or "
            "a lower --memory-cap where the command has one)")


def _missing_module(name: str) -> str:
    """The line for a module this installation lacks: the extra that installs it
    (from gridverify's own metadata), else a broken installation."""
    top = name.partition(".")[0]
    extra = _extra_of(top)
    if extra is None:
        return (f"the Python module {top!r} is not installed (an incomplete installation: "
                "reinstall gridverify, see the README)")
    line = f"the Python module {top!r} is not installed: pip install 'gridverify[{extra}]'"
    if top == "torch":  # the cpu extra pins the CPU build; an unpinned torch is CUDA's
        line += " for the CPU build of torch, or install your CUDA build of torch first"
    return line


def _extra_of(module: str) -> str | None:
    """The extra of gridverify's metadata that requires the distribution named like
    ``module`` (``torch``: ``cpu``), ``dev`` last; ``None`` when none does."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("gridverify") or []
    except PackageNotFoundError:
        return None
    found = []
    for req in reqs:
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if extra and name.lower().replace("-", "_") == module.lower():
            found.append(extra.group(1))
    found.sort(key=lambda e: e == "dev")
    return found[0] if found else None


def _interrupted() -> int:
    """Ctrl-C: one line, exit status 130 (128 + SIGINT, as shells report it)."""
    print("gridverify: interrupted", file=sys.stderr)
    return 128 + signal.SIGINT


def _internal_error() -> int:
    """Print the exception being handled with a closing line; :data:`EXIT_INTERNAL`."""
    import traceback

    traceback.print_exc()
    print("gridverify: internal error (a bug; please report it with the traceback above)",
          file=sys.stderr)
    return EXIT_INTERNAL


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler) in the command's process: it
    unwinds as Ctrl-C does, so checkpoints and partial results are saved on the way."""


class _Signals:
    """SIGINT and SIGTERM while a command runs in this process.

    The first raises ``KeyboardInterrupt`` (Ctrl-C) or :class:`Terminated`
    (SIGTERM), which unwinds the command: checkpoints and partial results are
    saved and worker processes stopped on the way.  A second one while that runs is
    ignored, so that the unwinding completes (a pool shut down halfway leaves its
    workers behind); a third ends the process at once, exit status 128 + the
    signal.  The handlers before are restored when the command ends
    (:func:`console_main` then ignores both while the process exits, whose own
    clean-up, multiprocessing's, must not end in a traceback).  Worker processes
    forked from this one keep the signals' usual effect.  Outside the main thread,
    where handlers cannot be set, nothing changes.
    """

    _CAUGHT = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = 0
        self._pid = os.getpid()
        self._previous: dict[int, Any] = {}
        try:
            for s in self._CAUGHT:
                self._previous[s] = signal.signal(s, self._on_signal)
        except ValueError:  # not the main thread
            self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked worker: as the signal does by default
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received += 1
        if self.received == 1:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if self.received == 2:
            print("gridverify: stopping (saving what is done); once more to quit at once",
                  file=sys.stderr, flush=True)
            return
        os._exit(128 + signum)

    def restore(self) -> None:
        """The handlers in place before (the process may go on: Jupyter, tests)."""
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _error(message: str) -> None:
    print(f"gridverify: error: {one_printable_line(message)}", file=sys.stderr)


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: the file(s) and the reason, e.g.
    ``file not found: cases/x.m`` or ``out/: Is a directory``."""
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"file not found: {exc.filename}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {reason}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
