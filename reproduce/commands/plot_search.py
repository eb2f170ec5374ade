"""``python -m reproduce plot-search RUN_DIR``: pictures of a search run."""
from __future__ import annotations

from ..search.plots import plot_run


def register(sub) -> None:
    p = sub.add_parser(
        "plot-search", help="plot a search run: weights per edge, skips per epoch, cells, GIFs",
        description="Draw a search run directory: the softmax weight of every op on every edge over epochs, "
                    "the number of skip connections per epoch, the learning curves, the cell of every epoch "
                    "(graphviz) and animated GIFs of the normal/reduction (or recurrent) cell over time.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `python -m reproduce search`")
    p.add_argument("--out", default=None, help="where to write (default: RUN_DIR/plots)")
    p.add_argument("--format", default="png", choices=["png", "pdf", "svg"],
                   help="format of the matplotlib figures (cells are PNG for the GIFs; default: png)")
    p.add_argument("--no-cells", action="store_true", help="skip the graphviz cells and GIFs")
    p.set_defaults(func=_run)


def _run(args) -> int:
    paths = plot_run(args.run_dir, args.out, fmt=args.format, cells=not args.no_cells)
    print(f"wrote {len(paths)} files to {paths[0].parent if paths else args.out}")
    return 0
