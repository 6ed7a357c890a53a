"""Load a proxy from a model directory, a torch checkpoint, an ``nn.Module`` or ONNX.

Every source ends in a :class:`Proxy`: a float64 ``nn.Module`` following the
proxy convention (``docs/proxy.md``) plus the case identity, the training region
and the I/O layout.  Any mismatch (other case, wrong dimensions, altered files,
checkpoints that need unpickling code) raises :class:`ProxyError`.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from gridverify._html import HtmlView
from gridverify.errors import ProxyError
from gridverify.fileio import json_loads
from gridverify.proxy.artifacts import is_model_dir, read_model_dir
from gridverify.proxy.layout import ProxyLayout, adapt
from gridverify.proxy.model import ProxyArch, ProxyMLP, _IOSizes, module_from_arrays
from gridverify.proxy.onnx_torch import OnnxModule, onnx_metadata, probe_sizes, read_onnx

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
#: the proxy files :func:`load_proxy` reads (besides model directories)
PROXY_FILE_SUFFIXES = (".onnx", ".pt2", *_CHECKPOINT_SUFFIXES)


class InputRegion(NamedTuple):
    """Per-input box ``lower <= x <= upper`` (length ``2L``) the proxy was trained on,
    and the sampler its data came from (``{"kind": "box", "low": .., "high": ..}``, as
    the model card records it; ``None`` when unknown)."""

    lower: np.ndarray
    upper: np.ndarray
    sampler: dict[str, Any] | None = None


@dataclass(frozen=True)
class Proxy(_IOSizes, HtmlView):
    """A loaded proxy: ``module`` maps ``(B, 2L)`` loads to ``(B, 2G + 2N)`` solutions."""

    html_kind: ClassVar[str] = "proxy"

    module: nn.Module
    case_name: str
    case_hash: str
    n_load: int
    n_gen: int
    n_bus: int
    region: InputRegion | None = None
    activation: str | None = None
    hidden: tuple[int, ...] | None = None
    clamp_head: bool | None = None
    source: str = ""
    card: dict[str, Any] | None = field(default=None, repr=False)
    #: the layout of the proxy's own inputs and outputs (``None``: the convention's),
    #: which ``module`` adapts to the convention (:mod:`gridverify.proxy.layout`)
    layout: ProxyLayout | None = None

    @property
    def qd_slice(self) -> slice:
        """Input positions of reactive demand."""
        return slice(self.n_load, 2 * self.n_load)

    @property
    def pg_slice(self) -> slice:
        """Output positions of generator active power."""
        return slice(0, self.n_gen)

    @property
    def qg_slice(self) -> slice:
        """Output positions of generator reactive power."""
        return slice(self.n_gen, 2 * self.n_gen)

    @property
    def vm_slice(self) -> slice:
        """Output positions of bus voltage magnitudes."""
        g = 2 * self.n_gen
        return slice(g, g + self.n_bus)

    @property
    def va_slice(self) -> slice:
        """Output positions of bus voltage angles (radians)."""
        g = 2 * self.n_gen + self.n_bus
        return slice(g, g + self.n_bus)

    def split(self, y: Any) -> dict[str, Any]:
        """``{"pg", "qg", "vm", "va"}`` views of an output batch ``(B, 2G + 2N)``."""
        return {
            "pg": y[..., self.pg_slice],
            "qg": y[..., self.qg_slice],
            "vm": y[..., self.vm_slice],
            "va": y[..., self.va_slice],
        }


def find_model(path_or_name: str | os.PathLike[str]) -> Path:
    """The proxy ``path_or_name`` names: a model file or folder that exists, else the
    bundled proxy of that name (``case14_relu`` or ``models/case14_relu``).  Raises
    :class:`~gridverify.errors.ProxyError` naming the path and the bundled proxies."""
    from gridverify.resources import bundled_model, list_bundled_models

    path = Path(path_or_name)
    if path.exists():
        return path
    bundled = bundled_model(str(path))
    if bundled is not None:
        return bundled
    names = list_bundled_models()
    if path.name in names:  # a path to a copy of a bundled proxy that is not there
        raise ProxyError(f"{path}: no such model file or folder (a bundled proxy is named "
                         f"{path.name!r}: give that name alone)")
    raise ProxyError(f"{path}: no such model file or folder, nor a bundled proxy of that "
                     f"name (bundled: {', '.join(names)})")


def load_proxy(
    path_or_module: str | os.PathLike[str] | nn.Module,
    case: Any = None,
    *,
    onnx_keep_outputs: bool | int = False,
    arch: ProxyArch | dict[str, Any] | None = None,
    verify: bool = True,
    layout: ProxyLayout | None = None,
) -> Proxy:
    """Load a proxy following the convention.

    ``path_or_module``: a model directory (``card.json`` inside; a bundled proxy's
    name such as ``case14_relu`` when no such path exists), a torch
    checkpoint (``.pt``/``.pth``/``.ckpt``/``.bin``: a state dict plus an
    architecture, embedded as plain data under ``"arch"`` or in a JSON file next to
    it; or a TorchScript archive of :func:`torch.jit.save`), an ``.onnx`` file, a
    ``.pt2`` program of :func:`torch.export.save` (mapping ``(B, 2L)`` to
    ``(B, 2G + 2N)``, or to the heads ``pg, qg, vm, va`` in that order, of widths
    ``G, G, N, N``: heads of other widths are refused, not cut across), or an
    ``nn.Module`` in memory.
    ``case``: a compiled case, or what :func:`gridverify.grid.compile_case` takes (a
    case name or path, a pandapower network, a RawCase);
    needed for modules, checkpoints and foreign ONNX files, optional (but checked)
    for model directories.  ``onnx_keep_outputs``: keep only the first ``2G + 2N``
    output entries of an ONNX proxy with extra outputs (``True``, or the count
    ``2G + 2N`` itself).  ``arch``: the architecture
    of a checkpoint when not stored with it.  ``verify``: check model-directory
    hashes.  ``layout``: the order and units of a foreign proxy's inputs and
    outputs when they are not the convention's (loads in MW, angles in degrees,
    blocks in another order: :class:`~gridverify.proxy.layout.ProxyLayout`); the
    loaded module is adapted to the convention by exact linear maps.
    """
    compiled = _resolve_case(case)
    if layout is not None and layout.is_convention:
        layout = None
    if layout is not None and compiled is None:
        raise ProxyError("a proxy layout needs case=... (--case on the command line: its base MVA "
                         "converts MW)")
    if isinstance(path_or_module, nn.Module):
        if compiled is None:
            raise ProxyError("loading an nn.Module needs case=... (the compiled case)")
        module = copy.deepcopy(path_or_module).to(torch.float64).eval()
        a = getattr(path_or_module, "arch", None)
        return _finish(module, compiled, None, None, a if isinstance(a, ProxyArch) else None,
                       source="<module>", card=None, layout=layout)
    if not isinstance(path_or_module, (str, os.PathLike)):
        raise ProxyError(f"expected a proxy: a model directory or file path, a bundled "
                         f"proxy's name or an nn.Module, got {type(path_or_module).__name__}")
    path = find_model(path_or_module)
    if onnx_keep_outputs is not False and path.suffix.lower() != ".onnx":
        raise ProxyError(f"{path}: keeping the first outputs (--keep-outputs) is for ONNX "
                         "proxy files only")
    if path.is_dir():
        if not is_model_dir(path):
            raise ProxyError(f"{path}: not a model directory (no card.json)")
        md = read_model_dir(path, verify=verify)
        card = md.card
        region = _region_from_card(card, md.arch, str(path))
        return _finish(md.module, compiled, card["case_name"], card["case_hash"], md.arch,
                       source=str(path), card=card, region=region, layout=layout)
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, compiled, onnx_keep_outputs, layout)
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        return _load_checkpoint(path, compiled, arch, layout)
    if path.suffix.lower() == ".pt2":
        return _load_exported(path, compiled, layout)
    raise ProxyError(
        f"{path}: unknown proxy format (expected a model directory, .onnx, a torch.export "
        f"program .pt2, or a torch checkpoint {'/'.join(_CHECKPOINT_SUFFIXES)})"
    )


def _resolve_case(case: Any) -> Any:
    if case is None:
        return None
    if hasattr(case, "content_hash") and hasattr(case, "n_load"):
        return case
    from gridverify.grid import compile_case

    return compile_case(case)  # a name or path, a RawCase, a pandapower network


def _finish(
    module: nn.Module,
    compiled: Any,
    case_name: str | None,
    case_hash: str | None,
    arch: ProxyArch | None,
    *,
    source: str,
    card: dict[str, Any] | None,
    region: InputRegion | None = None,
    layout: ProxyLayout | None = None,
) -> Proxy:
    if layout is not None:  # (load_proxy made sure the case is given)
        if card is not None or case_hash is not None:
            raise ProxyError(f"{source}: a proxy written by gridverify follows the "
                             "convention; a layout is for proxies trained elsewhere")
        module = adapt(module, layout, compiled)
    if compiled is not None:
        if case_hash is not None and case_hash != compiled.content_hash:
            raise ProxyError(
                f"{source}: proxy belongs to case {case_name!r} (hash {case_hash[:12]}...), "
                f"not to case {compiled.name!r} (hash {compiled.content_hash[:12]}...)"
            )
        n_load, n_gen, n_bus = compiled.n_load, compiled.n_gen, compiled.n_bus
        if arch is not None and (arch.n_load, arch.n_gen, arch.n_bus) != (n_load, n_gen, n_bus):
            raise ProxyError(
                f"{source}: proxy dimensions L={arch.n_load}, G={arch.n_gen}, N={arch.n_bus} do "
                f"not match case {compiled.name!r} (L={n_load}, G={n_gen}, N={n_bus})"
            )
        case_name, case_hash = compiled.name, compiled.content_hash
    elif arch is not None and case_name is not None and case_hash is not None:
        n_load, n_gen, n_bus = arch.n_load, arch.n_gen, arch.n_bus
    else:
        raise ProxyError(f"{source}: the case is unknown; pass case=... (--case on the "
                         "command line)")
    _check_io(module, n_load, 2 * n_gen + 2 * n_bus, source)
    return Proxy(
        module=module,
        case_name=str(case_name),
        case_hash=str(case_hash),
        n_load=n_load,
        n_gen=n_gen,
        n_bus=n_bus,
        region=region,
        activation=arch.activation if arch else None,
        hidden=tuple(arch.hidden) if arch else None,
        clamp_head=arch.clamp_head if arch else None,
        source=source,
        card=card,
        layout=layout,
    )


def _check_io(module: nn.Module, n_load: int, n_out: int, source: str) -> None:
    x = torch.zeros(2, 2 * n_load, dtype=torch.float64)
    try:
        with torch.no_grad():
            y = module(x)
    except Exception as exc:  # a user's module may raise anything on a wrong input size
        raise ProxyError(
            f"{source}: the module does not accept inputs of size 2L = {2 * n_load}: {exc}"
        ) from None
    if not isinstance(y, torch.Tensor):
        raise ProxyError(f"{source}: the module must return one tensor, got {type(y).__name__}")
    if tuple(y.shape) != (2, n_out):
        raise ProxyError(
            f"{source}: the module maps (B, {2 * n_load}) to {tuple(y.shape[1:])}, "
            f"the case needs (B, {n_out}) = 2G + 2N"
        )
    if y.dtype != torch.float64:
        raise ProxyError(f"{source}: the module does not compute in float64 (got {y.dtype})")


def _region_from_card(card: dict[str, Any], arch: ProxyArch, source: str) -> InputRegion | None:
    reg = card.get("region")
    if not reg:
        return None
    try:
        lo = np.asarray(reg["lower"], dtype=np.float64)
        hi = np.asarray(reg["upper"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ProxyError(
            f"{source}/card.json: field region: needs numeric lower and upper"
        ) from None
    if lo.shape != (arch.input_size,) or hi.shape != (arch.input_size,) or np.any(lo > hi):
        raise ProxyError(f"{source}/card.json: field region: bad bounds for 2L = {arch.input_size}")
    lo.setflags(write=False)
    hi.setflags(write=False)
    sampler = reg.get("sampler")
    return InputRegion(lo, hi, dict(sampler) if isinstance(sampler, dict) else None)


def _load_onnx(path: Path, compiled: Any, keep_outputs: bool | int,
               layout: ProxyLayout | None = None) -> Proxy:
    m = read_onnx(path)
    meta = onnx_metadata(m)
    arch = None
    if "gridverify.arch" in meta:
        try:
            arch = ProxyArch.from_dict(json.loads(meta["gridverify.arch"]),
                                       source=f"{path} (metadata gridverify.arch)")
        except json.JSONDecodeError:
            arch = None
    name = meta.get("gridverify.case_name") or None
    chash = meta.get("gridverify.case_hash") or None
    if compiled is None and (arch is None or not name or not chash):
        raise ProxyError(f"{path}: an ONNX proxy without gridverify metadata needs case=... "
                         "(--case on the command line)")
    if compiled is not None:
        n_out = 2 * compiled.n_gen + 2 * compiled.n_bus
        n_in = 2 * compiled.n_load
    else:
        n_out, n_in = arch.output_size, arch.input_size
    if not isinstance(keep_outputs, bool):
        if int(keep_outputs) != n_out:
            raise ProxyError(
                f"{path}: onnx_keep_outputs={keep_outputs}, but the case needs 2G + 2N = {n_out}"
            )
        keep_outputs = True
    d_in, d_outs = probe_sizes(m, source=str(path))
    if d_in is not None and d_in != n_in:
        raise ProxyError(f"{path}: ONNX input has {d_in} entries, the case needs 2L = {n_in}")
    whole = None  # the graph with every output, once imported
    if len(d_outs) > 1 and None in d_outs:  # heads of symbolic widths: the import knows them
        whole = OnnxModule(m, keep=None, source=str(path)).eval()
        d_outs = _output_widths(whole)
    known = [d for d in d_outs if d is not None]
    n_heads = len(d_outs)
    if keep_outputs and len(known) == len(d_outs):  # the outputs that fill the kept entries
        ends = np.cumsum(known).tolist()
        n_heads = ends.index(n_out) + 1 if n_out in ends else 0
    heads = n_heads > 1 and len(known) == len(d_outs) and sum(known[:n_heads]) == n_out
    head_names = [o.name for o in m.graph.output][:n_heads]
    if heads:  # kept or not, named heads are read in the layout's order
        _check_head_order(path, head_names, layout=layout)
    elif not keep_outputs and (len(d_outs) != 1 or (d_outs[0] is not None
                                                    and d_outs[0] != n_out)):
        widths = ", ".join(str(d) for d in d_outs)
        if len(known) == len(d_outs) and sum(known) < n_out:
            raise ProxyError(
                f"{path}: ONNX outputs have widths [{widths}], {sum(known)} entries in all; "
                f"the case needs 2G + 2N = {n_out}: pg and qg (G each), vm and va (N each), "
                "all four (every constraint reads them)"
            )
        raise ProxyError(
            f"{path}: ONNX outputs have widths [{widths}], the case needs one output of "
            f"2G + 2N = {n_out} (--keep-outputs, onnx_keep_outputs=True in Python, keeps "
            f"the first {n_out} entries)"
        )
    # (keeping more output entries than the graph has is the importer's ProxyError)
    module = (whole if whole is not None and not keep_outputs
              else OnnxModule(m, keep=n_out if keep_outputs else None, source=str(path)).eval())
    if heads:
        n_gen, n_bus = ((compiled.n_gen, compiled.n_bus) if compiled is not None
                        else (arch.n_gen, arch.n_bus))
        widths = known[:n_heads] if keep_outputs else _output_widths(module)
        _check_head_widths(path, head_names, widths, "ONNX outputs", layout, n_gen, n_bus)
    return _finish(module, compiled, name, chash, arch, source=str(path), card=None,
                   layout=layout)


def _load_exported(path: Path, compiled: Any, layout: ProxyLayout | None = None) -> Proxy:
    """A program of :func:`torch.export.save` (see :class:`ExportedModule`)."""
    from gridverify.proxy.graph_proxy import ExportedModule

    if compiled is None:
        raise ProxyError(f"{path}: a torch.export program (.pt2) needs case=... "
                         "(--case on the command line)")
    module = ExportedModule(path).eval()
    if module.output_names is not None:  # a dict of outputs: read in its order
        _check_head_order(path, module.output_names, "the program's outputs", layout)
    _check_head_widths(path, module.output_names, _output_widths(module),
                       "the program's outputs", layout, compiled.n_gen, compiled.n_bus)
    return _finish(module, compiled, None, None, None, source=str(path), card=None,
                   layout=layout)


def _load_torchscript(path: Path, compiled: Any, layout: ProxyLayout | None = None) -> Proxy:
    """A TorchScript archive of :func:`torch.jit.save` (see :class:`TorchScriptModule`)."""
    from gridverify.proxy.graph_proxy import TorchScriptModule

    if compiled is None:
        raise ProxyError(f"{path}: a TorchScript archive needs case=... "
                         "(--case on the command line)")
    module = TorchScriptModule(path, 2 * compiled.n_load).eval()
    if module.output_names is not None:  # a dict of outputs: read in its order
        _check_head_order(path, module.output_names, "the archive's outputs", layout)
    _check_head_widths(path, module.output_names, _output_widths(module),
                       "the archive's outputs", layout, compiled.n_gen, compiled.n_bus)
    return _finish(module, compiled, None, None, None, source=str(path), card=None,
                   layout=layout)


def _check_head_order(path: Path | str, names: list[str], what: str = "ONNX outputs",
                      layout: ProxyLayout | None = None) -> None:
    """Several outputs whose widths add up to ``2G + 2N`` are read one after the
    other, as the layout's blocks (the convention's ``pg, qg, vm, va``); outputs
    named after those quantities in another order are refused (they would be read
    as the wrong ones)."""
    order = (layout or ProxyLayout()).outputs
    found = [next((h for h in order if h in n.lower()), None) for n in names]
    if len(names) == 4 and None not in found and len(set(found)) == 4 \
            and tuple(found) != order:
        raise ProxyError(f"{path}: {what} {list(names)} are read in order as "
                         f"{', '.join(order)}; export them in that order (or give the "
                         "layout's output order)")


def _output_widths(module: Any) -> list[int]:
    """The width of each output of a proxy read from a file (its graph's outputs,
    each flattened per sample, as the module concatenates them)."""
    g = module.graph
    return [int(g.nodes[o].size) for o in g.outputs]


def _check_head_widths(path: Path | str, names: list[str] | None, widths: list[int],
                       what: str, layout: ProxyLayout | None, n_gen: int, n_bus: int) -> None:
    """Several outputs (heads) whose widths add up to ``2G + 2N`` are read one per
    quantity, in the layout's order (the convention's ``pg, qg, vm, va``): their
    widths must be those quantities' sizes in that order (``G, G, N, N``), or the
    heads would be cut across (a ``va`` head of ``N`` read as ``pg`` and part of
    ``qg``...); with interleaved outputs, one head per pair of quantities (``2G,
    2N`` for ``pg,qg,vm,va``).  One output, or widths that do not add up (the size
    check's error), pass here."""
    if len(widths) <= 1 or sum(widths) != 2 * n_gen + 2 * n_bus:
        return
    lay = layout or ProxyLayout()
    order = lay.outputs
    size = {"pg": n_gen, "qg": n_gen, "vm": n_bus, "va": n_bus}
    if lay.interleaved_outputs:
        want = [2 * size[order[0]], 2 * size[order[2]]]
        per = f"one per pair of quantities, as {','.join(order[:2])} and {','.join(order[2:])}"
    else:
        want = [size[b] for b in order]
        per = f"one per quantity, as {', '.join(order)}"
    if list(widths) == want:
        return
    shown = f"{what} {list(names)}" if names else what
    raise ProxyError(
        f"{path}: {shown} are {len(widths)} heads of widths {list(widths)}, but several "
        f"outputs are read {per}, which needs widths {want}; name the outputs after the "
        "quantities, or give their order (--outputs ORDER, ProxyLayout(outputs=...))")


#: keys under which a training checkpoint keeps the model's state dict (gridverify's
#: own checkpoints use ``state_dict``; ``model_state_dict`` is the PyTorch tutorials')
_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _load_checkpoint(path: Path, compiled: Any, arch_arg: Any,
                     layout: ProxyLayout | None = None) -> Proxy:
    try:
        with warnings.catch_warnings():  # a TorchScript archive is read below
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import re

        # name the code it wants, never torch's advice to turn weights_only off
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        with open(path, "rb") as fh:  # a pickle (protocol 2+) or torch's zip archive?
            head = fh.read(2)
        if found is None and head[:1] != b"\x80" and head != b"PK":  # damaged, not code
            why = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(\n\n|$)", str(exc))
            raise ProxyError(f"{path}: not a readable torch checkpoint (UnpicklingError: "
                             f"{why.group(1) if why else 'not a pickle'})") from None
        what = f" (it refers to {found.group(1)})" if found else ""
        raise ProxyError(
            f"{path}: the checkpoint needs unpickling code, which gridverify never runs{what}; "
            "export the model to ONNX or save it with torch.export (a .pt2 file), or save a "
            "plain state dict (model.state_dict()) of an MLP plus its architecture"
        ) from None
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file makes torch raise anything
        if "TorchScript" in str(exc):
            return _load_torchscript(path, compiled, layout)
        why = " ".join(str(exc).split()) or "the file is empty or damaged"
        raise ProxyError(f"{path}: not a readable torch checkpoint "
                         f"({type(exc).__name__}: {why})") from None
    if not isinstance(obj, dict):
        raise ProxyError(
            f"{path}: checkpoint must be a dict (a state dict), got {type(obj).__name__}"
        )
    name = chash = None
    wrapper = next((k for k in _STATE_KEYS if isinstance(obj.get(k), dict)), None)
    if wrapper is not None:  # a training checkpoint: the weights under one key
        state = obj[wrapper]
        arch_d = obj.get("arch")
        name = obj.get("case_name") or None
        chash = obj.get("case_hash") or None
    else:
        state, arch_d = obj, None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None) \
            if isinstance(state, dict) else None
        raise ProxyError(
            f"{path}: the state dict must map names to tensors ({bad!r} is a "
            f"{type(state.get(bad)).__name__ if bad is not None else type(state).__name__}); "
            f"give model.state_dict() itself, or a dict holding it under one of "
            f"{', '.join(repr(k) for k in _STATE_KEYS)}")
    arch_src = f"{path} (its 'arch' entry)"  # where the architecture comes from
    if arch_arg is not None:
        arch_d, arch_src = arch_arg, "the arch= argument"
    if arch_d is None:
        for cand in (path.with_suffix(".json"), path.parent / "arch.json"):
            if cand.is_file():
                try:
                    arch_d = json_loads(cand.read_text())
                except json.JSONDecodeError as exc:
                    raise ProxyError(f"{cand}: not valid JSON: {exc}") from None
                arch_src = str(cand)
                break
    if arch_d is None:
        from gridverify.proxy.model import ARCH_EXAMPLE

        raise ProxyError(
            f"{path}: no architecture: put {path.with_suffix('.json').name} or arch.json "
            f"next to it holding {ARCH_EXAMPLE} (or embed it as checkpoint['arch'], or pass "
            "arch=... in Python); a model that is not a plain MLP loads as ONNX or a "
            "torch.export .pt2 file instead"
        )
    if isinstance(arch_d, ProxyArch):
        arch = arch_d
    else:
        arch = ProxyArch.from_dict(arch_d, source=arch_src)
    if compiled is None:
        raise ProxyError(f"{path}: loading a torch checkpoint needs case=... "
                         "(--case on the command line)")
    module = module_from_arrays(arch, state, source=str(path))
    if chash is not None and not isinstance(chash, str):
        chash = None
    return _finish(module, compiled, name, chash, arch, source=str(path), card=None,
                   layout=layout)


def save_checkpoint(
    module: ProxyMLP, path: str | os.PathLike[str], *, case_name: str = "", case_hash: str = ""
) -> Path:
    """Save a folded proxy as a plain torch checkpoint (state dict + arch as plain data)."""
    from gridverify.proxy.onnx_export import write_bytes_atomic

    if not module.is_folded:
        module = module.folded()
    import io

    buf = io.BytesIO()
    torch.save(
        {
            "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
            "arch": module.arch.to_dict(),
            "case_name": case_name,
            "case_hash": case_hash,
        },
        buf,
    )
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


def check_source(proxy: Proxy, loads: np.ndarray) -> None:
    """The proxy's module (the graph gridverify imported from a file) against the
    file's own runtime (:meth:`~gridverify.proxy.graph_proxy.GraphProxy.reference`:
    onnxruntime, torch.export, TorchScript) at the rows of ``loads`` (``(n, 2L)``,
    per unit); ProxyError naming the file at the first output that differs
    (:func:`~gridverify.ir.onnx_check.first_disagreement`): bounds of the graph
    would be those of another function.  Nothing to do for a proxy without such
    a runtime (model folders, pickled modules)."""
    from gridverify.ir.onnx_check import first_disagreement

    module = proxy.module
    who = getattr(module, "reference_name", None)
    if who is None:
        return
    x = np.asarray(loads, dtype=np.float64)
    ref = module.reference(x)
    if ref is None:
        return
    n = proxy.output_size
    ref = np.asarray(ref, dtype=np.float64)[:, :n]
    with torch.no_grad():
        y = module(torch.from_numpy(x)).double().numpy()[:, :n]
    for i in range(x.shape[0]):
        j = first_disagreement(y[i], ref[i])
        if j is not None:
            raise ProxyError(
                f"{proxy.source or 'proxy'}: the graph gridverify imported from it "
                f"disagrees with {who} (output {j}: {float(y[i, j])!r} against "
                f"{float(ref[i, j])!r} at one of the loads compared); "
                "its bounds would be those of another function: " + module.instead)
