"""Running an ONNX model in onnxruntime on flat inputs: the reference semantics.

:class:`OnnxChecker` is what every counterexample and witness is re-checked
with (VNN-COMP answers, instance generation, the physics check of third-party
graphs, certificates of ONNX proxies): the model as onnxruntime runs it, inputs
rounded to the model's input dtype.
"""

from __future__ import annotations

import numpy as np

from gridverify.errors import GraphError, RuntimeUnavailableError

__all__ = ["REFERENCE_RTOL", "OnnxChecker", "first_disagreement"]

REFERENCE_RTOL = 1e-3
"""How far an imported graph's outputs may be from its source's runtime, relative
to ``1 + |runtime value|``: float32 models round at 1e-7, a wrong import is off
by far more."""


def first_disagreement(y: np.ndarray, y_ref: np.ndarray,
                       rtol: float = REFERENCE_RTOL) -> int | None:
    """The first flat index at which graph outputs ``y`` and the source runtime's
    ``y_ref`` (same shape) differ by more than ``rtol * (1 + |y_ref|)``, else None.
    NaN against NaN (and an infinity against the same one) agrees; NaN against a
    number does not."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    y_ref = np.asarray(y_ref, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        # only finite values can be close; infinities and NaN must match exactly
        close = np.isfinite(y_ref) & (np.abs(y - y_ref) <= rtol * (1.0 + np.abs(y_ref)))
    same = (np.isnan(y) & np.isnan(y_ref)) | (y == y_ref)
    bad = np.flatnonzero(~(close | same))
    return int(bad[0]) if bad.size else None


class OnnxChecker:
    """Runs the ONNX model in onnxruntime on flat inputs (the reference semantics)."""

    def __init__(self, model_bytes: bytes, batch_axis: bool = False) -> None:
        """``batch_axis``: the leading axis of every input of two or more axes is the
        batch (as :func:`~gridverify.ir.from_onnx` takes it): a model exported with a
        fixed batch of ``B`` runs on ``B`` copies of the input, its first row counts."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                model_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            if type(exc).__name__ != "NotImplemented":
                raise
            why = " ".join(str(exc).split(":")[-1].split())
            raise RuntimeUnavailableError(f"onnxruntime cannot run the model ({why})") from None
        self.inputs = []
        self.copies = 1
        for inp in self.session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            if batch_axis and len(shape) >= 2 and shape[0] > 1:
                self.copies = shape[0]
                shape[0] = 1
            dtype = np.float64 if inp.type == "tensor(double)" else np.float32
            if inp.type not in ("tensor(double)", "tensor(float)"):
                raise GraphError(f"ONNX input {inp.name!r} has type {inp.type}; expected float")
            self.inputs.append((inp.name, shape, dtype, int(np.prod(shape))))

    @property
    def input_size(self) -> int:
        """Total flat size of the model inputs."""
        return sum(k for _, _, _, k in self.inputs)

    def cast(self, x: np.ndarray) -> np.ndarray:
        """``x`` rounded to the model's input dtype(s), as float64."""
        out, at = [], 0
        for _, _, dtype, k in self.inputs:
            out.append(x[at : at + k].astype(dtype).astype(np.float64))
            at += k
        return np.concatenate(out)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Flat float64 outputs of the model at flat input ``x``."""
        feed, at = {}, 0
        for name, shape, dtype, k in self.inputs:
            v = x[at : at + k].astype(dtype).reshape(shape)
            feed[name] = np.repeat(v, self.copies, axis=0) if self.copies > 1 else v
            at += k
        outs = self.session.run(None, feed)
        if self.copies > 1:
            outs = [o[:1] if np.ndim(o) >= 1 and np.shape(o)[0] == self.copies else o
                    for o in outs]
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in outs])
