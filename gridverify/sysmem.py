"""What this machine has: its physical and available memory, this process's resident
memory, sizes written for messages, and the most threads or processes a run may ask for.

The one home of these queries: the memory guard of certification
(:mod:`gridverify.certify.memory`), the size checks of ``dataset make`` and of
``train`` read them here.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MAX_WORKERS", "allocated_mb", "available_mb", "cgroup_left_mb", "format_bytes",
           "machine_memory_bytes", "memory_shortfall", "resident_mb"]

_MB = 2.0**20
#: the most threads or worker processes a run may ask for (libgomp fails to create tens
#: of thousands of threads, and torch then crashes the process)
MAX_WORKERS = 1024


def _kb_field_mb(path: str, key: str) -> float | None:
    """A ``KEY: N kB`` line of a ``/proc`` file in MB (``None`` when unknown)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _meminfo_mb(key: str) -> float | None:
    """A field of ``/proc/meminfo`` (the machine's) in MB."""
    return _kb_field_mb("/proc/meminfo", key)


def available_mb(processes: int = 1) -> float | None:
    """Memory this process may still take now (MB), or ``None`` when unknown: what the
    machine has available (``MemAvailable``), but no more than what its cgroups'
    memory limits (a container's, a job's: :func:`cgroup_left_mb`) and its
    address-space limit (``ulimit -v``) leave.  With ``processes`` started together
    (study workers), each one's part: the machine's and the cgroups' memory is
    shared among them, each has an address-space limit of its own."""
    mb = _meminfo_mb("MemAvailable")
    if mb is None:
        try:
            mb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / _MB
        except (ValueError, OSError, AttributeError):
            mb = None
    shared = [x / processes for x in (mb, cgroup_left_mb()) if x is not None]
    limits = [*shared, *[x for x in (_address_space_left_mb(),) if x is not None]]
    return min(limits) if limits else None


#: (limit, usage, statistics, reclaimable page-cache key) of a cgroup v2, then v1, folder
_CGROUP_FILES = {2: ("memory.max", "memory.current", "memory.stat", "inactive_file"),
                 1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat",
                     "total_inactive_file")}
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a number near 2**63


def _cgroup_folder_left(folder: str, version: int) -> float | None:
    """What one cgroup folder's memory limit leaves (bytes): its limit minus its usage,
    the page cache it could drop (inactive files) not counted as used; ``None`` when
    it has no limit (or no such files)."""
    limit_file, usage_file, stat_file, cache_key = _CGROUP_FILES[version]
    try:
        with open(os.path.join(folder, limit_file)) as f:
            text = f.read().strip()
        if text == "max":
            return None
        limit = int(text)
        with open(os.path.join(folder, usage_file)) as f:
            usage = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if limit >= _NO_LIMIT:
        return None
    cache = 0
    try:
        with open(os.path.join(folder, stat_file)) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == cache_key:
                    cache = int(value)
    except (OSError, ValueError):
        pass
    return float(max(limit - max(usage - cache, 0), 0))


def _own_cgroups(proc_cgroup: str) -> dict[int, str]:
    """This process's cgroup path per version (``/proc/self/cgroup``: ``0::PATH`` for
    v2, ``N:...memory...:PATH`` for v1's memory controller); empty when unknown."""
    found: dict[int, str] = {}
    try:
        with open(proc_cgroup) as f:
            for line in f:
                hier, _, rest = line.strip().partition(":")
                controllers, _, path = rest.partition(":")
                if hier == "0" and controllers == "":
                    found[2] = path
                elif "memory" in controllers.split(","):
                    found[1] = path
    except OSError:
        pass
    return found


def cgroup_left_mb(root: str = "/sys/fs/cgroup",
                   proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """What this process's cgroups leave (MB): the least, over its own cgroup (named by
    ``proc_cgroup``) and every one above it up to ``root``, of limit minus usage (a
    container's limit, a Slurm job's, a ``systemd-run -p MemoryMax`` scope's);
    ``None`` without a limit.  A path the mount does not show (a container's view of
    its own cgroup as the root) is skipped for its nearest shown parent."""
    own = _own_cgroups(proc_cgroup)
    lefts = []
    for version, base in ((2, root), (1, os.path.join(root, "memory"))):
        parts = [p for p in own.get(version, "/").split("/") if p]
        for i in range(len(parts), -1, -1):
            folder = os.path.join(base, *parts[:i])
            left = _cgroup_folder_left(folder, version) if os.path.isdir(folder) else None
            if left is not None:
                lefts.append(left)
    return min(lefts) / _MB if lefts else None


def _address_space_left_mb() -> float | None:
    """What the address-space limit (``ulimit -v``, ``RLIMIT_AS``) leaves (MB) beyond
    this process's virtual size; ``None`` without one."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return None
    size = _status_mb("VmSize")
    if soft == resource.RLIM_INFINITY or size is None:
        return None
    return max(soft / _MB - size, 0.0)


def resident_mb() -> float:
    """Resident memory of this process (MB); 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError):
        return 0.0


def _status_mb(key: str) -> float | None:
    """A field of ``/proc/self/status`` (this process's) in MB."""
    return _kb_field_mb("/proc/self/status", key)


_TRIM: list[Any] = []  # glibc's malloc_trim once looked up (None: there is none)


def _trim_heap() -> None:
    """Hand the heap's freed pages back to the OS (glibc's ``malloc_trim(0)``; nothing
    elsewhere): memory a run freed is then no longer counted as held."""
    if not _TRIM:
        try:
            import ctypes

            _TRIM.append(ctypes.CDLL("libc.so.6").malloc_trim)
        except (OSError, AttributeError):
            _TRIM.append(None)
    if _TRIM[0] is not None:
        _TRIM[0](0)


def allocated_mb() -> float:
    """Memory this process has allocated (MB): its anonymous and shared resident memory
    (heap, arrays and tensors, also those moved to shared memory for worker processes;
    ``RssAnon + RssShmem`` of ``/proc/self/status``) once the heap's freed pages are
    handed back.  Not the code of the libraries it maps, which the OS
    loads and drops as it likes, nor what the allocator keeps after a free: both
    made the same run's figure vary by tens of MB.  :func:`resident_mb` where the
    OS does not say."""
    _trim_heap()
    anon, shmem = _status_mb("RssAnon"), _status_mb("RssShmem")
    return resident_mb() if anon is None else anon + (shmem or 0.0)


def machine_memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None when the OS does not say)."""
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return int(n) if n > 0 else None


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``1.5 GiB``, ``512 KiB``..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def memory_shortfall(need: int) -> str | None:
    """``"takes N, more than this machine's M of memory"`` when ``need`` bytes exceed
    the physical memory, else ``None`` (also when the memory is unknown)."""
    memory = machine_memory_bytes()
    if memory is None or need <= memory:
        return None
    return (f"takes {format_bytes(need)}, more than this machine's {format_bytes(memory)} "
            "of memory")
