"""The compiled, immutable form of a grid case (the contract other parts rely on).

Everything is per-unit on ``base_mva`` and radians, active elements only.
Arrays are read-only numpy float64 / int64 arrays.  Indices are 0-based
positions into the compiled arrays; ``*_row`` arrays give the 1-based row of
the element in the original MATPOWER table (for reports and the CLI).

Branch flows follow the MATPOWER branch model (series admittance
``y = 1/(r + jx)``, line charging ``b`` split half/half, off-nominal tap
``tap`` and phase shift ``shift`` on the from side), written as PowerModels' ACP
templates.  With ``cos_ft = cos(va_f - va_t)``, ``sin_ft = sin(va_f - va_t)``
and ``w_ft = vm_f * vm_t``::

    pf = pf_vv * vm_f**2 + pf_c * w_ft * cos_ft + pf_s * w_ft * sin_ft
    qf = qf_vv * vm_f**2 + qf_c * w_ft * cos_ft + qf_s * w_ft * sin_ft
    pt = pt_vv * vm_t**2 + pt_c * w_ft * cos_ft + pt_s * w_ft * sin_ft
    qt = qt_vv * vm_t**2 + qt_c * w_ft * cos_ft + qt_s * w_ft * sin_ft

(the to-side coefficients already account for ``sin(va_t - va_f) = -sin_ft``).
These equations are written once, for every backend, in
:mod:`gridverify.physics.equations`; this module only holds the data.
Bus power balance (PowerModels' convention, injections positive)::

    sum_{gens at i} pg - pd_i - gs_i * vm_i**2 = sum_{branches from i} pf + sum_{branches to i} pt
    sum_{gens at i} qg - qd_i + bs_i * vm_i**2 = sum_{branches from i} qf + sum_{branches to i} qt
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from gridverify._html import HtmlView


@dataclass(frozen=True)
class FlowTemplate:
    """Per-branch coefficients of one flow quantity (see module docstring).

    The one branch-template type: the compiled case carries four (``pf_t``,
    ``qf_t``, ``pt_t``, ``qt_t``) and every backend of
    :mod:`gridverify.physics.equations` reads them.
    """

    vv: np.ndarray  # coefficient of vm_f**2 (from side) or vm_t**2 (to side)
    c: np.ndarray  # coefficient of vm_f*vm_t*cos(va_f - va_t)
    s: np.ndarray  # coefficient of vm_f*vm_t*sin(va_f - va_t)
    side: str  # "f" or "t": which end's vm is squared in the vv term


@dataclass(frozen=True, eq=False)
class CompiledCase(HtmlView):
    """Immutable arrays of one grid case, ready for OPF and for physics graphs.

    Two compiled cases are equal when they have the same name and content hash
    (every array derives from the hashed content), and hash accordingly.
    """

    html_kind: ClassVar[str] = "case"

    name: str
    source: str
    base_mva: float
    content_hash: str  # sha256 hex of the numeric case content

    # buses (all buses of the case except isolated type-4 buses), bus-table order
    bus_ids: np.ndarray  # original MATPOWER bus ids, int64
    bus_type: np.ndarray  # 1 PQ, 2 PV, 3 ref
    ref_bus: np.ndarray  # indices of reference buses
    vmin: np.ndarray
    vmax: np.ndarray
    gs: np.ndarray  # shunt conductance per bus (pu at V = 1)
    bs: np.ndarray  # shunt susceptance per bus (pu at V = 1)
    pd_bus: np.ndarray  # demand per bus
    qd_bus: np.ndarray
    vm0: np.ndarray  # voltage magnitude in the case file (start point)
    va0: np.ndarray  # voltage angle in the case file, radians

    # loads: one per bus with non-zero demand, in bus-table order
    load_bus: np.ndarray  # bus index of each load
    pd: np.ndarray  # nominal demand of each load
    qd: np.ndarray

    # active generators, gen-table order
    gen_bus: np.ndarray  # bus index
    gen_row: np.ndarray  # 1-based row in the gen table
    pmin: np.ndarray
    pmax: np.ndarray
    qmin: np.ndarray
    qmax: np.ndarray
    pg0: np.ndarray
    qg0: np.ndarray
    vg: np.ndarray  # voltage set point
    cost_c2: np.ndarray  # cost = c2 * pg**2 + c1 * pg + c0 in $/h with pg in pu
    cost_c1: np.ndarray
    cost_c0: np.ndarray

    # active branches, branch-table order
    f_bus: np.ndarray  # bus index of the from end
    t_bus: np.ndarray
    branch_row: np.ndarray  # 1-based row in the branch table
    r: np.ndarray
    x: np.ndarray
    b: np.ndarray  # total line charging
    tap: np.ndarray  # off-nominal ratio (1.0 where the file has 0)
    shift: np.ndarray  # phase shift, radians
    rate_a: np.ndarray  # thermal limit on apparent power; np.inf where unlimited
    angmin: np.ndarray  # radians
    angmax: np.ndarray
    pf_t: FlowTemplate
    qf_t: FlowTemplate
    pt_t: FlowTemplate
    qt_t: FlowTemplate

    # sparse structure (scipy.sparse csr matrices)
    ybus: Any  # complex (n_bus x n_bus) bus admittance matrix
    cf: Any  # (n_branch x n_bus) from-end incidence, 0/1
    ct: Any  # (n_branch x n_bus) to-end incidence, 0/1
    cg: Any  # (n_gen x n_bus) generator incidence
    cl: Any  # (n_load x n_bus) load incidence

    bus_index: dict[int, int] = field(default_factory=dict)  # original id -> index
    # piecewise-linear costs (MATPOWER model 1): generator index -> (k, 2) points
    # (pg in pu, cost in $/h), convex; those generators have zero polynomial costs
    cost_pwl: dict[int, np.ndarray] = field(default_factory=dict)
    graph: Any = None  # networkx.MultiGraph on bus indices (attributes: bus id, branch row)
    warnings: tuple[str, ...] = ()
    #: whether the file gives generator costs (an OPF needs them; certification does not)
    has_costs: bool = True
    #: per active branch: a transformer, as MATPOWER counts them (a non-zero ``ratio``
    #: in the file, 1.0 included, or a non-zero phase shift); None: not known
    transformer: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = (other.name, other.content_hash)  # type: ignore[attr-defined]
        return (self.name, self.content_hash) == key

    def __hash__(self) -> int:
        return hash((self.name, self.content_hash))

    def __repr__(self) -> str:
        return (f"CompiledCase(name={self.name!r}, buses={self.n_bus}, generators={self.n_gen}, "
                f"branches={self.n_branch}, loads={self.n_load}, "
                f"content_hash={self.content_hash[:12]!r})")

    @property
    def n_bus(self) -> int:
        return int(self.bus_ids.shape[0])

    @property
    def n_gen(self) -> int:
        return int(self.gen_bus.shape[0])

    @property
    def n_branch(self) -> int:
        return int(self.f_bus.shape[0])

    @property
    def n_load(self) -> int:
        return int(self.load_bus.shape[0])

    @property
    def n_transformers(self) -> int:
        """Active transformers (see :attr:`transformer`; without it, the branches
        with an off-nominal tap or a phase shift)."""
        if self.transformer is not None:
            return int(np.count_nonzero(self.transformer))
        return int(np.count_nonzero((self.tap != 1.0) | (self.shift != 0.0)))

    def pwl_segments(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Slopes ($/h per pu) and intercepts ($/h) of generator ``g``'s
        piecewise-linear cost, which is ``max_j slope_j * pg + intercept_j``
        (convex; the end segments extend past the first and last points, as in
        MATPOWER)."""
        pts = self.cost_pwl[g]
        slope = np.diff(pts[:, 1]) / np.diff(pts[:, 0])
        return slope, pts[:-1, 1] - slope * pts[:-1, 0]

    def generation_cost(self, pg: np.ndarray) -> float:
        """Total generation cost in $/h of the active outputs ``pg`` (pu), polynomial
        and piecewise-linear costs together."""
        pg = np.asarray(pg, dtype=np.float64)
        total = float(np.sum(self.cost_c2 * pg**2 + self.cost_c1 * pg + self.cost_c0))
        for g in self.cost_pwl:
            slope, icpt = self.pwl_segments(g)
            total += float(np.max(slope * pg[g] + icpt))
        return total
