"""Proxies held as gridverify graphs: ONNX files and torch.export programs.

A proxy read from a self-contained file (ONNX, or a ``.pt2`` program of
:func:`torch.export.export`) is imported once into the IR graph, and the torch
module of the proxy evaluates that graph: the module computes exactly what the
bounds are computed on, in any floating dtype.  The module's state is a digest
of the file, so that :func:`gridverify.certify.model_hash` tells proxies apart.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import GraphError, ProxyError


class GraphProxy(nn.Module):
    """Torch evaluation of an IR graph ``(B, n_in) -> (B, n_out)``.

    The output is the concatenation of the graph outputs, each flattened to
    ``(B, -1)``.  ``digest_name``/``digest``: a buffer identifying the source.
    """

    def __init__(self, graph: Any, digest_name: str, digest: bytes) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer(digest_name, torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_in) -> (B, n_out)`` in ``x``'s dtype and device (differentiable)."""
        return self.graph.evaluate_flat(x, dtype=x.dtype, device=x.device)


class ExportedModule(GraphProxy):
    """A proxy saved with :func:`torch.export.save` (a ``.pt2`` file), as a graph.

    Reading needs no Python class of the model (unlike a pickled module): the
    program's ATen graph is imported by :func:`gridverify.ir.from_exported`.
    An op that cannot be bounded raises
    :class:`~gridverify.errors.UnsupportedOpError` naming the op and the node.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from gridverify.ir import from_exported

        path = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
        program = read_exported(path)
        try:
            graph = from_exported(program)
        except GraphError as exc:
            raise ProxyError(f"{path}: {exc}") from None
        super().__init__(graph, "pt2_sha256", hashlib.sha256(data).digest())


def read_exported(path: str | os.PathLike[str]) -> Any:
    """Load a ``.pt2`` file written by :func:`torch.export.save`; anything else
    raises :class:`ProxyError`."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(os.fspath(path))
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many unrelated types on a bad archive
        why = " ".join(str(exc).split())[:200]
        raise ProxyError(f"{path}: not a readable torch.export program (.pt2): "
                         f"{type(exc).__name__}: {why}") from None


def run_exported(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    """The program of ``path`` run by torch itself on the rows of ``x`` (``(n, n_in)``),
    one row at a time in a batch of the size it was exported with (2 when dynamic),
    in its input's dtype: ``(n, n_out)`` float64, outputs concatenated."""
    program = read_exported(path)
    gm = program.module()
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    val = inputs[0].meta["val"]
    batch = val.shape[0] if isinstance(val.shape[0], int) else 2
    rows = []
    with torch.no_grad():
        for xi in np.asarray(x, dtype=np.float64):
            xb = torch.from_numpy(np.repeat(xi[None, :], batch, axis=0)).to(val.dtype)
            out = gm(xb)
            outs = out if isinstance(out, tuple | list) else (out,)
            rows.append(torch.cat([o.reshape(batch, -1)[0] for o in outs]).double().numpy())
    return np.stack(rows)
