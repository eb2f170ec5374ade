"""``python -m reproduce report [RESULTS_DIR] [--format latex] [--out PATH]``: regenerate the report."""
from __future__ import annotations

from ..report import write_report


def register(sub) -> None:
    parser = sub.add_parser(
        "report", help="regenerate RESULTS_DIR/REPORT.md from the run records",
        description="Aggregate every experiment under RESULTS_DIR (any depth), compare it with the paper's "
                    "figures (paper.json) and write REPORT.md (or REPORT.tex) with figures under figures/.")
    parser.add_argument("results_dir", nargs="?", default="results", metavar="RESULTS_DIR",
                        help="directory holding the experiments (default: results)")
    parser.add_argument("--format", dest="fmt", choices=("markdown", "latex"), default="markdown",
                        help="GitHub markdown (default) or a LaTeX document")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="file to write (default: RESULTS_DIR/REPORT.md or REPORT.tex); figures go beside it")
    parser.add_argument("--paper", default=None, metavar="PATH",
                        help="paper targets (default: RESULTS_DIR/paper.json, else the project's results/paper.json)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (faster; no matplotlib/graphviz)")
    parser.set_defaults(func=run)


def run(args) -> int:
    path = write_report(args.results_dir, out=args.out, fmt=args.fmt, paper=args.paper,
                        with_figures=not args.no_figures)
    print(path)
    return 0
