"""zoo.load(name) through the public copies of the released weights, served from 127.0.0.1.

NNI's copy is made here the way NNI made its file (shared/reference/README.md, nni_darts_v2_keys.json):
random tensors in the original's layout, walked into NNI's keys. darmo's copies are state dicts in the
original's layout with ``module.`` prefixes. The loader must find them, verify them, convert them
exactly, and fall through to the next source on every kind of failure.
"""
import hashlib
import io
import json
from collections import OrderedDict

import pytest
import torch

import zoo
from zoo import registry
from zoo.download import zoo_home

# ----------------------------------------------------------------------------------------------- helpers


def _randomised(model: torch.nn.Module, seed: int) -> "OrderedDict[str, torch.Tensor]":
    """The model's (seeded) initial weights with every BatchNorm tensor perturbed: finite outputs, no
    two tensors of a shape alike."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        noise = 0.1 * torch.randn(v.shape, generator=g)
        if k.endswith(("running_var", "running_mean")) or (v.dim() == 1 and not k.endswith("classifier.bias")):
            out[k] = (v + noise).abs() + 0.5 if k.endswith("running_var") else v + noise
        else:
            out[k] = v + 0.01 * noise
    return out


def _nni_walk(original: "OrderedDict[str, torch.Tensor]", ref_dir, counters: bool = True
              ) -> "OrderedDict[str, torch.Tensor]":
    """NNI's re-keying as the reference README describes it (written independently of zoo.layouts): the
    original's tensors in the order of the original's manifest, auxiliary head dropped. ``counters``: with
    NNI's scalar num_batches_tracked buffers (its module's defaults) or without them, as the released file."""
    nni = json.loads((ref_dir / "nni_darts_v2_keys.json").read_text())
    manifest = json.loads((ref_dir / "cnn_manifests.json").read_text())["cifar10_darts_v2_c36_l20_aux"]
    pool = [(k, original[k]) for k, _ in manifest if k in original]
    assert len(pool) == len(original)
    used = set()
    out = OrderedDict()
    for key, shape in nni:
        if shape == []:
            if counters:
                out[key] = torch.tensor(0)  # NNI's default: the released file has no num_batches_tracked
            continue
        k, v = next((k, v) for k, v in pool if k not in used and list(v.shape) == shape)
        used.add(k)
        out[key] = v.clone()
    assert len(used) == len(pool)
    return out


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def nni_copy(reference_dir):
    torch.manual_seed(0)
    released = _randomised(zoo.NetworkCIFAR(36, 10, 20, False, "DARTS_V2"), seed=1)
    blob = _saved(_nni_walk(released, reference_dir))
    prefix = hashlib.sha256(blob).hexdigest()[:8]
    return {"released": released, "blob": blob, "prefix": prefix, "filename": f"darts-v2-{prefix}.pth"}


def _set_sources(monkeypatch, name, *sources, **args):
    import dataclasses

    entry = registry._REGISTRY[name]
    monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(entry, sources=tuple(sources),
                                                                      args={**entry.args, **args}))


def _nni_source(url, nni_copy, **kw):
    import dataclasses

    nni = registry.get_entry("darts-cifar10").sources[0]
    return dataclasses.replace(nni, location=url, filename=nni_copy["filename"],
                               sha256_prefix=kw.pop("sha256_prefix", nni_copy["prefix"]), **kw)


def _equal_to_released(model, released):
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in released.items())  # bit for bit
    ref = zoo.NetworkCIFAR(36, 10, 20, False, "DARTS_V2")
    ref.load_state_dict(released)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), ref.eval()(x))


# ----------------------------------------------------------------------------------------------- NNI's copy


def test_the_layout_walk_is_defined_by_the_packaged_key_list_equal_to_the_reference(reference_dir):
    from zoo.layouts import nni_keys

    ref = json.loads((reference_dir / "nni_darts_v2_keys.json").read_text())
    assert nni_keys() == [(k, tuple(s)) for k, s in ref]


def test_darts_cifar10_loads_through_nnis_mirror_bit_for_bit_and_is_kept_converted(
        monkeypatch, online, server, nni_copy):
    path = "/nashub/" + nni_copy["filename"]
    server.files[path] = nni_copy["blob"]
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + path, nni_copy))
    model = zoo.load("darts-cifar10")
    _equal_to_released(model, nni_copy["released"])
    assert model.config["auxiliary"] is False and not hasattr(model, "auxiliary_head")
    cfg = model.zoo_config
    assert cfg["name"] == "darts-cifar10" and "no auxiliary head" in cfg["description"]
    assert cfg["metrics"] == {"top1_error": 2.63} and "copy" in cfg["metrics_source"]
    assert cfg["source"]["layout"] == "nni" and cfg["source"]["sha256"].startswith(nni_copy["prefix"])
    card = (zoo_home() / "models" / "darts-cifar10" / "README.md").read_text()
    assert "NNI's copy of the released cifar10_model.pt" in card and "value: 2.63" in card
    assert (zoo_home() / "original" / nni_copy["filename"]).is_file()
    # the converted copy serves every later load: no new request
    n = len(server.requests)
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])
    assert len(server.requests) == n == 1


def test_nnis_file_converts_alike_with_or_without_its_num_batches_tracked_buffers(nni_copy, reference_dir):
    from zoo.layouts import nni_to_original

    walked = _nni_walk(nni_copy["released"], reference_dir, counters=True)
    bare = _nni_walk(nni_copy["released"], reference_dir, counters=False)
    assert len(bare) < len(walked) and not any(k.endswith("num_batches_tracked") for k in bare)
    for sd in (walked, bare):
        out = nni_to_original(sd)
        assert list(out) == list(nni_copy["released"])
        assert all(torch.equal(out[k], v) for k, v in nni_copy["released"].items())
    # the same checks on everything else, in both forms
    some = OrderedDict((k, v) for i, (k, v) in enumerate(walked.items())
                       if not (k.endswith("num_batches_tracked") and i % 2))
    with pytest.raises(zoo.legacy.CheckpointError, match="missing"):
        nni_to_original(some)
    for sd in (walked, bare):
        first = next(iter(sd))
        with pytest.raises(zoo.legacy.CheckpointError, match="missing"):
            nni_to_original(OrderedDict(list(sd.items())[1:]))
        with pytest.raises(zoo.legacy.CheckpointError, match="shapes differ"):
            nni_to_original(OrderedDict({**sd, first: torch.zeros(1)}))
        with pytest.raises(zoo.legacy.CheckpointError, match="order"):
            nni_to_original(OrderedDict(reversed(list(sd.items()))))


def test_darts_cifar10_loads_nnis_file_without_num_batches_tracked(monkeypatch, online, server, nni_copy,
                                                                    reference_dir):
    blob = _saved(_nni_walk(nni_copy["released"], reference_dir, counters=False))
    prefix = hashlib.sha256(blob).hexdigest()[:8]
    path = f"/nashub/darts-v2-{prefix}.pth"
    server.files[path] = blob
    copy = {**nni_copy, "filename": f"darts-v2-{prefix}.pth", "prefix": prefix}
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + path, copy))
    model = zoo.load("darts-cifar10")
    _equal_to_released(model, nni_copy["released"])
    assert model.zoo_config["source"]["layout"] == "nni"


@pytest.mark.parametrize("fault", [404, 500, "truncate", "stall", "checksum"])
def test_every_kind_of_failed_download_falls_through_to_the_next_source(monkeypatch, online, server, nni_copy,
                                                                        fault):
    monkeypatch.setattr(zoo.download, "TIMEOUT_S", 0.5)
    bad, good = "/bad/" + nni_copy["filename"], "/good/" + nni_copy["filename"]
    server.files[bad] = server.files[good] = nni_copy["blob"]
    if fault == "checksum":
        damaged = bytearray(nni_copy["blob"])
        damaged[len(damaged) // 2] ^= 0xFF
        server.files[bad] = bytes(damaged)
    else:
        server.faults[bad] = fault
    first = _nni_source(server.url + bad, nni_copy)
    _set_sources(monkeypatch, "darts-cifar10", first)
    with pytest.raises(zoo.WeightsNotFoundError) as e:
        zoo.load("darts-cifar10")
    why = {404: "404", 500: "500", "truncate": "incomplete", "stall": "timed out", "checksum": "registry expects"}
    assert why[fault] in str(e.value), str(e.value)
    leftovers = list((zoo_home() / "original").iterdir()) if (zoo_home() / "original").exists() else []
    assert leftovers == []  # a failed or damaged download leaves nothing behind
    _set_sources(monkeypatch, "darts-cifar10", first, _nni_source(server.url + good, nni_copy))
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])
    assert server.requests[-1] == good


def test_offline_means_no_request(monkeypatch, server, nni_copy):
    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")
    server.files["/f"] = nni_copy["blob"]
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + "/f", nni_copy))
    with pytest.raises(zoo.WeightsNotFoundError, match="skipped \\(offline"):
        zoo.load("darts-cifar10")
    monkeypatch.delenv("DARTS_ZOO_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(zoo.WeightsNotFoundError, match="skipped \\(offline"):
        zoo.load("darts-cifar10")
    assert server.requests == []


def test_a_site_mirror_is_asked_first_by_file_name(monkeypatch, online, server, nni_copy):
    site = "/site/" + nni_copy["filename"]
    server.files[site] = nni_copy["blob"]
    monkeypatch.setenv("DARTS_ZOO_URL_PREFIX", server.url + "/site/")
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + "/public/x.pth", nni_copy))
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])
    assert server.requests == [site]


def test_download_command_fetches_ahead_of_time_then_loads_offline(monkeypatch, online, server, nni_copy, capsys):
    from zoo.__main__ import main

    server.files["/f"] = nni_copy["blob"]
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + "/f", nni_copy))
    assert main(["download", "darts-cifar10"]) == 0
    assert "darts-cifar10: ready in" in capsys.readouterr().out
    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])
    assert main(["download"]) == 2 and "give a model name or --all" in capsys.readouterr().err


def test_every_source_failing_gives_one_message_without_traceback(monkeypatch, online, server, nni_copy, capsys):
    from zoo.__main__ import main

    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + "/missing.pth", nni_copy))
    assert main(["download", "darts-cifar10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no weights for darts-cifar10") and "Traceback" not in err
    assert "404" in err and "What you can do" in err and "hub_repo" not in err


def test_convert_cli_reads_nnis_layout(tmp_path, nni_copy):
    from zoo.__main__ import main

    f = tmp_path / nni_copy["filename"]
    f.write_bytes(nni_copy["blob"])
    assert main(["convert", "cifar10", str(f), "--out", str(tmp_path / "out")]) == 0
    _equal_to_released(zoo.load(str(tmp_path / "out")), nni_copy["released"])
    _equal_to_released(zoo.load(str(f)), nni_copy["released"])  # a bare file: the layout is told by its keys
    # NNI's keys in another order cannot be re-keyed safely: refused
    sd = torch.load(f, weights_only=True)
    shuffled = OrderedDict(sorted(sd.items()))
    torch.save(shuffled, tmp_path / "shuffled.pth")
    assert main(["convert", "cifar10", str(tmp_path / "shuffled.pth"), "--out", str(tmp_path / "o2")]) == 2


# ----------------------------------------------------------------------------------------------- darmo's copies

_SMALL_IMAGENET = {"C": 8, "layers": 5}  # darmo's layout at a small size (the keys do not depend on it)


@pytest.mark.parametrize("name,genotype,aux_bn,with_aux", [
    ("darts-imagenet", "DARTS_V2", False, True),
    ("darts-imagenet", "DARTS_V2", False, False),
    ("pdarts-imagenet", "PDARTS", True, True),
])
def test_darmos_copies_load_with_module_prefixes_and_their_auxiliary_head(monkeypatch, online, server, name,
                                                                          genotype, aux_bn, with_aux):
    import dataclasses

    torch.manual_seed(0)
    net = zoo.NetworkImageNet(8, 1000, 5, with_aux, genotype, auxiliary_bn=aux_bn and with_aux)
    released = _randomised(net, seed=2)
    server.files["/darmo.pt"] = _saved(OrderedDict(("module." + k, v) for k, v in released.items()))
    darmo = dataclasses.replace(registry.get_entry(name).sources[0], location=server.url + "/darmo.pt")
    _set_sources(monkeypatch, name, darmo, **_SMALL_IMAGENET)
    model = zoo.load(name)
    sd = model.state_dict()
    assert sd.keys() - {k for k in sd if k.endswith("num_batches_tracked")} == released.keys()
    assert all(torch.equal(sd[k], v) for k, v in released.items())
    assert model.config["auxiliary"] is with_aux
    assert ("auxiliary_head.features.6.running_var" in sd) is (aux_bn and with_aux)
    src = model.zoo_config["source"]  # darmo publishes no digest: its figures are darmo's, for darmo's file
    assert model.zoo_config["metrics"] == {} and src["verification"] == "not verified against a published digest"
    assert src["publisher_metrics"] == darmo.metrics and "darmo README" in src["publisher_metrics_source"]
    assert model.zoo_config["reference_metrics"] == registry.get_entry(name).metrics  # the paper's, kept beside


# ----------------------------------------------------------------------------------------------- using the weights


def test_num_classes_keeps_the_features_and_gives_fresh_heads(tmp_path):
    torch.manual_seed(0)
    model = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2").eval()
    d = zoo.save_pretrained(model, tmp_path / "m", card=False)
    tuned = zoo.load(str(d), num_classes=7)
    assert tuned.classifier.out_features == 7 and tuned.auxiliary_head.classifier.out_features == 7
    assert tuned.config["num_classes"] == 7 and tuned.zoo_config["metrics"] == {}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(tuned.forward_features(x), model.forward_features(x))
        assert tuned(x).shape == (2, 7)
    tuned.train()
    logits, aux = tuned(x)
    assert logits.shape == aux.shape == (2, 7)
    with pytest.raises(ValueError, match="vocabulary"):
        zoo.save_pretrained(zoo.RNNModel(20, 8, 8, 8), tmp_path / "r", card=False) and zoo.load(
            str(tmp_path / "r"), num_classes=3)


def test_reset_classifier_and_forward_features_like_timm():
    model = zoo.NetworkImageNet(8, 1000, 5, True, "DARTS_V2").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[:2] == (1, model.classifier.in_features)
        assert torch.equal(model.forward_head(feats), model(x))
    model.reset_classifier(5)
    assert model.classifier.out_features == 5 and model.auxiliary_head.classifier.out_features == 5
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)  # (0 is timm's "no classifier": tests/zoo/test_backbone.py)


def test_transforms_of_an_entry():
    from PIL import Image

    t = zoo.transforms("darts-imagenet")
    assert t(Image.new("RGB", (300, 400))).shape == (3, 224, 224)
    t = zoo.transforms("darts-cifar10")
    out = t(Image.new("RGB", (32, 32), color=(255, 0, 0)))
    assert out.shape == (3, 32, 32) and out[0, 0, 0] == pytest.approx((1 - 0.49139968) / 0.24703233)
    with pytest.raises(ValueError, match="text"):
        zoo.transforms("darts-ptb")


def test_a_whole_model_pickle_re_saved_by_newer_pytorch_names_set_and_loads(tmp_path, zoo_ref):
    from zoo_testutil import legacy_rnn_model, write_legacy

    import genotypes

    ref = zoo_ref("ptb_small.pt")
    c = ref["config"]
    obj = legacy_rnn_model(ref["state_dict"], c["ntoken"], c["ninp"], genotypes.get("DARTS_V2", "rnn"))
    obj.__dict__["_non_persistent_buffers_set"] = set()  # what PyTorch >= 1.6 adds to every module
    write_legacy(obj, tmp_path / "ptb_model.pt")
    assert b"set" in (tmp_path / "ptb_model.pt").read_bytes()
    model = zoo.load(str(tmp_path / "ptb_model.pt"))
    with torch.no_grad():
        lp, _ = model(ref["input"], model.init_hidden(ref["input"].size(1)))
    assert (lp - ref["log_prob"]).abs().max() < 1e-5


def test_a_cached_model_that_is_not_the_entrys_conversion_is_not_used(monkeypatch, online, server, nni_copy):
    # e.g. a copy written by older code, or another network saved there by hand
    other = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V1")
    zoo.save_pretrained(other, zoo_home() / "models" / "darts-cifar10", name="darts-cifar10", card=False)
    server.files["/f"] = nni_copy["blob"]
    _set_sources(monkeypatch, "darts-cifar10", _nni_source(server.url + "/f", nni_copy))
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])  # reconverted from the source
    _equal_to_released(zoo.load("darts-cifar10"), nni_copy["released"])  # and that conversion is used after
    assert server.requests == ["/f"]


def test_a_download_that_does_not_convert_falls_through_and_is_not_kept(monkeypatch, online, server, nni_copy):
    import dataclasses

    broken = OrderedDict([("classifier.weight", torch.tensor(1.0)), ("stem0.3.weight", torch.zeros(2))])
    server.files["/dartv2.pt"] = _saved(broken)
    darmo = dataclasses.replace(registry.get_entry("darts-imagenet").sources[0], location=server.url + "/dartv2.pt")
    _set_sources(monkeypatch, "darts-imagenet", darmo)
    with pytest.raises(zoo.WeightsNotFoundError, match="downloaded, but it cannot be used"):
        zoo.load("darts-imagenet")
    assert not (zoo_home() / "original" / "dartv2.pt").exists()


def test_offline_also_keeps_the_hub_client_to_its_cache(monkeypatch, tmp_path):
    import huggingface_hub

    from zoo.registry import Source

    asked = []

    def fake(**kw):
        asked.append(kw["local_files_only"])
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    _set_sources(monkeypatch, "darts-cifar10", Source(kind="hub", location="org/darts", layout="saved"))
    with pytest.raises(zoo.WeightsNotFoundError):
        zoo.load("darts-cifar10")
    with pytest.raises(zoo.WeightsNotFoundError):
        zoo.load("hf-hub:org/darts")
    assert asked == [True, True]  # DARTS_ZOO_OFFLINE=1 (the fixture's) reaches huggingface_hub
