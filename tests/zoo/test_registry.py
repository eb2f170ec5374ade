"""The registry of named models, and hubconf.py through torch.hub."""
import pytest
import torch

import genotypes
import zoo
from zoo import registry as R


def test_released_entries_carry_the_original_metadata():
    c = zoo.info("darts-cifar10")
    assert c["arch"] == "NetworkCIFAR" and c["args"] == {"C": 36, "num_classes": 10, "layers": 20, "auxiliary": True}
    assert c["genotype"] == genotypes.format(genotypes.get("DARTS_V2"))
    assert c["metrics"] == {"top1_error": 2.63} and "README" in c["metrics_source"]
    assert c["preprocessing"]["mean"] == list(zoo.datasets.CIFAR_MEAN) and c["preprocessing"]["crop"] == 32
    # NNI's public copy first (its digest prefix is in its name), then the authors' Drive file
    nni, drive = c["sources"]
    assert (nni["kind"], nni["layout"], nni["sha256_prefix"], nni["auxiliary"]) == ("url", "nni", "5465b0d2", False)
    assert nni["url"] == "https://nni.blob.core.windows.net/nashub/darts-v2-5465b0d2.pth" and "NNI" in nni["provenance"]
    assert (drive["kind"], drive["filename"], drive["location"]) == (
        "gdrive", "cifar10_model.pt", "1Y13i4zKGKgjtWBdC0HWLavjO7wvEiGOc")
    # no invented hub repo or digest
    assert all(s["kind"] != "hub" and s["sha256"] is None for s in c["sources"])
    assert c["class_names"][:2] == ["airplane", "automobile"] and len(c["class_names"]) == 10
    assert c["license"] == "apache-2.0" and "liu2019darts" in c["citation"] and c["pretrained"]

    i = zoo.info("darts-imagenet")
    assert i["args"] == {"C": 48, "num_classes": 1000, "layers": 14, "auxiliary": True}
    assert i["metrics"] == {"top1_error": 26.7, "top5_error": 8.7}
    assert (i["preprocessing"]["resize"], i["preprocessing"]["crop"]) == (256, 224)
    darmo, drive = i["sources"]
    assert darmo["url"] == "https://github.com/jitdee-ai/darts-models/releases/download/0.0.1/dartv2.pt"
    assert "does not say where" in darmo["provenance"]
    assert darmo["metrics"] == {"top1_error": 26.41, "top5_error": 8.60}  # the mirror's own 73.59 / 91.40
    assert drive["location"] == "1AKr6Y_PoYj7j0Upggyzc26W0RVdg4CVX"
    assert len(i["class_names"]) == 1000 and i["class_names"][0] == "tench"

    pd = zoo.info("pdarts-imagenet")
    assert pd["genotype"] == genotypes.format(genotypes.get("PDARTS")) and pd["args"]["auxiliary_bn"] is True
    assert pd["sources"][0]["filename"] == "pdarts.pt" and pd["sources"][0]["metrics"]["top1_error"] == 24.06

    p = zoo.info("darts-ptb")
    assert p["args"]["ntoken"] == 10000 and p["args"]["ninp"] == p["args"]["nhid"] == 850
    assert p["genotype"] == genotypes.format(genotypes.get("DARTS_V2", "rnn"))
    assert p["metrics"] == {"test_ppl": 55.68} and p["params"] == 22960000
    assert [s["location"] for s in p["sources"]] == ["1Mt_o6fZOlG-VDF3Q5ModgnAJ9W6f_av2"]
    assert p["class_names"] is None
    # "weights" only where a source exists
    assert zoo.list_models(pretrained=True) == ["darts-cifar10", "darts-imagenet", "darts-ptb", "pdarts-imagenet"]


def test_every_named_genotype_has_architecture_entries():
    names = zoo.list_models()
    for g in ("NASNet", "AmoebaNet", "DARTS_V1"):
        slug = g.lower().replace("_", "-")
        assert f"{slug}-cifar10" in names and f"{slug}-imagenet" in names
    assert "enas-ptb" in names and "darts-v1-ptb" in names
    assert not zoo.info("nasnet-cifar10")["pretrained"]
    assert zoo.info("amoebanet-imagenet")["genotype"] == genotypes.format(genotypes.get("AmoebaNet"))
    assert zoo.info("enas-ptb")["genotype"] == genotypes.format(genotypes.get("ENAS", "rnn"))
    # the alias DARTS (= DARTS_V2) does not give duplicate entries
    assert not any(n.startswith("darts-cifar10-") or n == "darts-v2-cifar10" for n in names)


def test_list_models_wildcards_and_pretrained_filter():
    assert zoo.list_models("darts-*", pretrained=True) == ["darts-cifar10", "darts-imagenet", "darts-ptb"]
    assert zoo.list_models("*-ptb") == ["darts-ptb", "darts-v1-ptb", "enas-ptb"]
    assert zoo.list_models("*IMAGENET") == sorted(n for n in zoo.list_models() if n.endswith("imagenet"))
    assert zoo.list_models("nothing*") == []


def test_create_model_matches_the_original_parameter_counts():
    # counts of the original's networks (shared/reference/param_counts.json)
    assert zoo.count_parameters(zoo.create_model("darts-cifar10")) == 3349342
    assert zoo.count_parameters(zoo.create_model("nasnet-imagenet")) == 5564320
    assert zoo.count_parameters(zoo.create_model("darts-ptb")) == 22960000


def test_create_model_overrides_and_their_limits():
    m = zoo.create_model("darts-cifar10", C=8, layers=5, num_classes=100, genotype="DARTS_V1")
    assert m.classifier.out_features == 100 and m.genotype == genotypes.get("DARTS_V1")
    with pytest.raises(ValueError, match="takes no argument"):
        zoo.create_model("darts-cifar10", width=3)
    with pytest.raises(ValueError, match="pretrained weights fix the architecture"):
        zoo.create_model("darts-cifar10", pretrained=True, C=16)


def test_unknown_names_suggest_the_closest_and_spelling_is_forgiving():
    with pytest.raises(zoo.UnknownModelError, match="Did you mean 'darts-imagenet'"):
        zoo.info("darts-imagnet")
    with pytest.raises(KeyError):
        zoo.create_model("resnet50")
    assert zoo.info("DARTS_CIFAR10")["name"] == "darts-cifar10"


def test_register_adds_an_entry_and_refuses_duplicates():
    e = R.ModelEntry(name="my-cell-cifar10", arch="NetworkCIFAR", genotype_name="mine",
                     genotype=genotypes.format(genotypes.get("DARTS_V1")), args=dict(R.CIFAR_ARGS), dataset="cifar10",
                     preprocessing=dict(R.CIFAR_PREPROCESSING), description="test")
    R.register(e)
    try:
        assert "my-cell-cifar10" in zoo.list_models()
        with pytest.raises(ValueError, match="already registered"):
            R.register(e)
    finally:
        R._REGISTRY.pop("my-cell-cifar10")


def test_hubconf_has_an_entrypoint_per_model_and_loads_with_torch_hub(repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_hubconf_under_test", repo_root / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # what torch.hub.list reports: the public callables of hubconf.py
    entries = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")]
    assert sorted(entries) == sorted(n.replace("-", "_") for n in zoo.list_models())
    assert "DARTS (second order)" in hubconf.darts_ptb.__doc__
    assert "weights: no working public source known" in hubconf.darts_ptb.__doc__
    assert "weights: available" in hubconf.darts_cifar10.__doc__
    m = torch.hub.load(str(repo_root), "darts_cifar10", source="local", pretrained=False)
    assert isinstance(m, zoo.NetworkCIFAR) and zoo.count_parameters(m) == 3349342
    m = torch.hub.load(str(repo_root), "enas_ptb", source="local", ntoken=30, ninp=8, nhid=8, nhidlast=8)
    assert isinstance(m, zoo.RNNModel) and m.genotype == genotypes.get("ENAS", "rnn")


def test_list_and_info_commands(repo_root, capsys):
    from zoo.__main__ import main

    assert main(["list", "darts-*", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("darts-cifar10") and "top1_error 2.63" in out
    assert main(["info", "darts-imagenet"]) == 0
    out = capsys.readouterr().out
    assert "1AKr6Y_PoYj7j0Upggyzc26W0RVdg4CVX" in out and "source 1:      url https://github.com/jitdee-ai" in out
    assert "classes:       1000 (tench" in out and "does not say where" in out
    assert main(["info", "darts-cifar10"]) == 0
    assert "nni layout, sha256 starts with 5465b0d2, no auxiliary head" in capsys.readouterr().out
    assert main(["info", "darts-imagenett"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and "Did you mean 'darts-imagenet'" in err and err.count("\n") == 1
    # (`python -m zoo` itself runs in test_convert's CLI test)
    for cmd in ("list", "info", "download", "eval", "convert", "push"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: python -m zoo " + cmd in capsys.readouterr().out


def test_zoo_list_shows_each_entrys_weights_state_from_its_sources_data(capsys, monkeypatch):
    import dataclasses

    from zoo import registry as R
    from zoo.__main__ import main

    states = {n: zoo.info(n)["weights"] for n in ("darts-cifar10", "darts-imagenet", "pdarts-imagenet", "darts-ptb",
                                                   "nasnet-cifar10")}
    assert states == {"darts-cifar10": "available", "darts-imagenet": "available", "pdarts-imagenet": "available",
                      "darts-ptb": "no working public source known", "nasnet-cifar10": "architecture only"}
    drive = R.get_entry("darts-ptb").sources[0]
    assert "reported gone" in drive.gone and "quark0/darts#174" in drive.gone
    assert main(["list", "darts-*"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "weights: no working public source known" in lines["darts-ptb"]
    assert "weights: available" in lines["darts-cifar10"]
    assert main(["info", "darts-ptb"]) == 0
    assert "not working: reported gone" in capsys.readouterr().out
    # the state is the sources' data, not a name in the code: a working source makes it available
    entry = R._REGISTRY["darts-ptb"]
    monkeypatch.setitem(R._REGISTRY, "darts-ptb", dataclasses.replace(
        entry, sources=(*entry.sources, R.Source(kind="url", location="https://example.org/ptb.pt", filename="p.pt"))))
    assert zoo.info("darts-ptb")["weights"] == "available"
