"""Data parallelism: 2 CPU processes (gloo) against 1 process with the same global batch.

The recurrent model has no BatchNorm; with its dropouts set to 0 nothing differs between the
processes except how the batch is split, so the loss curves must agree to float rounding. The
convolutional network has BatchNorm, whose batch statistics are computed per process over half
the batch, so its curve only agrees within a tolerance.
"""
from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from train_helpers import ddp_worker, free_port, make_cifar, make_corpus, tiny_cifar, tiny_lm

from reproduce.config import ConfigError
from reproduce.distributed import Dist
from reproduce.train import train


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """Both recipes trained once by 2 gloo processes (one process group, spawned once) and once by 1 process."""
    tmp = tmp_path_factory.mktemp("ddp")
    corpus, cifar = make_corpus(tmp / "ptb"), make_cifar(tmp / "cifar")
    lm_cfg = tiny_lm(corpus, epochs=2, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0,
                     nonmono=1)
    cnn_cfg = tiny_cifar(cifar, epochs=2, drop_path_prob=0.0)
    jobs = [("ptb", lm_cfg, str(tmp / "ddp_ptb")), ("cifar10", cnn_cfg, str(tmp / "ddp_cifar"))]
    result = tmp / "result"
    mp.spawn(ddp_worker, args=(2, free_port(), jobs, str(result)), nprocs=2)
    ranks = [torch.load(f"{result}.{r}", weights_only=True) for r in range(2)]
    single = {"ptb": train("ptb", lm_cfg, tmp / "single_ptb", progress=False),
              "cifar10": train("cifar10", cnn_cfg, tmp / "single_cifar", progress=False)}
    return {"ptb": [r[0] for r in ranks], "cifar10": [r[1] for r in ranks], "single": single, "tmp": tmp}


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_exactly_without_batchnorm_or_dropout(ddp):
    ranks, single = ddp["ptb"], ddp["single"]["ptb"]
    assert ranks[0]["curve"] == ranks[1]["curve"]
    for a, b in zip(ranks[0]["curve"], single["curve"]):
        assert a["optimizer"] == b["optimizer"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-5)
    assert ranks[0]["final"]["test_ppl"] == pytest.approx(single["final"]["test_ppl"], rel=1e-5)
    assert (ddp["tmp"] / "ddp_ptb" / "record.json").exists()


@pytest.mark.slow
def test_two_gloo_processes_follow_the_one_process_cnn_loss_curve_within_batchnorm_tolerance(ddp):
    ranks, single = ddp["cifar10"], ddp["single"]["cifar10"]
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


def test_a_run_directory_in_use_stops_every_rank_together(tmp_path):
    # rank 0 cannot take the lock; the other rank must not be left waiting in a collective
    import json
    import os

    from train_helpers import ddp_claim_worker

    from reproduce.rundir import RunDir

    cifar = make_cifar(tmp_path / "cifar")
    out, result = tmp_path / "run", tmp_path / "result"
    with RunDir(out).lock():
        mp.spawn(ddp_claim_worker, args=(2, free_port(), "cifar10", tiny_cifar(cifar, epochs=1), str(out),
                                         str(result)), nprocs=2)
    outcomes = [json.loads(open(f"{result}.{r}").read()) for r in range(2)]
    assert [o["raised"] for o in outcomes] == ["RunInUseError", "RunInUseError"], outcomes
    assert f"in use by pid {os.getpid()}" in outcomes[0]["message"]
    assert all(o["seconds"] < 30 for o in outcomes)


@pytest.mark.parametrize("visible, local_rank, expected", [(4, 3, "cuda:3"), (1, 3, "cuda:0"), (2, 3, None)])
def test_each_process_takes_its_gpu_whether_it_sees_all_or_only_its_own(monkeypatch, visible, local_rank, expected):
    from reproduce.distributed import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    if expected is None:  # two processes would share a GPU
        with pytest.raises(ValueError, match="give each process its own GPU"):
            pick_device("cuda", local_rank)
        return
    assert str(pick_device("cuda", local_rank)) == expected
    assert str(pick_device("auto", local_rank)) == expected
