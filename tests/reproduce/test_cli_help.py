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


# Flags of other programs that the harness's text names (git, torchrun, srun, its internal worker), and
# placeholders of its own docstrings ("--field-name", "--search-<field>").
OTHER_PROGRAMS = {"--porcelain", "--untracked-files", "--nproc", "--nproc-per-node", "--standalone", "--nnodes",
                  "--rdzv-endpoint", "--gpus-per-node",
                  "--kill-on-bad-exit", "--job", "--field", "--field-name", "--name", "--no-name", "--search-"}


def test_every_flag_a_message_names_is_one_the_parser_accepts():
    """"use --auxiliary false" named a form the parser rejects (the flag is --no-auxiliary): every --flag written
    in the harness's code must be an option of its command line, with a valid value where one is written."""
    import re
    import tokenize
    from pathlib import Path

    import reproduce

    parsers = [build_parser()] + [sub for _, sub in _subcommands(build_parser())]
    options = {o for sub in parsers for a in sub._actions for o in a.option_strings}
    booleans = {o for sub in parsers for a in sub._actions for o in a.option_strings
                if isinstance(a, argparse.BooleanOptionalAction) or a.nargs == 0}
    sources = {path: path.read_text() for path in Path(reproduce.__file__).parent.rglob("*.py")}
    for text in sources.values():  # the options of standalone scripts' own parsers (e.g. the benchmarks')
        for call in re.findall(r"add_argument\(([^)]*)\)", text):
            options.update(re.findall(r"[\"'](--[a-z0-9-]+)[\"']", call))
    unknown, valued = [], []
    for path in sources:
        with open(path, "rb") as f:  # string literals only: comments may name the original code's flags
            text = "\n".join(t.string for t in tokenize.tokenize(f.readline) if t.type == tokenize.STRING)
        for m in re.finditer(r"(--[a-z][a-z0-9-]*)([ =](?:true|false|yes|no)\b)?", text):
            if m.group(1) not in options and m.group(1) not in OTHER_PROGRAMS:
                unknown.append(f"{path.name}: {m.group(1)}")
            if m.group(2) and m.group(1) in booleans:
                valued.append(f"{path.name}: {m.group(0)}")
    assert not unknown and not valued, (unknown, valued)
