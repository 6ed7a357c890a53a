"""Zones of a grid: its buses split into ``k`` connected groups of about equal load count.

Used by the ``zones`` load region (each zone's loads move together).  PGLib
cases rarely carry informative areas (case14 to case1354 have one), so zones
come from the network itself.  ``k`` seed load buses are spread by a greedy
farthest-point pass over hop distances (the first the bus of the largest load,
each next the load bus farthest from the seeds so far); then the zones grow
from their seeds together, breadth first over the in-service branches, the
zone with the fewest loads so far taking the next bus (ties go to the earlier
zone), so each zone is connected and the zones hold about as many loads each
as the topology allows.  Buses no seed reaches (another island) join the zone
with the fewest loads.  Deterministic: the same case gives the same zones.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

import numpy as np

from gridverify.errors import SpecError


def _adjacency(case: Any) -> Any:
    """The bus graph as a symmetric csr matrix, from the branch incidences ``cf``, ``ct``."""
    adj = (case.cf.T @ case.ct).tocsr()
    return (adj + adj.T).tocsr()


def _seeds(adj: Any, case: Any, k: int) -> list[int]:
    """``k`` load buses spread by farthest-point selection on hop distances."""
    from scipy.sparse.csgraph import shortest_path

    load_bus = np.asarray(case.load_bus, dtype=np.int64)
    size = np.abs(np.asarray(case.pd)) + np.abs(np.asarray(case.qd))
    seeds = [int(load_bus[int(np.argmax(size))])]
    nearest = shortest_path(adj, directed=False, unweighted=True, indices=seeds[0])
    while len(seeds) < k:
        far = np.where(np.isin(load_bus, seeds), -1.0, nearest[load_bus])
        seeds.append(int(load_bus[int(np.argmax(far))]))
        nearest = np.minimum(
            nearest, shortest_path(adj, directed=False, unweighted=True, indices=seeds[-1]))
    return seeds


def bus_zones(case: Any, k: int) -> np.ndarray:
    """Zone (``0 .. k-1``) of every bus of a compiled case (see the module docstring).

    ``k`` must be between 1 and the number of loads; every zone holds at least
    one load (its seed).
    """
    load_bus = np.asarray(case.load_bus, dtype=np.int64)
    if not 1 <= k <= load_bus.size:
        raise SpecError(f"zones: k={k} must be between 1 and the number of loads "
                        f"({load_bus.size})")
    adj = _adjacency(case)
    is_load = np.zeros(case.n_bus, dtype=bool)
    is_load[load_bus] = True
    zone = np.full(case.n_bus, -1, dtype=np.int64)
    loads = np.zeros(k, dtype=np.int64)
    queues: list[deque[int]] = []
    for z, s in enumerate(_seeds(adj, case, k)):
        zone[s] = z
        loads[z] += 1
        queues.append(deque(int(v) for v in adj.indices[adj.indptr[s]:adj.indptr[s + 1]]))
    ready = [(1, z) for z in range(k)]  # (loads, zone) of the zones that may still grow
    heapq.heapify(ready)
    while ready:
        _, z = heapq.heappop(ready)
        q = queues[z]
        while q and zone[q[0]] >= 0:
            q.popleft()
        if not q:
            continue
        b = q.popleft()
        zone[b] = z
        loads[z] += int(is_load[b])
        q.extend(int(v) for v in adj.indices[adj.indptr[b]:adj.indptr[b + 1]] if zone[v] < 0)
        heapq.heappush(ready, (int(loads[z]), z))
    for b in np.flatnonzero(zone < 0):  # islands without a seed
        z = int(np.argmin(loads))
        zone[b] = z
        loads[z] += int(is_load[b])
    return zone


def zone_table(case: Any, k: int) -> list[dict[str, Any]]:
    """Per zone: its buses and loads counted, its nominal demand (MW, MVAr) and the
    MATPOWER ids of its load buses (what ``case info --zones K`` shows)."""
    zb = bus_zones(case, k)
    zl = zb[np.asarray(case.load_bus, dtype=np.int64)]
    ids = np.asarray(case.bus_ids)[np.asarray(case.load_bus, dtype=np.int64)]
    pd, qd = np.asarray(case.pd) * case.base_mva, np.asarray(case.qd) * case.base_mva
    return [{"zone": z, "n_bus": int(np.sum(zb == z)), "n_load": int(np.sum(zl == z)),
             "pd_mw": float(pd[zl == z].sum()), "qd_mvar": float(qd[zl == z].sum()),
             "load_bus_ids": [int(i) for i in ids[zl == z]]} for z in range(k)]


def load_zones(case: Any, k: int) -> np.ndarray:
    """Zone of every load (in the compiled case's load order), from :func:`bus_zones`."""
    return bus_zones(case, k)[np.asarray(case.load_bus, dtype=np.int64)]
