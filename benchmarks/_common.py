"""Small helpers shared by the benchmark scripts.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and
they import it as ``_common``.
"""

from __future__ import annotations

from pathlib import Path

#: the root of this checkout (the folder above ``benchmarks/``), wherever a script runs from
REPO = Path(__file__).resolve().parents[1]


def model_path(name: str) -> str:
    """The shipped proxy ``models/NAME`` of this checkout, as an absolute path."""
    return str(REPO / "models" / name)


def cuda_missing(device: str) -> bool:
    """True, after printing ``DEVICE: skipped (no CUDA)``, when ``device`` names a CUDA
    device and this torch has none (the caller skips that device)."""
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        print(f"{device}: skipped (no CUDA)", flush=True)
        return True
    return False
