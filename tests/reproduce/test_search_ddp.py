"""The search under torchrun: 2 gloo processes on CPU against 1 process with the same --bn-groups.

Each process draws the global batch (data, augmentation, recurrent dropout masks) and keeps its
slice; the architect's gradients and the weight gradients are summed over the processes. With the
same BatchNorm groups, the architecture logits after several steps of both orders, conv and
recurrent (and the first order on one's own images), must equal one process's to float32 round-off
(not bitwise: the sums run in another order). The 2-process runs use the default BatchNorm (one group
per process, G = 2, resolved and labelled "not comparable") or an explicit G = 4 (two groups in each
process).
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from image_helpers import write_image_folder
from search_helpers import (
    cifar_config,
    image_config,
    one_thread,
    ptb_config,
    search_ddp_worker,
    tiny_cifar,
    tiny_corpus,
)
from train_helpers import free_port

from reproduce.comparable import recipe_differences
from reproduce.config import ConfigError, validate
from reproduce.rundir import load_checked
from reproduce.search import search
from reproduce.search.bn_groups import resolve_groups
from reproduce.search.searcher import with_processes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The searches of 2 gloo processes (one process group, spawned once) and of 1 process with the same G."""
    tmp = tmp_path_factory.mktemp("search_ddp")
    cifar, corpus = tiny_cifar(tmp / "c10", n_train=48), tiny_corpus(tmp / "ptb")
    # One epoch: 3 architecture steps and 3 weight steps on CIFAR-10 (4 on PTB, dropouts on: masks of the global
    # batch). Well-conditioned settings, checked by perturbing one step's weight gradients by 1e-7 (relative) in one
    # process: at the paper's learning rates these tiny random-data networks turn that into ~1e-3 (relative) in the
    # logits within 4 steps, and the second order's finite difference does so at 8x8 images or with BatchNorm over
    # 2 images; here the logits move by ~1e-6 (relative), so round-off is what the tolerance below admits.
    c10, ptb = dict(learning_rate=1e-3, learning_rate_min=5e-4, epochs=1), dict(learning_rate=0.05, epochs=1)
    configs = {"c10-o1": ("cifar10", cifar_config(cifar, order=1, image_size=8, bn_groups=4, **c10), 4),
               "c10-o2": ("cifar10", cifar_config(cifar, order=2, **c10), 2),
               "ptb-o1": ("ptb", ptb_config(corpus, order=1, **ptb), 2),
               "ptb-o2": ("ptb", ptb_config(corpus, order=2, bn_groups=2, **ptb), 2)}
    jobs = [(ds, cfg, str(tmp / f"ddp-{name}"), False) for name, (ds, cfg, _) in configs.items()]
    jobs.append(("cifar10", configs["c10-o1"][1], str(tmp / "diverged"), True))
    # one's own images (`search images`, a one-channel stem): 3 classes of 16 gray 16x16 images, halves of 24 = 3
    # batches of 8 (with 2 classes the logits moved by ~1 % of an Adam step between runs: ill-conditioned)
    images = write_image_folder(tmp / "images", {"a": 16, "b": 16, "c": 16}, size=16,
                                splits={"test": {"a": 2, "b": 2, "c": 2}})
    configs["img-o1"] = ("images", image_config(images, order=1, image_size=16, **c10), 2)
    jobs.append(("images", configs["img-o1"][1], str(tmp / "ddp-img-o1"), False))
    result = tmp / "result"
    mp.spawn(search_ddp_worker, args=(2, free_port(), jobs, str(result)), nprocs=2)
    ranks = [torch.load(f"{result}.{r}", weights_only=True) for r in range(2)]
    single = {}
    with one_thread():
        for name, (ds, cfg, groups) in configs.items():
            one = type(cfg)(**{**cfg.__dict__, "bn_groups": groups})
            single[name] = search(ds, one, tmp / f"one-{name}", progress=False)
    return {"ranks": ranks, "single": single, "tmp": tmp}


def _close(a, b, arch_lr):
    # Adam moves each logit by about arch_lr per step whatever its gradient's size; a gradient component near
    # zero has the round-off of the larger terms it is summed from, so its step can move by a small share of that
    for key in a:
        torch.testing.assert_close(torch.tensor(a[key]), torch.tensor(b[key]), rtol=1e-5, atol=2e-3 * arch_lr)


@pytest.mark.parametrize("k, name", [(0, "c10-o1"), (1, "c10-o2"), (2, "ptb-o1"), (3, "ptb-o2"), (5, "img-o1")])
def test_two_processes_search_the_architecture_one_process_searches(runs, k, name):
    rank0, rank1, single = runs["ranks"][0][k], runs["ranks"][1][k], runs["single"][name]
    assert "raised" not in rank0, rank0
    assert rank0["alphas"] == rank1["alphas"]  # identical on every rank, bit for bit
    _close(rank0["alphas"], single["alphas"], single["config"]["arch_learning_rate"])
    for a, b in zip(rank0["curve"], single["curve"]):  # metrics are summed over the ranks
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-6)
        assert a["genotype"] == b["genotype"]
    assert rank0["world_size"] == 2 and single["world_size"] == 1
    assert rank0["config"]["processes"] == 2 and rank0["config"]["bn_groups"] == single["config"]["bn_groups"]


@pytest.mark.parametrize("name", ["c10-o1", "ptb-o1", "img-o1"])
def test_first_order_gradients_have_the_global_mean_losss_scale(runs, name):
    # Adam's step hardly depends on its gradient's scale, so equal logits do not show that the architecture
    # gradient is the global mean's (a rank forgetting to divide by the global count gives 2x). Adam's first
    # moment and SGD's momentum buffer are proportional to it: they must equal one process's.
    ddp = load_checked(runs["tmp"] / f"ddp-{name}" / "checkpoint.pt")["task"]
    one = load_checked(runs["tmp"] / f"one-{name}" / "checkpoint.pt")["task"]
    compared = 0
    for opt, moment in (("a_opt", "exp_avg"), ("w_opt", "momentum_buffer")):
        for key, state in one[opt]["state"].items():
            if state.get(moment) is not None:  # the recurrent search's SGD has no momentum
                b = state[moment]
                torch.testing.assert_close(ddp[opt]["state"][key][moment], b, rtol=1e-3,
                                           atol=1e-3 * float(b.abs().max()))
                compared += 1
    assert compared >= 1  # the conv search: both optimizers; the recurrent: Adam (its SGD keeps no momentum)


def test_the_architecture_moved_from_its_initialisation(runs):
    # guards the comparison above: several steps of real gradients, not a frozen architecture

    rows = [json.loads(line) for line in (runs["tmp"] / "ddp-c10-o2" / "alphas.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [-1, 0]
    first, last = torch.tensor(rows[0]["logits"]["alphas_normal"]), torch.tensor(rows[-1]["logits"]["alphas_normal"])
    assert (first - last).abs().max() > 1e-4


def test_only_rank_0_writes_and_the_files_say_two_processes(runs):
    run = runs["tmp"] / "ddp-c10-o1"
    config = json.loads((run / "config.json").read_text())
    record = json.loads((run / "record.json").read_text())
    assert config["processes"] == 2 and record["world_size"] == 2 and record["config"]["processes"] == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # one writer: one line per epoch
    assert len((run / "genotypes.jsonl").read_text().splitlines()) == 2


def test_default_per_process_batchnorm_is_labelled_not_comparable(runs):
    default = runs["ranks"][0][1]["config"]  # c10-o2 ran with the default bn_groups under 2 processes
    assert default["bn_groups"] == 2
    assert "bn_groups" in recipe_differences("search", "cifar10", default)
    one = runs["single"]["c10-o2"]["config"]
    assert one["processes"] == 1
    paper_one = {**one, "bn_groups": 1}
    assert "bn_groups" not in recipe_differences("search", "cifar10", paper_one)
    assert "processes" not in recipe_differences("search", "cifar10", default)  # where it ran: not the recipe


def test_a_divergence_between_ranks_stops_every_rank_in_one_line(runs):
    for outcome in (runs["ranks"][0][4], runs["ranks"][1][4]):
        assert outcome.get("raised") == "RanksDivergedError", outcome
        assert "architecture logits after epoch 0 differ between the 2 processes" in outcome["message"]
        assert "\n" not in outcome["message"]
    assert not (runs["tmp"] / "diverged" / "record.json").exists()


@pytest.mark.parametrize("groups, world, sync, expected", [(1, 1, False, 1), (1, 2, False, 2), (4, 2, False, 4),
                                                           (1, 4, True, 1)])
def test_bn_groups_resolve_to_one_group_per_process_by_default(groups, world, sync, expected):
    assert resolve_groups(groups, world, sync) == expected


def test_bn_groups_that_do_not_split_across_the_processes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not split across 2 processes"):
        resolve_groups(3, 2, False)
    with pytest.raises(ConfigError, match="set by torchrun"):
        with_processes(cifar_config(tmp_path, processes=3), 2)
    with pytest.raises(ConfigError, match="must divide into 3 equal parts"):
        validate(cifar_config(tmp_path, bn_groups=3))
