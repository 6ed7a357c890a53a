"""Running ``gridverify`` in the test process (imported by name: the folder of the
top-level ``conftest.py`` is on ``sys.path``)."""

from __future__ import annotations

import pytest

from gridverify.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``gridverify ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err
