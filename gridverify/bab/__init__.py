"""Branch-and-bound for general nonlinearities (GenBaB-style).

``bab_maximize(graph, lower, upper, spec, threshold=None, options=BabOptions())``
returns a :class:`BabResult` with a sound upper bound of ``max_k spec_k @ y(x)``
over the input box, the best value attained (with its witness) and a status.
The search knows nothing of grids: it sees a graph, a box and spec rows.
"""

from gridverify.bab.options import BabOptions, BabOptionsError
from gridverify.bab.search import BabResult, bab_maximize

__all__ = ["BabOptions", "BabOptionsError", "BabResult", "bab_maximize"]
