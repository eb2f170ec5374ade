"""Tiny data and configs for the search tests (real on-disk formats, so the real loaders run)."""
from __future__ import annotations

import contextlib
import random

import torch

from reproduce.config import canonical
from reproduce.search import SEARCH_CONFIGS
from zoo.datasets import write_cifar10, write_text_corpus

WORDS = "the a cat dog sat on mat and ran far up down big small red".split()


@contextlib.contextmanager
def one_thread():
    """Tests run on a shared 2-core machine: one intra-op thread is far faster there than two."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def tiny_cifar(root, n_train: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n_train,), generator=g)
    test_images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    write_cifar10(root, images, labels, test_images, torch.tensor([0, 1]))
    return root


def tiny_corpus(path, seed: int = 0, train: int = 24, valid: int = 12, test: int = 4):
    rng = random.Random(seed)

    def lines(n):
        return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))) for _ in range(n)]

    write_text_corpus(path, lines(train), lines(valid), lines(test))
    return path


def cifar_config(data, **kw):
    base = dict(data=str(data), C=4, layers=3, batch_size=8, epochs=2, device="cpu", deterministic=True)
    base.update(kw)
    return SEARCH_CONFIGS["cifar10"](**canonical(base))


def ptb_config(data, **kw):
    base = dict(data=str(data), emsize=12, nhid=12, nhidlast=12, batch_size=4, eval_batch_size=2, bptt=8,
                epochs=2, device="cpu", deterministic=True)
    base.update(kw)
    return SEARCH_CONFIGS["ptb"](**canonical(base))
