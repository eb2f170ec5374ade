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

import zoo
from zoo import hub_mixin
from zoo import registry as R
from zoo.registry import Source


@pytest.fixture
def cifar_model(zoo_ref):
    ref = zoo_ref("cifar_small.pt")
    model = zoo.NetworkCIFAR(**ref["config"])
    model.load_state_dict(ref["state_dict"])
    return model.eval(), ref


def _same(model, ref):
    with torch.no_grad():
        return (model(ref["input"]) - ref["logits"]).abs().max().item() < 1e-5


def test_save_pretrained_writes_the_zoo_files_and_from_pretrained_reads_them(cifar_model, tmp_path):
    model, ref = cifar_model
    assert model.save_pretrained(tmp_path / "m") is None
    assert {"README.md", "config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "m").iterdir()}
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format"] == "darts-zoo" and cfg["arch"] == "NetworkCIFAR"
    assert "DARTS" in (tmp_path / "m" / "README.md").read_text()  # our model card, not huggingface_hub's template
    loaded = zoo.NetworkCIFAR.from_pretrained(tmp_path / "m")
    assert type(loaded) is zoo.NetworkCIFAR and not loaded.training and _same(loaded, ref)
    assert _same(zoo.load(str(tmp_path / "m")), ref)  # the same files as zoo.save_pretrained's
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


def test_from_pretrained_of_a_repo_id_downloads_and_checks_the_registry_digest(cifar_model, tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    model, ref = cifar_model
    saved = zoo.save_pretrained(model, tmp_path / "published")
    asked = []
    monkeypatch.setattr(hub_mixin, "hub_download", lambda repo, rev=None, cache_dir=None: asked.append((repo, rev))
                        or saved)
    assert _same(zoo.NetworkCIFAR.from_pretrained("org/cifar-small", revision="v1"), ref)
    assert _same(zoo.load("hf-hub:org/cifar-small@v2"), ref)  # zoo.load's hub branch is the same code
    assert asked == [("org/cifar-small", "v1"), ("org/cifar-small", "v2")]
    entry = R._REGISTRY["darts-cifar10"]
    for digest in (hashlib.sha256((saved / "model.safetensors").read_bytes()).hexdigest(), "0" * 64):
        monkeypatch.setitem(R._REGISTRY, "darts-cifar10", dataclasses.replace(
            entry, sources=(Source(kind="hub", location="org/cifar-small", layout="saved", sha256=digest),)))
        if digest != "0" * 64:
            assert _same(zoo.NetworkCIFAR.from_pretrained("org/cifar-small"), ref)
        else:
            with pytest.raises(zoo.ModelLoadError, match="sha256"):
                zoo.NetworkCIFAR.from_pretrained("org/cifar-small")
    with pytest.raises(ValueError, match="bad hub id"):
        zoo.NetworkCIFAR.from_pretrained(str(tmp_path / "not here"))


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
