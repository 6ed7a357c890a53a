"""The range of random seeds that every command and file accepts.

numpy's ``default_rng`` and ``torch.manual_seed`` take unsigned 32-bit seeds
here; a seed outside ``[0, SEED_MAX]`` is bad input, checked once where it
enters (a flag, a study file), never left to fail inside a computation.
"""

from __future__ import annotations

__all__ = ["SEED_MAX", "seed_problem"]

SEED_MAX = 2**32 - 1


def seed_problem(value: object) -> str | None:
    """Why ``value`` is not a valid seed, or ``None`` when it is one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer in [0, {SEED_MAX}], got {value!r}"
    if not 0 <= value <= SEED_MAX:
        return f"must be an integer in [0, {SEED_MAX}], got {value}"
    return None
