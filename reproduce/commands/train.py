"""``python -m reproduce train {cifar10,imagenet,ptb,wt2} --out DIR [--field value ...]``."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..config import ConfigError, add_config_arguments, naming_config_file, overrides_from_args
from ..jsonfile import read_json
from ..layout import RECORD
from ..tasks import datasets, train

log = logging.getLogger(__name__)

EPILOG = """Every recipe field is an option (defaults: the paper's values). Rerunning the same command
resumes an interrupted run; a finished run is skipped. Several GPUs or machines:
  torchrun --nproc_per_node 8 -m reproduce train cifar10 --out runs/c10-s0
(batch_size is the global batch, split across the processes; the learning rate is not rescaled)."""


def genotype_from_run(path) -> str:
    """The genotype text of a search run: RUN_DIR/record.json (or that file itself), its "genotype" field."""
    p = Path(path)
    record_path = p / RECORD if p.is_dir() else p
    if not record_path.is_file():
        raise FileNotFoundError(f"--genotype-from: no record.json at {record_path}; point it at a finished search "
                                "run directory")
    record = read_json(record_path, fix="point --genotype-from at a finished search run directory")
    text = record.get("genotype")
    if not text or not isinstance(text, str):
        raise ConfigError(f"--genotype-from: {record_path} has no 'genotype' text (is it a finished search run?)")
    return text


def register(sub) -> None:
    parser = sub.add_parser("train", help="train a network from scratch with the paper's recipe",
                            description="Train an evaluation network from scratch with the paper's recipe "
                                        "(CIFAR-10, ImageNet, PTB, WikiText-2) and write a run record.")
    recipe_sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, cls in datasets("train").items():
        p = recipe_sub.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0], epilog=EPILOG,
                                  formatter_class=_Formatter)
        p.add_argument("--out", required=True, help="run directory (created; resumed when it holds a run)")
        p.add_argument("--genotype-from", metavar="RUN_DIR", default=None,
                       help="train the genotype a finished search run found (its record.json)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--json", action="store_true", help="print the record's final metrics as one JSON line")
        add_config_arguments(p, cls)
        p.set_defaults(func=_run)


class _Formatter(__import__("argparse").RawDescriptionHelpFormatter):
    pass


def _run(args) -> int:
    overrides = overrides_from_args(args)
    if args.genotype_from:
        if overrides.get("genotype"):
            raise ConfigError("give either --genotype or --genotype-from, not both")
        overrides["genotype"] = genotype_from_run(args.genotype_from)
    with naming_config_file(args):
        record = train(args.dataset, overrides, args.out, progress=not args.no_progress)  # the config is built there
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process reports
        return 0
    if args.json:
        print(json.dumps(record["final"]))
    else:
        print(f"{args.dataset} {record['status']}: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record["final"].items()))
        print(f"record: {Path(args.out) / 'record.json'}")
    return 0
