"""Command line of the zoo: ``python -m zoo {list,info,download,eval,convert,push} ...`` (each with --help).

Errors a user can cause are printed as one line on stderr with exit code 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from .convert import convert
from .errors import WeightsNotFoundError
from .evaluate import evaluate, format_report
from .fileio import atomic_write_json
from .hub import push_to_hub
from .loader import download
from .registry import info, list_models
from .saved import load_pretrained


def _cmd_list(args) -> int:
    names = list_models(args.pattern, pretrained=args.pretrained)
    if args.json:
        print(json.dumps(names))
        return 0
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 0
    width = max(len(n) for n in names)
    rows = [(n, info(n)) for n in names]
    state_width = max(len(e["weights"]) for _, e in rows)
    for n, e in rows:
        metrics = ", ".join(f"{k} {v}" for k, v in e["metrics"].items())
        print(f"{n.ljust(width)}  {e['arch']:<15} {e['dataset']:<8} weights: {e['weights']:<{state_width}}  "
              f"{metrics}".rstrip())
    return 0


def _cmd_info(args) -> int:
    d = info(args.name)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    names = d["class_names"]
    lines = [
        f"{d['name']}: {d['description']}",
        f"  arch:          {d['arch']} {d['args']}",
        f"  genotype:      {d['genotype']}",
        f"  dataset:       {d['dataset']}",
        "  classes:       " + (f"{len(names)} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
                                if names else "- (a language model: its vocabulary comes with the data)"),
        f"  preprocessing: {d['preprocessing']}",
        f"  metrics:       {d['metrics'] or '-'}" + (f" ({d['metrics_source']})" if d["metrics_source"] else ""),
        f"  params:        {d['params']:,}" if d["params"] else "  params:        -",
        f"  license:       {d['license']}",
        f"  weights:       {d['weights']}",
    ]
    if not d["sources"]:
        lines[-1] += " (none published)"
    for i, src in enumerate(d["sources"], 1):
        digest = src["sha256"] or (f"starts with {src['sha256_prefix']}" if src["sha256_prefix"] else
                                   "not published: weights from it are not verified against a published digest")
        head = {True: "with the auxiliary head", False: "no auxiliary head", None: "auxiliary head: not stated"}
        lines += [f"  source {i}:      {src['kind']} {src['url']}",
                  f"                 file {src['filename'] or '-'}, {src['layout']} layout, sha256 {digest}, "
                  f"{head[src['auxiliary']]}",
                  f"                 provenance: {src['provenance']}"]
        if src["gone"]:
            lines.append(f"                 not working: {src['gone']} (tried last, for whoever still has access)")
        if src["metrics"]:
            lines.append(f"                 reported for this copy: {src['metrics']} ({src['metrics_source']})")
    print("\n".join(lines))
    return 0


def _cmd_download(args) -> int:
    if bool(args.all) == bool(args.name):
        raise ValueError("give a model name or --all")
    names = list_models(pretrained=True) if args.all else [args.name]
    failed = 0
    for name in names:
        try:
            got = download(name)
            print(f"{got['name']}: ready in {got['where']}" + (f" (from {got['source']})" if got["source"] else ""))
        except (ValueError, OSError) as e:
            if not args.all:
                raise
            failed += 1
            print(f"error: {name}: {_one_line(e)}", file=sys.stderr)
    return 2 if failed else 0


def _cmd_eval(args) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    report = evaluate(args.source, args.data, dataset=args.dataset, batch_size=args.batch_size, device=args.device,
                      amp=args.amp, progress=False if args.no_progress else None, workers=args.workers,
                      download=not args.no_download, checkpoint=args.checkpoint)
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report)
    return 0


def _cmd_convert(args) -> int:
    out = Path(args.out)
    if (out / "config.json").exists() and not args.force:
        raise FileExistsError(f"{out} already holds a saved model; pass --force to replace it")
    kw = {}
    if args.genotype:
        kw["genotype"] = args.genotype
    path = convert(args.file, args.kind, out, name=args.name, layout=args.layout, **kw)

    model = load_pretrained(path)
    cfg = model.zoo_config
    print(f"wrote {path} ({cfg['arch']}, {cfg['params']:,} parameters, name {cfg['name'] or '-'}); "
          f"load it with zoo.load({str(path)!r}) or publish it with `python -m zoo push {path} ORG/REPO`")
    return 0


def _cmd_push(args) -> int:
    url = push_to_hub(args.dir, args.repo_id, token=args.token, private=args.private, revision=args.revision,
                      commit_message=args.message)
    print(f"pushed {args.dir} to {args.repo_id}: {url}; load it with zoo.load('hf-hub:{args.repo_id}')")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zoo", description="DARTS model zoo: named pretrained models, "
                                "importers of the original checkpoints, evaluation.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = p.add_subparsers(dest="command", metavar="{list,info,download,eval,convert,push}")
    sub.required = True

    s = sub.add_parser("list", help="list the registered models", description="List registered models.")
    s.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'darts-*' (default: all)")
    s.add_argument("--pretrained", action="store_true", help="only models with released weights")
    s.add_argument("--json", action="store_true", help="print the names as JSON")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="everything the registry knows about a model",
                       description="Show a registry entry: architecture, genotype, data, metrics, weight sources.")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="print the entry as JSON")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("download", help="fetch and convert published weights ahead of time",
                       description="Fetch the weights of a model from its sources (checksums checked), convert, keep "
                                   "them in the zoo cache ($DARTS_ZOO_HOME, default ~/.cache/darts-zoo), e.g. before "
                                   "running on compute nodes without internet.")
    s.add_argument("name", nargs="?", help="a registry name with weights (see `python -m zoo list --pretrained`)")
    s.add_argument("--all", action="store_true", help="every model with published weights")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("eval", help="evaluate a model on its dataset or on your image folder",
                       description="Evaluate a registry name, saved-model directory, hf-hub:ORG/REPO[@REV] or original "
                                   "checkpoint file as the original test scripts did (CIFAR-10 test set, ImageNet "
                                   "val/, PTB test.txt), or on an image folder of yours (DIR/<class>/<image>) with the "
                                   "model's own preprocessing: top-1, top-5 and the error per class.")
    s.add_argument("source", help="registry name, directory, hf-hub:ORG/REPO[@REV] or original file")
    s.add_argument("--data", required=True, help="dataset directory (CIFAR-10 root, ImageNet root with val/, PTB "
                                                  "directory with train/valid/test.txt) or an image folder "
                                                  "DIR/<class>/<image>")
    s.add_argument("--checkpoint", help="an original checkpoint file to use for the named model")
    s.add_argument("--dataset", choices=("cifar10", "imagenet", "ptb", "folder"),
                   help="override the model's dataset (default: folder when --data holds class folders of images)")
    s.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    s.add_argument("--batch-size", type=int, help="default: 96 cifar10, 128 imagenet, 1 ptb (as the original), "
                                                   "64 folder")
    s.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast dtype (default: none)")
    s.add_argument("--workers", type=int, default=4, help="data loading workers for image folders (default: 4)")
    s.add_argument("--no-download", action="store_true", help="do not download CIFAR-10 when missing")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser("convert", help="import an original DARTS checkpoint or a public copy of one",
                       description="Read a checkpoint (the original cifar10_model.pt, imagenet_model.pt, ptb_model.pt "
                                   "of PyTorch 0.3.1; NNI's darts-v2-*.pth; darmo's dartv2.pt / pdarts.pt) without "
                                   "running code from it and write a saved-model directory (config.json, "
                                   "model.safetensors, README.md).")
    s.add_argument("kind", choices=("cifar10", "imagenet", "ptb"))
    s.add_argument("file")
    s.add_argument("--out", required=True, help="directory to write")
    s.add_argument("--genotype", help="genotype name or text for state-dict files (default: DARTS_V2)")
    s.add_argument("--name", help="registry name to tag the directory with (default: the released entry when the "
                                  "architecture matches)")
    s.add_argument("--layout", choices=("auto", "original", "nni"), default="auto",
                   help="how the file's tensors are keyed: the original code's or NNI's (default: told by the keys)")
    s.add_argument("--force", action="store_true", help="replace an existing saved model in --out")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("push", help="publish a saved-model directory on the Hugging Face Hub",
                       description="Upload config.json, model.safetensors and README.md to a hub repository "
                                   "(created if needed). Uses HF_TOKEN or your saved login unless --token is given.")
    s.add_argument("dir")
    s.add_argument("repo_id", help="ORG/NAME")
    s.add_argument("--token")
    s.add_argument("--private", action="store_true")
    s.add_argument("--revision", help="branch to commit to (default: main)")
    s.add_argument("--message", default="Upload DARTS model (darts-zoo)", help="commit message")
    s.set_defaults(func=_cmd_push)
    return p


def _one_line(e: BaseException) -> str:
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(part.strip() for part in msg.splitlines() if part.strip()) or type(e).__name__


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except WeightsNotFoundError as e:  # one message, a line for each source tried and for each way forward
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError) as e:  # FileNotFoundError, our errors (ValueError subclasses) ...
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
