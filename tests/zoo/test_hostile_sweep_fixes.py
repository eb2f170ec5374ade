"""Defects the hostile-input sweep (tests/hostile_sweep.py, tests/hostile_sweep.md) found in the zoo, one test each:
DARTS_ZOO_OFFLINE keeps huggingface_hub off the network, duplicate JSON keys and absurd input sizes in a saved
config.json are refused naming the file, gdown prints nothing of its own, pickle refusals name their file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict

import pytest
from zoo_testutil import Evil, write_legacy

import zoo
import zoo.legacy
from zoo import download
from zoo.fileio import DuplicateKeyError, loads_json_unique
from zoo.saved import validate_config

# ------------------------------------------------------------------------------------------- offline hub


def test_darts_zoo_offline_keeps_the_hub_client_off_the_network(server, tmp_path, repo_root):
    # A child process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, when first imported. A fresh
    # HF_HOME, so that no cached copy of what the client fetches for its headers hides a request.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(DARTS_ZOO_OFFLINE="1", HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_fake",
               DARTS_ZOO_HOME=str(tmp_path / "zoo"), PYTHONPATH=str(repo_root))
    code = ("import zoo\ntry:\n    zoo.load('hf-hub:org/repo')\nexcept Exception as e:\n"
            "    print(type(e).__name__, e)\nelse:\n    print('loaded')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("WeightsNotFoundError") and "org/repo" in out.stdout, out.stdout
    assert server.requests == [], f"offline, yet the hub client sent {server.requests}"


def test_darts_zoo_offline_is_put_back_after_a_hub_call(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(zoo.WeightsNotFoundError):
        zoo.load("hf-hub:org/never-cached")
    assert constants.HF_HUB_OFFLINE is False  # the zoo's setting lasts only as long as its own call


def test_overlapping_offline_hub_calls_put_the_switch_back_only_when_the_last_ends(monkeypatch):
    from huggingface_hub import constants

    from zoo import hub

    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    first, second = hub._hub_offline_if_asked(), hub._hub_offline_if_asked()  # two threads' calls, interleaved
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert constants.HF_HUB_OFFLINE is True  # the second call is still offline
    second.__exit__(None, None, None)
    assert constants.HF_HUB_OFFLINE is False


# ------------------------------------------------------------------------------------- saved config.json


def _saved(cifar_model, tmp_path):
    model, _ = cifar_model
    d = zoo.save_pretrained(model, tmp_path / "m", card=False)
    return d, d / "config.json"


def test_a_config_naming_a_key_twice_is_refused_naming_the_file_and_the_key(cifar_model, tmp_path):
    d, cfg_path = _saved(cifar_model, tmp_path)
    text = cfg_path.read_text().rstrip()
    assert json.loads(text)["name"] is None
    cfg_path.write_text(text[:-1] + ', "name": "darts-cifar10"}')  # what Python's json would take as the name
    with pytest.raises(zoo.ModelLoadError, match=r"config\.json: duplicate key 'name'") as e:
        zoo.load(str(d))
    assert str(cfg_path) in str(e.value) and "\n" not in str(e.value)
    cfg = json.loads(text)
    args = json.dumps(cfg["args"])[:-1] + ', "C": 400000}'  # nested objects too: "C": 4, ..., "C": 400000
    cfg_path.write_text(json.dumps({**cfg, "args": None}).replace('"args": null', f'"args": {args}'))
    for read in (zoo.info, zoo.load, zoo.pretrained_cfg):
        with pytest.raises(zoo.ModelLoadError, match=r"duplicate key 'C'"):
            read(str(d))


def test_the_unique_key_reader_reads_what_json_reads():
    text = '{"a": [1, {"b": 2, "c": {"a": 3}}], "b": null}'
    assert loads_json_unique(text, "x.json") == json.loads(text)
    with pytest.raises(DuplicateKeyError, match=r"^x\.json: duplicate key 'a'"):
        loads_json_unique('{"a": 1, "b": {"a": 2, "a": 2}}', "x.json")


@pytest.mark.parametrize("size", [[3, 10**9, 10**9], [3, 32], [5, 32, 32], [True, 32, 32], [3, 0, 32],
                                  [3, 32.0, 32], "3x32x32", [3, 4097, 32]])
def test_an_absurd_input_size_is_refused_naming_the_file(cifar_model, tmp_path, size):
    d, cfg_path = _saved(cifar_model, tmp_path)
    cfg = json.loads(cfg_path.read_text())
    assert cfg["preprocessing"]["input_size"] == [3, 32, 32]
    cfg_path.write_text(json.dumps({**cfg, "preprocessing": {**cfg["preprocessing"], "input_size": size}}))
    for read in (zoo.info, zoo.load):
        with pytest.raises(zoo.ModelLoadError, match=r"config\.json: preprocessing input_size=.* must be") as e:
            read(str(d))
        assert str(cfg_path) in str(e.value)


def test_input_size_may_name_the_networks_own_channels(cifar_model, tmp_path):
    _, cfg_path = _saved(cifar_model, tmp_path)
    cfg = json.loads(cfg_path.read_text())
    cfg["args"]["in_chans"] = 4
    cfg["preprocessing"]["input_size"] = [4, 32, 32]
    assert validate_config(cfg, "c.json")["preprocessing"]["input_size"] == [4, 32, 32]
    cfg["preprocessing"]["input_size"] = [1, 32, 32]  # a grayscale folder read by a 1-channel stem
    validate_config(cfg, "c.json")


# ---------------------------------------------------------------------------------- downloads and pickles


def test_a_failed_download_prints_nothing_of_gdowns_own(server, tmp_path, online, capfd):
    # progress=True (the default) still draws only our bar, after a response: gdown printed "Downloading...
    # From: URL To: <zoo.download._CappedFile object at 0x...>" before it knew the download would fail.
    server.faults["/f"] = 404
    with pytest.raises(OSError):
        download.fetch(tmp_path / "f", url=server.url + "/f", timeout=1.0, progress=True)
    server.files["/g"] = b"x" * 1000
    download.fetch(tmp_path / "g", url=server.url + "/g", timeout=1.0, progress=True)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", captured
    assert (tmp_path / "g").read_bytes() == b"x" * 1000


def test_a_refused_global_in_a_legacy_pickle_names_the_file(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "model.pt"
    write_legacy(OrderedDict([("encoder.weight", Evil(marker))]), path)
    with pytest.raises(zoo.legacy.UnsafeCheckpointError) as e:
        zoo.legacy.load_original(path)
    assert str(e.value).startswith(f"{path}: refusing to load global "), str(e.value)
    assert "\n" not in str(e.value) and not marker.exists()
