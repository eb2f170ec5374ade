"""from_pretrained / save_pretrained / push_to_hub on the network classes (huggingface_hub's mixin interface),
over the zoo's own files: against a local directory, a faked hub download and the real client on a local hub."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from fake_hub import FakeHub
from zoo_testutil import matches_reference

import zoo
from zoo import hub_mixin
from zoo import registry as R
from zoo.registry import Source


def test_save_pretrained_writes_the_zoo_files_and_from_pretrained_reads_them(cifar_model, tmp_path):
    model, ref = cifar_model
    assert model.save_pretrained(tmp_path / "m") is None
    assert {"README.md", "config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "m").iterdir()}
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format"] == "darts-zoo" and cfg["arch"] == "NetworkCIFAR"
    assert "DARTS" in (tmp_path / "m" / "README.md").read_text()  # our model card, not huggingface_hub's template
    loaded = zoo.NetworkCIFAR.from_pretrained(tmp_path / "m")
    assert type(loaded) is zoo.NetworkCIFAR and not loaded.training and matches_reference(loaded, ref)
    assert matches_reference(zoo.load(str(tmp_path / "m")), ref)  # the same files as zoo.save_pretrained's
    with pytest.raises(zoo.ModelLoadError, match="holds a NetworkCIFAR, not a NetworkImageNet"):
        zoo.NetworkImageNet.from_pretrained(str(tmp_path / "m"))


def test_from_pretrained_takes_the_load_options(cifar_model, tmp_path):
    model, _ = cifar_model
    model.save_pretrained(tmp_path / "m")
    m = zoo.NetworkCIFAR.from_pretrained(str(tmp_path / "m"), num_classes=3, in_chans=1)
    assert m.num_classes == 3 and m.in_chans == 1
    backbone = zoo.NetworkCIFAR.from_pretrained(str(tmp_path / "m"), features_only=True, out_indices=(-1,))
    assert backbone.feature_info.reduction() == [4]


def test_a_loaded_model_saved_again_keeps_what_its_card_says_of_the_weights(cifar_model, tmp_path):
    model, _ = cifar_model
    source = {"provenance": "a test run", "url": "https://example.org/w"}
    zoo.save_pretrained(model, tmp_path / "a", metrics={"top1_error": 9.5}, metrics_source="measured here",
                        source=source, description="a small test network")
    zoo.NetworkCIFAR.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    a, b = (json.loads((tmp_path / d / "config.json").read_text()) for d in "ab")
    for key in ("metrics", "metrics_source", "source", "description", "dataset", "name"):
        assert a[key] == b[key], key
    assert "9.5" in (tmp_path / "b" / "README.md").read_text()


@pytest.mark.parametrize("change", ["reset_classifier", "set_in_chans", "trained"])
def test_a_loaded_model_whose_weights_changed_is_saved_without_the_files_metrics_and_source(cifar_model, tmp_path,
                                                                                           change):
    model, _ = cifar_model
    zoo.save_pretrained(model, tmp_path / "a", name="darts-cifar10", metrics={"top1_error": 9.5},
                        metrics_source="measured here", source={"provenance": "a test run"},
                        description="a small test network")
    loaded = zoo.NetworkCIFAR.from_pretrained(tmp_path / "a")
    if change == "reset_classifier":
        loaded.reset_classifier(5)
    elif change == "set_in_chans":
        loaded.set_in_chans(1)
    else:  # one optimiser step's worth of change
        with torch.no_grad():
            loaded.cells[0].preprocess1.op[1].weight.add_(1e-3)
    loaded.save_pretrained(tmp_path / "b")
    b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert b["metrics"] == {} and b["source"] == {} and b["description"] != "a small test network"
    assert b["name"] == "darts-cifar10"  # the architecture is still the entry's
    assert "9.5" not in (tmp_path / "b" / "README.md").read_text()


def test_a_model_read_from_a_checkpoint_file_and_saved_unchanged_keeps_the_files_source(tmp_path, zoo_ref):
    ref = zoo_ref("cifar_small.pt")
    torch.save(ref["state_dict"], tmp_path / "cifar.pt")
    zoo.load(str(tmp_path / "cifar.pt")).save_pretrained(tmp_path / "b")
    source = json.loads((tmp_path / "b" / "config.json").read_text())["source"]
    assert source["file"] == "cifar.pt" and len(source["sha256"]) == 64


def test_from_pretrained_of_a_repo_id_downloads_and_checks_the_registry_digest(cifar_model, tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    model, ref = cifar_model
    saved = zoo.save_pretrained(model, tmp_path / "published")
    asked = []
    monkeypatch.setattr(hub_mixin, "hub_download", lambda repo, rev=None, cache_dir=None: asked.append((repo, rev))
                        or saved)
    assert matches_reference(zoo.NetworkCIFAR.from_pretrained("org/cifar-small", revision="v1"), ref)
    assert matches_reference(zoo.load("hf-hub:org/cifar-small@v2"), ref)  # zoo.load's hub branch is the same code
    assert asked == [("org/cifar-small", "v1"), ("org/cifar-small", "v2")]
    entry = R._REGISTRY["darts-cifar10"]
    for digest in (hashlib.sha256((saved / "model.safetensors").read_bytes()).hexdigest(), "0" * 64):
        monkeypatch.setitem(R._REGISTRY, "darts-cifar10", dataclasses.replace(
            entry, sources=(Source(kind="hub", location="org/cifar-small", layout="saved", sha256=digest),)))
        if digest != "0" * 64:
            assert matches_reference(zoo.NetworkCIFAR.from_pretrained("org/cifar-small"), ref)
        else:
            with pytest.raises(zoo.ModelLoadError, match="sha256"):
                zoo.NetworkCIFAR.from_pretrained("org/cifar-small")
    with pytest.raises(ValueError, match="bad hub id"):
        zoo.NetworkCIFAR.from_pretrained(str(tmp_path / "not here"))


def test_the_hub_keywords_of_huggingface_hubs_mixin_are_taken(cifar_model, tmp_path, monkeypatch):
    """from_pretrained(token=, force_download=, local_files_only=), save_pretrained(push_to_hub=True, token=,
    private=, model_card_kwargs=), push_to_hub(branch=): huggingface_hub's PyTorchModelHubMixin names."""
    model, ref = cifar_model
    saved = zoo.save_pretrained(model, tmp_path / "published")
    asked, pushed = [], []
    monkeypatch.setattr(hub_mixin, "hub_download", lambda repo, rev=None, cache_dir=None, **kw: asked.append(kw)
                        or saved)
    monkeypatch.setattr(hub_mixin, "push_directory", lambda out, repo, **kw: pushed.append(
        (json.loads((out / "config.json").read_text())["metrics"], repo, kw)) or "url")
    assert matches_reference(zoo.NetworkCIFAR.from_pretrained("org/m", token="hf_x", force_download=True,
                                                  local_files_only=True), ref)
    zoo.NetworkCIFAR.from_pretrained("org/m", token=False)  # huggingface_hub's "send no token"
    assert asked == [{"token": "hf_x", "force_download": True, "local_files_only": True}, {"token": False}]
    assert model.save_pretrained(tmp_path / "m", push_to_hub=True, repo_id="org/m", token="hf_x", private=True,
                                 model_card_kwargs={"metrics": {"top1_error": 3.0}}, metrics_source="a test") == "url"
    assert model.push_to_hub("org/m", branch="dev", metrics={"top1_error": 3.0}, metrics_source="a test") == "url"
    assert [(m, repo, kw["token"], kw["private"], kw["revision"]) for m, repo, kw in pushed] == [
        ({"top1_error": 3.0}, "org/m", "hf_x", True, None), ({"top1_error": 3.0}, "org/m", None, False, "dev")]
    for wrong in ({"token": "hf_x"}, {"config": {"C": 8}}):
        with pytest.raises(TypeError, match="neither card fields .* nor, with push_to_hub=True"):
            model.save_pretrained(tmp_path / "n", **wrong)


_PUSH_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    import zoo
    ref = torch.load(sys.argv[1], weights_only=True)
    model = zoo.NetworkCIFAR(**ref["config"])
    model.load_state_dict(ref["state_dict"])
    url = model.push_to_hub("darts-test/mixin", token="hf_test", metrics={"top1_error": 1.5},
                            metrics_source="a test")
    loaded = zoo.NetworkCIFAR.from_pretrained("darts-test/mixin")
    with torch.no_grad():
        diff = float((loaded(ref["input"]) - ref["logits"]).abs().max())
    print(json.dumps({"url": url, "diff": diff, "metrics": loaded.zoo_config["metrics"]}))
""")


@pytest.mark.slow
def test_push_to_hub_and_from_pretrained_with_the_real_client(tmp_path, zoo_ref, repo_root):
    ref_path = tmp_path / "ref.pt"
    torch.save(zoo_ref("cifar_small.pt"), ref_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "DARTS_ZOO_OFFLINE"))}
    hub = FakeHub().start()
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(repo_root), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    try:
        r = subprocess.run([sys.executable, "-c", _PUSH_SCRIPT, str(ref_path)], env=env, cwd=repo_root,
                           capture_output=True, text=True, timeout=300)
    finally:
        hub.stop()
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["diff"] < 1e-5 and out["metrics"] == {"top1_error": 1.5}
    files = hub.repos["darts-test/mixin"]["commits"][hub.repos["darts-test/mixin"]["refs"]["main"]]
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    assert b"darts-zoo" in files["config.json"]


def test_the_recurrent_network_saves_and_loads_through_the_same_methods(zoo_ref, tmp_path):
    ref = zoo_ref("ptb_small.pt")
    c = ref["config"]
    model = zoo.RNNModel(c["ntoken"], c["ninp"], c["nhid"], c["nhidlast"], genotype=c["genotype"])
    model.load_state_dict(ref["state_dict"])
    model.save_pretrained(tmp_path / "ptb")
    loaded = zoo.RNNModel.from_pretrained(tmp_path / "ptb")
    assert loaded.decoder.weight is loaded.encoder.weight  # re-tied
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(zoo.ModelLoadError, match="holds a RNNModel, not a NetworkCIFAR"):
        zoo.NetworkCIFAR.from_pretrained(tmp_path / "ptb")


def test_the_same_weights_saved_again_are_the_same_bytes(cifar_model, tmp_path):
    """A conversion or a copy has one sha256 (safetensors writes a metadata map of several keys in varying order)."""
    model, _ = cifar_model
    blobs = {(zoo.save_pretrained(model, tmp_path / str(i), card=False) / "model.safetensors").read_bytes()
             for i in range(12)}
    assert len(blobs) == 1
