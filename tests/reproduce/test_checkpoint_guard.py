"""The checkpoint guard of the one runner: a run resumes only from the checkpoint it wrote itself, under its
own config, at an epoch its metrics agree with; everything else is one line naming the file and the fix."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from train_helpers import make_cifar, refused_in_one_line, tiny_cifar, train_interrupted

from reproduce.__main__ import main
from reproduce.rundir import (
    DamagedCheckpointError,
    NonFiniteError,
    RunConfigMismatchError,
    RunDir,
    check_finite,
    load_checked,
    save_checked,
)
from reproduce.train import train


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def interrupted(cifar, tmp_path_factory):
    """A 2-epoch run stopped after its first epoch: checkpoint after epoch 1, one metrics line."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    train_interrupted(tiny_cifar(cifar), out)
    return out


@pytest.fixture
def run(interrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    return out


def _cli(cifar, out, *extra):
    return ["train", "cifar10", "--out", str(out), "--data", str(cifar), "--device", "cpu", "--num-threads", "1",
            "--epochs", "2", "--C", "4", "--layers", "3", "--batch-size", "16", "--eval-batch-size", "24",
            "--deterministic", "--no-progress", *extra]


def _rewrite(path, **changes):
    state = load_checked(path)
    state.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    save_checked(state, path)


def test_the_interrupted_run_resumes_when_nothing_was_touched(run, cifar):
    record = train("cifar10", tiny_cifar(cifar), run, progress=False)
    assert [m["epoch"] for m in record["curve"]] == [0, 1]


def test_two_flipped_bytes_in_the_checkpoint_are_refused_naming_the_file_and_the_fix(run, cifar, capsys):
    path = run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    payload = torch.load(path, weights_only=True)["payload"].numpy().tobytes()
    where = data.find(payload[len(payload) // 2:len(payload) // 2 + 64]) + 8  # inside the stored state
    data[where] ^= 0x01
    data[where + 9] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpointError, match="does not match its checksum"):
        train("cifar10", tiny_cifar(cifar), run, progress=False)
    refused_in_one_line(capsys, _cli(cifar, run), str(path), "to restart the run from its first epoch")
    assert not (run / "record.json").exists()


@pytest.mark.parametrize("content,match", [
    (b"garbage", "cannot read"),
    (b"", "cannot read"),
    ("list", "holds a list, not a checkpoint"),
    ("unchecked", "carries no checksum"),
])
def test_a_checkpoint_that_is_not_ours_isrefused_in_one_line(run, cifar, capsys, content, match):
    path = run / "checkpoint.pt"
    if content == "list":
        torch.save([1, 2], path)
    elif content == "unchecked":  # as written before checkpoints carried a checksum
        torch.save({"version": 1, "dataset": "cifar10", "epoch": 1, "task": {}}, path)
    else:
        path.write_bytes(content)
    refused_in_one_line(capsys, _cli(cifar, run), str(path), match)


def test_a_checkpoint_without_task_state_isrefused_in_one_line(run, cifar, capsys):
    _rewrite(run / "checkpoint.pt", task=None)
    refused_in_one_line(capsys, _cli(cifar, run), "holds no task state")


def test_a_checked_list_is_refused(run):
    save_checked({"x": 1}, run / "checkpoint.pt")
    outer = torch.load(run / "checkpoint.pt", weights_only=True)
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save([1, 2], buf)
    outer.update(payload=torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8),
                 sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    torch.save(outer, run / "checkpoint.pt")
    with pytest.raises(DamagedCheckpointError, match="holds a list, not a checkpoint"):
        RunDir(run).load_checkpoint()


def test_a_checkpoint_is_tied_to_the_config_even_when_config_json_is_deleted_or_edited(run, cifar, capsys):
    (run / "config.json").unlink()
    refused_in_one_line(capsys, _cli(cifar, run, "--lr", "0.3"), str(run / "checkpoint.pt"),
                        "another config: learning_rate (checkpoint 0.025, now 0.3)")
    assert not (run / "config.json").exists()  # the refused run left the directory as it was
    # config.json edited to say 0.3: the checkpoint still knows it was trained at 0.025
    (run / "config.json").write_text(json.dumps(dict(tiny_cifar(cifar).__dict__, learning_rate=0.3)))
    with pytest.raises(RunConfigMismatchError, match=r"disagree: learning_rate \(checkpoint 0.025, config.json 0.3\)"):
        train("cifar10", tiny_cifar(cifar, learning_rate=0.3), run, progress=False)
    assert not (run / "record.json").exists()


def test_an_edited_config_json_is_named_as_such_and_the_advice_leads_out(run, cifar, capsys):
    """Before: "rerun with the saved values", then "written by a run with another config": a circle."""
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(saved, learning_rate=0.3)))
    for lr in ("0.025", "0.3"):  # the checkpoint's value, then config.json's: both refused with the same truth
        refused_in_one_line(capsys, _cli(cifar, run, "--lr", lr),
                            "disagree: learning_rate (checkpoint 0.025, config.json 0.3)",
                            "put the checkpoint's values back in config.json and rerun with them")
    (run / "config.json").write_text(json.dumps(saved))  # the advice, followed
    assert main(_cli(cifar, run)) == 0 and (run / "record.json").exists()


def test_a_checkpoint_is_tied_to_its_epoch(run, cifar, capsys):
    _rewrite(run / "checkpoint.pt", epoch=99)
    refused_in_one_line(capsys, _cli(cifar, run), "written after epoch 99, but the run has epochs 1..2")
    assert not (run / "record.json").exists()


def test_lost_metrics_lines_are_refused_never_a_record_whose_curve_starts_later(run, cifar, capsys):
    _rewrite(run / "checkpoint.pt")  # unchanged
    (run / "metrics.jsonl").write_text("")
    refused_in_one_line(capsys, _cli(cifar, run), "metrics.jsonl holds no epoch where epochs 0..0 belong",
                        "restore metrics.jsonl")
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    refused_in_one_line(capsys, _cli(cifar, run), "holds epochs [1] where epochs 0..0 belong")


def test_metrics_removed_after_the_last_checkpoint_is_one_line(cifar, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def die(self, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "write_record", die)  # killed after the last checkpoint, before the record
    with pytest.raises(KeyboardInterrupt):
        train("cifar10", tiny_cifar(cifar, epochs=1), out, progress=False)
    monkeypatch.undo()
    (out / "metrics.jsonl").unlink()
    refused_in_one_line(capsys, _cli(cifar, out, "--epochs", "1"), "metrics.jsonl holds no epoch")
    assert not (out / "record.json").exists()


def test_the_nan_message_says_how_to_start_a_fresh_run_directory():
    with pytest.raises(NonFiniteError, match="start a fresh run directory: another --out"):
        check_finite("train_loss", float("nan"), 3)


def test_a_read_only_run_directory_is_one_line(cifar, tmp_path, capsys, monkeypatch):
    import errno
    import os

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    refused_in_one_line(capsys, _cli(cifar, tmp_path / "ro"), "is not writable (Read-only file system",
                        "use a directory you can write to")


@pytest.mark.parametrize("key,value,match", [
    ("train_loss", float("nan"), "line 1 holds 'train_loss': nan"),
    # in no metric's domain: once resumed into a finished record, refused only when read back or exported
    ("train_loss", -5000.0, "line 1: train_loss -5000 is outside its domain >= 0"),
    ("test_error", -5000.0, "line 1: test_error -5000 is outside its domain [0, 100]"),
])
def test_a_nan_or_out_of_domain_value_in_metrics_jsonl_is_one_line_naming_the_file_and_line(run, cifar, capsys,
                                                                                           key, value, match):
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    (run / "metrics.jsonl").write_text(json.dumps(dict(line, **{key: value})) + "\n")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    refused_in_one_line(capsys, _cli(cifar, run), f"{run / 'metrics.jsonl'}: {match}")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing lost, no record written
