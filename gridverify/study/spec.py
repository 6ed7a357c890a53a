"""Study files (TOML): cases x models x regions x constraint sets x methods.

A study file::

    [study]
    name = "demo"                        # default: the file's stem
    methods = ["crown", "alpha-crown"]   # ibp, crown, alpha-crown, bab
    timeout = 300                        # seconds per job (optional)
    bab_timeout = 5                      # bab: seconds per undecided constraint (optional)
    samples = 1024                       # random loads per job before bounding (default)
    seed = 0
    attack = "uncertified"               # uncertified | undecided | all | none
    refine = "auto"                      # auto | undecided | all (as certify --refine)
    radius = true                        # radius of each uncertified constraint (default)
    radius_steps = 2                     # its bisection steps (as certify --radius-steps)
    threads = 1                          # torch threads per job (how, not what: not
                                         # part of the job hash, as the memory cap)

    [cases.case14]                       # one table per case; the key names it
    case = "pglib_opf_case14_ieee"       # bundled case name or MATPOWER file
    models = ["../models/case14_relu"]   # model dirs / .onnx / .pt2 / checkpoints / TorchScript,
                                         # or a bundled proxy's name (case14_relu)
    regions = ["near"]                   # optional: a subset of [regions]
    constraints = ["all"]                # optional: a subset of [constraints]
    # optional: proxy files trained with another layout (docs/proxy.md), e.g.
    # layout = { inputs = "qd,pd", outputs = "va,vm,pg,qg", load_units = "mw",
    #            gen_units = "mw", angle_units = "deg" }

    [regions.near]                       # named regions (spec-file region tables)
    box = [0.95, 1.05]

    [constraints.all]                    # named constraint sets (default: all = every family)
    families = ["all"]

    [thresholds]                         # optional, as in specification files
    default = 1e-6

Relative paths (case files, models, datasets) are relative to the study file's
folder.  :func:`load_study` checks everything that can be checked before a job
runs (it loads every case and proxy and builds every region against every case)
and raises :class:`~gridverify.errors.StudyError` naming the file, line and key.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gridverify.certify.options import ATTACKS, METHODS, REFINES, CertifyOptions
from gridverify.errors import GridverifyError, StudyError
from gridverify.fileio import toml_error_message
from gridverify.resources import bundled_model
from gridverify.spec.region import REGION_KEYS
from gridverify.sysmem import MAX_WORKERS

__all__ = [
    "CaseEntry",
    "path_digest",
    "StudyOptions",
    "StudySpec",
    "load_study",
    "parse_study",
]

_TOP = ("study", "cases", "regions", "constraints", "thresholds")
_STUDY_KEYS = ("name", "description", "methods", "timeout", "samples", "seed", "attack",
               "refine", "threads", "bab_timeout", "radius", "radius_steps")
_CASE_KEYS = ("case", "models", "regions", "constraints", "layout")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class StudyOptions:
    """Per-job options of a study (``[study]`` table): certify's options.

    The study file sets ``timeout``, ``samples``, ``seed``, ``attack``,
    ``refine``, ``radius``, ``radius_steps``, ``threads`` and ``bab_timeout`` of
    :class:`~gridverify.certify.options.CertifyOptions`; the rest keep
    certify's defaults.
    """

    certify: CertifyOptions = field(default_factory=CertifyOptions)

    @property
    def threads(self) -> int:
        """torch CPU threads of a job (certify's ``threads``; None counts as 1).  How a
        job runs, not what it computes: not part of its hash (:attr:`Job.digest`)."""
        return self.certify.threads or 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the study keys (``bab_timeout``, ``refine``, ``radius`` and
        ``radius_steps`` only when not the default, so that the options, and the job
        hashes, of studies written before them read the same)."""
        c = self.certify
        d: dict[str, Any] = {"timeout": c.timeout, "samples": c.samples, "seed": c.seed,
                             "attack": c.attack, "threads": self.threads}
        base = CertifyOptions()
        if c.bab.timeout != base.bab.timeout:
            d["bab_timeout"] = c.bab.timeout
        for key in ("refine", "radius", "radius_steps"):
            if getattr(c, key) != getattr(base, key):
                d[key] = getattr(c, key)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyOptions:
        """Inverse of :meth:`to_dict` (missing keys: certify's defaults)."""
        base = CertifyOptions()
        bab = base.bab
        if d.get("bab_timeout") is not None:
            bab = replace(bab, timeout=float(d["bab_timeout"]))
        c = CertifyOptions(timeout=d.get("timeout"), samples=int(d.get("samples", base.samples)),
                           attack=str(d.get("attack", base.attack)),
                           seed=int(d.get("seed", base.seed)), bab=bab,
                           refine=str(d.get("refine", base.refine)),
                           radius=bool(d.get("radius", base.radius)),
                           radius_steps=int(d.get("radius_steps", base.radius_steps)),
                           threads=int(d.get("threads", 1)))
        return cls(certify=c)


@dataclass(frozen=True)
class CaseEntry:
    """One ``[cases.KEY]`` table, resolved: the case, its models, regions and sets."""

    key: str
    case: str  # bundled name or absolute path
    case_name: str  # the compiled case's name
    models: tuple[tuple[str, str], ...]  # (label, absolute path)
    regions: tuple[str, ...]
    constraint_sets: tuple[str, ...]
    case_hash: str = ""  # the compiled case's content hash (after checking)
    model_digests: tuple[str, ...] = ()  # sha256 of each model's files (after checking)
    layout: dict[str, Any] | None = None  # the models' layout (ProxyLayout.to_dict)


@dataclass(frozen=True)
class StudySpec:
    """A parsed and checked study file."""

    name: str
    source: str
    description: str
    methods: tuple[str, ...]
    options: StudyOptions
    cases: tuple[CaseEntry, ...]
    # name -> (region table, {case key: Region.to_dict()}) resolved per case
    regions: tuple[tuple[str, dict[str, Any]], ...]
    region_boxes: tuple[tuple[tuple[str, str], dict[str, Any]], ...]
    constraint_sets: tuple[tuple[str, dict[str, Any]], ...]
    thresholds: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def region_box(self, case_key: str, region: str) -> dict[str, Any]:
        """The region ``region`` resolved against case ``case_key`` (Region.to_dict form)."""
        return dict(self.region_boxes)[(case_key, region)]

    def constraint_set(self, name: str) -> dict[str, Any]:
        """The selection dict (ConstraintSelection.to_dict form) of a named set."""
        return dict(self.constraint_sets)[name]


class _Lines:
    """Line numbers of the keys of a TOML text (best effort: tables and ``key =`` lines)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.\- ]+?))\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for no, raw in enumerate(text.splitlines(), start=1):
            m = self._HEADER.match(raw)
            if m:
                table = self._split(m.group(1))
                self.lines.setdefault(table, no)
                continue
            m = self._KEY.match(raw)
            if m:
                key = table + self._split(m.group(1))
                self.lines.setdefault(key, no)
                self._inline(raw[m.end():], key, no)

    def _inline(self, rest: str, prefix: tuple[str, ...], no: int) -> None:
        # keys of an inline table on the same line: {a = 1, b = 2}
        if "{" not in rest:
            return
        for k in re.findall(r"[{,]\s*([A-Za-z0-9_\-]+)\s*=", rest):
            self.lines.setdefault(prefix + (k,), no)

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([^.\s]+)", dotted)
        return tuple(a or b or c for a, b, c in parts)

    def find(self, path: tuple[str, ...]) -> int | None:
        """Line of ``path`` or of its nearest listed parent."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


class _Ctx:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = _Lines(text)

    def error(self, path: tuple[str, ...], message: str) -> StudyError:
        line = self.lines.find(path)
        where = f"{self.source}:{line}" if line is not None else self.source
        key = ".".join(path) if path else "(top level)"
        return StudyError(f"{where}: key {key}: {message}")


def _check_keys(ctx: _Ctx, table: Any, path: tuple[str, ...], known: tuple[str, ...]) -> None:
    if not isinstance(table, Mapping):
        raise ctx.error(path, "expected a table")
    for k in table:
        if k not in known:
            raise ctx.error(path + (k,), f"unknown key {k!r} (expected one of {', '.join(known)})")


def _str_list(ctx: _Ctx, value: Any, path: tuple[str, ...], allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error(path, "expected a list of strings")
    if not value and not allow_empty:
        raise ctx.error(path, "empty list")
    if len(set(value)) != len(value):
        raise ctx.error(path, "repeated entries")
    return list(value)


def _number(ctx: _Ctx, value: Any, path: tuple[str, ...], integer: bool, minimum: float,
            maximum: float = math.inf) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(path, f"expected a number, got {_toml(value)}")
    if integer and not isinstance(value, int):
        raise ctx.error(path, f"expected an integer, got {_toml(value)}")
    if not math.isfinite(value):
        raise ctx.error(path, f"expected a finite number, got {value!r}")
    if not value >= minimum:
        raise ctx.error(path, f"must be >= {minimum:g}, got {value!r}")
    if not value <= maximum:
        raise ctx.error(path, f"must be <= {maximum:g}, got {value!r}")
    return value


def _toml(value: Any) -> str:
    """A value as the study file spells it (``true``, not Python's ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _seconds(ctx: _Ctx, st: Mapping[str, Any], key: str) -> float | None:
    """``[study] key``: a finite positive number of seconds, or None when absent."""
    value = st.get(key)
    if value is None:
        return None
    value = float(_number(ctx, value, ("study", key), False, -math.inf))
    if value <= 0:
        raise ctx.error(("study", key), f"must be > 0 seconds, got {value:g}")
    return value


def _choice(ctx: _Ctx, st: Mapping[str, Any], key: str, allowed: tuple[str, ...],
            default: str) -> str:
    """``[study] key``: one of ``allowed`` (``default`` when absent)."""
    value = st.get(key, default)
    if value not in allowed:
        raise ctx.error(("study", key),
                        f"expected one of {', '.join(allowed)}, got {_toml(value)}")
    return value


def _parse_options(ctx: _Ctx, st: Mapping[str, Any]) -> StudyOptions:
    timeout = _seconds(ctx, st, "timeout")
    bab_timeout = _seconds(ctx, st, "bab_timeout")
    base = CertifyOptions()
    attack = _choice(ctx, st, "attack", ATTACKS, base.attack)
    refine = _choice(ctx, st, "refine", REFINES, base.refine)
    radius = st.get("radius", base.radius)
    if not isinstance(radius, bool):
        raise ctx.error(("study", "radius"), f"expected true or false, got {_toml(radius)}")
    from gridverify.seeds import seed_problem

    if "seed" in st and (problem := seed_problem(st["seed"])):
        raise ctx.error(("study", "seed"), problem)
    return StudyOptions.from_dict({
        "timeout": timeout,
        "samples": int(_number(ctx, st.get("samples", base.samples), ("study", "samples"),
                               True, 0)),
        "seed": int(_number(ctx, st.get("seed", base.seed), ("study", "seed"), True, 0)),
        "attack": attack,
        "refine": refine,
        "radius": radius,
        "radius_steps": int(_number(ctx, st.get("radius_steps", base.radius_steps),
                                    ("study", "radius_steps"), True, 0)),
        "threads": int(_number(ctx, st.get("threads", 1), ("study", "threads"), True, 1,
                               MAX_WORKERS)),
        "bab_timeout": bab_timeout,
    })


def _ascii_name(stem: str) -> str:
    """A study name from a file's stem: accents dropped (``étude`` -> ``etude``), other
    characters outside ASCII letters, digits and ``_ . -`` as ``-``, no ``-`` at the
    ends."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", plain).strip("-")


def _plain_name(name: Any) -> bool:
    """Whether ``name`` can name a study: a plain folder name (the default output folder
    is ``reports/NAME``): ASCII letters, digits, ``_ . -``, not starting with ``-``, and
    not ``.`` or ``..``."""
    return (isinstance(name, str) and bool(_NAME.match(name)) and name not in (".", "..")
            and not name.startswith("-"))  # reports/-x reads as an option to rm, ls


def _resolve_path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith((".m", ".json"))


def parse_study(text: str, source: str = "<study>", base: Path | None = None,
                check: bool = True) -> StudySpec:
    """Parse and check a study from its TOML text.

    ``base``: folder that relative paths are resolved against (default: the
    current folder).  ``check``: load every case and proxy and build every
    region (the default); without it only the file's structure is checked.
    Raises :class:`StudyError` naming ``source:line`` and the key.
    """
    base = Path(base) if base is not None else Path.cwd()
    ctx = _Ctx(source, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(toml_error_message(source, text, exc)) from None
    _check_keys(ctx, data, (), _TOP)
    st = data.get("study", {})
    _check_keys(ctx, st, ("study",), _STUDY_KEYS)
    default_name = _ascii_name(Path(source).stem)
    if source == "<study>" or not _plain_name(default_name):
        default_name = "study"
    name = st.get("name", default_name)
    if not _plain_name(name):
        raise ctx.error(("study", "name"), f"expected a folder name of ASCII letters, digits, "
                        f"_ . - (not starting with -, not . or ..), got {name!r}")
    description = st.get("description", "")
    if not isinstance(description, str):
        raise ctx.error(("study", "description"), "expected a string")
    methods = _str_list(ctx, st.get("methods", ["alpha-crown"]), ("study", "methods"))
    for m in methods:
        if m not in METHODS:
            raise ctx.error(("study", "methods"),
                            f"unknown method {m!r} (expected {', '.join(METHODS)})")
    options = _parse_options(ctx, st)
    if check and "bab" in methods:
        _check_bab(ctx)

    # regions and constraint sets: structure first
    regions_raw = data.get("regions")
    if regions_raw is None:
        raise ctx.error(("regions",), "missing: the study needs at least one [regions.NAME]")
    _check_tables(ctx, regions_raw, ("regions",))
    for rname, rtab in regions_raw.items():  # unknown keys: named here, on their own line
        _check_keys(ctx, rtab, ("regions", rname), REGION_KEYS)
    sets_raw = data.get("constraints", {"all": {"families": ["all"]}})
    _check_tables(ctx, sets_raw, ("constraints",))
    thresholds_raw = data.get("thresholds", {})
    if not isinstance(thresholds_raw, Mapping):
        raise ctx.error(("thresholds",), "expected a table")

    cases_raw = data.get("cases")
    if cases_raw is None:
        raise ctx.error(("cases",), "missing: the study needs at least one [cases.NAME]")
    _check_tables(ctx, cases_raw, ("cases",))
    entries = [
        _parse_case(ctx, key, tab, base, regions_raw, sets_raw)
        for key, tab in cases_raw.items()
    ]
    spec_thr = _check_thresholds(ctx, thresholds_raw)
    sets = _check_sets(ctx, sets_raw)
    boxes: list[tuple[tuple[str, str], dict[str, Any]]] = []
    if check:
        entries, boxes = _check_against_cases(ctx, entries, regions_raw, sets, base,
                                              options.certify.samples)
    return StudySpec(
        name=name, source=source, description=description, methods=tuple(methods),
        options=options, cases=tuple(entries),
        regions=tuple((k, dict(v)) for k, v in regions_raw.items()), region_boxes=tuple(boxes),
        constraint_sets=tuple(sets.items()), thresholds=spec_thr, text=text,
    )


def _check_bab(ctx: _Ctx) -> None:
    from gridverify.certify.certify import bab_available

    if not bab_available():
        raise ctx.error(("study", "methods"),
                        "method 'bab' is not available: gridverify.bab (bab_maximize) "
                        "does not import")


def _check_tables(ctx: _Ctx, value: Any, path: tuple[str, ...]) -> None:
    if not isinstance(value, Mapping) or not value:
        raise ctx.error(path, "expected at least one named table, e.g. [" + path[0] + ".NAME]")
    for k, v in value.items():
        if not _NAME.match(k):
            raise ctx.error(path + (k,), "names may use letters, digits, _ . - only")
        if not isinstance(v, Mapping):
            raise ctx.error(path + (k,), "expected a table")


def _parse_case(ctx: _Ctx, key: str, tab: Mapping[str, Any], base: Path,
                regions: Mapping[str, Any], sets: Mapping[str, Any]) -> CaseEntry:
    path = ("cases", key)
    _check_keys(ctx, tab, path, _CASE_KEYS)
    if "case" not in tab:
        raise ctx.error(path, "missing key 'case' (a bundled case name or MATPOWER file)")
    case = tab["case"]
    if not isinstance(case, str) or not case.strip():
        raise ctx.error(path + ("case",), "expected a case name or file")
    if _looks_like_path(case):
        case = str(_resolve_path(base, case).resolve())
    if "models" not in tab:
        raise ctx.error(path, "missing key 'models' (a list of proxy paths)")
    models = []
    labels: dict[str, str] = {}
    for m in _str_list(ctx, tab["models"], path + ("models",)):
        p = _resolve_path(base, m)
        if not p.exists():  # a bundled proxy's name, as certify --model takes it
            p = bundled_model(m) or p
        label = p.name.removesuffix(".onnx") or m
        if label in labels:
            raise ctx.error(path + ("models",),
                            f"two models named {label!r} ({labels[label]} and {m})")
        labels[label] = m
        models.append((label, str(p.resolve())))
    regs = _str_list(ctx, tab.get("regions", list(regions)), path + ("regions",))
    for r in regs:
        if r not in regions:
            raise ctx.error(path + ("regions",), f"no region named {r!r} in [regions]")
    css = _str_list(ctx, tab.get("constraints", list(sets)), path + ("constraints",))
    for c in css:
        if c not in sets:
            raise ctx.error(path + ("constraints",), f"no constraint set {c!r} in [constraints]")
    layout = None
    if "layout" in tab:
        from gridverify.proxy.layout import ProxyLayout

        raw = tab["layout"]
        if isinstance(raw, Mapping) and isinstance(raw.get("normalization"), str):
            raw = {**raw, "normalization": str(_resolve_path(base, raw["normalization"]))}
        try:
            lay = ProxyLayout.from_dict(dict(raw) if isinstance(raw, Mapping) else raw)
        except (GridverifyError, OSError) as exc:
            raise ctx.error(path + ("layout",), _msg(exc)) from None
        layout = None if lay.is_convention else lay.to_dict()
    return CaseEntry(key, case, "", tuple(models), tuple(regs), tuple(css), layout=layout)


def _check_thresholds(ctx: _Ctx, raw: Mapping[str, Any]) -> dict[str, Any]:
    from gridverify.spec.thresholds import thresholds_from_mapping

    try:
        spec = thresholds_from_mapping(raw)
    except GridverifyError as exc:
        fam = next((k for k in raw if f"{k!r}" in str(exc) or f".{k}" in str(exc)), None)
        raise ctx.error(("thresholds",) + ((fam,) if fam else ()), str(exc)) from None
    return spec.to_dict()


def _check_sets(ctx: _Ctx, raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from gridverify.spec.constraints import FAMILIES, selection_from_mapping

    out = {}
    for name, tab in raw.items():
        path = ("constraints", name)
        _check_keys(ctx, tab, path, ("families", "components"))
        fams = tab.get("families", ["all"])
        for f in _str_list(ctx, fams, path + ("families",)):
            if f != "all" and f not in FAMILIES:
                raise ctx.error(path + ("families",),
                                f"unknown family {f!r} (known: all, {', '.join(FAMILIES)})")
        comps = tab.get("components", {})
        if not isinstance(comps, Mapping):
            raise ctx.error(path + ("components",), "expected a table family = [ids]")
        for f in comps:
            if f not in FAMILIES:
                raise ctx.error(path + ("components", f), f"unknown family {f!r}")
        try:
            out[name] = selection_from_mapping(tab).to_dict()
        except GridverifyError as exc:
            sub = next((k for k in comps if f".{k}" in str(exc)), None)
            raise ctx.error(path + (("components", sub) if sub else ()), str(exc)) from None
    return out


def _region_key(tab: Mapping[str, Any], exc: Exception) -> str | None:
    """The key of a region table an error is about (else its first key)."""
    msg = str(exc)
    for k in tab:  # "unknown key 'k'" names it before any list of the known keys
        if f"key {k!r}" in msg:
            return k
    for k in tab:
        if f"region.{k}" in msg or repr(k) in msg:
            return k
    return next(iter(tab), None)


def _check_against_cases(
    ctx: _Ctx, entries: list[CaseEntry], regions: Mapping[str, Any],
    sets: Mapping[str, dict[str, Any]], base: Path, samples: int,
) -> tuple[list[CaseEntry], list[tuple[tuple[str, str], dict[str, Any]]]]:
    """Load every case and proxy, build every region and constraint set per case;
    ``samples`` random loads of every region must fit this machine's memory."""
    import warnings

    from gridverify.certify.memory import sample_bytes
    from gridverify.grid import load_compiled
    from gridverify.proxy.layout import ProxyLayout
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import ConstraintSelection, select_constraints
    from gridverify.spec.region import region_from_mapping
    from gridverify.sysmem import memory_shortfall

    out_entries = []
    boxes = []
    for e in entries:
        path = ("cases", e.key)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case = load_compiled(e.case)
        except (GridverifyError, OSError) as exc:
            raise ctx.error(path + ("case",), f"cannot load case {e.case!r}: {_msg(exc)}") from None
        for label, mpath in e.models:
            try:
                load_proxy(mpath, case=case, layout=ProxyLayout.from_dict(e.layout)
                           if e.layout is not None else None)
            except (GridverifyError, OSError) as exc:
                raise ctx.error(path + ("models",),
                                f"model {label!r} ({mpath}): {_msg(exc)}") from None
        for r in e.regions:
            tab = dict(regions[r])
            try:
                reg = region_from_mapping(case, tab, base=base)
            except (GridverifyError, OSError) as exc:
                k = _region_key(tab, exc)
                raise ctx.error(("regions", r) + ((k,) if k else ()),
                                f"for case {e.key} ({case.name}): {_msg(exc)}") from None
            n_in = reg.search_box().lower.size
            short = memory_shortfall(sample_bytes(samples, n_in))
            if short is not None:
                raise ctx.error(("study", "samples"), f"{samples} random loads of {n_in} "
                                f"inputs (case {e.key}, region {r}) {short}")
            boxes.append(((e.key, r), reg.to_dict()))
        for s in e.constraint_sets:
            d = sets[s]
            sel = ConstraintSelection(
                tuple(d["families"]), tuple((f, tuple(v)) for f, v in d["components"].items())
            )
            try:
                if not select_constraints(case, sel):
                    raise StudyError("the selection is empty for this case")
            except GridverifyError as exc:
                raise ctx.error(("constraints", s),
                                f"for case {e.key} ({case.name}): {_msg(exc)}") from None
        out_entries.append(CaseEntry(e.key, e.case, case.name, e.models, e.regions,
                                     e.constraint_sets, case.content_hash,
                                     tuple(path_digest(m) for _, m in e.models), e.layout))
    return out_entries, boxes


def path_digest(path: str | Path) -> str:
    """sha256 of a file, or of every file under a folder (names and contents, sorted)."""
    import hashlib

    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _msg(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or exc}"
    return str(exc)


def load_study(path: str | Path, check: bool = True) -> StudySpec:
    """Read and check a study file (see the module docstring); StudyError names line and key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise StudyError(f"study file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{p}: cannot read ({exc})") from None
    return parse_study(text, source=str(p), base=p.parent.resolve(), check=check)
