"""``python -m reproduce {cifar10,ptb,imagenet,wt2}``: rerun one of the paper's experiments over many seeds."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genotypes.text import MAX_TEXT

from .. import config as run_config
from .. import tasks
from ..config import ConfigError
from ..experiments import EXPERIMENTS, PROFILES, ExperimentOptions, execute, parse_seeds, plan_experiment
from ..jsonfile import read_bytes_checked
from ..random_baseline import format_table
from ..report import summary_text
from ..scheduler import RunsFailedError, parse_gpus
from ..slurm import SlurmOptions
from ..targets import default_paper_path, load_targets

# Fields the experiment sets itself (per seed, from --arch/--genotype, --data, --device).
TRAIN_SKIP = ("arch", "genotype", "seed", "data", "device", "experiment", "profile")
SEARCH_SKIP = ("seed", "order", "method", "data", "device")

EPILOG = """\
examples:
  python -m reproduce cifar10 --runs 10 --gpus 0,1,2,3            # DARTS_V2, paper recipe, 10 seeds
  python -m reproduce cifar10 --search --order 1 --gpus 0,1,2,3   # the paper's whole pipeline, first order
  python -m reproduce ptb --profile quick --device cpu              # shortened recipe (not comparable)
  python -m reproduce cifar10 --launcher slurm --partition gpu --time 720

Rerunning the same command skips finished runs and resumes interrupted ones. Any field of the
training recipe can be overridden by name (e.g. --epochs 100 --C 16); fields of the search
config take a --search- prefix (e.g. --search-epochs 25).
"""


def register(sub) -> None:
    recipes, search_configs = tasks.datasets("train"), tasks.datasets("search")
    for name, spec in EXPERIMENTS.items():
        parser = sub.add_parser(
            # argparse %-formats help strings: escape the "%" of "test error (%)".
            name, help=spec.note.replace("%", "%%"),
            description=f"{spec.note}. Trains the cell from scratch once per seed, then "
            "aggregates the records, compares them with the paper and writes the report.",
            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        what = parser.add_argument_group("what to run")
        what.add_argument("--runs", type=int, default=None,
                          help=f"number of training runs (seeds 0..runs-1; default {spec.default_runs})")
        what.add_argument("--seeds", default=None, help="explicit seeds, e.g. 0,1,2 or 0-9 (overrides --runs)")
        what.add_argument("--arch", default=None, help="named genotype to train (default DARTS_V2)")
        what.add_argument("--genotype", default=None,
                          help="genotype text as the search prints it, a named genotype, or a file holding the text")
        what.add_argument("--baseline", default=None, metavar="random:N[:SEED]",
                          help="also train N cells drawn uniformly from the DARTS space (draw seed SEED, default 0) "
                               "with the same recipe and seeds, and report the cell against them (mean +/- std, "
                               "95 %% CI, Welch's t-test, verdict)")
        # 'demo' is the profile of `python -m reproduce demo` only: it needs the demo's data and sizes.
        what.add_argument("--profile", choices=[p for p in PROFILES if p != "demo"], default="paper",
                          help="paper: the published recipes (default); quick: fewer epochs, NOT comparable with "
                               "the paper")
        if spec.search_dataset:
            what.add_argument("--search", action="store_true",
                              help="the paper's whole pipeline: searches with 4 seeds, a short training of each "
                                   f"cell ({spec.selection_epochs} epochs), the best by validation, then the runs")
            what.add_argument("--order", type=int, choices=(1, 2), default=None,
                              help="search order: 2 or 1 (default: the method's, 2 for darts, 1 for pcdarts)")
            what.add_argument("--method", choices=("darts", "pcdarts"), default="darts",
                              help="search method: darts (default) or pcdarts (PC-DARTS with its authors' recipe: "
                                   "partial channels, edge normalisation, batch 256; see docs/pcdarts.md)")
            what.add_argument("--search-seeds", default=None, help="seeds of the searches (default 0,1,2,3)")
            what.add_argument("--selection-epochs", type=int, default=None,
                              help=f"epochs of the short trainings that select the cell (default "
                                   f"{spec.selection_epochs})")
        where = parser.add_argument_group("where and how")
        where.add_argument("--out", default=None,
                           help="experiment directory (default results/<experiment>-<arch>, e.g. "
                                f"results/{name}-darts_v2)")
        where.add_argument("--data", default=None, help="dataset directory (default: the recipe's)")
        where.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default auto)")
        where.add_argument("--gpus", default=None,
                           help="comma-separated GPU ids: one run per GPU at a time, queued (e.g. 0,1,2,3)")
        where.add_argument("--launcher", choices=("local", "slurm"), default="local",
                           help="local (default) or slurm (one job per run through submitit)")
        slurm = parser.add_argument_group("with --launcher slurm")
        slurm.add_argument("--partition", default=None, help="Slurm partition")
        slurm.add_argument("--time", type=int, default=24 * 60,
                           help="Slurm time limit per job in minutes (a job that reaches it is requeued and "
                                "resumes; default 1440)")
        slurm.add_argument("--gpus-per-job", type=int, default=1,
                           help="GPUs per run (default 1; 0: CPU, Slurm only). With N > 1 a run is N processes, one "
                                "per GPU (trainings and searches alike), on Slurm or over N of the local --gpus; the "
                                "batch size stays the recipe's global batch")
        slurm.add_argument("--cpus-per-job", type=int, default=8, help="Slurm CPUs per job (default 8)")
        slurm.add_argument("--mem-gb", type=int, default=None, help="Slurm memory per job in GB")
        slurm.add_argument("--array-parallelism", type=int, default=0,
                           help="the runs go to Slurm as one job array; at most this many of its tasks run at once "
                                "(default 0: no cap of ours)")
        slurm.add_argument("--slurm-folder", default=None, help="submitit's folder (default <out>/slurm)")
        where = parser.add_argument_group("output and checks")
        where.add_argument("--dry-run", action="store_true",
                           help="check the configs and the data, print what would run (seeds, directories, GPUs) "
                                "and about how long it takes here (from a measured two-step epoch); run nothing")
        where.add_argument("--no-report", action="store_true", help="do not write the report at the end")
        where.add_argument("--format", choices=("markdown", "latex"), default="markdown", help="report format")
        where.add_argument("--no-progress", action="store_true", help="no progress bars")
        if spec.dataset in recipes:
            run_config.add_config_arguments(
                parser, recipes[spec.dataset], skip=TRAIN_SKIP,
                title=f"training recipe ({recipes[spec.dataset].__name__}; defaults: the paper's values)")
        if spec.search_dataset and spec.search_dataset in search_configs:
            cls = search_configs[spec.search_dataset]
            run_config.add_config_arguments(
                parser, cls, skip=SEARCH_SKIP, prefix="search",
                title=f"with --search: the search config ({cls.__name__}), each field as --search-<field> "
                      "(defaults: the paper's values)")
        parser.set_defaults(func=run, experiment=name)


def _read_genotype(value):
    """--genotype: a file holding genotype text, else the text or name itself (genotypes.resolve reads those)."""
    try:
        exists = bool(value) and Path(value).exists()
    except OSError:  # genotype text too long to be a path
        exists = False
    if not exists:
        return value
    # A FIFO or a device is refused before it is opened (reading one blocks or never ends); genotype text is
    # at most genotypes.text.MAX_TEXT characters, so a larger file is not one.
    data = read_bytes_checked(value, MAX_TEXT, "--genotype takes a file holding genotype text, the text or a name",
                              ConfigError)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise ConfigError(f"--genotype {value}: is not UTF-8 text (byte {e.start}); it takes a file holding "
                          "genotype text, the text or a name") from None


def _order(args) -> int:
    """--order, else the method's recipe order (PC-DARTS's authors ran first order)."""
    if getattr(args, "order", None) is not None:
        return args.order
    return 1 if getattr(args, "method", None) == "pcdarts" else 2


def options_from_args(args):
    search_overrides = run_config.overrides_from_args(args, prefix="search")
    return ExperimentOptions(
        experiment=args.experiment, runs=args.runs, seeds=parse_seeds(args.seeds), arch=args.arch,
        genotype=_read_genotype(args.genotype), out=args.out, data=args.data, device=args.device,
        gpus=parse_gpus(args.gpus), profile=args.profile, search=getattr(args, "search", False),
        order=_order(args), method=getattr(args, "method", None) or "darts",
        search_seeds=parse_seeds(getattr(args, "search_seeds", None), "--search-seeds"),
        selection_epochs=getattr(args, "selection_epochs", None),
        train_overrides=run_config.overrides_from_args(args, skip=TRAIN_SKIP), search_overrides=search_overrides,
        launcher=args.launcher,
        slurm=SlurmOptions(partition=args.partition, time_min=args.time, gpus_per_job=args.gpus_per_job,
                           cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, folder=args.slurm_folder,
                           array_parallelism=args.array_parallelism),
        progress=not args.no_progress and sys.stderr.isatty(), report=not args.no_report, report_format=args.format,
        baseline=args.baseline)


def print_result(result) -> None:
    """The end of an experiment's run on the terminal: the selection, then the numbers REPORT.md shows for it (the
    same rows, from the same records), the random baseline and where the report is."""
    exp = result.experiment
    print(f"\n{exp['experiment']} ({exp.get('arch') or 'searched/custom cell'}, profile {exp['profile']}): "
          f"{len(result.records)} runs in {result.out}")
    if result.selection:
        sel = result.selection
        print(f"selection by {sel['metric']} after {sel['selection_epochs']} epochs: " + ", ".join(
            f"search seed {c['search_seed']}: {c['valid_metric']:.4g}" for c in sel["candidates"])
            + f" -> chose search seed {sel['chosen']}")
    results_dir = result.report.parent if result.report else result.out.parent
    print(summary_text(result.measured, load_targets(default_paper_path(results_dir))))
    if result.baseline_comparison:
        print(f"\nagainst {result.baseline['n']} random cells (draw seed {result.baseline['draw_seed']}):")
        print(format_table(result.baseline_comparison))
    if result.report:
        print(f"report: {result.report}")


def check_out(out) -> None:
    """Refuse an --out that is, or lies under, something other than a directory: the real run fails on it when it
    creates the directory, so the dry run (which creates nothing) checks it here, before planning."""
    path = Path(out)
    for where in (path, *path.parents):
        if where.exists() or where.is_symlink():
            if not where.is_dir():
                what = "is" if where == path else f"lies under {where}, which is"
                raise run_config.ConfigError(f"--out {out}: {what} an existing file, not a directory; choose "
                                             "another --out")
            return


def run(args) -> int:
    if args.out:
        check_out(args.out)
    options = options_from_args(args)
    with run_config.naming_config_file(args):  # the recipes are built and checked by the plan
        plan = plan_experiment(options)
    if args.dry_run:
        print("\n".join(plan.describe()))
        return 0
    try:
        result = execute(plan)
    except RunsFailedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_result(result)
    return 0
