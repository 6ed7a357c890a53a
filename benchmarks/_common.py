"""Small helpers shared by the benchmark scripts.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and
they import it as ``_common``.

Every script ends with ``_common.run(main)``: an error a user causes (a gridverify error,
an ``OSError`` such as a missing file) is one line ``NAME.py: error: MESSAGE`` on stderr
and exit status 2, as argparse reports its own usage errors.  Options are checked at
parse time by the ``type=`` helpers below (the numeric ones are the ``gridverify``
command's own, :mod:`gridverify.cli._args`), so a typo is reported before any work.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from gridverify.cli import os_error_message
from gridverify.cli._args import count, hidden_sizes, positive_float
from gridverify.errors import GridverifyError
from gridverify.fileio import atomic_write_text, check_output_path, require_file

__all__ = [
    "REPO", "check_outputs", "count", "cuda_missing", "device", "devices", "existing_dir",
    "existing_file", "fail", "families", "family", "hidden_sizes", "keys", "model_path",
    "number_list", "positive_float", "run", "shipped_models", "write_json",
]

#: the root of this checkout (the folder above ``benchmarks/``), wherever a script runs from
REPO = Path(__file__).resolve().parents[1]


def model_path(name: str) -> str:
    """The shipped proxy ``models/NAME`` of this checkout, as an absolute path."""
    return str(REPO / "models" / name)


def shipped_models() -> list[str]:
    """The names of the shipped proxies (``models/NAME`` folders with a ``card.json``)."""
    return sorted(p.name for p in (REPO / "models").iterdir() if (p / "card.json").is_file())


def cuda_missing(device: str) -> bool:
    """True, after printing ``DEVICE: skipped (no CUDA)``, when ``device`` names a CUDA
    device and this torch has none (the caller skips that device)."""
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        print(f"{device}: skipped (no CUDA)", flush=True)
        return True
    return False


# -- errors ---------------------------------------------------------------------------


def _prog() -> str:
    return Path(sys.argv[0]).name or "benchmark"


def fail(message: str) -> NoReturn:
    """``PROG: error: MESSAGE`` (one line) on stderr and exit status 2."""
    print(f"{_prog()}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def run(main: Callable[[], int | None]) -> NoReturn:
    """Run a script's ``main()`` and exit with its status; a
    :class:`~gridverify.errors.GridverifyError` (bad case, family, model, output path...)
    or an ``OSError`` (a missing or unreadable file) is reported by :func:`fail`, without
    a traceback."""
    try:
        status = main()
    except GridverifyError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_message(exc))
    raise SystemExit(status)


def check_outputs(**paths: str | None) -> None:
    """Check, before any work, that the given output paths can be written
    (:func:`gridverify.fileio.check_output_path`; ``None``: not asked for).  The keyword is
    the option without its dashes, ``_`` for ``-``: ``check_outputs(out=a.out, md=a.md)``.
    Raises :class:`~gridverify.errors.OutputPathError`, which :func:`run` reports."""
    for name, path in paths.items():
        if path is not None:
            check_output_path(path, "--" + name.replace("_", "-"))


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically (the folder created if missing).
    Not strict: a ``NaN`` or ``inf`` in the rows is written as ``json.dump`` writes it,
    so that a long run's results are never lost to one odd figure."""
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


# -- argument types (``type=`` of argparse: a bad value is a usage error, exit 2) --------


def keys(valid: Iterable[str], what: str = "") -> Callable[[str], list[str]]:
    """A comma-separated list of names out of ``valid`` (``--cases case14,case57``)."""
    names = list(valid)

    def parse(text: str) -> list[str]:
        got = [t.strip() for t in text.split(",")]
        bad = [t or "''" for t in got if t not in names]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {what + ' ' if what else ''}{', '.join(bad)} "
                f"(valid: {', '.join(names)})")
        return got

    parse.__name__ = "comma list"
    return parse


def families(text: str) -> list[str]:
    """A comma-separated list of constraint families (those of
    :data:`gridverify.spec.constraints.FAMILIES`)."""
    from gridverify.spec.constraints import FAMILIES

    return keys(FAMILIES, "family")(text)


def family(text: str) -> str:
    """One constraint family."""
    if "," in text:
        raise argparse.ArgumentTypeError(f"one family expected, got {text!r}")
    return families(text)[0]


def number_list(kind: Callable[[str], Any] | None = None) -> Callable[[str], list[Any]]:
    """A comma-separated list of numbers, each checked by ``kind`` (default: integers
    ``>= 1``; :func:`positive_float` for positive numbers)."""
    kind = kind or count(1)

    def parse(text: str) -> list[Any]:
        return [kind(t.strip()) for t in text.split(",")]

    parse.__name__ = "comma list"
    return parse


def device(text: str) -> str:
    """A torch device this benchmark runs on: ``cpu``, ``cuda`` or ``cuda:N``."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (valid: cpu, cuda, cuda:N)")
    return text


def devices(text: str) -> list[str]:
    """A comma-separated list of :func:`device`."""
    return [device(t.strip()) for t in text.split(",")]


def existing_file(text: str) -> Path:
    """An existing regular file (``file not found: X`` else)."""
    try:
        return require_file(text)
    except OSError as exc:
        raise argparse.ArgumentTypeError(os_error_message(exc)) from None


def existing_dir(text: str) -> Path:
    """An existing folder."""
    p = Path(text)
    if not p.is_dir():
        raise argparse.ArgumentTypeError(
            f"{'not a folder' if p.exists() else 'folder not found'}: {text}")
    return p
