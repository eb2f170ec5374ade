"""One value check for every config, counts and ranges checked before anything is built, and the files
users hand the harness (config.json, corpora) refused in one line naming the file: never a traceback."""
from __future__ import annotations

import json
import time

import pytest
from train_helpers import make_corpus, refused_in_one_line

from reproduce.__main__ import main
from reproduce.config import ConfigError, build
from reproduce.experiments.plan import MAX_RUNS, parse_seeds, resolve_seeds
from reproduce.search import SEARCH_CONFIGS
from reproduce.train import RECIPES


@pytest.mark.parametrize("dataset,field,value", [
    ("cifar10", "C", -5), ("cifar10", "learning_rate", float("nan")), ("cifar10", "learning_rate", float("inf")),
    ("cifar10", "learning_rate", -0.1),
    ("cifar10", "momentum", float("nan")), ("cifar10", "momentum", -0.9), ("cifar10", "weight_decay", -3e-4),
    ("cifar10", "weight_decay", float("inf")), ("cifar10", "auxiliary_weight", -1e9),
    ("cifar10", "auxiliary_weight", float("nan")), ("cifar10", "seed", 2 ** 64), ("cifar10", "epochs", 10 ** 400),
    ("imagenet", "momentum", float("-inf")), ("ptb", "weight_decay", -1.0), ("ptb", "alpha", float("nan")),
    ("cifar10", "learning_rate", "fast"), ("cifar10", "cutout", "yes"), ("cifar10", "grad_clip", 10 ** 400),
])
def test_impossible_training_values_are_refused_naming_the_field(dataset, field, value):
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        build(RECIPES[dataset], {field: value})


@pytest.mark.parametrize("dataset,field,value", [
    ("cifar10", "momentum", float("nan")), ("cifar10", "weight_decay", -1.0), ("cifar10", "arch_weight_decay", -1.0),
    ("cifar10", "learning_rate", float("inf")), ("cifar10", "seed", -1), ("ptb", "learning_rate", float("nan")),
    ("ptb", "weight_decay", float("inf")), ("cifar10", "unrolled_eps", float("nan")),
])
def test_impossible_search_values_are_refused_naming_the_field(dataset, field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        build(SEARCH_CONFIGS[dataset], {field: value})


@pytest.mark.parametrize("argv,needle", [
    (["--C", "-5"], "got C=-5"),
    (["--lr", "nan"], "learning_rate must be"),  # the original's name for the field
    (["--momentum", "inf"], "momentum must be"),
    (["--weight-decay", "-1"], "weight_decay must be"),
    (["--auxiliary-weight=-1e9"], "auxiliary_weight must be a finite number >= 0, got -1000000000.0"),
    (["--seed", str(2 ** 64)], "seed must be an integer in 0..2**63-1"),
])
def test_the_train_command_refuses_impossible_values_inrefused_in_one_line(capsys, tmp_path, argv, needle):
    refused_in_one_line(capsys, ["train", "cifar10", "--out", str(tmp_path / "run"), *argv], needle)
    assert not (tmp_path / "run").exists()


def test_a_negative_number_in_exponent_form_is_refused_by_the_parser(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:  # argparse reads "-1e9" as an option: a usage error, no traceback
        main(["train", "cifar10", "--out", str(tmp_path / "run"), "--auxiliary-weight", "-1e9"])
    assert e.value.code == 2 and "--auxiliary-weight" in capsys.readouterr().err


def test_counts_and_seed_ranges_are_checked_before_any_list_is_built(capsys, tmp_path):
    t0 = time.perf_counter()
    refused_in_one_line(capsys, ["cifar10", "--runs", "100000000", "--dry-run", "--out", str(tmp_path / "x")],
                        "--runs 100000000 asks for 100000000 runs", f"at most {MAX_RUNS}")
    refused_in_one_line(capsys, ["cifar10", "--seeds", "0-1000000000", "--dry-run", "--out", str(tmp_path / "x")],
                        "--seeds 0-1000000000 asks for 1000000001 runs")
    refused_in_one_line(capsys, ["cifar10", "--seeds", f"0-{10 ** 30}", "--dry-run", "--out", str(tmp_path / "x")],
                        "more than 10**15 runs")
    refused_in_one_line(capsys, ["cifar10", "--seeds", str(2 ** 64), "--dry-run", "--out", str(tmp_path / "x")],
                        "seeds must be in 0..2**63-1")
    refused_in_one_line(capsys, ["cifar10", "--search", "--search-seeds", "0-1000000000", "--dry-run", "--out",
                       str(tmp_path / "x")], "--search-seeds 0-1000000000 asks for 1000000001 runs")
    assert time.perf_counter() - t0 < 60  # generous: without the checks this allocates gigabytes first
    assert parse_seeds("0-2,5") == [0, 1, 2, 5] and resolve_seeds(MAX_RUNS, None, 1) == list(range(MAX_RUNS))


@pytest.mark.parametrize("content,match", [
    ("[1, 2]", "config.json: holds a JSON list, expected a JSON object"),
    ("garbage{", "config.json: is not valid JSON"),
    ("[" * 200_000 + "]" * 200_000, "config.json: is nested too deeply"),
])
def test_a_run_directory_whose_config_json_is_not_a_config_is_one_line_naming_the_file(capsys, tmp_path, content,
                                                                                      match):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    refused_in_one_line(capsys, ["train", "cifar10", "--out", str(run)], str(run / "config.json"),
                        match.split(": ", 1)[1])


def test_non_utf8_corpus_text_is_one_line_naming_the_file_and_line(capsys, tmp_path):
    corpus = make_corpus(tmp_path / "ptb")
    lines = (corpus / "valid.txt").read_bytes().splitlines(keepends=True)
    lines[3] = b" caf\xe9 au lait \n"  # latin-1
    (corpus / "valid.txt").write_bytes(b"".join(lines))
    argv = ["train", "ptb", "--out", str(tmp_path / "run"), "--data", str(corpus), "--device", "cpu", "--epochs", "1",
            "--emsize", "8", "--nhid", "8", "--nhidlast", "8"]
    refused_in_one_line(capsys, argv, f"{corpus / 'valid.txt'}: line 4 is not UTF-8 text",
                        "convert the corpus to UTF-8")


def test_a_record_read_for_genotype_from_that_is_a_list_isrefused_in_one_line(capsys, tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "record.json").write_text(json.dumps([1, 2]))
    refused_in_one_line(capsys, ["train", "cifar10", "--out", str(tmp_path / "run"), "--genotype-from",
                       str(tmp_path / "search")], "record.json: holds a JSON list, expected a JSON object")


@pytest.mark.parametrize("option,needle", [
    ("--time=0", "--time is the time limit per job in minutes, 1..525600 (a year); got 0"),
    ("--time=-5", "got -5"),
    ("--time=100000000", "got 100000000"),  # minutes taken for seconds, or a typo
    ("--mem-gb=-1", "--mem-gb must be >= 1"),
])
def test_slurm_limits_are_refused_in_one_line_by_the_dry_run(capsys, tmp_path, option, needle):
    refused_in_one_line(capsys, ["cifar10", "--dry-run", "--launcher", "slurm", option, "--out", str(tmp_path / "x")],
                        needle)
    assert not (tmp_path / "x").exists()
