"""reproduce.config: one field name per meaning across recipes, the original's names as aliases,
bare boolean options, and --config FILE."""
from __future__ import annotations

import argparse
import json

import pytest

from reproduce.config import ConfigError, add_config_arguments, build, canonical, diff, overrides_from_args, to_dict
from reproduce.rundir import RunDir
from reproduce.search import SEARCH_CONFIGS
from reproduce.train import RECIPES


def _parse(cls, argv, **kw):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls, **kw)
    return parser.parse_args(argv)


def test_every_recipe_and_search_config_names_lr_weight_decay_and_clip_the_same_way():
    for cls in list(RECIPES.values()) + list(SEARCH_CONFIGS.values()):
        names = set(cls.__dataclass_fields__)
        assert {"learning_rate", "weight_decay", "grad_clip"} <= names, cls.__name__
        assert not names & {"lr", "wdecay", "clip", "arch_lr", "arch_wdecay"}, cls.__name__


def test_the_originals_flag_names_are_aliases_on_the_command_line_in_overrides_and_in_saved_configs():
    args = _parse(RECIPES["ptb"], ["--lr", "10", "--wdecay", "1e-6", "--clip", "0.5"])
    cfg = build(RECIPES["ptb"], overrides_from_args(args))
    assert (cfg.learning_rate, cfg.weight_decay, cfg.grad_clip) == (10.0, 1e-6, 0.5)
    search = build(SEARCH_CONFIGS["ptb"], {"lr": 5.0, "arch_lr": 0.1, "arch_wdecay": 0.0})
    assert (search.learning_rate, search.arch_learning_rate, search.arch_weight_decay) == (5.0, 0.1, 0.0)
    # a config saved before the rename is the same config
    assert diff({"lr": 0.025, "seed": 1}, {"learning_rate": 0.025, "seed": 1}) == {}
    with pytest.raises(ConfigError, match="lr and learning_rate are the same field"):
        canonical({"learning_rate": 0.1, "lr": 0.2})


def test_a_run_directory_saved_with_the_original_names_resumes(tmp_path):
    config = to_dict(build(RECIPES["cifar10"], {}))
    old = {("lr" if k == "learning_rate" else k): v for k, v in config.items()}
    (tmp_path / "config.json").write_text(json.dumps(old))
    RunDir(tmp_path).check_config(config)  # no mismatch


def test_boolean_options_work_bare_and_negated():
    cls = RECIPES["cifar10"]
    assert overrides_from_args(_parse(cls, ["--compile", "--no-cutout"])) == {"compile": True, "cutout": False}
    assert overrides_from_args(_parse(cls, [])) == {}
    assert overrides_from_args(_parse(SEARCH_CONFIGS["cifar10"], ["--search-channels-last"], prefix="search"),
                               prefix="search") == {"channels_last": True}


def test_config_file_gives_the_fields_and_the_command_line_overrides_them(tmp_path):
    cls = RECIPES["cifar10"]
    saved = to_dict(build(cls, {"epochs": 7, "learning_rate": 0.05, "seed": 3}))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    assert to_dict(build(cls, overrides_from_args(_parse(cls, ["--config", str(path)])))) == saved  # reproduced
    rerun = build(cls, overrides_from_args(_parse(cls, ["--config", str(path), "--epochs", "9"])))
    assert (rerun.epochs, rerun.learning_rate, rerun.seed) == (9, 0.05, 3)
    (tmp_path / "hand.json").write_text(json.dumps({"lr": 0.1, "cutout": False}))  # hand-written, original names
    hand = build(cls, overrides_from_args(_parse(cls, ["--config", str(tmp_path / "hand.json")])))
    assert (hand.learning_rate, hand.cutout) == (0.1, False)
    with pytest.raises(ConfigError, match="no such file"):
        overrides_from_args(_parse(cls, ["--config", str(tmp_path / "missing.json")]))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        overrides_from_args(_parse(cls, ["--config", str(tmp_path / "bad.json")]))
