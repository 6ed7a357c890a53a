"""ONNX proxies as torch modules.

:class:`OnnxModule` evaluates an ONNX proxy graph with torch, in any floating
dtype (float64 included), through gridverify's ONNX importer
(:func:`gridverify.ir.from_onnx`): the module computes exactly the graph that
the bounds are computed on, and accepts every op that importer lowers (dense
and elementwise arithmetic, the activations of the IR op table and those built
from them, batch norm, reshapes, slices, ...).  Anything else raises
:class:`~gridverify.errors.UnsupportedOpError` naming the op and node.

The module's output is the concatenation of the graph outputs, each flattened
to ``(batch, -1)``; ``keep`` truncates it to its first ``keep`` entries (a proxy
whose ONNX has extra outputs after the solution, e.g. physics residuals).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import TYPE_CHECKING

import numpy as np

from gridverify.errors import GraphError, ProxyError, UnsupportedOpError
from gridverify.proxy.graph_proxy import GraphProxy

if TYPE_CHECKING:  # onnx is imported when an ONNX file is read (~0.7 s at start-up)
    import onnx


def read_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and check an ONNX file; a malformed file raises :class:`ProxyError`."""
    import onnx

    try:
        m = onnx.load(os.fspath(path))
        onnx.checker.check_model(m)
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnx raises several unrelated types
        raise ProxyError(f"{path}: not a valid ONNX model: {exc}") from None
    return m


def onnx_metadata(m: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in m.metadata_props}


class OnnxModule(GraphProxy):
    """Torch evaluation of a (feed-forward) ONNX proxy graph; see module docstring.

    :meth:`reference` runs the model in onnxruntime (its weights inlined, as read).
    """

    reference_name = "onnxruntime"
    #: what to try when the imported graph disagrees with onnxruntime
    instead = "save the model with torch.export (a .pt2 file) instead"

    def __init__(self, m: onnx.ModelProto, *, keep: int | None = None, source: str = "onnx"):
        from gridverify.ir import from_onnx

        _graph_inputs(m, source)
        try:
            graph = from_onnx(m, keep_outputs=keep, source=source, batch_axis=True)
        except GraphError as exc:  # name the file, as for every other format
            text = str(exc)
            raise ProxyError(text if text.startswith(source) else f"{source}: {text}") from None
        except UnsupportedOpError as exc:  # name the file (the importer saw the model)
            exc.args = (f"{source}: {exc}",)
            raise
        # the module's state is the file: its digest (and ``keep``) identify the proxy
        # (``gridverify.certify.model_hash`` hashes the state dict)
        data = m.SerializeToString()
        digest = hashlib.sha256(data + f"keep={keep}".encode()).digest()
        super().__init__(graph, "onnx_sha256", digest)
        self.keep = keep
        self._onnx = data

    def reference(self, x: np.ndarray) -> np.ndarray | None:
        """The model run by onnxruntime on each row of ``x``: ``(n, n_out)`` float64
        (a model exported with a fixed batch runs on copies of the row); ``None``
        when onnxruntime has no kernel for one of its ops in the model's dtype (a
        float64 ``Elu``, ``Softplus``, ``Erf``...), with the reason in
        :attr:`reference_problem`."""
        from gridverify.errors import RuntimeUnavailableError
        from gridverify.ir.onnx_check import OnnxChecker

        try:
            checker = OnnxChecker(self._onnx, batch_axis=True)
        except RuntimeUnavailableError as exc:
            self.reference_problem = str(exc)
            return None
        return np.stack([checker.run(xi) for xi in np.asarray(x, dtype=np.float64)])


def _graph_inputs(m: onnx.ModelProto, source: str) -> list[onnx.ValueInfoProto]:
    """The graph's inputs that are not initializers; a proxy has exactly one."""
    init = {t.name for t in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in init]
    if len(ins) != 1:
        names = ", ".join(i.name for i in ins)
        raise ProxyError(f"{source}: a proxy ONNX graph needs exactly one input, "
                         f"found {len(ins)}" + (f" ({names})" if names else ""))
    return ins


def probe_sizes(m: onnx.ModelProto, source: str = "onnx"
                ) -> tuple[int | None, list[int | None]]:
    """Declared input width and output widths (None where symbolic); a graph
    without exactly one input is refused.  An output's width is the number of
    entries per sample (its dimensions after the batch multiplied: heads of shape
    ``(B, G, 2)`` are ``2G`` wide, as the module flattens them); the input's is
    its last dimension."""

    def dims(vi: onnx.ValueInfoProto) -> list[int | None]:
        return [int(d.dim_value) if d.HasField("dim_value") else None
                for d in vi.type.tensor_type.shape.dim]

    def last(vi: onnx.ValueInfoProto) -> int | None:
        return (dims(vi) or [None])[-1]

    def per_sample(vi: onnx.ValueInfoProto) -> int | None:
        d = dims(vi)
        if len(d) <= 2:
            return (d or [None])[-1]
        return None if None in d[1:] else math.prod(d[1:])

    n_in = last(_graph_inputs(m, source)[0])
    return n_in, [per_sample(o) for o in m.graph.output]
