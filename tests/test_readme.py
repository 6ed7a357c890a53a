"""The README's Python snippet runs as written (in a fresh interpreter, from the
checkout, as a reader pastes it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_python_snippet_runs() -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "the README has no python block"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for code in blocks:
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, (code, run.stderr[-3000:])
