"""Hostile values and files handed to the harness's command line: each refused in one line naming the problem,
within 30 s and 1.2 GB of peak memory, before anything is built or written. A refusal in a fresh process is
measured there (tests/child_bounds.py); every test here is bounded as a whole too (the ``bounded`` marker), one
fresh process per test so that each fits the 30 s."""
from __future__ import annotations

import json

import pytest
from train_helpers import make_cifar, refused_in_one_line, refused_within_bounds

from reproduce.__main__ import build_parser
from reproduce.config import load_config_file, overrides_from_args

pytestmark = pytest.mark.bounded

@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"))


def test_a_billion_cell_baseline_is_refused_within_bounds(tmp_path):
    refused_within_bounds(["cifar10", "--baseline", "random:1000000000", "--dry-run", "--out", tmp_path / "x"],
                          "--baseline", "asks for 10000000000 runs", "at most 1000")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("items,needle", [
    (2_000_000, "more than any config"),  # 6 MB
    (300_000, "epochs must be an integer"),  # under the size limit: read, refused and quoted briefly
])
def test_a_huge_config_file_is_refused_within_bounds_and_quoted_briefly(tmp_path, items, needle):
    (tmp_path / "big.json").write_text(json.dumps({"epochs": [0] * items}))
    err = refused_within_bounds(["train", "cifar10", "--config", tmp_path / "big.json", "--out", tmp_path / "run"],
                                needle)
    assert items > 1_000_000 or len(err) < 200, err  # the values read are quoted briefly
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command,needle", [
    ("train", "num_threads must be at most"),
    ("demo", "--threads must be at most"),
])
def test_thousands_of_threads_are_refused_before_the_data_is_blamed(tmp_path, cifar, command, needle):
    argv = (["train", "cifar10", "--num-threads", "100000", "--data", cifar] if command == "train" else
            ["demo", "--threads", "100000"])
    refused_within_bounds([*argv, "--out", tmp_path / "run"], needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,text,needle", [
    ("dup.json", '{"epochs": 1, "epochs": 100000000}', "gives the key 'epochs' twice"),
    ("dup.yaml", "epochs: 1\nepochs: 100000000\n", "gives the key 'epochs' twice"),
    ("nested.yaml", "a:\n  b: 1\n  b: 2\n", "gives the key 'b' twice"),
    ("alias.yaml", "a: &x [1, 2]\nb: *x\n", "an alias (*name)"),
    ("code.yaml", "a: !!python/object/apply:os.system ['echo hi']\n", "is not a valid config"),
    ("list.yml", "- 1\n- 2\n", "not a mapping of config fields"),
])
def test_ambiguous_or_unsafe_config_files_are_refused_in_one_line(capsys, tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    refused_in_one_line(capsys, ["train", "cifar10", "--config", str(tmp_path / name), "--out",
                                 str(tmp_path / "run")], str(tmp_path / name), needle)
    assert not (tmp_path / "run").exists()


def test_a_yaml_config_sets_fields_as_a_json_one_does(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 3\nlr: 0.05  # the original's name\ncutout: false\n")
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 3, "lr": 0.05, "cutout": False}))
    assert load_config_file(tmp_path / "c.yaml") == load_config_file(tmp_path / "c.json") == {
        "epochs": 3, "learning_rate": 0.05, "cutout": False}
    args = build_parser().parse_args(["train", "cifar10", "--config", str(tmp_path / "c.yaml"), "--epochs", "4",
                                      "--out", str(tmp_path / "run")])
    assert overrides_from_args(args)["epochs"] == 4  # the command line over the file


def test_a_device_that_is_not_here_is_one_line(capsys, tmp_path, cifar):
    for device in ("mps", "xpu"):
        refused_in_one_line(capsys, ["train", "cifar10", "--device", device, "--data", str(cifar), "--out",
                                     str(tmp_path / "run")], f"no {device} device is available here")
    assert not (tmp_path / "run").exists()


def _zip_bomb(path, inflated_mb: int = 300):
    """torch.save's file of a one-float tensor, rewritten deflated with its storage record grown to ``inflated_mb``
    MB of zeros, in a file of about 300 KB."""
    import io
    import zipfile

    import torch

    buf = io.BytesIO()
    torch.save(torch.zeros(1), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                z.writestr(info.filename, src.read(info))
                continue
            with z.open(info.filename, "w", force_zip64=True) as f:
                block = bytes(1 << 20)
                for _ in range(inflated_mb):
                    f.write(block)
    return path


def test_a_compressed_bomb_as_a_runs_checkpoint_is_refused_before_inflating(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config = {"seed": 0, "epochs": 1, "data": "x", "experiment": "cifar10"}
    (run / "config.json").write_text(json.dumps(config))
    (run / "record.json").write_text(json.dumps({
        "status": "finished", "kind": "train", "dataset": "cifar10", "seed": 0, "config": config,
        "genotype": "DARTS_V2", "final": {"test_error": 5.0}, "curve": [{"epoch": 0}]}))
    _zip_bomb(run / "checkpoint.pt")
    assert (run / "checkpoint.pt").stat().st_size < 2_000_000
    refused_within_bounds(["export", run, "--out", tmp_path / "m"], str(run / "checkpoint.pt"),
                          "its zip entries declare 3145", "bytes uncompressed", rss_mb=1200)
    assert not (tmp_path / "m").exists()


def test_running_out_of_memory_never_blames_the_data(capsys, tmp_path, cifar, monkeypatch):
    """Before: "data_batch_1 is not a readable CIFAR-10 batch (MemoryError) ... delete ... and download again"."""
    import zoo.datasets

    def no_memory(raw):
        raise MemoryError

    monkeypatch.setattr(zoo.datasets, "safe_unpickle_numpy", no_memory)
    err = refused_in_one_line(capsys, ["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path / "run"),
                                       "--device", "cpu"], "error: out of memory", "which is not at fault")
    assert "delete" not in err and "download" not in err


def test_the_auxiliary_advice_names_a_flag_that_works(capsys, tmp_path):
    refused_in_one_line(capsys, ["train", "cifar10", "--image-size", "16", "--out", str(tmp_path / "run")],
                        "use --no-auxiliary with smaller images")
    args = build_parser().parse_args(["train", "cifar10", "--image-size", "16", "--no-auxiliary", "--out",
                                      str(tmp_path / "run")])
    assert overrides_from_args(args)["auxiliary"] is False
