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


def _proc(tmp_path: Path, text: str = "0::/\n") -> str:
    """A ``/proc/self/cgroup`` of the given lines (the process's own cgroup paths)."""
    path = tmp_path / "proc_self_cgroup"
    path.write_text(text)
    return str(path)


def test_cgroup_v2_limit_minus_usage_with_page_cache_reclaimable(tmp_path: Path) -> None:
    root = _write(tmp_path / "fs", {"memory.max": f"{1024 * MB}\n",
                                    "memory.current": f"{600 * MB}\n",
                                    "memory.stat": f"anon {400 * MB}\ninactive_file {100 * MB}\n"})
    assert cgroup_left_mb(root, _proc(tmp_path)) == pytest.approx(1024 - 500)


def test_the_processs_own_cgroup_below_the_root_and_its_parents(tmp_path: Path) -> None:
    """On a host (Slurm, ``systemd-run -p MemoryMax``) the process's cgroup is a folder
    below the root, named by ``/proc/self/cgroup``; the least a parent leaves counts too.
    A path the mount does not show (a container's own cgroup seen as the root) falls back
    to its nearest shown parent."""
    v2 = _write(tmp_path / "v2", {
        "cgroup.controllers": "cpu memory\n", "memory.stat": "anon 1\n",
        "user.slice/memory.max": f"{1500 * MB}\n", "user.slice/memory.current": f"{1200 * MB}\n",
        "user.slice/run.scope/memory.max": f"{2048 * MB}\n",
        "user.slice/run.scope/memory.current": f"{1024 * MB}\n"})
    assert cgroup_left_mb(v2, _proc(tmp_path, "0::/user.slice/run.scope\n")) == \
        pytest.approx(300)  # the parent's 1500 - 1200, below the scope's own 1024
    v1 = _write(tmp_path / "v1", {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "memory/memory.usage_in_bytes": f"{20 * 1024 * MB}\n",
        "memory/slurm/job_42/memory.limit_in_bytes": f"{2048 * MB}\n",
        "memory/slurm/job_42/memory.usage_in_bytes": f"{1024 * MB}\n",
        "memory/slurm/job_42/memory.stat": "total_inactive_file 0\n"})
    job = "12:cpu,cpuacct:/slurm/job_42\n4:memory:/slurm/job_42\n0::/\n"
    assert cgroup_left_mb(v1, _proc(tmp_path, job)) == pytest.approx(1024)
    hidden = "4:memory:/docker/abc\n"  # the container sees its own cgroup at the root
    c1 = _write(tmp_path / "c1", {"memory/memory.limit_in_bytes": f"{512 * MB}",
                                  "memory/memory.usage_in_bytes": f"{12 * MB}"})
    assert cgroup_left_mb(c1, _proc(tmp_path, hidden)) == pytest.approx(500)


def test_cgroup_v1_and_no_limit(tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1", {
        "memory/memory.limit_in_bytes": f"{2048 * MB}\n",
        "memory/memory.usage_in_bytes": f"{1000 * MB}\n",
        "memory/memory.stat": f"cache 5\ntotal_inactive_file {200 * MB}\n"})
    proc = _proc(tmp_path, "4:memory:/\n")
    assert cgroup_left_mb(v1, proc) == pytest.approx(2048 - 800)
    # v1 writes "no limit" as a number near 2**63; v2 as "max"; none at all: no cgroup
    unlimited = _write(tmp_path / "u1", {"memory/memory.limit_in_bytes": "9223372036854771712",
                                         "memory/memory.usage_in_bytes": "1000"})
    assert cgroup_left_mb(unlimited, proc) is None
    assert cgroup_left_mb(_write(tmp_path / "u2", {"memory.max": "max\n",
                                                   "memory.current": "1"}), proc) is None
    assert cgroup_left_mb(str(tmp_path / "none"), proc) is None
    assert cgroup_left_mb(str(tmp_path / "none"), str(tmp_path / "no_proc_file")) is None
    # over the limit (usage counted above it): nothing left, never negative
    over = _write(tmp_path / "o", {"memory.max": f"{100 * MB}", "memory.current": f"{300 * MB}"})
    assert cgroup_left_mb(over, proc) == 0.0


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc as Linux has them")
def test_an_address_space_limit_bounds_what_is_available() -> None:
    """Under ``ulimit -v`` the default memory cap must not exceed what the limit leaves
    (it did: 80 % of the machine's free memory, and torch then failed to allocate)."""
    code = ("import resource\n"
            "from gridverify.sysmem import available_mb\n"
            "with open('/proc/self/statm') as f: vsz = int(f.read().split()[0]) * 4096\n"
            "hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vsz + 300 * 2**20, hard))\n"
            "print(available_mb(), available_mb(4))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    one, each_of_four = map(float, out.split())
    assert 0 < one <= 300.5
    # the limit is each process's own: four workers do not split it (the machine's
    # memory, far larger here, they do)
    assert each_of_four == pytest.approx(one, abs=5)
    machine = available_mb()
    assert machine is None or machine > 0


def test_sizes_for_messages() -> None:
    from gridverify.sysmem import format_bytes, machine_memory_bytes, memory_shortfall

    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.0 KiB"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**29) == "1.5 GiB"
    assert format_bytes(2 * 2**50) == "2.0 PiB"
    machine = machine_memory_bytes()
    assert machine is None or machine > 0
    assert memory_shortfall(0) is None
    if machine is not None:
        assert memory_shortfall(machine) is None
        msg = memory_shortfall(machine + 1)
        assert msg is not None and msg.startswith("takes ") and "more than this machine" in msg
