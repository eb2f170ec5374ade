"""Every command of ``python -m reproduce`` explains itself: --help works at every level."""
import argparse

import pytest

from reproduce.__main__ import build_parser


def _subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subcommands(sub):
                    yield f"{name} {inner}", subsub


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("search", "train", "bench", "cifar10", "ptb", "imagenet", "wt2", "report", "demo", "plot-search"):
        assert command in out


def test_every_subcommand_help_renders(capsys):
    names = []
    for name, sub in _subcommands(build_parser()):
        sub.format_help()  # raises on a bad help string (e.g. an unescaped %)
        names.append(name)
    assert {"bench search", "bench train", "bench ptb"} <= set(names)
