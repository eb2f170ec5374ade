"""Recipe defaults are the paper's values; bad input is refused before any work; the train command."""
from __future__ import annotations

import json

import pytest
from train_helpers import make_cifar

import genotypes
from reproduce.__main__ import main
from reproduce.config import ConfigError, build
from reproduce.train import RECIPES, CIFAR10Config, ImageNetConfig, PTBConfig, WT2Config, train


def test_recipes_maps_the_four_paper_datasets_and_own_data_to_their_configs():
    assert {k: v.__name__ for k, v in RECIPES.items()} == {
        "cifar10": "CIFAR10Config", "imagenet": "ImageNetConfig", "ptb": "PTBConfig", "wt2": "WT2Config",
        "images": "ImagesConfig", "text": "TextConfig"}


def test_cifar10_defaults_are_the_original_train_py_with_auxiliary_and_cutout():
    c = CIFAR10Config()
    assert (c.C, c.layers, c.batch_size, c.learning_rate, c.momentum, c.weight_decay, c.epochs) == (
        36, 20, 96, 0.025, 0.9, 3e-4, 600)
    assert (c.auxiliary, c.auxiliary_weight, c.cutout, c.cutout_length, c.drop_path_prob, c.grad_clip) == (
        True, 0.4, True, 16, 0.2, 5.0)
    assert (c.arch, c.genotype, c.seed, c.valid_split, c.amp, c.channels_last, c.compile, c.deterministic) == (
        "DARTS_V2", "", 0, 0, "none", False, False, False)


def test_imagenet_defaults_are_the_original_train_imagenet_py():
    c = ImageNetConfig()
    assert (c.C, c.layers, c.batch_size, c.learning_rate, c.momentum, c.weight_decay, c.epochs) == (
        48, 14, 128, 0.1, 0.9, 3e-5, 250)
    assert (c.auxiliary, c.auxiliary_weight, c.label_smooth, c.gamma, c.decay_period, c.grad_clip) == (
        True, 0.4, 0.1, 0.97, 1, 5.0)


def test_ptb_and_wt2_defaults_are_the_original_rnn_train_py():
    p = PTBConfig()
    assert (p.emsize, p.nhid, p.nhidlast, p.learning_rate, p.weight_decay, p.batch_size, p.bptt, p.grad_clip, p.beta,
            p.nonmono) == (
        850, 850, 850, 20.0, 8e-7, 64, 35, 0.25, 1e-3, 5)
    assert (p.dropout, p.dropouth, p.dropoutx, p.dropouti, p.dropoute) == (0.75, 0.25, 0.75, 0.2, 0.1)
    assert (p.epochs, p.eval_batch_size, p.test_batch_size, p.seed, p.max_seq_len_delta) == (8000, 10, 1, 1267, 20)
    w = WT2Config()
    assert (w.emsize, w.nhid, w.nhidlast, w.dropouth, w.weight_decay) == (700, 700, 700, 0.15, 5e-7)
    assert (w.dropout, w.dropoutx, w.learning_rate, w.batch_size) == (0.75, 0.75, 20.0, 64)


@pytest.mark.parametrize("dataset,overrides,match", [
    ("cifar10", {"arch": "NOT_A_CELL"}, "unknown cnn genotype"),
    ("cifar10", {"genotype": "Genotype(normal=[('sep_conv_3x3', 0)"}, "malformed genotype"),
    ("cifar10", {"genotype": "Genotype(recurrent=[('tanh', 0)], concat=range(1, 2))"}, "RNNGenotype"),
    ("ptb", {"genotype": genotypes.format(genotypes.get("DARTS_V2"))}, "recurrent"),
    ("cifar10", {"epochs": -1}, "epochs must be >= 1"),
    ("cifar10", {"batch_size": 0}, "batch_size"),
    ("cifar10", {"amp": "fp16"}, "amp must be one of"),
    ("imagenet", {"C": 5}, "even"),
    ("ptb", {"emsize": 10}, "ties emsize"),
    ("ptb", {"dropout": 1.0}, "dropout must be in"),
    ("cifar10", {"device": "tpu:x"}, "device"),
])
def test_impossible_values_raise_config_error_before_any_work(dataset, overrides, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        build(RECIPES[dataset], overrides)
    with pytest.raises(ConfigError, match=match):
        train(dataset, overrides, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset"):
        train("mnist", None, tmp_path)


def test_genotype_text_overrides_arch():
    text = genotypes.format(genotypes.get("DARTS_V1"))
    from reproduce.train.recipes import genotype_of

    assert genotype_of(CIFAR10Config(genotype=text)) == genotypes.get("DARTS_V1")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"), n_train=16, n_test=8)


TINY = ["--device", "cpu", "--num-threads", "1", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "8",
        "--no-progress"]


def test_cli_trains_the_genotype_of_a_search_run_and_skips_it_when_finished(cifar, tmp_path, capsys):
    search = tmp_path / "search"
    search.mkdir()
    text = genotypes.format(genotypes.get("DARTS_V1"))
    (search / "record.json").write_text(json.dumps({"kind": "search", "genotype": text}))
    out = tmp_path / "run"
    assert main(["train", "cifar10", "--out", str(out), "--data", str(cifar), "--genotype-from", str(search),
                 "--json", *TINY]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads((out / "record.json").read_text())
    assert record["genotype"] == text and record["final"] == final
    stamp = (out / "record.json").stat().st_mtime_ns
    assert main(["train", "cifar10", "--out", str(out), "--data", str(cifar), "--genotype-from", str(search),
                 "--json", *TINY]) == 0
    assert (out / "record.json").stat().st_mtime_ns == stamp


def test_cli_turns_bad_input_into_one_line_and_exit_code_2(cifar, tmp_path, capsys):
    assert main(["train", "cifar10", "--out", str(tmp_path / "a"), "--data", str(cifar), "--arch", "NOPE", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "NOPE" in err[0]
    assert main(["train", "cifar10", "--out", str(tmp_path / "b"), "--genotype-from", str(tmp_path / "none"),
                 *TINY]) == 2
    assert "record.json" in capsys.readouterr().err
    assert main(["train", "cifar10", "--out", str(tmp_path / "c"), "--data", str(tmp_path / "nodata"), *TINY]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err


def test_genotype_and_arch_are_resolved_by_genotypes_resolve_names_or_text():
    from reproduce.experiments import canonical_genotype
    from reproduce.train.recipes import resolve_genotype

    v1 = genotypes.get("DARTS_V1")
    assert resolve_genotype("DARTS_V2", "DARTS_V1", "cnn") == v1  # a name in the genotype field
    assert resolve_genotype("darts_v1", "", "cnn") == v1
    assert canonical_genotype("DARTS_V1", "cnn") == genotypes.format(v1)
    with pytest.raises(ConfigError, match="--arch: unknown cnn genotype"):
        resolve_genotype("NOPE", "", "cnn")
