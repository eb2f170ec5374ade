"""``python -m reproduce demo [--out DIR] [--fast]``: the whole pipeline on small bundled/generated data."""
from __future__ import annotations

import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "demo", help="the whole pipeline (search, selection, seeds, report) on small data, ~10 min on a CPU",
        description="Search (first and second order), select, train several seeds from scratch, aggregate and "
                    "report, for conv cells (scikit-learn's digits as CIFAR-10 batches) and recurrent cells (a "
                    "corpus from a seeded Markov source with a known entropy rate). Needs no download. The "
                    "figures are real but NOT comparable with the paper's (profile 'demo'). Rerunning resumes.")
    parser.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    parser.add_argument("--fast", action="store_true", help="even smaller sizes: about a minute (for tests)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep checkpoint.pt of finished runs (deleted by default: they are only for resuming)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tabulate import tabulate

    from ..demo import run_demo, summary_rows

    result = run_demo(args.out, fast=args.fast, progress=not args.no_progress and sys.stderr.isatty(),
                      device=args.device, keep_checkpoints=args.keep_checkpoints)
    text = result.sources["text"]
    print(f"\ndemo finished in {result.wall_time_s:.0f} s -> {result.out}")
    print(f"Markov source: entropy rate {text['entropy_rate_nats']:.4f} nats/token, best achievable perplexity "
          f"exp(H) = {text['best_perplexity']:.3f} (the true chain scores {text['oracle_perplexity']['test']:.3f} "
          "on the test split)")
    print(tabulate(summary_rows(result), headers=["experiment", "chosen cell", "metric", "ours mean +/- std",
                                                  "reference"], tablefmt="simple"))
    print("profile 'demo': tiny data and networks, NOT comparable with the paper's figures")
    if result.report:
        print(f"report: {result.report}")
    return 0
