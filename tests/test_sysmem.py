"""What the machine, the container and the OS limits leave this process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gridverify.sysmem import available_mb, cgroup_left_mb

MB = 2**20


def _write(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return str(root)


def test_cgroup_v2_limit_minus_usage_with_page_cache_reclaimable(tmp_path: Path) -> None:
    root = _write(tmp_path, {"memory.max": f"{1024 * MB}\n",
                             "memory.current": f"{600 * MB}\n",
                             "memory.stat": f"anon {400 * MB}\ninactive_file {100 * MB}\n"})
    assert cgroup_left_mb(root) == pytest.approx(1024 - 500)


def test_cgroup_v1_and_no_limit(tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1", {
        "memory/memory.limit_in_bytes": f"{2048 * MB}\n",
        "memory/memory.usage_in_bytes": f"{1000 * MB}\n",
        "memory/memory.stat": f"cache 5\ntotal_inactive_file {200 * MB}\n"})
    assert cgroup_left_mb(v1) == pytest.approx(2048 - 800)
    # v1 writes "no limit" as a number near 2**63; v2 as "max"; none at all: no cgroup
    unlimited = _write(tmp_path / "u1", {"memory/memory.limit_in_bytes": "9223372036854771712",
                                         "memory/memory.usage_in_bytes": "1000"})
    assert cgroup_left_mb(unlimited) is None
    assert cgroup_left_mb(_write(tmp_path / "u2", {"memory.max": "max\n",
                                                   "memory.current": "1"})) is None
    assert cgroup_left_mb(str(tmp_path / "none")) is None
    # over the limit (usage counted above it): nothing left, never negative
    over = _write(tmp_path / "o", {"memory.max": f"{100 * MB}", "memory.current": f"{300 * MB}"})
    assert cgroup_left_mb(over) == 0.0


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc as Linux has them")
def test_an_address_space_limit_bounds_what_is_available() -> None:
    """Under ``ulimit -v`` the default memory cap must not exceed what the limit leaves
    (it did: 80 % of the machine's free memory, and torch then failed to allocate)."""
    code = ("import resource\n"
            "from gridverify.sysmem import available_mb\n"
            "with open('/proc/self/statm') as f: vsz = int(f.read().split()[0]) * 4096\n"
            "hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vsz + 300 * 2**20, hard))\n"
            "print(available_mb())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert 0 < float(out) <= 300.5
    machine = available_mb()
    assert machine is None or machine > 0
