"""Guards against collapse into skip connections, as search options: P-DARTS's cap (max_skip) and DARTS+'s
early stop (early_stop skip:N), recorded and reported as not the paper's recipe.

The architectures are scripted (the initial logits, or the derived genotype by architecture step), so no
assertion depends on when float rounding makes a search cross a threshold.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from search_helpers import cifar_config

import genotypes
from genotypes import derive
from reproduce import comparable, loggers
from reproduce.__main__ import build_parser
from reproduce.config import ConfigError, to_dict
from reproduce.rundir import RunDir
from reproduce.search import search
from reproduce.search.cnn_supernet import Network
from reproduce.search.loop import CNNSearch
from zoo.fileio import read_jsonl

PRIMS = list(genotypes.cnn.PRIMITIVES)
# DARTS_V2's normal cell without its skip connections, and one with three
NO_SKIP = genotypes.parse("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                          "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), "
                          "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
                          "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                          "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
THREE_SKIPS = genotypes.get("DARTS_V1", "cnn")


pytestmark = pytest.mark.usefixtures("single_thread")


def _config(root, **kw):
    # 12 images train the weights, 12 the architecture: 2 steps per epoch
    return cifar_config(root, **{"train_examples": 24, "image_size": 8, "epochs": 2, "order": 1, **kw})


def _skip_heavy_logits() -> torch.Tensor:
    """Normal-cell logits whose derived cell has 3 skip connections, by margins no search step here can undo."""
    W = torch.zeros(14, len(PRIMS))
    W[:, PRIMS.index("sep_conv_3x3")] = 2.0
    for row, strength in ((0, 4.0), (2, 3.5), (5, 3.0)):  # one edge of each of the first three nodes
        W[row, PRIMS.index("skip_connect")] = strength
    return W


def test_the_search_derives_every_epochs_cell_under_the_cap(search_cifar24, tmp_path, monkeypatch):
    def scripted_alphas(self, device=None, dtype=None):
        return [_skip_heavy_logits().to(device).requires_grad_(), torch.zeros(14, len(PRIMS), device=device,
                                                                              requires_grad=True)]
    monkeypatch.setattr(Network, "new_alphas", scripted_alphas)
    capped = search("cifar10", _config(search_cifar24, max_skip=1, logger="csv"), tmp_path / "capped", progress=False)
    free = search("cifar10", _config(search_cifar24), tmp_path / "free", progress=False)
    assert derive.normal_skips(genotypes.parse(free["genotype"])) == 3
    assert derive.normal_skips(genotypes.parse(capped["genotype"])) == 1
    logged = read_jsonl(tmp_path / "capped" / "alphas.jsonl")
    cells = read_jsonl(tmp_path / "capped" / "genotypes.jsonl")
    assert [c["epoch"] for c in cells] == [-1, 0, 1]
    for row, cell in zip(logged, cells):  # every epoch's cell is the cap's derivation of that epoch's logits
        a = row["logits"]
        assert cell["genotype"] == genotypes.format(derive.cnn(a["alphas_normal"], a["alphas_reduce"], max_skip=1))
    assert capped["config"]["max_skip"] == 1
    with open(tmp_path / "capped" / loggers.EPOCHS_CSV, newline="") as f:  # the live logs show both counts
        assert [(r["normal_skips"], r["normal_skips_uncapped"]) for r in csv.DictReader(f)] == [("1", "3")] * 3
    assert "max_skip" in comparable.recipe_differences("search", "cifar10", capped["config"])


def test_the_searcher_caps_its_genotype_and_can_show_it_uncapped(search_cifar24):
    searcher = CNNSearch(_config(search_cifar24, max_skip=0), torch.device("cpu"), load_data=False)
    with torch.no_grad():
        searcher.alphas[0].copy_(_skip_heavy_logits())
    W = np.asarray(_skip_heavy_logits())
    assert searcher.genotype().normal == derive.cnn(W, W, max_skip=0).normal
    assert derive.normal_skips(searcher.genotype()) == 0
    assert derive.normal_skips(searcher.genotype(capped=False)) == 3


def _script_genotype_by_arch_step(monkeypatch, collapse_after_steps: int):
    """The derived cell has no skip connection until the architecture has taken ``collapse_after_steps``
    steps, and three from then on (the optimizer's step count is part of the checkpoint, so a resumed
    search sees what the uninterrupted one saw)."""
    def genotype(self, capped=True):
        state = self.a_opt.state.get(self.alphas[0], {})
        steps = int(state["step"]) if "step" in state else 0
        return THREE_SKIPS if steps >= collapse_after_steps else NO_SKIP
    monkeypatch.setattr(CNNSearch, "genotype", genotype)


def test_early_stop_ends_the_search_after_the_first_epoch_with_enough_skips_and_says_so(search_cifar24, tmp_path,
                                                                                       monkeypatch):
    _script_genotype_by_arch_step(monkeypatch, collapse_after_steps=4)  # after the second epoch (2 steps each)
    stopped = search("cifar10", _config(search_cifar24, epochs=4, early_stop="skip:2"), tmp_path / "stop",
                     progress=False)
    assert [m["epoch"] for m in stopped["curve"]] == [0, 1]
    assert stopped["status"] == "finished"
    assert stopped["early_stop"]["epoch"] == 1 and stopped["early_stop"]["epochs_run"] == 2
    assert "3 skip connections" in stopped["early_stop"]["reason"] and "skip:2" in stopped["early_stop"]["reason"]
    assert "early_stop" in comparable.recipe_differences("search", "cifar10", stopped["config"])
    higher = search("cifar10", _config(search_cifar24, epochs=3, early_stop="skip:4"), tmp_path / "higher",
                    progress=False)
    assert len(higher["curve"]) == 3 and "early_stop" not in higher  # never reached: every epoch runs


class _Kill(Exception):
    pass


def test_a_search_killed_after_its_stopping_epoch_stops_there_when_resumed(search_cifar24, tmp_path, monkeypatch):
    _script_genotype_by_arch_step(monkeypatch, collapse_after_steps=2)  # after the first epoch
    config = _config(search_cifar24, epochs=3, early_stop="skip:2")

    def killed(self, record):
        raise _Kill()
    with monkeypatch.context() as m:  # killed after the checkpoint of epoch 0, before the record
        m.setattr(RunDir, "write_record", killed)
        with pytest.raises(_Kill):
            search("cifar10", config, tmp_path / "run", progress=False)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [0]
    ran = []
    resumed = search("cifar10", config, tmp_path / "run", progress=False, callback=lambda e, s: ran.append(e))
    assert ran == []  # no further epoch
    assert [m["epoch"] for m in resumed["curve"]] == [0] and resumed["early_stop"]["epoch"] == 0


def test_bad_guard_values_are_refused_in_one_line(search_cifar24):
    for bad in ("skip", "skip:0", "skips:2", "skip:x"):
        with pytest.raises(ConfigError, match="early_stop must be 'skip:N'"):
            _config(search_cifar24, early_stop=bad).validate()
    with pytest.raises(ConfigError, match="max_skip must be >= 0"):
        _config(search_cifar24, max_skip=-1).validate()


def test_the_guards_are_options_of_the_search_and_experiment_commands(search_cifar24, tmp_path):
    parser = build_parser()
    args = parser.parse_args(["search", "cifar10", "--out", str(tmp_path), "--max-skip", "2", "--early-stop",
                              "skip:2", "--logger", "csv"])
    assert (args.cfg_max_skip, args.cfg_early_stop, args.cfg_logger) == (2, "skip:2", "csv")
    args = parser.parse_args(["cifar10", "--search", "--search-max-skip", "2", "--search-early-stop", "skip:2"])
    assert (args.searchcfg_max_skip, args.searchcfg_early_stop) == (2, "skip:2")
    defaults = to_dict(_config(search_cifar24))
    assert (defaults["max_skip"], defaults["early_stop"], defaults["logger"]) == (None, "", "")
