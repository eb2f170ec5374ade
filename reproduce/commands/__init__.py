"""Subcommands of ``python -m reproduce``: each module defines ``register(subparsers)``."""
