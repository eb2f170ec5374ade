"""What the zoo takes on trust, and what it no longer does: downloads that never end, files without a published
digest tried before checksummed ones, digests written beside the weights, sizes and types read off files.

Servers are on 127.0.0.1 (the ``server`` fixture of conftest.py); deadlines and caps are passed small so the tests
stay fast.
"""
import dataclasses
import hashlib
import io
import json
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo import download, registry
from zoo.__main__ import main
from zoo.loader import UNVERIFIED

_SMALL = {"C": 4, "layers": 3}  # darts-cifar10's network, small (the checks do not depend on its size)


def _weights(seed: int) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save(zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2").state_dict(), buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("fault,limit,why", [
    ("trickle", {"deadline": 1.5}, "not finished after 1.5 s"),
    ("endless", {"max_bytes": 1 << 20}, "stopped at 1048576 bytes"),
    (None, {"max_bytes": 1000}, "stopped at 1000 bytes"),  # a file larger than it can be
])
def test_a_download_stops_at_its_deadline_or_size_cap_and_leaves_nothing(tmp_path, online, server, fault, limit, why):
    server.files["/f"] = bytes(5000)
    if fault:
        server.faults["/f"] = fault
    with pytest.raises(download.DownloadLimitError, match=why):
        download.fetch(tmp_path / "f", url=server.url + "/f", timeout=1.0, progress=False, **limit)
    assert list(tmp_path.iterdir()) == []


def test_zoo_load_gives_up_on_a_trickling_mirror_and_says_why(monkeypatch, online, server):
    monkeypatch.setattr(download, "DEADLINE_S", 1.0)
    server.files["/site/cifar10_model.pt"] = _weights(0)
    server.faults["/site/cifar10_model.pt"] = "trickle"
    monkeypatch.setenv("DARTS_ZOO_URL_PREFIX", server.url + "/site")
    entry = registry.get_entry("darts-cifar10")
    only = dataclasses.replace(entry.sources[1], kind="url", location=server.url + "/gone")
    monkeypatch.setitem(registry._REGISTRY, entry.name, dataclasses.replace(entry, sources=(only,), args={
        **entry.args, **_SMALL}))
    with pytest.raises(zoo.WeightsNotFoundError, match="not finished after 1 s, the deadline of one file"):
        zoo.load("darts-cifar10")
    assert not any((download.zoo_home() / "original").glob("*"))


def test_the_zoo_cache_follows_xdg_cache_home_after_darts_zoo_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DARTS_ZOO_HOME", str(tmp_path / "zoo"))
    assert download.zoo_home() == tmp_path / "zoo"  # DARTS_ZOO_HOME first
    monkeypatch.delenv("DARTS_ZOO_HOME")
    assert download.zoo_home() == tmp_path / "xdg" / "darts-zoo"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert download.zoo_home() == download.Path.home() / ".cache" / "darts-zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert download.zoo_home() == download.Path.home() / ".cache" / "darts-zoo"


# ----------------------------------------------------------------------------------------------- sources


@pytest.fixture
def two_sources(monkeypatch, online, server):
    """darts-cifar10 (small) with an unverified source listed first and a checksummed one second; the site mirror
    serves random weights under the unverified file's name."""
    verified, random_ = _weights(1), _weights(2)
    entry = registry.get_entry("darts-cifar10")
    unverified = registry.Source(kind="url", location=server.url + "/pub/cifar10_model.pt",
                                 filename="cifar10_model.pt", provenance="the authors' release cifar10_model.pt",
                                 metrics={"top1_error": 2.63}, metrics_source="the authors' README")
    checked = registry.Source(kind="url", location=server.url + "/pub/copy.pt", filename="copy.pt",
                              sha256=hashlib.sha256(verified).hexdigest(), provenance="a checksummed copy",
                              metrics={"top1_error": 2.63}, metrics_source="the authors' README, for this file")
    monkeypatch.setitem(registry._REGISTRY, entry.name, dataclasses.replace(
        entry, sources=(unverified, checked), args={**entry.args, **_SMALL}))
    monkeypatch.setenv("DARTS_ZOO_URL_PREFIX", server.url + "/site")
    server.files["/site/cifar10_model.pt"] = random_
    server.files["/pub/copy.pt"] = verified
    return {"verified": torch.load(io.BytesIO(verified)), "random": torch.load(io.BytesIO(random_))}


def _holds(model, sd) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in sd.items())


def test_every_checksummed_source_is_tried_before_a_file_without_a_digest(server, two_sources):
    model = zoo.load("darts-cifar10")
    assert _holds(model, two_sources["verified"])
    assert server.requests == ["/site/copy.pt", "/pub/copy.pt"]  # the site mirror first, then the public copy
    src = model.zoo_config["source"]
    assert src["verified"] is True and "verification" not in src and model.zoo_config["metrics"] == {"top1_error": 2.63}


def test_weights_from_a_file_without_a_digest_are_labelled_and_carry_no_figures(monkeypatch, server, two_sources):
    del server.files["/pub/copy.pt"]
    model = zoo.load("darts-cifar10")
    assert _holds(model, two_sources["random"])
    assert server.requests == ["/site/copy.pt", "/pub/copy.pt", "/site/cifar10_model.pt"]
    cfg = model.zoo_config
    assert cfg["source"]["verification"] == UNVERIFIED == "not verified against a published digest"
    assert cfg["metrics"] == {} and cfg["source"]["publisher_metrics"] == {"top1_error": 2.63}
    assert UNVERIFIED in cfg["description"]
    card = (download.zoo_home() / "models" / "darts-cifar10" / "README.md").read_text()
    assert f"These weights were {UNVERIFIED}" in card
    assert "The publisher's figures for their file, not a measurement of these weights: top-1 error (%) 2.63" in card
    assert "None recorded: these weights have not been evaluated." in card
    # offline, the labelled copy is what there is; online, a checksummed file replaces it as soon as one is served
    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")
    assert zoo.load("darts-cifar10").zoo_config["source"]["verification"] == UNVERIFIED
    monkeypatch.delenv("DARTS_ZOO_OFFLINE")
    server.files["/pub/copy.pt"] = _weights(1)
    model = zoo.load("darts-cifar10")
    assert _holds(model, two_sources["verified"]) and model.zoo_config["source"]["verified"] is True


def test_zoo_info_says_which_sources_are_not_verified(capsys):
    assert main(["info", "darts-ptb"]) == 0
    assert "weights from it are not verified against a published digest" in capsys.readouterr().out
    sources = zoo.info("darts-cifar10")["sources"]
    assert [s["verified"] for s in sources] == [True, False]


# ----------------------------------------------------------------------------------------------- saved models


def _saved(tmp_path):
    model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2")
    return zoo.save_pretrained(model, tmp_path / "m", card=False)


def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return cfg


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_even_with_a_digest_beside_them(tmp_path, value):
    d = _saved(tmp_path)
    tensors = load_file(d / "model.safetensors")
    tensors["classifier.weight"].fill_(value)
    save_file(tensors, d / "model.safetensors")
    blob = (d / "model.safetensors").read_bytes()  # whoever wrote the folder writes the digest too
    _edit_config(d, files={"model.safetensors": {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}})
    with pytest.raises(zoo.ModelLoadError, match=r"non-finite values \(NaN/inf\) in classifier.weight"):
        zoo.load(str(d))


@pytest.mark.parametrize("files", [{"model.safetensors": []}, [], {"model.safetensors": {"size": "12"}},
                                   {"model.safetensors": {"sha256": 5}}])
def test_a_malformed_files_entry_is_one_line(tmp_path, files):
    d = _saved(tmp_path)
    _edit_config(d, files=files)
    with pytest.raises(zoo.ModelLoadError, match="'files' must map model.safetensors to"):
        zoo.load(str(d))


def test_the_recorded_size_is_compared_before_the_file_is_read(tmp_path):
    d = _saved(tmp_path)
    with open(d / "model.safetensors", "r+b") as f:  # 10 GB, sparse: nothing is written to disk
        f.truncate(10 << 30)
    with pytest.raises(zoo.ModelLoadError, match="10737418240 bytes, config.json says"):
        zoo.load(str(d))
    _edit_config(d, files={})  # no size recorded: the zoo's own cap
    with pytest.raises(zoo.ModelLoadError, match="more than the 2147483648 the zoo reads"):
        zoo.load(str(d))


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.complex64])
def test_weights_of_another_kind_of_number_are_refused_not_cast(tmp_path, dtype):
    d = _saved(tmp_path)
    tensors = load_file(d / "model.safetensors")
    tensors["classifier.weight"] = tensors["classifier.weight"].to(dtype)
    save_file(tensors, d / "model.safetensors")
    _edit_config(d, files={})
    with pytest.raises(zoo.StateDictMismatchError, match=f"classifier.weight: file dtype {dtype} cannot stand for"):
        zoo.load(str(d))


def test_a_meta_tensor_in_a_checkpoint_is_one_line_in_convert_and_eval(tmp_path, capsys):
    sd = OrderedDict(zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2").state_dict())
    sd["classifier.weight"] = torch.empty(sd["classifier.weight"].shape, device="meta")
    torch.save(sd, tmp_path / "meta.pt")
    assert main(["convert", "cifar10", str(tmp_path / "meta.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a meta tensor holds no values" in err and err.count("\n") == 1
    assert main(["eval", str(tmp_path / "meta.pt"), "--data", str(tmp_path)]) == 2
    assert "a meta tensor holds no values" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sizes_within_the_limits_that_multiply_past_memory_are_refused_before_allocating():
    with pytest.raises(ValueError, match="NetworkCIFAR of these sizes would have 55.* parameters .* than the zoo"):
        zoo.NetworkCIFAR(256, 10, 64, True, "DARTS_V2")
    with pytest.raises(ValueError, match="RNNModel of these sizes would have 4,43.* parameters"):
        zoo.RNNModel(1_000_000, 4096, 4096, 4096)


# ----------------------------------------------------------------------------------------------- pushing


def test_push_is_refused_in_one_line_offline_or_without_credentials(tmp_path, monkeypatch, capsys):
    d = _saved(tmp_path)
    assert main(["push", str(d), "org/repo"]) == 2  # DARTS_ZOO_OFFLINE=1 in the tests
    assert capsys.readouterr().err == ("error: offline (DARTS_ZOO_OFFLINE or HF_HUB_OFFLINE is set), so nothing is "
                                       "pushed; unset it to publish\n")
    monkeypatch.delenv("DARTS_ZOO_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    assert main(["push", str(d), "org/repo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Hugging Face credentials, so nothing is pushed") and err.count("\n") == 1


# ----------------------------------------------------------------------------------------------- found by the sweep


def test_a_checkpoint_with_integer_keys_is_one_line(tmp_path):
    torch.save({1: torch.zeros(1)}, tmp_path / "k.pt")
    with pytest.raises(zoo.ModelLoadError, match="cannot tell which DARTS network"):
        zoo.load(str(tmp_path / "k.pt"))


def test_float8_weights_are_checked_for_finite_values(tmp_path):
    d = _saved(tmp_path)
    tensors = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v
               for k, v in load_file(d / "model.safetensors").items()}
    tensors["classifier.bias"] = torch.full_like(tensors["classifier.bias"], float("nan"))
    save_file(tensors, d / "model.safetensors")
    _edit_config(d, files={})
    with pytest.raises(zoo.ModelLoadError, match="non-finite values"):
        zoo.load(str(d))


@pytest.mark.parametrize("change,why", [
    ({"preprocessing": {"resize": 10**9}}, "preprocessing resize=1000000000 must be an integer from 1 to 4096"),
    ({"preprocessing": {"mean": [0.5] * 100_000}}, "must be a list of at most 1024 finite numbers"),
    ({"preprocessing": {"std": [0, 0, 0]}}, "numbers above 0"),
    ({"dataset": "x" * 100_000}, "'dataset' must be a dataset's name, not 'xxxx"),
    ({"genotype": "Genotype(normal=[" + "('skip_connect', 0), " * 20_000}, "genotype text of 420017 characters"),
    ({"description": "d" * 2_000_000}, "not a config"),
])
def test_config_values_that_would_cost_without_bound_are_refused(tmp_path, change, why):
    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    for k, v in change.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.ModelLoadError, match=why) as e:
        zoo.load(str(d))
    assert len(str(e.value)) < 600


def test_an_unknown_argument_with_a_long_name_is_quoted_briefly(tmp_path):
    d = _saved(tmp_path)
    _edit_config(d, args={"C": 4, "num_classes": 10, "layers": 3, "auxiliary": False, "x" * 1_000_000: 1})
    with pytest.raises(zoo.ModelLoadError, match="takes no argument") as e:
        zoo.load(str(d))
    assert len(str(e.value)) < 600


def test_download_failures_are_os_errors(tmp_path, online, server):
    server.files["/f"] = bytes(100_000)
    server.faults["/f"] = "truncate"
    with pytest.raises(OSError, match="incomplete"):
        download.fetch(tmp_path / "f", url=server.url + "/f", timeout=1.0, progress=False)
