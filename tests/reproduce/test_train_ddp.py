"""Data parallelism: 2 CPU processes (gloo) against 1 process with the same global batch.

The recurrent model has no BatchNorm; with its dropouts set to 0 nothing differs between the
processes except how the batch is split, so the loss curves must agree to float rounding. The
convolutional network has BatchNorm, whose batch statistics are computed per process over half
the batch, so its curve only agrees within a tolerance.
"""
from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from train_helpers import ddp_worker, make_cifar, make_corpus, tiny_cifar, tiny_lm

from reproduce.config import ConfigError
from reproduce.train import train
from reproduce.train.distributed import Dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two(dataset, config, tmp_path):
    result = tmp_path / "result"
    mp.spawn(ddp_worker, args=(2, _free_port(), dataset, config, str(tmp_path / "ddp"), str(result)), nprocs=2)
    return [torch.load(f"{result}.{r}", weights_only=True) for r in range(2)]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_exactly_without_batchnorm_or_dropout(tmp_path):
    corpus = make_corpus(tmp_path / "ptb")
    cfg = tiny_lm(corpus, epochs=2, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0,
                  nonmono=0)
    ranks = _run_two("ptb", cfg, tmp_path)
    single = train("ptb", cfg, tmp_path / "single", progress=False)
    assert ranks[0]["curve"] == ranks[1]["curve"]
    for a, b in zip(ranks[0]["curve"], single["curve"]):
        assert a["optimizer"] == b["optimizer"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-5)
    assert ranks[0]["final"]["test_ppl"] == pytest.approx(single["final"]["test_ppl"], rel=1e-5)
    assert (tmp_path / "ddp" / "record.json").exists()


@pytest.mark.slow
def test_two_gloo_processes_follow_the_one_process_cnn_loss_curve_within_batchnorm_tolerance(tmp_path):
    cifar = make_cifar(tmp_path / "cifar")
    cfg = tiny_cifar(cifar, epochs=2, drop_path_prob=0.0)
    ranks = _run_two("cifar10", cfg, tmp_path)
    single = train("cifar10", cfg, tmp_path / "single", progress=False)
    assert ranks[0]["curve"] == ranks[1]["curve"]  # metrics are all-reduced: every rank reports the same
    for a, b in zip(ranks[0]["curve"], single["curve"]):
        assert a["lr"] == b["lr"]
        # BatchNorm normalises each half batch with its own statistics: close, not equal
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.1)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=0.1)


def test_a_global_batch_that_does_not_divide_across_processes_is_refused():
    with pytest.raises(ConfigError, match="does not divide across 3 processes"):
        Dist(rank=0, world=3).local_batch(64)
    assert Dist(rank=1, world=4).local_batch(96) == 24
