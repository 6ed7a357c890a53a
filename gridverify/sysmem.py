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


def _meminfo_mb(key: str) -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def available_mb() -> float | None:
    """Memory this process may still take now (MB), or ``None`` when unknown: what the
    machine has available (``MemAvailable``), but no more than what its container's
    memory limit (cgroup v2 or v1) and its address-space limit (``ulimit -v``) leave."""
    mb = _meminfo_mb("MemAvailable")
    if mb is None:
        try:
            mb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / _MB
        except (ValueError, OSError, AttributeError):
            mb = None
    limits = [x for x in (mb, cgroup_left_mb(), _address_space_left_mb()) if x is not None]
    return min(limits) if limits else None


#: (limit, usage, statistics, reclaimable page-cache key) of cgroup v2, then v1
_CGROUPS = (("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
             "memory/memory.stat", "total_inactive_file"))
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a number near 2**63


def cgroup_left_mb(root: str = "/sys/fs/cgroup") -> float | None:
    """What this process's cgroup (a container's memory limit) leaves (MB): its limit
    minus its usage, the page cache it could drop (inactive files) not counted as
    used; ``None`` without a cgroup limit."""
    for limit_file, usage_file, stat_file, cache_key in _CGROUPS:
        try:
            with open(os.path.join(root, limit_file)) as f:
                text = f.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(os.path.join(root, usage_file)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= _NO_LIMIT:
            return None
        cache = 0
        try:
            with open(os.path.join(root, stat_file)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == cache_key:
                        cache = int(value)
        except (OSError, ValueError):
            pass
        return max(limit - max(usage - cache, 0), 0) / _MB
    return None


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
    """A ``kB`` field of ``/proc/self/status`` in MB (``None`` when unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


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
    """Memory this process has allocated (MB): its anonymous resident memory (heap,
    arrays and tensors; ``RssAnon`` of ``/proc/self/status``) once the heap's freed
    pages are handed back.  Not the code of the libraries it maps, which the OS
    loads and drops as it likes, nor what the allocator keeps after a free: both
    made the same run's figure vary by tens of MB.  :func:`resident_mb` where the
    OS does not say."""
    _trim_heap()
    mb = _status_mb("RssAnon")
    return resident_mb() if mb is None else mb


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
