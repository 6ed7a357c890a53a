"""The proxy model directory: weights, architecture, ONNX form and model card.

Layout of ``models/NAME/``::

    arch.json     ProxyArch (format tag, dims, hidden sizes, activation, clamp head)
    weights.npz   deployed (folded) weights, float32, plain arrays (no pickle)
    model.onnx    the same network as ONNX (see onnx_export)
    card.json     case name + hash, region, dataset, metrics, training, versions,
                  and the sha256 of every other file

Reading verifies every hash: a missing or altered file is a :class:`ProxyError`.
Writing goes through a temporary directory that replaces the target at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridverify.errors import ProxyError
from gridverify.fileio import is_writable, json_loads, process_umask
from gridverify.proxy.model import ProxyArch, ProxyMLP, module_from_arrays
from gridverify.proxy.onnx_export import export_onnx

ARCH_FILE = "arch.json"
WEIGHTS_FILE = "weights.npz"
ONNX_FILE = "model.onnx"
CARD_FILE = "card.json"
CARD_FORMAT = "gridverify-proxy-card"
CARD_VERSION = 1
HASHED_FILES = (ARCH_FILE, WEIGHTS_FILE, ONNX_FILE)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic ``.npz`` (fixed timestamps, sorted keys) of plain arrays."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            if arr.dtype == object:
                raise ProxyError(f"weight {key} is not a numeric array")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` read with ``allow_pickle=False`` (object arrays -> ProxyError)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.array(z[k]) for k in z.files}
    except ValueError as exc:
        raise ProxyError(f"{path}: refuses to load: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ProxyError(f"{path}: not a valid .npz weights file: {exc}") from None


@dataclass(frozen=True)
class ModelDir:
    """A verified model directory: the deployed module, its architecture and card."""

    path: Path
    arch: ProxyArch
    module: ProxyMLP
    card: dict[str, Any]

    @property
    def case_name(self) -> str:
        """Name of the case the proxy was trained for."""
        return str(self.card["case_name"])

    @property
    def case_hash(self) -> str:
        """Content hash of that case."""
        return str(self.card["case_hash"])


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory with a ``card.json``."""
    p = Path(path)
    return p.is_dir() and (p / CARD_FILE).is_file()


def write_model_dir(
    out: str | os.PathLike[str],
    module: ProxyMLP,
    card: dict[str, Any],
) -> Path:
    """Write a model directory for ``module`` (folded, stored as float32) and ``card``.

    ``card`` must hold at least ``case_name`` and ``case_hash``; ``arch``,
    ``files``, ``format`` and ``version`` are filled in here.  Returns the path.
    """
    module = module.folded(torch.float32)  # the deployed form, float32 like the ONNX file
    for key in ("case_name", "case_hash"):
        if not card.get(key):
            raise ProxyError(f"model card needs {key}")
    out = Path(out)
    check_replaceable(out)
    if out.exists() and not out.is_dir():
        raise ProxyError(f"{out}: exists and is a file, not a model directory; not overwriting")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~process_umask())
        (tmp / ARCH_FILE).write_text(module.arch.to_json())
        (tmp / WEIGHTS_FILE).write_bytes(npz_bytes(module.weight_arrays()))
        export_onnx(module, tmp / ONNX_FILE, case_name=card["case_name"],
                    case_hash=card["case_hash"])
        full = {"format": CARD_FORMAT, "version": CARD_VERSION, **card}
        full["arch"] = module.arch.to_dict()
        full["files"] = {name: sha256_file(tmp / name) for name in HASHED_FILES}
        (tmp / CARD_FILE).write_text(json.dumps(_jsonable(full), indent=2, sort_keys=True) + "\n")
        old = None
        if out.exists():
            check_replaceable(out)
            if not is_model_dir(out) and any(out.iterdir()):
                raise ProxyError(f"{out}: exists and is not a model directory; not overwriting")
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_replaceable(out: str | os.PathLike[str], what: str = "") -> None:
    """ProxyError when an existing ``out`` (or a file of it that a model directory
    holds) has no write permission: it is not replaced (as an existing output file
    without write permission never is).  ``what`` (a flag) prefixes the message."""
    out = Path(out)
    if not out.is_dir():
        return
    for p in (out, *(out / name for name in (*HASHED_FILES, CARD_FILE))):
        if (p is out or p.is_file()) and not is_writable(p):
            where = f"{what} {p}" if what else str(p)
            raise ProxyError(f"{where}: exists and is not writable (not replaced)")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``card.json`` of a model directory (no hash checks)."""
    p = Path(path) / CARD_FILE
    if not p.is_file():
        raise ProxyError(f"{Path(path)}: not a model directory (no {CARD_FILE})")
    try:
        card = json_loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProxyError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ProxyError(f"{p}: field format: not a gridverify model card")
    if card.get("version") != CARD_VERSION:
        raise ProxyError(f"{p}: field version: unsupported card version {card.get('version')!r}")
    for key in ("case_name", "case_hash", "files"):
        if key not in card:
            raise ProxyError(f"{p}: missing field {key!r}")
    # the card is not among the hashed files: what readers take from it is checked here
    for key in ("case_name", "case_hash"):
        if not isinstance(card[key], str) or not card[key]:
            raise ProxyError(f"{p}: field {key}: expected a string, got {card[key]!r}")
    for key in ("files", "arch", "dataset", "training", "metrics", "region"):
        if key in card and not isinstance(card[key], dict):
            raise ProxyError(f"{p}: field {key}: expected an object, got {card[key]!r}")
    for split, values in card.get("metrics", {}).items():
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ProxyError(f"{p}: field metrics.{split}: expected an object")
        if split not in ("test", "baseline_nominal"):  # the numbers `model info` shows
            continue
        for name, v in list(values.items()):
            if v in ("inf", "-inf"):  # how the writer keeps an infinite metric (_jsonable)
                values[name] = v = float(v)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ProxyError(f"{p}: field metrics.{split}.{name}: expected a number or "
                                 f"null, got {v!r}")
    return card


def verify_model_dir(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file listed in the card against its sha256; returns the card."""
    path = Path(path)
    card = read_card(path)
    files = card["files"]
    if not isinstance(files, dict):
        raise ProxyError(f"{path / CARD_FILE}: field files: must be an object")
    for name in HASHED_FILES:
        if name not in files:
            raise ProxyError(f"{path / CARD_FILE}: field files: no hash for {name}")
    for name, digest in sorted(files.items()):
        if "/" in name or "\\" in name or name.startswith("."):
            raise ProxyError(f"{path / CARD_FILE}: field files: bad file name {name!r}")
        f = path / name
        if not f.is_file():
            raise ProxyError(f"{path}: file {name} is missing")
        got = sha256_file(f)
        if got != digest:
            raise ProxyError(
                f"{f}: sha256 mismatch (card {str(digest)[:12]}..., file {got[:12]}...): "
                "the file was altered"
            )
    return card


def read_model_dir(path: str | os.PathLike[str], *, verify: bool = True) -> ModelDir:
    """Read and (by default) hash-verify a model directory."""
    path = Path(path)
    card = verify_model_dir(path) if verify else read_card(path)
    arch_path = path / ARCH_FILE
    try:
        arch_json = json_loads(arch_path.read_text())
    except FileNotFoundError:
        raise ProxyError(f"{path}: file {ARCH_FILE} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProxyError(f"{arch_path}: not valid JSON: {exc}") from None
    arch = ProxyArch.from_dict(arch_json, source=str(arch_path))
    wpath = path / WEIGHTS_FILE
    if not wpath.is_file():
        raise ProxyError(f"{path}: file {WEIGHTS_FILE} is missing")
    arrays = read_npz(wpath)
    module = module_from_arrays(arch, arrays, source=str(wpath))
    return ModelDir(path=path, arch=arch, module=module, card=card)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating,)):
        x = float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return x
