"""Tiny data and configs for the search tests (real on-disk formats, so the real loaders run)."""
from __future__ import annotations

import contextlib
import os
import random

import torch
import torch.distributed as dist

from reproduce.config import canonical
from reproduce.search import SEARCH_CONFIGS, architect, search
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


def image_config(data, **kw):
    """The conv search of one's own images (``search images``), as tiny as cifar_config's."""
    base = dict(data=str(data), C=4, layers=3, batch_size=8, epochs=2, device="cpu", deterministic=True)
    base.update(kw)
    return SEARCH_CONFIGS["images"](**canonical(base))


def ptb_config(data, **kw):
    base = dict(data=str(data), emsize=12, nhid=12, nhidlast=12, batch_size=4, eval_batch_size=2, bptt=8,
                epochs=2, device="cpu", deterministic=True)
    base.update(kw)
    return SEARCH_CONFIGS["ptb"](**canonical(base))


def search_ddp_worker(rank: int, world: int, port: int, jobs, result_path: str) -> None:
    """One process of a torchrun-like gloo group running reproduce.search.search for each (dataset, config, out,
    diverge); saves each record's alphas, config, world size and curve (or what the search raised) to
    ``result_path.<rank>``. ``diverge``: rank 1 nudges its architecture gradients, so the ranks' logits part."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    set_grads = architect.set_grads_
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = []
    try:
        for dataset, config, out, diverge in jobs:
            nudge = 1e-3 if diverge and rank == 1 else 0.0
            architect.set_grads_ = lambda alphas, grads, nudge=nudge: set_grads(alphas, [g + nudge for g in grads])
            try:
                record = search(dataset, config, out, progress=False)
            except Exception as e:  # what each rank saw, for the test to check
                results.append({"raised": type(e).__name__, "message": str(e)})
                continue
            results.append({"alphas": record["alphas"], "config": record["config"], "world_size": record["world_size"],
                            "curve": [{k: v for k, v in m.items() if k != "time_s"} for m in record["curve"]]})
    finally:
        torch.save(results, f"{result_path}.{rank}")
        dist.destroy_process_group()
