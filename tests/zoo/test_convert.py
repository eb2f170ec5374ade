"""Importing the original checkpoint formats (written here from stand-ins, as PyTorch 0.3.1 wrote them)."""
import json
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from zoo_testutil import Evil, legacy_rnn_model, legacy_state_dict, write_legacy

import genotypes
import zoo
from zoo import convert as C
from zoo import legacy as L
from zoo.loader import _is_entrys_conversion
from zoo.registry import get_entry


@pytest.fixture
def cifar_file(tmp_path, zoo_ref):
    ref = zoo_ref("cifar_small.pt")
    path = tmp_path / "cifar10_model.pt"
    write_legacy(legacy_state_dict(ref["state_dict"]), path)
    return path, ref


@pytest.fixture
def imagenet_file(tmp_path, zoo_ref):
    ref = zoo_ref("imagenet_small.pt")
    sd = legacy_state_dict(ref["state_dict"])
    wrapped = OrderedDict(("module." + k, v) for k, v in sd.items())
    momentum = {i: torch.zeros(3) for i in range(3)}
    checkpoint = {"epoch": 250, "state_dict": wrapped, "best_acc_top1": 73.3,
                  "optimizer": {"state": {i: {"momentum_buffer": m} for i, m in momentum.items()},
                                "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1, 2]}]}}
    path = tmp_path / "imagenet_model.pt"
    write_legacy(checkpoint, path)
    return path, ref


@pytest.fixture
def ptb_file(tmp_path, zoo_ref):
    ref = zoo_ref("ptb_small.pt")
    cfg = ref["config"]
    obj = legacy_rnn_model(ref["state_dict"], cfg["ntoken"], cfg["ninp"], genotypes.get(cfg["genotype"], "rnn"))
    path = tmp_path / "ptb_model.pt"
    write_legacy(obj, path)
    return path, ref


def test_legacy_files_written_here_are_the_real_legacy_format(cifar_file):
    # torch's own (weights-only) legacy reader agrees with the test writer
    path, ref = cifar_file
    sd = torch.load(path, map_location="cpu", weights_only=True)
    expected = legacy_state_dict(ref["state_dict"])
    assert list(sd) == list(expected)
    assert all(torch.equal(sd[k], expected[k]) for k in sd)


def test_cifar10_state_dict_converts_to_the_original_networks_outputs(cifar_file):
    path, ref = cifar_file
    sd, info = C.original_state_dict(path, "cifar10")
    assert info["format"] == "legacy" and info["args"] == {"C": 8, "num_classes": 10, "layers": 5, "auxiliary": True}
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    model, _ = C.model_from_original(path, "cifar10")
    with torch.no_grad():
        out = model(ref["input"])
    assert (out - ref["logits"]).abs().max() < 1e-5


def test_imagenet_state_dict_wrapper_with_module_prefix_converts(imagenet_file):
    path, ref = imagenet_file
    sd, info = C.original_state_dict(path, "imagenet")
    assert not any(k.startswith("module.") for k in sd)
    assert info["args"] == {"C": 8, "num_classes": 20, "layers": 5, "auxiliary": True}
    model, _ = C.model_from_original(path, "imagenet")
    with torch.no_grad():
        out = model(ref["input"])
    assert (out - ref["logits"]).abs().max() < 1e-5


def test_ptb_whole_model_pickle_converts_with_sizes_and_genotype_from_the_file(ptb_file):
    path, ref = ptb_file
    sd, info = C.original_state_dict(path, "ptb")
    assert info["args"]["ntoken"] == 50 and info["args"]["ninp"] == 24
    assert info["args"]["dropout"] == 0.75 and info["args"]["dropoutx"] == 0.75
    assert info["genotype"] == genotypes.get("DARTS_V2", "rnn")
    assert info["tied"] == {"decoder.weight": "encoder.weight"}
    assert sd["decoder.weight"] is sd["encoder.weight"]
    model, _ = C.model_from_original(path, "ptb")
    assert model.decoder.weight is model.encoder.weight
    with torch.no_grad():
        log_prob, hidden = model(ref["input"], model.init_hidden(ref["input"].size(1)))
    assert (log_prob - ref["log_prob"]).abs().max() < 1e-5
    assert (hidden[0] - ref["hidden"]).abs().max() < 1e-5


def test_ptb_converter_reads_a_genotype_that_differs_from_the_registry(tmp_path, zoo_ref):
    ref = zoo_ref("ptb_small.pt")
    enas = genotypes.get("ENAS", "rnn")
    sd = {k: v for k, v in ref["state_dict"].items() if not k.startswith("rnns.0._Ws")}
    for i in range(len(enas.recurrent)):
        sd[f"rnns.0._Ws.{i}"] = torch.randn(24, 48) * 0.04
    # ENAS's concat is not a range: write it as the list it is in the original genotypes.py
    obj = legacy_rnn_model(sd, 50, 24, genotypes.make_rnn(enas.recurrent, range(1, 9)))
    obj._modules["rnns"]._modules["0"].genotype = obj._modules["rnns"]._modules["0"].genotype._replace(
        concat=list(enas.concat))
    path = tmp_path / "enas.pt"
    write_legacy(obj, path)
    model, info = C.model_from_original(path, "ptb")
    assert model.genotype == enas and not info["matches_entry"]


def test_a_full_size_grey_darts_v2_file_is_not_tagged_as_the_released_rgb_model(tmp_path):
    """C, layers, num_classes and genotype of darts-cifar10, but a 1-channel stem: another network's weights."""
    torch.save(zoo.NetworkCIFAR(36, 10, 20, False, "DARTS_V2", in_chans=1).state_dict(), tmp_path / "grey.pt")
    model, info = C.model_from_original(tmp_path / "grey.pt", "cifar10")
    assert model.in_chans == 1 and not info["matches_entry"] and model.zoo_config["name"] is None
    out = C.convert(tmp_path / "grey.pt", "cifar10", tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["name"] is None
    # the loader's check of a converted copy in its cache is the same one
    entry = get_entry("darts-cifar10")
    cfg = {"name": entry.name, "genotype": entry.genotype, "args": {**entry.args, "auxiliary": False},
           "source": {"entry": entry.name, "sha256": "0" * 64, "file": entry.sources[0].filename}}
    assert _is_entrys_conversion(entry, cfg)
    assert not _is_entrys_conversion(entry, {**cfg, "args": {**cfg["args"], "in_chans": 1}})
    assert _is_entrys_conversion(entry, {**cfg, "args": {**cfg["args"], "drop_path_rate": 0.2}})


def test_files_from_todays_torch_save_are_read_too(tmp_path, zoo_ref):
    ref = zoo_ref("cifar_small.pt")
    legacy = tmp_path / "legacy_new_torch.pt"
    torch.save({"state_dict": ref["state_dict"]}, legacy, _use_new_zipfile_serialization=False)
    zipped = tmp_path / "zip.pt"
    torch.save(ref["state_dict"], zipped)
    for path, fmt in ((legacy, "legacy"), (zipped, "zip")):
        model, info = C.model_from_original(path, "cifar10")
        assert info["format"] == fmt
        with torch.no_grad():
            assert (model(ref["input"]) - ref["logits"]).abs().max() < 1e-5


@pytest.mark.parametrize("fmt", ["legacy", "plain"])
def test_code_carrying_pickle_is_refused_and_nothing_runs(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = tmp_path / "ptb_model.pt"
    if fmt == "legacy":  # inside the object pickle of a well-formed legacy file
        write_legacy(OrderedDict([("encoder.weight", Evil(marker))]), path)
    else:  # a bare pickle where the magic number should be
        path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(L.UnsafeCheckpointError, match=r"refusing to load global '(posix|os)\.system'"):
        C.original_state_dict(path, "cifar10")
    assert not marker.exists()


def test_only_allow_listed_classes_may_pose_as_modules_or_storages(tmp_path):
    import zoo_testutil as T

    # a persistent id that names a non-module class, and a storage of an unknown type
    bad_module = T._module(T.legacy_class("subprocess", "Popen"))
    path = tmp_path / "x.pt"
    write_legacy(bad_module, path)
    with pytest.raises(L.UnsafeCheckpointError, match="subprocess.Popen"):
        L.load_original(path)


def test_truncated_and_corrupted_files_stop_with_a_clear_error(cifar_file, tmp_path):
    path, _ = cifar_file
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:-100])
    with pytest.raises(C.CheckpointError, match="truncated"):
        C.original_state_dict(cut, "cifar10")
    early = tmp_path / "early.pt"
    early.write_bytes(data[:200])
    with pytest.raises(C.CheckpointError, match="damaged"):
        C.original_state_dict(early, "cifar10")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(C.CheckpointError, match="neither the legacy nor the zip"):
        C.original_state_dict(garbage, "cifar10")
    nan = tmp_path / "nan.pt"
    sd, _ = C.original_state_dict(path, "cifar10")
    sd["classifier.weight"] = torch.full_like(sd["classifier.weight"], float("nan"))
    write_legacy(sd, nan)
    with pytest.raises(C.CheckpointError, match="non-finite values .* classifier.weight"):
        C.model_from_original(nan, "cifar10")


def test_wrong_kind_or_architecture_is_explained(cifar_file, ptb_file):
    with pytest.raises(C.CheckpointError, match="expected a pickled model.RNNModel"):
        C.original_state_dict(cifar_file[0], "ptb")
    with pytest.raises(C.CheckpointError, match="does not look like a DARTS imagenet network"):
        C.original_state_dict(cifar_file[0], "imagenet")
    with pytest.raises(zoo.StateDictMismatchError, match="state dict does not fit"):
        C.model_from_original(cifar_file[0], "cifar10", genotype="NASNet")


def test_zoo_load_accepts_an_original_file_directly_or_for_a_name(cifar_file, ptb_file, zoo_ref):
    path, ref = cifar_file
    for model in (zoo.load(str(path)), zoo.load("darts-cifar10", checkpoint=path)):
        with torch.no_grad():
            assert (model(ref["input"]) - ref["logits"]).abs().max() < 1e-5
    model = zoo.load(str(ptb_file[0]))
    assert type(model).__name__ == "RNNModel" and model.ntoken == 50


@pytest.mark.slow  # a real `python -m zoo` process
def test_convert_cli_writes_a_saved_model_that_loads_to_the_same_outputs(cifar_file, tmp_path, repo_root):
    path, ref = cifar_file
    out = tmp_path / "converted"
    cmd = [sys.executable, "-m", "zoo", "convert", "cifar10", str(path), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    r = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == [
        "README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["source"]["file"] == "cifar10_model.pt" and len(cfg["source"]["sha256"]) == 64
    model = zoo.load(str(out))
    with torch.no_grad():
        assert (model(ref["input"]) - ref["logits"]).abs().max() < 1e-5


def test_convert_cli_errors_are_one_line_with_exit_code_2(cifar_file, tmp_path, capsys):
    from zoo.__main__ import main

    path, _ = cifar_file
    out = tmp_path / "converted"
    assert main(["convert", "cifar10", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    # a second conversion does not silently overwrite
    assert main(["convert", "cifar10", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--force" in err
    assert main(["convert", "cifar10", str(path), "--out", str(out), "--force"]) == 0
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    for argv in (["convert", "ptb", str(bad), "--out", str(tmp_path / "o")],
                 ["convert", "ptb", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")],
                 ["convert", "imagenet", str(path), "--out", str(tmp_path / "o")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
