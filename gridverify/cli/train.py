"""``gridverify train`` (proxy training) and ``gridverify model info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gridverify.errors import DatasetError, GridverifyError, ProxyError


def register(sub: Any) -> None:
    """Install the ``train`` and ``model`` commands."""
    from gridverify.cli._args import (
        add_layout_arguments,
        add_progress_flag,
        count,
        fraction,
        hidden_sizes,
        nonneg_float,
        positive_float,
        seed,
    )
    from gridverify.proxy.options import ACTIVATIONS, TrainOptions

    d = TrainOptions()
    p = sub.add_parser(
        "train",
        help="train an AC-OPF proxy from an OPF dataset",
        description=(
            "Train an MLP proxy (loads -> AC-OPF solution) on the optimal rows of an OPF "
            "dataset and write a model directory (weights, arch.json, model.onnx, card.json).  "
            "An interrupted run resumes: the progress is saved beside --out (.OUT.train-"
            "progress.pt: every 30 s, on Ctrl-C and at the end) and the same command goes on "
            "from the last saved epoch, ending with the model an uninterrupted run gives; "
            "the file is removed once the model is written."
        ),
        epilog="example:\n  gridverify train data/case14.h5 --out models/case14_relu --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="+",
                   help="OPF dataset(s) (HDF5) made by `gridverify dataset make`; several "
                        "files of one case and region (different seeds) are concatenated")
    p.add_argument("--out", required=True, help="model directory to write (an existing "
                   "model directory is replaced whole, unless it or a file of it has no "
                   "write permission)")
    p.add_argument("--case", default=None,
                   help="case name or file (default: the dataset's case_name attribute)")
    p.add_argument("--hidden", type=hidden_sizes, default=d.hidden,
                   help="hidden layer sizes, comma separated")
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                   help="hidden activation")
    p.add_argument("--clamp-head", action=argparse.BooleanOptionalAction, default=d.clamp_head,
                   help="sigmoid head clamping pg, qg, vm into their limits")
    p.add_argument("--balance-weight", type=nonneg_float, default=d.balance_weight,
                   help="weight of the power-balance penalty (0: off)")
    p.add_argument("--stability-weight", type=nonneg_float, default=d.stability_weight,
                   help="weight of the verification-friendliness term: the mean relaxation "
                        "gap of the hidden neurons over the whole load region (interval "
                        "bounds); larger values make more neurons stable over the region, "
                        "so certification bounds are tighter, at some cost in accuracy "
                        "(0: off)")
    p.add_argument("--epochs", type=count(1), default=d.epochs, help="maximum epochs")
    p.add_argument("--batch-size", type=count(1), default=d.batch_size, help="batch size")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--weight-decay", type=nonneg_float, default=d.weight_decay,
                   help="Adam weight decay")
    p.add_argument("--seed", type=seed, default=d.seed,
                   help="seed of the split, the initialization and the batches")
    p.add_argument("--patience", type=count(1), default=d.patience,
                   help="early-stopping patience in epochs")
    p.add_argument("--val-fraction", type=fraction, default=d.val_fraction,
                   help="fraction of the optimal rows held out for early stopping, in (0, 0.5)")
    p.add_argument("--test-fraction", type=fraction, default=d.test_fraction,
                   help="fraction of the optimal rows held out for the test metrics, in (0, 0.5)")
    add_progress_flag(p)
    p.add_argument("--json", action="store_true", help="print the model card as JSON")
    p.set_defaults(func=_run_train)

    m = sub.add_parser("model", help="inspect proxies (model directories and proxy files)")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION")
    info = msub.add_parser(
        "info", help="verify a model directory and show its card, or check that a proxy "
        "file loads for a case and show its graph",
        description="A model directory (or a bundled proxy's name): verify its file hashes "
        "and show its card.  A proxy file (.onnx, .pt2 torch.export program, torch "
        "checkpoint or TorchScript archive): load it for --case as certify would, and "
        "show what it maps to what, its graph's ops, its nonlinear entries (what the "
        "bounds relax) and how many of its relus are unstable over --region (each keeps "
        "the bounds loose).",
        epilog="examples:\n  gridverify model info case14_relu\n"
        "  gridverify model info proxy.pt2 --case pglib_opf_case14_ieee --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("dir", metavar="MODEL",
                      help="model directory, bundled proxy's name (case14_relu, ...), or "
                      "proxy file (.onnx, .pt2, .pt/.pth/.ckpt/.bin)")
    info.add_argument("--case", metavar="CASE", default=None,
                      help="the case a proxy file is for (bundled name, .m or pandapower "
                      ".json; files written by gridverify know their case)")
    info.add_argument("--region", metavar="REGION", default=None,
                      help="proxy file: the load region over which its relus' stability is "
                      "counted, as certify reads it (default: the proxy's training region, "
                      "else box:0.9,1.1)")
    info.add_argument("--json", action="store_true", help="print the card (model "
                      "directory) or the proxy's summary (file) as JSON")
    add_layout_arguments(info)
    info.set_defaults(func=_run_info)
    m.set_defaults(func=lambda args: (m.print_help(), 2)[1])


def _run_train(args: argparse.Namespace) -> int:
    from gridverify.cli._args import output_lock, show_progress, stderr_line
    from gridverify.fileio import check_output_path
    from gridverify.grid import load_compiled
    from gridverify.proxy.artifacts import check_replaceable, is_model_dir, write_model_dir
    from gridverify.proxy.data import read_proxy_data_many
    from gridverify.proxy.train import TrainOptions, TrainProgress, train_proxy

    options = TrainOptions(
        hidden=args.hidden,
        activation=args.activation,
        clamp_head=args.clamp_head,
        balance_weight=args.balance_weight,
        stability_weight=args.stability_weight,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        patience=args.patience,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        progress=show_progress(args, quiet=args.json),
    )
    out_dir = check_output_path(args.out, "--out", folder=True)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_model_dir(out_dir):
        raise ProxyError(f"--out {out_dir}: exists and is not a model directory; "
                         "not overwriting")
    check_replaceable(out_dir, "--out")  # a file of it without write permission: before training
    prog = progress_path(out_dir)
    if prog.exists() and not prog.is_file():
        raise ProxyError(f"{prog}: the progress file of --out {out_dir} is not a file; "
                         "remove it")
    paths = [Path(p) for p in args.data]
    case_ref = args.case or _dataset_case_name(paths[0])
    case = load_compiled(case_ref, emit_warnings=False)
    # one run at a time trains into --out (and its progress file): a second is refused
    with output_lock(out_dir, "train", ProxyError):
        data = read_proxy_data_many(paths, case)
        resume = TrainProgress(prog, say=stderr_line)
        result = train_proxy(case, data, options, resume=resume)
        out = write_model_dir(args.out, result.module, result.card)
        resume.remove()  # the model it led to is written
    if args.json:
        print((out / "card.json").read_text(), end="")
        return 0
    from gridverify.proxy.artifacts import read_card

    _print_summary(out, read_card(out))
    return 0


def progress_path(out_dir: Path) -> Path:
    """The progress file of ``train --out OUT``: ``.OUT.train-progress.pt`` beside it (the
    model folder itself is only replaced when training ends)."""
    from gridverify._names import sidecar_stem

    suffix = ".train-progress.pt"
    return out_dir.parent / f".{sidecar_stem(out_dir.name, 1 + len(suffix))}{suffix}"


def _dataset_case_name(path: Path) -> str:
    """The dataset's case: the case file it was made from, else the bundled case of
    its name, the first with the recorded content hash."""
    from gridverify.opf.dataset import open_dataset, read_attr, reading, recorded_case

    fh = open_dataset(str(path))
    with reading(path, "the file"), fh:
        name = read_attr(fh, str(path), "case_name")
        source = read_attr(fh, str(path), "case_source")
        chash = read_attr(fh, str(path), "case_hash")
        if not name:
            raise DatasetError(f"{path}: attribute case_name: missing (pass --case)")
        found = recorded_case(fh, str(path), {"case_name": name, "case_hash": chash})
    if found is not None:
        return found[0]
    raise DatasetError(f"{path}: neither its case file {source or '(not recorded)'} nor a "
                       f"bundled case {name!r} is here with the content it was made from; "
                       "pass --case")


def _print_summary(out: Path, card: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gridverify.proxy.metrics import METRIC_UNITS

    console = Console()
    arch = card.get("arch", {})
    ds = card.get("dataset", {})
    tr = card.get("training", {})
    console.print(
        f"[bold]{escape(str(out))}[/]: case {escape(str(card['case_name']))} "
        f"({card['case_hash'][:12]}), "
        f"{arch.get('activation')} {arch.get('hidden')} clamp_head={arch.get('clamp_head')}"
    )
    console.print(
        f"data: {ds.get('n_optimal')} optimal of {ds.get('n_rows')} rows "
        f"(train {ds.get('n_train')}, val {ds.get('n_val')}, test {ds.get('n_test')}); "
        f"training {tr.get('seconds')} s wall ({tr.get('cpu_seconds')} s CPU), "
        f"{tr.get('epochs_run')} epochs "
        f"(best {tr.get('best_epoch')})"
    )
    met = card.get("metrics", {})
    test, base = met.get("test") or {}, met.get("baseline_nominal") or {}
    table = Table(title="test-set metrics")
    table.add_column("metric")
    table.add_column("unit")
    table.add_column("proxy", justify="right")
    table.add_column("nominal baseline", justify="right")
    for key, unit in METRIC_UNITS.items():
        table.add_row(key, unit, _fmt(test.get(key)), _fmt(base.get(key)))
    console.print(table)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def _run_info(args: argparse.Namespace) -> int:
    from gridverify.proxy.artifacts import read_model_dir
    from gridverify.proxy.load import PROXY_FILE_SUFFIXES, find_model

    path = find_model(args.dir)
    if not path.is_dir():
        if path.suffix.lower() in PROXY_FILE_SUFFIXES:
            return _file_info(path, args)
        raise ProxyError(f"{path}: not a model directory or a proxy file "
                         f"({', '.join(PROXY_FILE_SUFFIXES)})")
    from gridverify.cli._args import keep_outputs_from_args, layout_flags_given, layout_from_args

    if layout_from_args(args) is not None or keep_outputs_from_args(args):
        given = layout_flags_given(args)
        raise ProxyError(f"{path}: a gridverify model directory follows the convention; "
                         f"{', '.join(given)} (the layout flags) are for proxy files "
                         "trained elsewhere")
    from gridverify.proxy import load_proxy

    md = read_model_dir(path, verify=True)
    # the directory must be a proxy for --case (else for the case it names)
    proxy = load_proxy(path, case=args.case)
    if args.json:
        print(json.dumps(md.card, indent=2, sort_keys=True))
        return 0
    _print_summary(path, md.card)
    files = md.card.get("files", {})
    for name, digest in sorted(files.items()):
        size = (path / name).stat().st_size
        print(f"  {name:12s} {size:>9d} B  sha256 {digest[:16]}...  ok")
    from gridverify.certify.certify import model_hash, proxy_graph

    print(f"model hash {model_hash(proxy.module, proxy_graph(proxy))[:16]}... (as "
          "certificates record it)")
    return 0


def proxy_summary(proxy: Any, case: Any, region: Any) -> dict[str, Any]:
    """What ``model info`` shows of a loaded proxy: sizes, graph ops, nonlinear
    entries (what the bounds relax), its relus unstable over ``region`` (default:
    :func:`~gridverify.certify.certify.default_region`; CROWN, as certificates
    count them: each keeps the bounds loose) and the model hash certificates
    record."""
    from gridverify.certify.certify import default_region, model_hash, proxy_graph, relu_census
    from gridverify.ir.ops import OPS

    g = proxy_graph(proxy)
    if region is None:
        region = default_region(case, proxy)
    unstable, total = relu_census(g, region) or (0, 0)
    ops: dict[str, int] = {}
    entries: dict[str, int] = {}
    for node in g.nodes:
        if node.op in ("input", "constant"):
            continue
        ops[node.op] = ops.get(node.op, 0) + 1
        if OPS[node.op].nonlinear:
            entries[node.op] = entries.get(node.op, 0) + int(node.size)
    return {
        "source": str(proxy.source), "case": proxy.case_name, "case_hash": proxy.case_hash,
        "n_load": proxy.n_load, "n_gen": proxy.n_gen, "n_bus": proxy.n_bus,
        "input_size": proxy.input_size, "output_size": proxy.output_size,
        "outputs": {"pg": proxy.n_gen, "qg": proxy.n_gen, "vm": proxy.n_bus,
                    "va": proxy.n_bus},
        "layout": None if proxy.layout is None else proxy.layout.to_dict(),
        "graph_nodes": sum(ops.values()), "ops": dict(sorted(ops.items())),
        "nonlinear_entries": dict(sorted(entries.items())),
        "region": region.describe(),
        "relus": {"unstable": unstable, "total": total},
        "model_hash": model_hash(proxy.module, g),
    }


def _file_info(path: Path, args: argparse.Namespace) -> int:
    from gridverify.cli._args import keep_outputs_from_args, layout_from_args
    from gridverify.grid import load_compiled
    from gridverify.proxy import load_proxy
    from gridverify.spec.region import parse_region

    case = load_compiled(args.case, emit_warnings=False) if args.case is not None else None
    try:
        proxy = load_proxy(path, case=case, layout=layout_from_args(args),
                           onnx_keep_outputs=keep_outputs_from_args(args))
    except ProxyError as exc:
        if args.case is None and "case=" in str(exc) and "layout" not in str(exc):
            raise ProxyError(f"{path}: the file does not name its case; pass --case") from None
        raise
    if case is None:  # the file names its case
        try:
            case = load_compiled(proxy.case_name, emit_warnings=False)
        except (GridverifyError, OSError):
            raise ProxyError(f"{path}: its case {proxy.case_name!r} is not a bundled case; "
                             "pass --case") from None
        if proxy.case_hash != case.content_hash:
            raise ProxyError(f"{path}: its case {proxy.case_name!r} (hash {proxy.case_hash[:12]}"
                             f"...) is not the bundled case of that name (hash "
                             f"{case.content_hash[:12]}...); pass --case")
    region = parse_region(args.region, case) if args.region else None
    info = proxy_summary(proxy, case, region)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    outs = ", ".join(f"{k} {v}" for k, v in info["outputs"].items())
    print(f"{path}: a proxy for case {info['case']} ({info['case_hash'][:12]}): "
          f"L={info['n_load']} loads, G={info['n_gen']} generators, N={info['n_bus']} buses")
    print(f"maps (B, {info['input_size']}) loads (pd, qd) -> (B, {info['output_size']}) "
          f"= {outs}")
    if proxy.layout is not None:
        print(f"adapted from its own layout: {proxy.layout.describe()}")
    print(f"graph: {info['graph_nodes']} nodes: "
          + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    nl = info["nonlinear_entries"]
    print("nonlinear entries (each relaxed by the bounds): "
          + (", ".join(f"{k} {v}" for k, v in nl.items()) if nl else "none"))
    rl = info["relus"]
    if rl["total"]:
        print(f"relus unstable over {info['region']} (CROWN): {rl['unstable']} of "
              f"{rl['total']}" + ("  (each keeps the bounds loose: see docs/tightness.md)"
                                  if rl["unstable"] else ""))
    print(f"model hash {info['model_hash'][:16]}... (as certificates record it)")
    return 0
