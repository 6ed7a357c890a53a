"""Sliding windows of convolutions and pooling, as index arrays.

A convolution or a pooling layer reads, for every output position ``p`` and
kernel offset ``q``, the input position ``p * stride - pad_begin + q * dilation``
(per spatial axis), or nothing where that falls in the padding.  This module
computes those index pairs once; the importers lower a convolution to one sparse
linear map over them and a pooling layer to a linear map (average) or a tree of
maxima (max) (:meth:`gridverify.ir.lowering.Lowering.conv`,
:meth:`~gridverify.ir.lowering.Lowering.pool`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Windows", "same_pads", "windows"]


@dataclass(frozen=True)
class Windows:
    """The valid (output position, kernel offset) pairs of a sliding window.

    ``out``: the output's spatial shape; ``p`` / ``q``: flat output position and
    flat kernel offset of every pair that reads the input; ``at``: the flat input
    position it reads; ``padded``: per output position, how many kernel offsets
    fall inside the padded input (the divisor of an average that counts padding).
    """

    out: tuple[int, ...]
    p: np.ndarray
    q: np.ndarray
    at: np.ndarray
    padded: np.ndarray

    @property
    def n_out(self) -> int:
        """Output positions per channel."""
        return int(np.prod(self.out, dtype=np.int64))


def same_pads(spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], upper: bool) -> tuple[list[int], list[int]]:
    """Begin and end pads of ONNX ``auto_pad`` SAME_UPPER (``upper``) / SAME_LOWER:
    the output has ``ceil(size / stride)`` positions, the odd pad at the end (upper)
    or at the beginning (lower)."""
    begin, end = [], []
    for s, k, st, d in zip(spatial, kernel, strides, dilations):
        total = max((math.ceil(s / st) - 1) * st + (k - 1) * d + 1 - s, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if upper else big)
        end.append(big if upper else small)
    return begin, end


def windows(spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
            pads_begin: Sequence[int], pads_end: Sequence[int], dilations: Sequence[int],
            ceil_mode: bool = False) -> Windows:
    """The sliding windows of a kernel over an input of spatial shape ``spatial``.

    Raises ``ValueError`` (named) on an empty output or inconsistent lengths.
    """
    d = len(spatial)
    for name, v in (("kernel", kernel), ("strides", strides), ("pads", pads_begin),
                    ("pads", pads_end), ("dilations", dilations)):
        if len(v) != d:
            raise ValueError(f"{name} has {len(v)} entries for {d} spatial axes")
    if min(kernel, default=1) < 1 or min(strides, default=1) < 1 or \
            min(dilations, default=1) < 1:
        raise ValueError("kernel, strides and dilations must be positive")
    if min(list(pads_begin) + list(pads_end), default=0) < 0:
        raise ValueError("negative pads")
    out = []
    for s, k, st, pb, pe, dl in zip(spatial, kernel, strides, pads_begin, pads_end, dilations):
        reach = s + pb + pe - dl * (k - 1) - 1
        if reach < 0:
            raise ValueError(f"a kernel of {k} (dilation {dl}) does not fit an axis of {s} "
                             f"with pads {pb}, {pe}")
        n = (-(-reach // st) if ceil_mode else reach // st) + 1
        if ceil_mode and (n - 1) * st >= s + pb:  # a window must start inside the input
            n -= 1
        out.append(n)
    o_idx = np.indices(out).reshape(d, -1).T            # (P, d)
    k_idx = np.indices(tuple(kernel)).reshape(d, -1).T  # (Q, d)
    st, dl = np.asarray(strides), np.asarray(dilations)
    pos = (o_idx * st - np.asarray(pads_begin))[:, None, :] + (k_idx * dl)[None, :, :]
    inside = np.all((pos >= 0) & (pos < np.asarray(spatial)), axis=2)
    in_padded = np.all((pos >= -np.asarray(pads_begin))
                       & (pos < np.asarray(spatial) + np.asarray(pads_end)), axis=2)
    p, q = np.nonzero(inside)
    at = np.ravel_multi_index(tuple(pos[p, q].T), tuple(spatial)) if d else np.zeros(0, int)
    return Windows(tuple(out), p.astype(np.int64), q.astype(np.int64),
                   np.asarray(at, dtype=np.int64), in_padded.sum(axis=1))
