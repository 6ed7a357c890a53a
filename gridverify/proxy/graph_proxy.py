"""Proxies held as gridverify graphs: ONNX files, torch.export programs, TorchScript.

A proxy read from a self-contained file (ONNX, a ``.pt2`` program of
:func:`torch.export.export`, or a TorchScript archive of :func:`torch.jit.save`)
is imported once into the IR graph, and the torch module of the proxy evaluates
that graph: the module computes exactly what the bounds are computed on, in any
floating dtype.  The module's state is a digest of the file, so that
:func:`gridverify.certify.model_hash` tells proxies apart.  Where the file's own
runtime can run it, :meth:`GraphProxy.reference` does (``certify`` re-runs its
witnesses so).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import GraphError, ProxyError, UnsupportedOpError, one_line


class GraphProxy(nn.Module):
    """Torch evaluation of an IR graph ``(B, n_in) -> (B, n_out)``.

    The output is the concatenation of the graph outputs, each flattened to
    ``(B, -1)``.  ``digest_name``/``digest``: a buffer identifying the source.
    """

    #: the runtime :meth:`reference` runs (``None``: none)
    reference_name: str | None = None
    #: why that runtime cannot run the model (:meth:`reference` returned ``None``), in
    #: words that start with the runtime's name
    reference_problem: str | None = None
    #: what to try when the imported graph disagrees with that runtime
    instead = "save the model with torch.export (a .pt2 file) or export it to ONNX"
    #: :func:`gridverify.ir.from_torch` imports the module as its graph
    evaluates_graph = True

    def __init__(self, graph: Any, digest_name: str, digest: bytes) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer(digest_name, torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_in) -> (B, n_out)`` in ``x``'s dtype and device (differentiable)."""
        return self.graph.evaluate_flat(x, dtype=x.dtype, device=x.device)

    def reference(self, x: np.ndarray) -> np.ndarray | None:
        """The source run by its own runtime on the rows of ``x`` (``(n, n_in)``):
        ``(n, n_out)`` float64, or ``None`` when there is no such runtime."""
        return None

    def _same_file(self, path: str, digest_name: str) -> None:
        """The file at ``path`` is still the one this module was read from."""
        want = bytes(getattr(self, digest_name).tolist())
        if _file_digest(path) != want:
            raise ProxyError(f"{path}: the file changed since the proxy was loaded")


def _file_digest(path: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


def _graph_of(path: str, program: Any, input_size: int | None = None) -> Any:
    from gridverify.ir import from_exported

    try:
        return from_exported(program, input_size=input_size)
    except GraphError as exc:
        raise ProxyError(f"{path}: {exc}") from None
    except UnsupportedOpError as exc:  # name the file (the importer saw the program)
        exc.args = (f"{path}: {exc}",)
        raise


def _dict_keys(program: Any) -> list[str] | None:
    """The keys of a program's output when it is one flat dict, else ``None``."""
    spec = getattr(getattr(program, "call_spec", None), "out_spec", None)
    kind = getattr(spec, "type", None)  # dict, or torch.fx's immutable_dict (TorchScript)
    if spec is None or not (isinstance(kind, type) and issubclass(kind, dict)):
        return None
    return [str(k) for k in spec.context]


def _rows_by(fn: Any, x: np.ndarray, batch: int, dtype: torch.dtype) -> np.ndarray:
    """``fn`` on each row of ``x`` (one row repeated to a batch of ``batch``, in
    ``dtype``): ``(n, n_out)`` float64, outputs concatenated."""
    rows = []
    with torch.no_grad():
        for xi in np.asarray(x, dtype=np.float64):
            xb = torch.from_numpy(np.repeat(xi[None, :], batch, axis=0)).to(dtype)
            outs = _leaves(fn(xb))
            rows.append(torch.cat([o.reshape(batch, -1)[0] for o in outs]).double().numpy())
    return np.stack(rows)


def _leaves(out: Any) -> list[torch.Tensor]:
    """The tensors of a model's output (a tensor, or tuples, lists and dicts of them,
    in order: as torch.export flattens them into the graph's outputs)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _leaves(o)]


class ExportedModule(GraphProxy):
    """A proxy saved with :func:`torch.export.save` (a ``.pt2`` file), as a graph.

    Reading needs no Python class of the model (unlike a pickled module): the
    program's ATen graph is imported by :func:`gridverify.ir.from_exported`.
    An op that cannot be bounded raises
    :class:`~gridverify.errors.UnsupportedOpError` naming the op and the node.
    """

    reference_name = "torch.export"
    instead = "export the model to ONNX instead, or write it without in-place ops"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        digest = _file_digest(path)
        program = read_exported(path)
        super().__init__(_graph_of(path, program), "pt2_sha256", digest)
        self.path = path
        #: the keys of a program returning a dict (its outputs, in that order)
        self.output_names = _dict_keys(program)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The program run by torch, in its input's dtype, one row at a time in a
        batch of the size it was exported with (2 when dynamic)."""
        self._same_file(self.path, "pt2_sha256")
        gm = read_exported(self.path).module()
        val = next(n for n in gm.graph.nodes if n.op == "placeholder").meta["val"]
        batch = val.shape[0] if isinstance(val.shape[0], int) else 2
        return _rows_by(gm, x, batch, val.dtype)


class TorchScriptModule(GraphProxy):
    """A proxy saved with :func:`torch.jit.save` (TorchScript), as a graph.

    The archive is loaded with :func:`torch.jit.load` (TorchScript, not Python
    pickles: no Python code of the model runs), converted to a torch.export
    program by torch's TorchScript converter on a ``(2, input_size)`` example in
    the archive's floating dtype, and imported by
    :func:`gridverify.ir.from_exported`.
    """

    reference_name = "TorchScript"

    def __init__(self, path: str | os.PathLike[str], input_size: int) -> None:
        path = os.fspath(path)
        digest = _file_digest(path)
        script = _read_script(path)
        dtype = _float_dtype(script)
        example = (torch.zeros(2, int(input_size), dtype=dtype),)
        try:
            with torch.no_grad():
                script(*example)
        except Exception as exc:  # noqa: BLE001 - a user's module may raise anything
            # TorchScript's message carries the script's traceback; its last line says why
            why = one_line(exc, 200)
            raise ProxyError(f"{path}: the module does not accept inputs of size 2L = "
                             f"{input_size}: {why}") from None
        try:
            from torch._export.converter import TS2EPConverter

            with _quiet_torch_logs():
                program = TS2EPConverter(script, example).convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises many types
            why = " ".join(str(exc).split())[:200]
            raise ProxyError(
                f"{path}: torch cannot convert this TorchScript archive to a graph "
                f"({type(exc).__name__}: {why}); save the model with torch.export "
                "(torch.export.save, a .pt2 file) or export it to ONNX") from None
        super().__init__(_graph_of(path, program, int(input_size)), "torchscript_sha256",
                         digest)
        self.path, self.dtype = path, dtype
        #: the keys of an archive returning a dict (its outputs, in that order)
        self.output_names = _dict_keys(program)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The archive run by TorchScript, in its floating dtype."""
        self._same_file(self.path, "torchscript_sha256")
        return _rows_by(_read_script(self.path), x, 2, self.dtype)


class _quiet_torch_logs:
    """Within: torch's loggers and warnings print nothing (a failed conversion logs
    tracebacks before it raises, a successful one warns of its internals; the caller
    turns an exception into one line)."""

    def __enter__(self) -> None:
        import logging
        import warnings

        self._was = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        import logging

        self._warnings.__exit__(*exc)
        logging.disable(self._was)


def _read_script(path: str) -> Any:
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many unrelated types
        why = " ".join(str(exc).split())[:200]
        raise ProxyError(f"{path}: not a readable TorchScript archive: "
                         f"{type(exc).__name__}: {why}") from None


def _float_dtype(module: Any) -> torch.dtype:
    """The floating dtype of a module's first floating tensor (float32 if none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def read_exported(path: str | os.PathLike[str]) -> Any:
    """Load a ``.pt2`` file written by :func:`torch.export.save`, running no code of
    the file: an archive holding Python objects (which loading would unpickle) is
    refused, and every pickle torch reads is read weights-only (tensors and plain
    containers); anything else raises :class:`ProxyError`."""
    import warnings

    path = os.fspath(path)
    _refuse_python_objects(path)
    try:
        with warnings.catch_warnings(), _weights_only_loads():
            warnings.simplefilter("ignore")
            return torch.export.load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a bad archive
        why = " ".join(str(exc).split())[:200]
        raise ProxyError(f"{path}: not a readable torch.export program (.pt2): "
                         f"{type(exc).__name__}: {why}") from None


#: members of a torch.export archive that torch unpickles as Python objects
_PT2_OBJECT_MEMBERS = ("data/constants/custom_obj_", "data/constants/opaque_obj_")


def _refuse_python_objects(path: str) -> None:
    """A ``.pt2`` archive whose constants are Python objects (torch reads them
    with a plain unpickler, whatever ``weights_only``) is refused."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProxyError(f"{path}: not a readable torch.export program (.pt2): {exc}") from None
    for name in names:
        member = name.split("/", 1)[-1]
        if member.startswith(_PT2_OBJECT_MEMBERS):
            raise ProxyError(f"{path}: the program holds a Python object ({member}), which "
                             "loading would unpickle; gridverify reads programs of tensors only")


class _weights_only_loads:
    """Within: every ``torch.load`` reads weights only, whatever its caller asks
    (torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``; torch.export's loader falls back to
    full unpickling on some members)."""

    _FORCE, _NO = "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

    def __enter__(self) -> None:
        self._was = {k: os.environ.get(k) for k in (self._FORCE, self._NO)}
        os.environ[self._FORCE] = "1"
        os.environ.pop(self._NO, None)

    def __exit__(self, *exc: object) -> None:
        for k, v in self._was.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
