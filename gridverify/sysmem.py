"""What this machine has: its physical and available memory, this process's resident
memory, sizes written for messages, and the most threads or processes a run may ask for.

The one home of these queries: the memory guard of certification
(:mod:`gridverify.certify.memory`), the size checks of ``dataset make`` and of
``train`` read them here.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MAX_WORKERS", "allocated_mb", "available_mb", "format_bytes",
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
    """Memory the machine has available now (MB), or ``None`` when unknown."""
    mb = _meminfo_mb("MemAvailable")
    if mb is not None:
        return mb
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / _MB
    except (ValueError, OSError, AttributeError):
        return None


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
