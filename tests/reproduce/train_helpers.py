"""Tiny datasets in the real on-disk formats, tiny recipe configs, and the DDP worker for the train tests."""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import torch
from child_bounds import MAX_RSS_MB, MAX_SECONDS, run_child, wall_budget

from reproduce.config import canonical
from reproduce.train import RECIPES
from zoo.datasets import write_cifar10, write_text_corpus


def train_interrupted(config, out: Path, dataset: str = "cifar10") -> None:
    """Train ``config`` (cifar10, images: the CIFAR-style task; ptb, wt2, text: the language model's) into
    ``out`` and stop it with KeyboardInterrupt as its second epoch starts: the run directory then holds the
    checkpoint after epoch 1, as a run stopped by hand would."""
    from reproduce.train import train
    from reproduce.train.cifar import CIFARTask
    from reproduce.train.lm import LMTask

    task = LMTask if dataset in ("ptb", "wt2", "text") else CIFARTask
    original = task.run_epoch

    def stop_at_1(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    task.run_epoch = stop_at_1
    try:
        train(dataset, config, out, progress=False)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    finally:
        task.run_epoch = original


def make_cifar(root: Path, n_train: int = 48, n_test: int = 24, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    tx = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    ty = torch.randint(0, 10, (n_train,), generator=g)
    vx = torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    vy = torch.randint(0, 10, (n_test,), generator=g)
    write_cifar10(root, tx, ty, vx, vy)
    return root


def make_corpus(root: Path, n_train: int = 60, n_eval: int = 12, vocab: int = 25, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]

    def lines(n):
        return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 10))) for _ in range(n)]

    write_text_corpus(root, lines(n_train), lines(n_eval), lines(n_eval))
    return root


def make_imagefolder(root: Path, classes: int = 2, per_class: int = 3, seed: int = 0) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = torch.randint(0, 256, (20, 24, 3), dtype=torch.uint8, generator=g).numpy()
                ext = "png" if i % 2 else "JPEG"
                Image.fromarray(arr).save(d / f"img_{i}.{ext}")
    return root


def tiny_cifar(data: Path, **kw):
    base = dict(data=str(data), device="cpu", num_threads=1, epochs=2, C=4, layers=3, batch_size=16,
                eval_batch_size=24, deterministic=True)
    base.update(kw)
    return RECIPES["cifar10"](**canonical(base))


def tiny_lm(data: Path, dataset: str = "ptb", **kw):
    base = dict(data=str(data), device="cpu", num_threads=1, epochs=2, emsize=12, nhid=12, nhidlast=12,
                batch_size=4, bptt=8, eval_batch_size=2, deterministic=True)
    base.update(kw)
    return RECIPES[dataset](**canonical(base))


def tiny_imagenet(data: Path, **kw):
    base = dict(data=str(data), device="cpu", num_threads=1, epochs=1, C=4, layers=3, batch_size=2,
                eval_batch_size=4, workers=0, deterministic=True)
    base.update(kw)
    return RECIPES["imagenet"](**canonical(base))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous of a test's gloo process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank: int, world: int, port: int, jobs, result_path: str) -> None:
    """One process of a torchrun-like gloo group running reproduce.train.train for each (dataset, config, out)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from reproduce.train import train

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = []
        for dataset, config, out in jobs:
            record = train(dataset, config, out, progress=False)
            results.append({"curve": [{k: v for k, v in m.items() if k != "time_s"} for m in record["curve"]],
                            "final": record["final"]})
        torch.save(results, f"{result_path}.{rank}")
    finally:
        dist.destroy_process_group()


def ddp_claim_worker(rank: int, world: int, port: int, dataset: str, config, out: str, result_path: str) -> None:
    """One process of a 2-rank gloo group training into ``out``; writes what ``train`` raised (or 'finished')."""
    import json
    import time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from reproduce.train import train

    dist.init_process_group("gloo", rank=rank, world_size=world)
    start = time.time()
    try:
        train(dataset, config, out, progress=False)
        outcome = {"raised": None}
    except Exception as e:  # what each rank saw is the point of the test
        outcome = {"raised": type(e).__name__, "message": str(e)}
    outcome["seconds"] = time.time() - start
    Path(f"{result_path}.{rank}").write_text(json.dumps(outcome))
    dist.destroy_process_group()


def refused_in_one_line(capsys, argv, *needles):
    """``python -m reproduce ARGV`` exits 2 with one ``error:`` line on stderr holding every needle."""
    from reproduce.__main__ import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def refused_within_bounds(argv, *needles, seconds: float = MAX_SECONDS, rss_mb: int = MAX_RSS_MB, cwd=None):
    """``python -m reproduce ARGV`` in a fresh process exits 2 with one ``error:`` line holding every needle,
    within ``seconds`` of CPU time and of wall time (starting Python and torch included; stretched on an overloaded
    machine, see tests/child_bounds.py's wall_budget: the child is killed then), and a peak resident memory of
    ``rss_mb`` MB (the child's own)."""
    wall = wall_budget(seconds)
    r = run_child("-m", "reproduce", argv, cwd=cwd, wall_timeout=wall)
    err = r.stderr.strip()
    assert r.returncode == 2, f"exit {r.returncode} (killed after {wall:.0f} s of wall time?): {err[-2000:]}"
    assert err.count("\n") == 0 and err.startswith("error: ") and len(err) < 2000, err[-2000:]
    for needle in needles:
        assert needle in err, err
    if r.peak_rss_mb is not None:
        assert r.peak_rss_mb <= rss_mb, f"peak RSS {r.peak_rss_mb:.0f} MB: {err}"
    assert r.wall_s <= wall, f"{r.wall_s:.0f} s of wall time (bound {wall:.0f} s): {err}"
    if r.cpu_s is not None:
        assert r.cpu_s <= seconds, f"{r.cpu_s:.0f} s of CPU: {err}"
    return err
