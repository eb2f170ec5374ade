"""Searches end to end on tiny generated data: run directory, record, resume, CLI, plots, augmentation."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image
from search_helpers import cifar_config, one_thread, ptb_config, tiny_cifar, tiny_corpus

import genotypes
from reproduce.__main__ import main
from reproduce.search import SEARCH_CONFIGS, search
from reproduce.search.data import CifarHalves
from reproduce.search.plots import plot_run
from zoo.fileio import read_jsonl

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return tiny_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return tiny_corpus(tmp_path_factory.mktemp("penn"))


@pytest.fixture(scope="module")
def cifar_run(cifar_root, tmp_path_factory):
    with one_thread():
        out = tmp_path_factory.mktemp("run") / "c10"
        return out, search("cifar10", cifar_config(cifar_root, order=2), out, progress=False)


def test_configs_default_to_the_papers_values():
    c = SEARCH_CONFIGS["cifar10"]()
    assert (c.epochs, c.batch_size, c.learning_rate, c.learning_rate_min, c.momentum, c.weight_decay) == (
        50, 64, 0.025, 0.001, 0.9, 3e-4)
    assert (c.grad_clip, c.arch_learning_rate, c.arch_weight_decay, c.arch_beta1, c.arch_beta2) == (
        5.0, 3e-4, 1e-3, 0.5, 0.999)
    assert (c.C, c.layers, c.steps, c.multiplier, c.stem_multiplier, c.train_portion) == (16, 8, 4, 4, 3, 0.5)
    p = SEARCH_CONFIGS["ptb"]()
    assert (p.emsize, p.nhid, p.batch_size, p.bptt, p.learning_rate, p.weight_decay, p.grad_clip, p.epochs) == (
        300, 300, 256, 35, 20.0, 5e-7, 0.25, 50)
    assert (p.dropout, p.dropouth, p.dropoutx, p.dropouti, p.dropoute, p.beta) == (0.75, 0.25, 0.75, 0.2, 0.0, 1e-3)
    assert (p.arch_learning_rate, p.arch_weight_decay) == (3e-3, 1e-3)
    for cls in SEARCH_CONFIGS.values():
        for field in ("seed", "order", "epochs", "data", "device", "deterministic"):
            assert hasattr(cls(), field)


def test_cifar_search_writes_the_run_directory_and_record(cifar_run):
    out, record = cifar_run
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "record.json", "genotypes.jsonl", "alphas.jsonl"):
        assert (out / name).is_file(), name
    assert record["kind"] == "search" and record["dataset"] == "cifar10" and record["order"] == 2
    assert record["status"] == "finished"
    assert set(record["final"]) == {"train_loss", "train_acc", "valid_loss", "valid_acc"}
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert metrics[0]["lr"] == pytest.approx(0.025) and metrics[1]["lr"] < 0.025  # cosine schedule
    geno = read_jsonl(out / "genotypes.jsonl")
    alphas = read_jsonl(out / "alphas.jsonl")
    assert [g["epoch"] for g in geno] == [a["epoch"] for a in alphas] == [-1, 0, 1]
    assert geno[-1]["genotype"] == record["genotype"] == metrics[-1]["genotype"]
    # the logits moved, and the genotype is genotypes.derive of the final logits
    assert alphas[0]["logits"] != alphas[-1]["logits"]
    final = alphas[-1]["logits"]
    derived = genotypes.derive.cnn(torch.tensor(final["alphas_normal"]), torch.tensor(final["alphas_reduce"]))
    assert genotypes.format(derived) == record["genotype"]
    assert record["alphas"] == final
    softmax = torch.tensor(alphas[-1]["softmax"]["alphas_normal"])
    torch.testing.assert_close(softmax.sum(-1), torch.ones(14))
    saved = json.loads((out / "config.json").read_text())
    assert saved == dataclasses.asdict(cifar_config(saved["data"], order=2))  # exactly the resolved config


def test_finished_search_is_returned_without_running_again(cifar_run, cifar_root):
    out, record = cifar_run

    def fail(epoch, step):
        raise AssertionError("a finished run must not train again")

    again = search("cifar10", cifar_config(cifar_root, order=2), out, progress=False, callback=fail)
    assert again == record


class _Kill(Exception):
    pass


def _kill_at(epoch_to_kill, step_to_kill):
    def callback(epoch, step):
        if (epoch, step) == (epoch_to_kill, step_to_kill):
            raise _Kill()
    return callback


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2])
def test_cifar_resume_after_a_kill_mid_epoch_ends_like_an_uninterrupted_run(cifar_root, tmp_path, order):
    config = cifar_config(cifar_root, order=order, train_examples=24, epochs=2)  # 2 steps per epoch
    whole = search("cifar10", config, tmp_path / "whole", progress=False)
    with pytest.raises(_Kill):
        search("cifar10", config, tmp_path / "killed", progress=False, callback=_kill_at(1, 0))
    assert not (tmp_path / "killed" / "record.json").exists()
    assert [m["epoch"] for m in read_jsonl(tmp_path / "killed" / "metrics.jsonl")] == [0]
    seen = []
    resumed = search("cifar10", config, tmp_path / "killed", progress=False,
                     callback=lambda epoch, step: seen.append(epoch))
    assert set(seen) == {1}  # continued from the last finished epoch
    assert resumed["genotype"] == whole["genotype"]
    assert resumed["alphas"] == whole["alphas"]  # bit-identical logits
    assert [m["train_loss"] for m in resumed["curve"]] == [m["train_loss"] for m in whole["curve"]]
    assert [g["epoch"] for g in read_jsonl(tmp_path / "killed" / "genotypes.jsonl")] == [-1, 0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2])
def test_ptb_search_runs_and_resumes_like_an_uninterrupted_run(corpus_dir, tmp_path, order):
    config = ptb_config(corpus_dir, order=order)
    whole = search("ptb", config, tmp_path / "whole", progress=False)
    assert whole["kind"] == "search" and whole["dataset"] == "ptb"
    assert set(whole["final"]) == {"train_loss", "train_ppl", "valid_loss", "valid_ppl"}
    weights = torch.tensor(whole["alphas"]["weights"])
    assert weights.shape == (36, 5)
    assert whole["genotype"] == genotypes.format(genotypes.derive.rnn(weights))
    with pytest.raises(_Kill):
        search("ptb", config, tmp_path / "killed", progress=False, callback=_kill_at(1, 1))
    resumed = search("ptb", config, tmp_path / "killed", progress=False)
    assert resumed["genotype"] == whole["genotype"]
    assert resumed["alphas"] == whole["alphas"]


def test_resume_with_another_config_is_refused(cifar_run, cifar_root):
    out, _ = cifar_run
    (out / "record.json").rename(out / "record.bak")
    try:
        with pytest.raises(ValueError, match="another config"):
            search("cifar10", cifar_config(cifar_root, order=1), out, progress=False)
    finally:
        (out / "record.bak").rename(out / "record.json")


def test_finished_search_with_another_config_is_refused_not_returned(cifar_run, cifar_root):
    out, _ = cifar_run
    with pytest.raises(ValueError, match="another config.*order"):
        search("cifar10", cifar_config(cifar_root, order=1), out, progress=False)


def test_kill_in_the_first_epoch_does_not_repeat_the_initial_architecture_rows(cifar_root, tmp_path):
    config = cifar_config(cifar_root, order=1, train_examples=24, epochs=1)
    with pytest.raises(_Kill):
        search("cifar10", config, tmp_path / "run", progress=False, callback=_kill_at(0, 0))
    search("cifar10", config, tmp_path / "run", progress=False)
    for name in ("genotypes.jsonl", "alphas.jsonl"):
        assert [row["epoch"] for row in read_jsonl(tmp_path / "run" / name)] == [-1, 0], name


def test_missing_dataset_leaves_no_run_directory_behind(tmp_path):
    with pytest.raises(FileNotFoundError):
        search("ptb", ptb_config(tmp_path / "nowhere"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


def test_unknown_dataset_and_bad_config_raise_clear_errors(tmp_path, cifar_root):
    with pytest.raises(ValueError, match="unknown search dataset"):
        search("mnist", None, tmp_path / "x")  # imagenet is a search dataset now (PC-DARTS)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        search("cifar10", cifar_config(cifar_root, order=3), tmp_path / "y")
    with pytest.raises(FileNotFoundError, match="train.txt"):
        search("ptb", ptb_config(tmp_path / "nowhere"), tmp_path / "z", progress=False)


@pytest.mark.slow
def test_cli_search_runs_with_unrolled_alias_and_plot_search_draws_it(cifar_root, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["search", "cifar10", "--unrolled", "--seed", "5", "--out", str(out), "--data", str(cifar_root),
                 "--C", "4", "--layers", "3", "--batch-size", "8", "--epochs", "1", "--device", "cpu",
                 "--no-progress"])
    assert code == 0
    record = json.loads((out / "record.json").read_text())
    assert record["config"]["order"] == 2 and record["seed"] == 5
    assert "genotype = Genotype(" in capsys.readouterr().out
    assert main(["plot-search", str(out)]) == 0
    plots = out / "plots"
    for name in ("alphas_normal.png", "alphas_reduce.png", "skip_connections.png", "curves.png",
                 "normal_cell.gif", "reduce_cell.gif"):
        assert (plots / name).is_file(), name
    assert Image.open(plots / "normal_cell.gif").n_frames == 2  # initialisation + 1 epoch
    assert (plots / "cells" / "epoch_001_normal.png").is_file()


def test_cli_errors_are_one_line_and_exit_code_2(tmp_path, capsys):
    code = main(["search", "ptb", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "missing"),
                 "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "train.txt" in err and len(err.strip().splitlines()) == 1
    code = main(["search", "cifar10", "--order", "1", "--unrolled", "--out", str(tmp_path / "p")])
    assert code == 2 and "--unrolled" in capsys.readouterr().err
    assert main(["plot-search", str(tmp_path)]) == 2


def test_cli_help_explains_options_with_the_papers_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["search", "cifar10", "--help"])
    text = capsys.readouterr().out
    assert "--arch-learning-rate" in text and "0.0003" in text and "--unrolled" in text and "--order" in text


def test_ptb_plots_show_the_recurrent_cell_over_time(corpus_dir, tmp_path):
    out = tmp_path / "ptb"
    search("ptb", ptb_config(corpus_dir, order=1, epochs=1), out, progress=False)
    paths = plot_run(out)
    names = {p.name for p in paths}
    assert {"alphas_weights.png", "skip_connections.png", "curves.png", "recurrent_cell.gif"} <= names


def test_augmentation_is_a_padded_crop_with_optional_flip_then_normalised():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = CifarHalves(images, torch.arange(6), 0.5, 3, "cpu", seed=1)
    x, y = data.augment(torch.arange(6))
    assert y.tolist() == list(range(6))
    mean, std = data.mean.cpu(), data.std.cpu()
    raw = (x * std + mean) * 255
    padded = torch.nn.functional.pad(images.float(), (4, 4, 4, 4))
    for i in range(6):
        found = []
        for oy in range(9):
            for ox in range(9):
                crop = padded[i, :, oy:oy + 32, ox:ox + 32]
                for flip in (False, True):
                    c = crop.flip(-1) if flip else crop
                    if torch.allclose(raw[i], c, atol=1e-3):
                        found.append(flip)
        assert found, f"image {i} is not a padded crop (+flip)"
    assert data.train_steps == 1
    assert [len(b[1]) for b in data.train_batches()] == [3]
    assert data.next_valid()[1].min() >= 3  # architecture batches come from the second half


def test_bf16_with_second_order_is_refused_with_the_reason(tmp_path, capsys):
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match="Hessian term would be rounding noise"):
        SEARCH_CONFIGS["cifar10"](order=2, amp="bf16").validate()
    SEARCH_CONFIGS["cifar10"](order=1, amp="bf16").validate()
    assert main(["search", "cifar10", "--order", "2", "--amp", "bf16", "--out", str(tmp_path / "s"),
                 "--data", str(tmp_path)]) == 2
    assert "does not go with order 2" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_validation_pass_uses_eval_batch_size_and_defaults_to_batch_size():
    from reproduce.config import ConfigError, build
    from reproduce.search import CIFAR10SearchConfig

    images = torch.zeros((20, 3, 8, 8), dtype=torch.uint8)
    default = CifarHalves(images, torch.arange(20), 0.5, 3, "cpu", seed=1)
    assert [len(y) for _, y in default.valid_batches()] == [3, 3, 3, 1]  # the original: the training batch size
    larger = CifarHalves(images, torch.arange(20), 0.5, 3, "cpu", seed=1, eval_batch_size=8)
    assert [len(y) for _, y in larger.valid_batches()] == [8, 2]
    assert torch.cat([y for _, y in larger.valid_batches()]).tolist() == list(range(10, 20))
    assert CIFAR10SearchConfig().eval_batch_size == 0
    with pytest.raises(ConfigError, match="eval_batch_size must be >= 0"):
        build(CIFAR10SearchConfig, {"eval_batch_size": -1})


def test_the_search_data_gets_eval_batch_size_from_the_config(tmp_path):
    from reproduce.search.data import load_cifar_halves

    data = load_cifar_halves(cifar_config(tiny_cifar(tmp_path / "c10"), eval_batch_size=5), "cpu")
    assert data.eval_batch_size == 5 and [len(y) for _, y in data.valid_batches()] == [5, 3]


def test_valid_bn_batch_needs_two_columns_to_normalise_over(tmp_path):
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match="eval_batch_size must be >= 2"):
        ptb_config(tmp_path, valid_bn="batch", eval_batch_size=1).validate()
