"""Running an ONNX model in onnxruntime on flat inputs: the reference semantics.

:class:`OnnxChecker` is what every counterexample and witness is re-checked
with (VNN-COMP answers, instance generation, the physics check of third-party
graphs, certificates of ONNX proxies): the model as onnxruntime runs it, inputs
rounded to the model's input dtype.
"""

from __future__ import annotations

import numpy as np

from gridverify.errors import GraphError

__all__ = ["OnnxChecker"]


class OnnxChecker:
    """Runs the ONNX model in onnxruntime on flat inputs (the reference semantics)."""

    def __init__(self, model_bytes: bytes) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            model_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = []
        for inp in self.session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
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
            feed[name] = x[at : at + k].astype(dtype).reshape(shape)
            at += k
        outs = self.session.run(None, feed)
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in outs])
