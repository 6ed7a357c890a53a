"""Options of the bound engine (a frozen dataclass passed explicitly)."""

from __future__ import annotations

from dataclasses import dataclass

from gridverify._typed import check_field_types
from gridverify.errors import GridverifyError

METHODS = ("ibp", "crown", "alpha-crown")


class BoundOptionsError(GridverifyError):
    """A bound-engine option is out of range."""


@dataclass(frozen=True)
class BoundOptions:
    """How :func:`gridverify.compute_bounds` bounds a graph.

    ``alpha_iterations``/``alpha_lr``/``optimizer`` drive alpha-CROWN (Adam or
    SGD on the summed bounds, alphas projected to [0, 1]; alphas are per domain
    and neuron, shared by the spec rows, separate for the lower and the upper
    bound).  ``intermediate`` picks how the bounds of the inputs of nonlinear ops
    are computed: ``"crown"`` (backward from each such node, intersected with
    IBP), ``"alpha-crown"`` (the same, then ``alpha_iterations`` steps of
    alpha optimization per node: tighter and far costlier) or ``"ibp"`` (cheap).
    ``crown_max_size``: nodes larger than this get IBP bounds only (``None``: no
    limit).  ``memory_mb`` caps the size of one backward coefficient tensor;
    larger specs are split into row chunks.
    ``keep_intermediate`` returns the intermediate bounds used in
    :class:`~gridverify.bounds.api.Bounds`.  ``relevance``: with a spec (and
    neither ``keep_intermediate`` nor intermediate linear bounds asked for),
    CROWN rows go only to the entries the spec depends on
    (:mod:`gridverify.bounds.relevance`): the same bounds, less work when the
    spec reads a few entries of wide nodes.
    """

    alpha_iterations: int = 20
    alpha_lr: float = 0.1
    optimizer: str = "adam"
    intermediate: str = "crown"
    crown_max_size: int | None = None
    memory_mb: float = 512.0
    keep_intermediate: bool = False
    relevance: bool = True

    def __post_init__(self) -> None:
        check_field_types(self, BoundOptionsError, "bounds")
        if self.alpha_iterations < 0:
            raise BoundOptionsError(f"alpha_iterations must be >= 0, got {self.alpha_iterations}")
        if not self.alpha_lr > 0:
            raise BoundOptionsError(f"alpha_lr must be > 0, got {self.alpha_lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise BoundOptionsError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.intermediate not in ("crown", "alpha-crown", "ibp"):
            raise BoundOptionsError(
                f"intermediate must be 'crown', 'alpha-crown' or 'ibp', "
                f"got {self.intermediate!r}"
            )
        if self.crown_max_size is not None and self.crown_max_size < 1:
            raise BoundOptionsError("crown_max_size must be >= 1 or None")
        if not self.memory_mb > 0:
            raise BoundOptionsError(f"memory_mb must be > 0, got {self.memory_mb}")
