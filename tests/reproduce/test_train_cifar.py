"""CIFAR-10 recipe end to end on a tiny CIFAR-10 written in the real python-batch format."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import make_cifar, tiny_cifar

import genotypes
from reproduce.rundir import NonFiniteError
from reproduce.train import train
from reproduce.train.cifar import CIFARTask, augment, draw_augmentation
from zoo.datasets import CIFAR_MEAN, CIFAR_STD

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"))


def _strip(curve):
    return [{k: v for k, v in m.items() if k != "time_s"} for m in curve]


def test_cifar_run_writes_a_finished_record_with_curve_and_final_test_error(cifar, tmp_path):
    out = tmp_path / "run"
    record = train("cifar10", tiny_cifar(cifar), out, progress=False)
    assert record["kind"] == "train" and record["dataset"] == "cifar10" and record["status"] == "finished"
    assert record["genotype"] == genotypes.format(genotypes.get("DARTS_V2"))
    assert [m["epoch"] for m in record["curve"]] == [0, 1]
    for m in record["curve"]:
        assert {"train_loss", "train_acc", "test_error", "lr"} <= set(m)
    # the cosine schedule steps per epoch: epoch 1 of 2 runs at lr0 / 2; drop-path ramps with the epoch
    assert record["curve"][0]["lr"] == pytest.approx(0.025) and record["curve"][1]["lr"] == pytest.approx(0.0125)
    assert record["curve"][1]["drop_path_prob"] == pytest.approx(0.1)
    assert 0 <= record["final"]["test_error"] <= 100
    assert record["parameters"] > 0 and record["config"]["C"] == 4
    on_disk = json.loads((out / "record.json").read_text())
    assert on_disk["final"] == record["final"]
    assert (out / "checkpoint.pt").exists() and (out / "config.json").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_finished_run_is_skipped_and_not_overwritten(cifar, tmp_path):
    out = tmp_path / "run"
    first = train("cifar10", tiny_cifar(cifar, epochs=1), out, progress=False)
    stamp = (out / "record.json").stat().st_mtime_ns
    again = train("cifar10", tiny_cifar(cifar, epochs=1), out, progress=False)
    assert again == first and (out / "record.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="finished run with another config: seed"):
        train("cifar10", tiny_cifar(cifar, epochs=1, seed=3), out, progress=False)
    assert (out / "record.json").stat().st_mtime_ns == stamp


def test_deterministic_runs_with_the_same_seed_give_bit_identical_metrics(cifar, tmp_path):
    a = train("cifar10", tiny_cifar(cifar), tmp_path / "a", progress=False)
    b = train("cifar10", tiny_cifar(cifar), tmp_path / "b", progress=False)
    assert _strip(a["curve"]) == _strip(b["curve"]) and a["final"] == b["final"]
    c = train("cifar10", tiny_cifar(cifar, seed=1), tmp_path / "c", progress=False)
    assert _strip(c["curve"]) != _strip(a["curve"])


def test_valid_split_holds_out_training_images_and_reports_valid_error(cifar, tmp_path):
    # (also runs the channels_last path)
    record = train("cifar10", tiny_cifar(cifar, epochs=1, valid_split=16, channels_last=True), tmp_path / "v",
                   progress=False)
    assert "valid_error" in record["curve"][0] and "test_error" not in record["curve"][0]
    assert {"valid_error", "test_error"} <= set(record["final"])


def test_interrupted_run_resumes_from_its_checkpoint_and_gives_the_same_curve(cifar, tmp_path, monkeypatch):
    full = train("cifar10", tiny_cifar(cifar), tmp_path / "full", progress=False)
    original = CIFARTask.run_epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(CIFARTask, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train("cifar10", tiny_cifar(cifar), tmp_path / "part", progress=False)
    assert not (tmp_path / "part" / "record.json").exists()
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(CIFARTask, "run_epoch", original)
    resumed = train("cifar10", tiny_cifar(cifar), tmp_path / "part", progress=False)
    assert _strip(resumed["curve"]) == _strip(full["curve"]) and resumed["final"] == full["final"]


def test_a_different_config_in_the_same_directory_is_refused(cifar, tmp_path):
    train("cifar10", tiny_cifar(cifar, epochs=1), tmp_path / "r", progress=False)
    (tmp_path / "r" / "record.json").unlink()
    with pytest.raises(ValueError, match="another config"):
        train("cifar10", tiny_cifar(cifar, epochs=1, lr=0.5), tmp_path / "r", progress=False)


def test_non_finite_loss_stops_with_a_clear_error_and_no_record(cifar, tmp_path):
    with pytest.raises(NonFiniteError, match="no result"):
        train("cifar10", tiny_cifar(cifar, epochs=2, lr=1e38, momentum=0.0), tmp_path / "nan", progress=False)
    assert not (tmp_path / "nan" / "record.json").exists()


def test_missing_dataset_is_a_clear_error_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found.*download"):
        train("cifar10", tiny_cifar(tmp_path / "nothing"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


def test_malformed_dataset_file_is_a_clear_error(cifar, tmp_path):
    bad = make_cifar(tmp_path / "bad")
    (bad / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3"):
        train("cifar10", tiny_cifar(bad), tmp_path / "run", progress=False)


def test_augment_crops_flips_normalises_and_cuts_out_like_the_original():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    mean, std = torch.tensor(CIFAR_MEAN), torch.tensor(CIFAR_STD)
    ref = (x.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    p = {"oy": torch.tensor([4, 0, 8]), "ox": torch.tensor([4, 0, 8]), "flip": torch.tensor([False, False, True]),
         "cy": torch.tensor([0, 0, 0]), "cx": torch.tensor([0, 0, 0])}
    out = augment(x, p, mean, std, cutout_length=0)
    assert torch.allclose(out[0], ref[0], atol=1e-6)  # centred crop, no flip = the image
    # offset 0: the first 4 rows/cols are padding (raw 0 -> -mean/std), then the image shifted by 4
    pad_value = (-mean / std).view(3, 1)
    assert torch.allclose(out[1][:, :4, :].reshape(3, -1), pad_value.expand(3, 4 * 32), atol=1e-6)
    assert torch.allclose(out[1][:, 4:, 4:], ref[1][:, :28, :28], atol=1e-6)
    # offset 8 then flip: the crop is rows/cols 4.. of the image plus padding, mirrored left-right
    crop = torch.full((3, 32, 32), 0.0)
    crop[:] = pad_value.view(3, 1, 1)
    crop[:, :28, :28] = ref[2][:, 4:, 4:]
    assert torch.allclose(out[2], crop.flip(2), atol=1e-6)
    # cutout centred at (0, 0) with length 16 zeroes the clipped 8x8 corner only
    cut = augment(x, p, mean, std, cutout_length=16)
    assert (cut[0][:, :8, :8] == 0).all() and torch.allclose(cut[0][:, 8:, :], ref[0][:, 8:, :], atol=1e-6)
    # drawn parameters are in the original's ranges
    d = draw_augmentation(1000, g)
    assert d["oy"].min() == 0 and d["oy"].max() == 8 and d["cy"].max() == 31 and d["flip"].any()


@pytest.mark.slow
def test_kill_minus_nine_mid_run_then_rerun_gives_the_uninterrupted_curve(cifar, tmp_path):
    args = ["--data", str(cifar), "--device", "cpu", "--num-threads", "1", "--epochs", "2", "--C", "4",
            "--layers", "3", "--batch-size", "8", "--deterministic", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "reproduce", "train", "cifar10", "--out", str(out), *args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "record.json").exists(), "the kill came too late"
    done = subprocess.run([sys.executable, "-m", "reproduce", "train", "cifar10", "--out", str(out), "--json", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "record.json").read_text())
    full = train("cifar10", tiny_cifar(cifar, epochs=2, batch_size=8), tmp_path / "full", progress=False)
    assert _strip(resumed["curve"]) == _strip(full["curve"])
    assert json.loads(done.stdout.strip().splitlines()[-1]) == full["final"]
    assert all(math.isfinite(v) for v in full["final"].values())


def test_cuda_graphs_on_a_cpu_is_refused_before_training(cifar, tmp_path):
    with pytest.raises(ValueError, match="cuda_graphs needs one process on a CUDA device"):
        train("cifar10", tiny_cifar(cifar, cuda_graphs=True), tmp_path / "g", progress=False)
    assert not (tmp_path / "g" / "config.json").exists()


def test_compiled_training_keeps_one_graph_across_epochs_of_changing_drop_path(tmp_path, monkeypatch):
    # The recipe's drop-path probability changes every epoch; compiled, it is a tensor updated in place, so
    # no epoch recompiles. (backend="eager": dynamo's graph capture and guards without inductor's C++ build.)
    import functools

    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    data = make_cifar(tmp_path / "data", n_train=32, n_test=16)
    graphs = {}
    for epochs in (2, 4):
        torch._dynamo.reset()
        counters.clear()
        record = train("cifar10", tiny_cifar(data, epochs=epochs, compile=True, auxiliary=False, batch_size=16),
                       tmp_path / f"run-{epochs}", progress=False)
        graphs[epochs] = counters["stats"]["unique_graphs"]
        assert [row["drop_path_prob"] for row in record["curve"]] == [0.2 * e / epochs for e in range(epochs)]
    torch._dynamo.reset()
    assert graphs[4] == graphs[2], graphs  # more epochs, no more graphs
