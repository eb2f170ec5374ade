"""PTB / WikiText-2 recipes end to end on tiny awd-lstm-lm text files."""
from __future__ import annotations

import json

import pytest
from train_helpers import make_corpus, tiny_lm

from reproduce.config import ConfigError
from reproduce.rundir import NonFiniteError
from reproduce.train import train
from reproduce.train.lm import LMTask


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("ptb"))


def _strip(curve):
    return [{k: v for k, v in m.items() if k != "time_s"} for m in curve]


def test_ptb_run_reports_valid_and_test_perplexity_of_the_best_weights(corpus, tmp_path):
    record = train("ptb", tiny_lm(corpus, epochs=2), tmp_path / "run", progress=False)
    assert record["kind"] == "train" and record["dataset"] == "ptb" and record["status"] == "finished"
    assert record["genotype"].startswith("Genotype(recurrent=")
    final = record["final"]
    assert final["valid_ppl"] > 1 and final["test_ppl"] > 1
    best = min(record["curve"], key=lambda m: m["valid_loss"])
    assert final["best_epoch"] == best["epoch"]
    assert final["valid_ppl"] == pytest.approx(best["valid_ppl"], rel=1e-9)  # the best weights are re-evaluated
    assert (tmp_path / "run" / "best.pt").exists()
    assert record["parameters"] > 0


def test_wt2_recipe_runs_with_its_own_defaults(corpus, tmp_path):
    record = train("wt2", tiny_lm(corpus, "wt2", epochs=1), tmp_path / "wt2", progress=False)
    assert record["dataset"] == "wt2"
    assert record["config"]["dropouth"] == 0.15 and record["config"]["weight_decay"] == 5e-7
    assert record["final"]["test_ppl"] > 1


def test_switches_to_asgd_when_validation_stops_improving_and_evaluates_averaged_weights(corpus, tmp_path):
    # lr 60 makes validation get worse, so with nonmono=1 the run switches within a few epochs
    record = train("ptb", tiny_lm(corpus, epochs=4, nonmono=1, lr=60.0), tmp_path / "asgd", progress=False)
    opts = [m["optimizer"] for m in record["curve"]]
    switched = [m["epoch"] for m in record["curve"] if m["switched_to_asgd"]]
    assert switched and opts[switched[0]] == "sgd" and all(o == "asgd" for o in opts[switched[0] + 1:])
    assert record["final"]["switched_to_asgd_at"] == switched[0]


# Validation losses by epoch, scripted so that the switch to ASGD comes at the same epoch on every CPU
# (with real losses it depends on the last bits of the rounding): with nonmono=1, epoch 2 is worse than
# the best of all epochs but the last (epoch 0), so the run switches there and epoch 3 runs on ASGD.
SCRIPTED_VALID_LOSS = {0: 4.0, 1: 4.5, 2: 4.6, 3: 4.7}


def _script_validation(monkeypatch):
    """LMTask's validation during an epoch returns SCRIPTED_VALID_LOSS[epoch]; training and the final
    evaluation stay real."""
    run_epoch, evaluate = LMTask.run_epoch, LMTask.evaluate

    def scripted_run_epoch(self, epoch):
        self.scripted_epoch = epoch
        try:
            return run_epoch(self, epoch)
        finally:
            self.scripted_epoch = None

    def scripted_evaluate(self, data_source, batch_size):
        if getattr(self, "scripted_epoch", None) is not None and data_source is self.val_data:
            return SCRIPTED_VALID_LOSS[self.scripted_epoch]
        return evaluate(self, data_source, batch_size)

    monkeypatch.setattr(LMTask, "run_epoch", scripted_run_epoch)
    monkeypatch.setattr(LMTask, "evaluate", scripted_evaluate)


def test_lm_deterministic_runs_and_resume_give_identical_curves(corpus, tmp_path, monkeypatch):
    _script_validation(monkeypatch)
    config = tiny_lm(corpus, epochs=4, nonmono=1)
    a = train("ptb", config, tmp_path / "a", progress=False)
    assert [m["optimizer"] for m in a["curve"]] == ["sgd", "sgd", "sgd", "asgd"]
    assert [m["switched_to_asgd"] for m in a["curve"]] == [False, False, True, False]
    scripted = LMTask.run_epoch

    def interrupted(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return scripted(self, epoch)

    monkeypatch.setattr(LMTask, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train("ptb", config, tmp_path / "b", progress=False)
    monkeypatch.setattr(LMTask, "run_epoch", scripted)
    b = train("ptb", config, tmp_path / "b", progress=False)
    assert _strip(a["curve"]) == _strip(b["curve"]) and a["final"] == b["final"]
    assert b["curve"][-1]["optimizer"] == "asgd"  # switched at epoch 2 before the kill: the resumed run kept ASGD


def test_nonmono_0_is_refused_with_the_fix(corpus):
    with pytest.raises(ConfigError, match="nonmono must be >= 1.*--nonmono 1"):
        tiny_lm(corpus, nonmono=0).validate()


def test_non_finite_loss_rolls_back_to_the_best_checkpoint_like_the_original(corpus, tmp_path, monkeypatch):
    original = LMTask._train
    calls = []

    def nan_once(self, epoch):
        calls.append(epoch)
        if epoch == 1 and calls.count(1) == 1:
            return None  # what _train reports for a non-finite loss
        return original(self, epoch)

    monkeypatch.setattr(LMTask, "_train", nan_once)
    record = train("ptb", tiny_lm(corpus, epochs=3), tmp_path / "rb", progress=False)
    assert calls == [0, 1, 1, 2]  # best was epoch 0, so training went on from epoch 1 again
    assert record["final"]["rollbacks"] == 1 and [m["epoch"] for m in record["curve"]] == [0, 1, 2]
    lines = [json.loads(x) for x in (tmp_path / "rb" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [0, 1, 2]


def test_non_finite_loss_without_a_checkpoint_to_roll_back_to_stops_with_no_record(corpus, tmp_path):
    with pytest.raises(NonFiniteError, match="non-finite"):
        train("ptb", tiny_lm(corpus, epochs=2, lr=1e38), tmp_path / "nan", progress=False)
    assert not (tmp_path / "nan" / "record.json").exists()


def test_missing_corpus_is_a_clear_error_naming_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.txt.*awd-lstm-lm"):
        train("ptb", tiny_lm(tmp_path / "none"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


def test_missing_corpus_names_its_own_source(tmp_path):
    from zoo.datasets import PTB_URL, WT2_URL, DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError) as ptb:
        train("ptb", tiny_lm(tmp_path / "none"), tmp_path / "run", progress=False)
    assert "Penn Treebank not found" in str(ptb.value) and PTB_URL in str(ptb.value)
    assert WT2_URL not in str(ptb.value)
    with pytest.raises(DatasetNotFoundError) as wt2:
        train("wt2", tiny_lm(tmp_path / "none", "wt2"), tmp_path / "run", progress=False)
    assert "WikiText-2 not found" in str(wt2.value) and WT2_URL in str(wt2.value) and PTB_URL not in str(wt2.value)
    assert not (tmp_path / "run").exists()
