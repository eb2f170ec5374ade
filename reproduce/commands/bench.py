"""``python -m reproduce bench {search,train,ptb,...}``: timed steps on random data, one JSON line last."""
from __future__ import annotations

import importlib
import pkgutil

from .. import benchmarks


def register(sub) -> None:
    parser = sub.add_parser("bench", help="benchmarks of search and training steps",
                            description="Time steps of the search or of training on random data. "
                                        "Prints one JSON line last: sec_per_step, peak_memory_mb, ...")
    bench_sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(bench_sub)
