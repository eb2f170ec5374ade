"""`python -m reproduce export RUN_DIR --out DIR`: a finished training run as a saved model with an honest card."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import make_cifar, make_corpus, tiny_cifar, tiny_lm, train_interrupted

import zoo
from reproduce.__main__ import main
from reproduce.export import export_run
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
    saved = export_run(tmp_path / "run", tmp_path / "m")
    model = zoo.load(str(saved))
    best = RunDir(tmp_path / "run").load_checkpoint(name="best.pt")["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["metrics"] == {"test_ppl": record["final"]["test_ppl"], "valid_ppl": record["final"]["valid_ppl"]}
    assert cfg["dataset"] == "ptb" and model.decoder.weight is model.encoder.weight


# ---------------------------------------------------------------------------------------------
# What export refuses: weights that are not the record's, records that are not measurements, files it did not write
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Finished 2-epoch runs of seeds 0 and 1, and seed 0's checkpoint after its first epoch."""
    data = make_cifar(tmp_path_factory.mktemp("cifar2"))
    root = tmp_path_factory.mktemp("two")
    train_interrupted(tiny_cifar(data, epochs=2), root / "seed-0")
    partial = (root / "seed-0" / "checkpoint.pt").read_bytes()
    train("cifar10", tiny_cifar(data, epochs=2), root / "seed-0", progress=False)
    train("cifar10", tiny_cifar(data, epochs=2, seed=1), root / "seed-1", progress=False)
    return root, partial


def _copy(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _refused(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err


def test_export_refuses_a_checkpoint_of_another_run_or_a_partial_one(two_runs, tmp_path, capsys):
    root, partial = two_runs
    run = _copy(root / "seed-0", tmp_path)
    (run / "checkpoint.pt").write_bytes((root / "seed-1" / "checkpoint.pt").read_bytes())  # another seed's
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "m")], "disagree: seed (checkpoint 1, config.json 0)")
    (run / "checkpoint.pt").write_bytes(partial)  # this run's, after epoch 1 of 2
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "m")], "written after epoch 1 of 2")
    assert not (tmp_path / "m").exists()
    assert main(["export", str(root / "seed-0"), "--out", str(tmp_path / "m")]) == 0


@pytest.mark.parametrize("change,needle", [
    (lambda r: r["final"].update(test_error=-50), "test_error -50 is outside its domain"),
    (lambda r: r["final"].update(test_error=float("nan")), "test_error is nan, not a finite number"),
    (lambda r: r.update(status="failed"), "status 'failed'"),
    (lambda r: r.update(seed=3), "says seed 3 but its config seed 0"),
])
def test_export_refuses_a_record_that_is_not_a_measurement_and_writes_nothing(two_runs, tmp_path, capsys, change,
                                                                            needle):
    run = _copy(two_runs[0] / "seed-0", tmp_path)
    record = json.loads((run / "record.json").read_text())
    change(record)
    (run / "record.json").write_text(json.dumps(record))
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "m")], needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_export_never_writes_over_files_it_did_not_write_and_writes_all_or_nothing(two_runs, tmp_path, capsys,
                                                                                 monkeypatch):
    run = two_runs[0] / "seed-0"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    _refused(capsys, ["export", str(run), "--out", str(mine)], "holds files export did not write (README.md)")
    assert (mine / "README.md").read_text() == "my notes" and len(list(mine.iterdir())) == 1
    _refused(capsys, ["export", str(run), "--out", str(mine / "README.md" / "m")], f"cannot write --out {mine}")

    def half_written(model, where, **kw):  # fails after the weights: e.g. a full disk
        (Path(where) / "model.safetensors").write_bytes(b"x")
        raise OSError("No space left on device")

    monkeypatch.setattr(zoo, "save_pretrained", half_written)
    with pytest.raises(OSError, match="No space left on device"):
        export_run(run, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no folder, no partial sibling
    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    assert main(["export", str(run), "--out", str(tmp_path / "empty")]) == 0  # an empty directory is filled
    assert (tmp_path / "empty" / "model.safetensors").exists()


def test_export_of_a_demo_run_without_checkpoints_names_keep_checkpoints(two_runs, tmp_path, capsys):
    run = _copy(two_runs[0] / "seed-0", tmp_path)
    for name in ("config.json", "record.json"):
        data = json.loads((run / name).read_text())
        (data["config"] if name == "record.json" else data)["profile"] = "demo"
        (run / name).write_text(json.dumps(data))
    (run / "checkpoint.pt").unlink()
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "m")], "checkpoint.pt is missing",
             "python -m reproduce demo --keep-checkpoints")


def test_export_push_is_refused_offline_or_without_credentials_before_anything_is_written(two_runs, tmp_path, capsys,
                                                                                          monkeypatch):
    argv = ["export", str(two_runs[0] / "seed-0"), "--out", str(tmp_path / "m"), "--push"]
    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")
    _refused(capsys, [*argv, "org/repo"], "offline", "nothing is pushed", "nothing was written")
    monkeypatch.delenv("DARTS_ZOO_OFFLINE")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no saved login there
    _refused(capsys, [*argv, "org/repo"], "no Hugging Face credentials", "nothing was written")
    _refused(capsys, [*argv, "x" * 500], "expected ORG/REPO")
    assert not (tmp_path / "m").exists()
