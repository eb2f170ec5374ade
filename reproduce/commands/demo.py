"""``python -m reproduce demo [--out DIR] [--jobs N] [--threads T] [--fast]``: the whole pipeline on small
generated data."""
from __future__ import annotations

import sys

from tabulate import tabulate

from ..demo import run_demo, search_rows, summary_rows
from ..random_baseline import format_table


def register(sub) -> None:
    parser = sub.add_parser(
        "demo", help="the whole pipeline (search, selection, seeds, random baseline, report) on small data, "
                     "within 8 min on 2 CPU cores",
        description="Search (first and second order), select, train several seeds from scratch beside cells drawn at "
                    "random from the same space, aggregate and report, for conv cells (scikit-learn's digits as "
                    "CIFAR-10 batches) and recurrent cells (a corpus from a seeded Markov source with a known entropy "
                    "rate). Needs no download. The figures are real but NOT comparable with the paper's (profile "
                    "'demo'). Deterministic: a rerun on the same machine gives the same numbers, whatever --jobs. "
                    "Rerunning into the same directory resumes.")
    parser.add_argument("--out", default="runs/demo",
                        help="output directory (default runs/demo; rerunning into it resumes. To refresh the committed "
                             "copy: rm -rf results/demo first, then --out results/demo)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs side by side, each in its own process (default: the cores this process may use "
                             "with --device cpu, else 1; 1: one after the other in this process); the numbers do not "
                             "depend on it")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of each run (default 1: the demo's runs are too small for a second "
                             "thread to help; another value changes the last digits)")
    parser.add_argument("--fast", action="store_true", help="even smaller sizes (for tests); the searches do not "
                                                            "learn much")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep checkpoint.pt of finished runs (deleted by default: they are only for resuming)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    for name in ("jobs", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"error: --{name} must be >= 1, got {value}", file=sys.stderr)
            return 2
    result = run_demo(args.out, fast=args.fast, progress=not args.no_progress and sys.stderr.isatty(),
                      device=args.device, keep_checkpoints=args.keep_checkpoints, jobs=args.jobs, threads=args.threads)
    text = result.sources["text"]
    print(f"\ndemo finished in {result.wall_time_s:.0f} s ({result.jobs} runs at a time, {result.threads} torch "
          f"threads each) -> {result.out}")
    print(f"Markov source: entropy rate {text['entropy_rate_nats']:.4f} nats/token, reference bound (best achievable "
          f"perplexity) exp(H) = {text['best_perplexity']:.3f} (the true chain scores "
          f"{text['oracle_perplexity']['test']:.3f} on the test split)")
    print("\nsupernets at the end of their search:")
    print(tabulate(search_rows(result), headers=["experiment", "search seed", "validation", "threshold"],
                   tablefmt="simple", disable_numparse=True))
    print()
    print(tabulate(summary_rows(result), headers=["experiment", "chosen cell", "metric", "ours mean +/- std",
                                                  "reference"], tablefmt="simple"))
    for name, res in result.results.items():
        if res.baseline_comparison:
            print(f"\n{name}: searched cell against {res.baseline['n']} random cells (draw seed "
                  f"{res.baseline['draw_seed']})")
            print(format_table(res.baseline_comparison))
    print("\nprofile 'demo': tiny data and networks, NOT comparable with the paper's figures")
    if result.report:
        print(f"report: {result.report}")
    return 0
