"""Fixtures of tests/zoo: reference data of the original implementation and small saved models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from file_server import FileServer

import zoo

_REPO = Path(__file__).resolve().parents[2]


def _reference_dir() -> Path:
    env = os.environ.get("DARTS_REFERENCE_DIR")
    return Path(env) if env else _REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def zoo_ref():
    """Load a reference file (``zoo_ref("cifar_small.pt")``); fails, never skips, when it is missing."""
    root = _reference_dir()

    def load(name: str):
        path = root / name
        assert path.is_file(), f"reference file {path} missing (set DARTS_REFERENCE_DIR)"
        return torch.load(path, weights_only=True)

    return load


@pytest.fixture
def cifar_model(zoo_ref):
    """The original's small CIFAR network with its reference weights, in eval mode, and the reference file."""
    ref = zoo_ref("cifar_small.pt")
    model = zoo.NetworkCIFAR(**ref["config"])
    model.load_state_dict(ref["state_dict"])
    return model.eval(), ref


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The folder of the reference files (shared/reference)."""
    return _reference_dir()


@pytest.fixture(autouse=True)
def _isolated_zoo_home(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from the zoo's own lookups."""
    monkeypatch.setenv("DARTS_ZOO_HOME", str(tmp_path_factory.mktemp("zoo_home")))
    monkeypatch.setenv("DARTS_ZOO_OFFLINE", "1")


@pytest.fixture
def server():
    """An HTTP file server on 127.0.0.1 with misbehaving routes (tests/zoo/file_server.py)."""
    s = FileServer(stall_s=3.0, trickle_s=0.3).start()
    yield s
    s.stop()


@pytest.fixture
def online(monkeypatch):
    """The network allowed (the tests' servers are on 127.0.0.1) and no site mirror."""
    for k in ("DARTS_ZOO_OFFLINE", "HF_HUB_OFFLINE", "DARTS_ZOO_URL_PREFIX"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def repo_root() -> Path:
    return _REPO
