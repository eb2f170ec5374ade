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


def test_experiment_help_groups_its_options_and_puts_the_search_fields_under_with_search():
    parser = next(sub for name, sub in _subcommands(build_parser()) if name == "cifar10")
    groups = {g.title: [a.option_strings[0] for a in g._group_actions] for g in parser._action_groups}
    search_title = next(title for title in groups if title.startswith("with --search"))
    assert len(groups[search_title]) >= 20  # every field of the search config, and only there
    assert all(o.startswith("--search-") for o in groups[search_title])
    elsewhere = [o for title, opts in groups.items() if title != search_title for o in opts]
    assert [o for o in elsewhere if o.startswith("--search-")] == ["--search-seeds"]  # a pipeline option
    assert {"--partition", "--time", "--gpus-per-job"} <= set(groups["with --launcher slurm"])
