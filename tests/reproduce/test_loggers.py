"""Live logs (reproduce.loggers through the runner): CSV and TensorBoard per step and per epoch, resume
without a repeated step, W&B offline inside the run directory, a missing extra in one line."""
from __future__ import annotations

import csv
import dataclasses
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from search_helpers import cifar_config, one_thread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import make_cifar, make_corpus, tiny_lm
from train_helpers import tiny_cifar as tiny_cifar_recipe  # search_helpers has a tiny_cifar too

from reproduce import loggers, runner
from reproduce.__main__ import main
from reproduce.config import ConfigError
from reproduce.distributed import Dist
from reproduce.rundir import DamagedCheckpointError, RunDir
from reproduce.search import search
from reproduce.search.loop import CNNSearch
from reproduce.train import train

LOGS = "tensorboard,csv"
STEP_KEYS = ("train_loss", "train_acc", "arch_loss", "lr", "arch_lr", "grad_norm")


pytestmark = pytest.mark.usefixtures("single_thread")


def _config(root, **kw):
    # 12 images train the weights, 12 the architecture: 2 steps per epoch (first order: the fastest)
    return cifar_config(root, **{"train_examples": 24, "image_size": 8, "epochs": 2, "order": 1, "logger": LOGS,
                                 **kw})


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _events(run):
    ea = EventAccumulator(str(run / loggers.TENSORBOARD_DIR),
                          size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


class _Kill(Exception):
    pass


def _kill_at(at):
    def callback(epoch, step):
        if (epoch, step) == at:
            raise _Kill()
    return callback


@pytest.fixture(scope="module")
def whole(search_cifar24, tmp_path_factory):
    with one_thread():
        out = tmp_path_factory.mktemp("whole") / "run"
        search("cifar10", _config(search_cifar24), out, progress=False)
        return out


def test_a_search_logs_a_row_and_scalars_per_step_and_the_architecture_per_epoch(whole):
    rows = _csv(whole / loggers.STEPS_CSV)
    assert [(r["step"], r["epoch"]) for r in rows] == [("1", "0"), ("2", "0"), ("3", "1"), ("4", "1")]
    assert all(r[k] != "" for r in rows for k in STEP_KEYS)
    epochs = _csv(whole / loggers.EPOCHS_CSV)
    assert [(r["step"], r["epoch"]) for r in epochs] == [("0", "-1"), ("2", "0"), ("4", "1")]
    assert all(r["genotype"].startswith("Genotype(") and r["normal_skips"].isdigit() for r in epochs)
    assert epochs[1]["valid_acc"] != "" and epochs[0]["valid_acc"] == ""  # the initial row has no metrics

    ea = _events(whole)
    tags = ea.Tags()
    for key in STEP_KEYS:
        assert [e.step for e in ea.Scalars(f"step/{key}")] == [1, 2, 3, 4]
    assert [e.value for e in ea.Scalars("step/train_loss")] == pytest.approx([float(r["train_loss"]) for r in rows])
    assert [e.step for e in ea.Scalars("epoch/normal_skips")] == [0, 2, 4]
    assert [e.step for e in ea.Scalars("epoch/valid_loss")] == [2, 4]
    for name in ("alphas_normal", "alphas_reduce"):
        assert f"softmax/{name}" in tags["images"] and f"softmax/{name}" in tags["histograms"]
        assert [e.step for e in ea.Images(f"softmax/{name}")] == [0, 2, 4]
        assert [e.step for e in ea.Histograms(f"softmax/{name}")] == [0, 2, 4]
    assert any("genotype" in t for t in tags["tensors"])


def test_a_killed_and_resumed_search_appends_its_logs_without_a_repeated_step(search_cifar24, whole, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(_Kill):  # killed in the first epoch: no checkpoint, the run starts over
        search("cifar10", _config(search_cifar24), out, progress=False, callback=_kill_at((0, 0)))
    with pytest.raises(_Kill):  # killed after step 3 was logged, before its epoch was checkpointed
        search("cifar10", _config(search_cifar24), out, progress=False, callback=_kill_at((1, 0)))
    assert [r["step"] for r in _csv(out / loggers.STEPS_CSV)] == ["1", "2", "3"]
    search("cifar10", _config(search_cifar24), out, progress=False)

    assert _csv(out / loggers.STEPS_CSV) == _csv(whole / loggers.STEPS_CSV)  # same machine: the same numbers
    assert [r["step"] for r in _csv(out / loggers.EPOCHS_CSV)] == ["0", "2", "4"]
    ea, ea_whole = _events(out), _events(whole)
    assert len(os.listdir(out / loggers.TENSORBOARD_DIR)) == 3  # one event file per process
    for key in STEP_KEYS:
        resumed = [(e.step, e.value) for e in ea.Scalars(f"step/{key}")]
        assert resumed == [(e.step, e.value) for e in ea_whole.Scalars(f"step/{key}")]
    assert [e.step for e in ea.Images("softmax/alphas_normal")] == [0, 2, 4]
    assert [e.step for e in ea.Scalars("epoch/normal_skips")] == [0, 2, 4]


def test_training_logs_a_row_per_step(tmp_path):
    data = make_cifar(tmp_path / "c10", n_train=32, n_test=8)
    train("cifar10", tiny_cifar_recipe(data, epochs=1, batch_size=16, logger="csv"), tmp_path / "run",
          progress=False)
    rows = _csv(tmp_path / "run" / loggers.STEPS_CSV)
    assert [r["step"] for r in rows] == ["1", "2"]
    assert all(r[k] != "" for r in rows for k in ("train_loss", "train_acc", "lr", "grad_norm"))
    lm = make_corpus(tmp_path / "ptb")
    train("ptb", tiny_lm(lm, epochs=1, logger="csv"), tmp_path / "lm", progress=False)
    rows = _csv(tmp_path / "lm" / loggers.STEPS_CSV)
    assert len(rows) >= 2 and [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(r[k] != "" for r in rows for k in ("train_loss", "lr", "grad_norm"))


class _TwoSameRanks(Dist):
    """Two processes holding the same data, without a process group: a sum over them doubles."""

    def __init__(self):
        super().__init__(world=2)

    def all_reduce_sum_(self, tensors):
        with torch.no_grad():
            for t in tensors:
                t.mul_(2)


def test_the_architecture_loss_of_a_process_is_its_own_mean_under_several_processes(search_cifar24):
    # the searchers differentiate this process's mean divided by the processes; the logs show the mean itself
    searcher = CNNSearch(_config(search_cifar24), torch.device("cpu"), load_data=False, dist=_TwoSameRanks())
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
    expected = F.cross_entropy(searcher.logits(x, searcher.alphas), y).detach()
    torch.testing.assert_close(searcher.arch_step(x, y, x, y, lr=0.025), expected)


def test_no_logger_writes_no_log_file(search_cifar24, tmp_path):
    search("cifar10", _config(search_cifar24, logger="", epochs=1), tmp_path / "run", progress=False)
    names = set(os.listdir(tmp_path / "run"))
    assert not names & {loggers.STEPS_CSV, loggers.EPOCHS_CSV, loggers.TENSORBOARD_DIR, loggers.WANDB_DIR}


@pytest.mark.slow
def test_wandb_offline_logs_inside_the_run_directory_only(search_cifar24, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "XDG_CACHE_HOME",
                 "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    search("cifar10", _config(search_cifar24, logger="wandb", epochs=1), out, progress=False)
    runs = list((out / loggers.WANDB_DIR / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    assert list(home.rglob("*")) == []  # nothing of W&B's outside the run directory
    assert "WANDB_CACHE_DIR" not in os.environ  # its homes were pointed into the run only while it started


def test_a_wandb_run_that_cannot_start_is_one_line_naming_the_fix(search_cifar24, tmp_path, capsys, monkeypatch):
    wandb = pytest.importorskip("wandb")

    def no_account(**kwargs):  # what wandb.init raises online without `wandb login`
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")
    monkeypatch.setattr(wandb, "init", no_account)
    assert main(["search", "cifar10", "--out", str(tmp_path / "run"), "--data", str(search_cifar24), "--epochs", "1",
                 "--logger", "wandb", "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: the wandb logger could not start a W&B run (UsageError: No API key configured. Use "
                   "`wandb login` to log in.): run `wandb login`, or set WANDB_MODE=offline to log without an account "
                   "or network")


@pytest.mark.parametrize("name,package", [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_missing_extra_is_one_line_naming_the_install_command(search_cifar24, tmp_path, capsys, monkeypatch,
                                                                 name, package):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now fails, as when it is not installed
    out = tmp_path / "run"
    assert main(["search", "cifar10", "--out", str(out), "--data", str(search_cifar24), "--epochs", "1",
                 "--logger", f"csv,{name}", "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: the {name} logger needs the {package} package: pip install 'darts-zoo[{name}]'"
    assert not out.exists()  # refused before anything was written


def test_unknown_or_repeated_logger_names_are_refused():
    with pytest.raises(ConfigError, match="unknown logger 'tb'; choose from csv, tensorboard, wandb"):
        loggers.parse("tb")
    with pytest.raises(ConfigError, match="twice"):
        loggers.parse("csv,csv")
    assert loggers.parse(" csv , tensorboard") == ["csv", "tensorboard"] and loggers.parse("") == []


def test_the_csv_keeps_the_rows_up_to_where_a_run_continues_and_grows_columns(tmp_path):
    logs = loggers.Loggers("csv", tmp_path, {})
    logs.start(0)
    for epoch in range(3):
        for step in range(2):
            logs.on_step(epoch, step, {"loss": 1.0 + step})
        logs.on_epoch(epoch, {"valid_loss": 0.5} if epoch else {}, {"note": f"e{epoch}"})
    logs.close()
    assert [r["valid_loss"] for r in _csv(tmp_path / loggers.EPOCHS_CSV)] == ["", "0.5", "0.5"]
    again = loggers.Loggers("csv", tmp_path, {})
    again.start(4)  # a rollback or resume to the end of the second epoch
    again.on_step(2, 0, {"loss": 9.0})
    again.close()
    assert [(r["step"], r["loss"]) for r in _csv(tmp_path / loggers.STEPS_CSV)] == [
        ("1", "1.0"), ("2", "2.0"), ("3", "1.0"), ("4", "2.0"), ("5", "9.0")]
    assert [r["step"] for r in _csv(tmp_path / loggers.EPOCHS_CSV)] == ["2", "4"]


def test_a_csv_saved_again_by_a_spreadsheet_keeps_its_rows_and_an_unreadable_one_is_one_line(tmp_path):
    steps = tmp_path / loggers.STEPS_CSV
    steps.write_bytes(b"\xef\xbb\xbfstep,epoch,loss\r\n1,0,2.0\r\n2,0,1.0\r\n")  # with a byte-order mark
    logs = loggers.Loggers("csv", tmp_path, {})
    logs.start(2)
    logs.on_step(1, 0, {"loss": 3.0})
    logs.close()
    assert [(r["step"], r["loss"]) for r in _csv(steps)] == [("1", "2.0"), ("2", "1.0"), ("3", "3.0")]
    steps.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(ConfigError, match=f"{loggers.STEPS_CSV} is not a CSV file of these logs .*move it away"):
        loggers.Loggers("csv", tmp_path, {}).start(2)


def test_the_heatmap_is_an_rgb_image_darkest_at_the_largest_probability():
    img = loggers.heatmap(np.array([[0.0, 0.5], [0.25, 1.0]]), cell=2)
    assert img.shape == (3, 4, 4) and img.dtype == np.uint8
    assert img[:, 0, 0].tolist() == [255, 255, 255] and img[:, 3, 3].tolist() == [8, 48, 107]


@dataclasses.dataclass
class _ToyConfig:
    seed: int = 0
    epochs: int = 4
    deterministic: bool = False
    num_threads: int = 0
    logger: str = "csv"


class _RollingTask:
    """Two steps an epoch; the first time it reaches epoch 2 it fails after one step and rolls back to the
    end of epoch 0, as the language-model recipe does after a non-finite loss."""

    kind, dataset, parameters = "train", "toy", 1
    on_step = None

    def __init__(self, fail_at=None):
        self.rolled, self.fail_at = False, fail_at

    def run_epoch(self, epoch):
        if epoch == self.fail_at:
            raise KeyboardInterrupt
        for step in range(2):
            self.on_step(epoch, step, {"loss": float(10 * epoch + step)})
            if epoch == 2 and not self.rolled:
                self.rolled = True
                raise runner.Rollback(1)
        return {"loss": float(epoch)}

    def state_dict(self):
        return {"rolled": self.rolled}

    def load_state_dict(self, state):
        self.rolled = state["rolled"]

    def final(self, curve):
        return {"loss": curve[-1]["loss"]}

    def record_fields(self, curve):
        return {"experiment": "toy", "genotype": ""}


def test_a_rollback_drops_the_steps_it_undoes(tmp_path):
    runner.run(tmp_path, _ToyConfig(), lambda d, rundir, progress: _RollingTask(), dist=lambda: Dist(), progress=False)
    rows = _csv(tmp_path / loggers.STEPS_CSV)
    assert [(r["step"], r["epoch"], r["loss"]) for r in rows] == [
        ("1", "0", "0.0"), ("2", "0", "1.0"), ("3", "1", "10.0"), ("4", "1", "11.0"), ("5", "2", "20.0"),
        ("6", "2", "21.0"), ("7", "3", "30.0"), ("8", "3", "31.0")]
    assert [r["epoch"] for r in _csv(tmp_path / loggers.EPOCHS_CSV)] == ["0", "1", "2", "3"]


def test_a_checkpoint_without_step_counts_is_refused(tmp_path):
    config = _ToyConfig(logger="")
    with pytest.raises(KeyboardInterrupt):
        runner.run(tmp_path, config, lambda d, rundir, progress: _RollingTask(fail_at=3), dist=lambda: Dist(),
                   progress=False)
    rundir = RunDir(tmp_path)
    state = rundir.load_checkpoint(map_location="cpu")
    assert state["step_ends"] == [2, 4, 6]
    del state["step_ends"]
    rundir.save_checkpoint(state)
    with pytest.raises(DamagedCheckpointError, match="no global step for each of its 3 epochs"):
        runner.run(tmp_path, _ToyConfig(), lambda d, rundir, progress: _RollingTask(), dist=lambda: Dist(),
                   progress=False)
