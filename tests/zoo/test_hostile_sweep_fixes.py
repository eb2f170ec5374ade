"""Defects the hostile-input sweep (tests/hostile_sweep.py, tests/hostile_sweep.md) found in the zoo, one test each:
DARTS_ZOO_OFFLINE keeps huggingface_hub off the network, duplicate JSON keys and absurd input sizes in a saved
config.json are refused naming the file, gdown prints nothing of its own, pickle refusals name their file."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import zoo

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
