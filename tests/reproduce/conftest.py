"""Fixtures shared by the harness tests."""
import pytest
import torch
from search_helpers import one_thread
from search_helpers import tiny_cifar as search_cifar

from zoo.datasets import write_cifar10


@pytest.fixture
def single_thread():
    """torch on one intra-op thread for the test (modules use it with pytest.mark.usefixtures)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def search_cifar24(tmp_path_factory):
    """24 random training images for a conv search: 12 train the weights, 12 the architecture."""
    return search_cifar(tmp_path_factory.mktemp("cifar"), n_train=24)


@pytest.fixture
def tiny_cifar(tmp_path):
    """48 random images in the real CIFAR-10 python-batch format: 32 to train, 16 to test."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(48) % 10
    write_cifar10(tmp_path / "data", images[:32], labels[:32], images[32:], labels[32:])
    return tmp_path / "data"


@pytest.fixture
def stacked_calls(monkeypatch):
    """The number of edges of each stacked op the search's supernet runs during the test (stacked_ops)."""
    from reproduce.search import stacked_ops

    calls = []
    real = stacked_ops.stacked_forward

    def counting(ops, repeated):
        calls.append(len(ops))
        return real(ops, repeated)

    monkeypatch.setattr(stacked_ops, "stacked_forward", counting)
    return calls
