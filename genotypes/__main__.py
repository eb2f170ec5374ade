"""Command line: ``python -m genotypes {list,show,plot}``."""
from __future__ import annotations

import argparse
import sys

import genotypes


def _resolve(spec: str, kind):
    """:func:`genotypes.resolve` with --kind; without it, a name is a cnn genotype and text says its own kind."""
    if kind:
        return genotypes.resolve(spec, kind)
    try:
        return genotypes.resolve(spec, "cnn")
    except TypeError:  # recurrent genotype text
        return genotypes.resolve(spec, "rnn")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genotypes", description="DARTS genotypes: list, print and draw cells."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the named genotypes")
    p.add_argument("--kind", choices=["cnn", "rnn"], default=None, help="only this kind (default: both)")

    p = sub.add_parser("show", help="print a genotype as the original prints it")
    p.add_argument("name", help="a named genotype (e.g. DARTS_V2) or genotype text")
    p.add_argument("--kind", choices=["cnn", "rnn"], default=None,
                   help="kind of the genotype (default: cnn for a name; text says its own kind)")

    p = sub.add_parser("plot", help="draw the cells of a genotype with graphviz")
    p.add_argument("name", help="a named genotype (e.g. DARTS_V2) or genotype text")
    p.add_argument("--kind", choices=["cnn", "rnn"], default=None,
                   help="kind of the genotype (default: cnn for a name; text says its own kind)")
    p.add_argument("--out", default=".", help="directory to write to (default: current directory)")
    p.add_argument("--format", choices=list(("pdf", "png", "svg")), default="pdf", help="file format (default: pdf)")

    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for kind in [args.kind] if args.kind else ["cnn", "rnn"]:
                for name in genotypes.names(kind):
                    print(f"{kind}\t{name}")
        elif args.command == "show":
            print(genotypes.format(_resolve(args.name, args.kind)))
        elif args.command == "plot":
            g = _resolve(args.name, args.kind)
            stem = args.name if args.name.isidentifier() else "genotype"  # a name, else text
            from pathlib import Path

            for path in genotypes.plot(g, Path(args.out) / stem, format=args.format, title=stem):
                print(path)
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
