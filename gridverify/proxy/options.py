"""Training options of a proxy (torch-free, so the CLI can read defaults cheaply)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gridverify._typed import check_field_types
from gridverify.errors import ProxyError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softplus")
#: the largest float32: the weights, and the learning rate and decay Adam applies to them
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class TrainOptions:
    """Options of :func:`train_proxy` (all explicit; no global configuration).

    ``stability_weight``: weight of the verification-friendliness term, the mean
    over hidden neurons of the largest gap of their convex relaxation over the
    whole load region (interval bounds of the pre-activations over the region
    box); it pushes neurons to be stable over the region so that bound
    propagation is tight (0: off).
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    clamp_head: bool = True
    balance_weight: float = 0.0
    stability_weight: float = 0.0
    epochs: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int = 60
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    std_floor: float = 0.05
    progress: bool | None = None

    def __post_init__(self) -> None:
        check_field_types(self, ProxyError, "train options")
        if self.activation not in ACTIVATIONS:
            raise ProxyError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ProxyError(f"hidden sizes must be positive integers, got {self.hidden}")
        finite = math.isfinite
        checks = {  # option: (holds, the rule)
            "epochs": (self.epochs >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            # Adam keeps both in the weights' float32: larger ones overflow
            "lr": (0 < self.lr <= _FLOAT32_MAX, f"in (0, {_FLOAT32_MAX:.4g}]"),
            "balance_weight": (self.balance_weight >= 0 and finite(self.balance_weight),
                               ">= 0"),
            "stability_weight": (self.stability_weight >= 0 and finite(self.stability_weight),
                                 ">= 0"),
            "weight_decay": (0 <= self.weight_decay <= _FLOAT32_MAX,
                             f"in [0, {_FLOAT32_MAX:.4g}]"),
            "seed": (self.seed >= 0, ">= 0"),
            "patience": (self.patience >= 1, ">= 1"),
            "val_fraction": (0 < self.val_fraction < 0.5, "in (0, 0.5)"),
            "test_fraction": (0 < self.test_fraction < 0.5, "in (0, 0.5)"),
            "std_floor": (0 <= self.std_floor <= 1, "in [0, 1]"),
        }
        bad = [f"{k} = {getattr(self, k)!r} (--{k.replace('_', '-')} must be {rule})"
               for k, (ok, rule) in checks.items() if not ok]
        if bad:
            raise ProxyError(f"bad training option(s): {'; '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the model card)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d.pop("progress")
        return d
