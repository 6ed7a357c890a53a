"""Progress bars from the Python API: drawn on a terminal or in a notebook by
default, never as escape codes into a log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gridverify._progress import progress_wanted


def test_explicit_choice_wins_and_a_log_gets_no_bar() -> None:
    assert progress_wanted(True) and not progress_wanted(False)
    # pytest captures stderr: not a terminal, not a notebook
    assert progress_wanted(None) is False


def test_make_dataset_by_default_writes_no_escape_codes_to_a_log(tmp_path: Path) -> None:
    code = ("from gridverify.opf.dataset import make_dataset\n"
            f"make_dataset('pglib_opf_case5_pjm', 2, {str(tmp_path / 'd.h5')!r}, seed=0)\n")
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        subprocess.run([sys.executable, "-c", code], check=True, stderr=err,
                       env={**os.environ, "TERM": "xterm"}, timeout=300)
    text = log.read_bytes()
    assert b"\x1b[" not in text, text[:200]
    assert (tmp_path / "d.h5").is_file()
