#!/usr/bin/env python
"""A repeatable sweep of hostile inputs through the zoo and the harness (the package tests/sweep: its docstring
tells how a case runs and how its outcome is classified).

    python tests/hostile_sweep.py [--only PREFIX] [--name NAME] [--json OUT] [--fresh] [--list] [--keep DIR]

Modules: ``sweep.cases`` (Case, the registry, constants, helpers), one per area of cases (``sweep.pickles``,
``sweep.saved``, ``sweep.cli``, ``sweep.runs``, ``sweep.network``), ``sweep.running`` (fixtures, the child
process, its limits), ``sweep.outcome`` (classification) and ``sweep.main`` (this command line).
"""
import sys

from sweep.main import main

if __name__ == "__main__":
    sys.exit(main())
