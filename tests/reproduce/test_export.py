"""`python -m reproduce export RUN_DIR --out DIR`: a finished training run as a saved model with an honest card."""
from __future__ import annotations

import json

import pytest
import torch
from train_helpers import make_cifar, make_corpus, tiny_cifar, tiny_lm

import zoo
from reproduce.__main__ import main
from reproduce.rundir import RunDir
from reproduce.train import train


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    data = make_cifar(tmp_path_factory.mktemp("cifar"))
    out = tmp_path_factory.mktemp("runs") / "c10"
    record = train("cifar10", tiny_cifar(data, epochs=1), out, progress=False)
    return out, record


def test_a_finished_cifar_run_exports_its_final_weights_with_a_card_from_the_record(cifar_run, tmp_path, capsys):
    run, record = cifar_run
    assert main(["export", str(run), "--out", str(tmp_path / "m")]) == 0
    assert "zoo.load(" in capsys.readouterr().out
    model = zoo.load(str(tmp_path / "m"))
    weights = RunDir(run).load_checkpoint()["task"]["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    cfg = model.zoo_config
    assert cfg["metrics"] == {"top1_error": record["final"]["test_error"]}
    assert cfg["source"]["seed"] == record["seed"] and cfg["source"]["commit"] == record["git_commit"]
    assert cfg["source"]["config"] == record["config"] and cfg["name"] is None and cfg["reference_metrics"] == {}
    card = (tmp_path / "m" / "README.md").read_text()
    assert "trained from scratch by `python -m reproduce`" in card and "model-index" in card
    assert f"value: {record['final']['test_error']}" in card and "2.63" not in card


def test_export_refuses_what_it_cannot_export_in_one_line(cifar_run, tmp_path, capsys):
    run, _ = cifar_run
    (tmp_path / "unfinished").mkdir()
    for argv, why in ((["export", str(tmp_path / "unfinished"), "--out", str(tmp_path / "a")], "no finished run"),
                      (["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")], "no such run directory")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1
    assert main(["export", str(run), "--out", str(tmp_path / "c")]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "c")]) == 2  # never overwrites a saved model
    assert "already holds a saved model" in capsys.readouterr().err


def test_a_language_model_run_exports_its_best_weights(tmp_path):
    data = make_corpus(tmp_path / "ptb")
    record = train("ptb", tiny_lm(data, epochs=2), tmp_path / "run", progress=False)
    from reproduce.export import export_run

    saved = export_run(tmp_path / "run", tmp_path / "m")
    model = zoo.load(str(saved))
    best = RunDir(tmp_path / "run").load_checkpoint(name="best.pt")["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["metrics"] == {"test_ppl": record["final"]["test_ppl"], "valid_ppl": record["final"]["valid_ppl"]}
    assert cfg["dataset"] == "ptb" and model.decoder.weight is model.encoder.weight
