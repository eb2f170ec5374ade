"""Benchmarks for ``python -m reproduce bench``: each module defines ``register(bench_subparsers)``."""
