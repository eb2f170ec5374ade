"""`python -m reproduce bench search` runs and prints one JSON line last (speed itself is measured by the bench)."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

from reproduce.__main__ import main

pytestmark = pytest.mark.usefixtures("single_thread")


TINY = ["--C", "2", "--layers", "3", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu", "--json"]


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["1", "2"])
def test_bench_search_prints_one_json_line_last(capsys, order):
    assert main(["bench", "search", "--order", order] + TINY) == 0
    result = _last_json(capsys)
    assert result["impl"] == "ours" and result["order"] == int(order)
    assert result["sec_per_step"] > 0 and result["peak_memory_mb"] > 0


@pytest.mark.parametrize("flag, stacked", [([], True), (["--no-stack-edges"], False), (["--stack-edges"], True)])
def test_bench_search_stacks_the_edges_as_asked_and_says_so(capsys, stacked_calls, flag, stacked):
    assert main(["bench", "search", "--order", "1", *flag] + TINY) == 0
    assert _last_json(capsys)["stack_edges"] is stacked and bool(stacked_calls) is stacked


def test_the_supernet_stacks_on_every_device_when_asked_and_never_when_told_not_to(stacked_calls):
    import torch

    from reproduce.search.cnn_supernet import Network

    x = torch.randn(2, 3, 8, 8)
    for stack, expected in ((None, True), (False, False), (True, True)):  # None: CPUs only
        stacked_calls.clear()
        model = Network(C=2, num_classes=3, layers=3, stack_edges=stack)
        model(x, *model.new_alphas())
        assert bool(stacked_calls) is expected
    assert main(["bench", "search", "--impl", "original", "--no-stack-edges", "--original-src", "x"] + TINY) == 2


def _fake_original(root):
    """A stand-in for the original cnn/ code with the same interface (the real one is never part of the project)."""
    cnn = root / "cnn"
    cnn.mkdir(parents=True)
    (cnn / "genotypes.py").write_text("PRIMITIVES = ['none', 'skip_connect']\n")
    (cnn / "model_search.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn as nn
        from genotypes import PRIMITIVES

        class Network(nn.Module):
            def __init__(self, C, num_classes, layers, criterion):
                super().__init__()
                self.conv = nn.Conv2d(3, C, 3, padding=1)
                self.fc = nn.Linear(C, num_classes)
                self.alphas = torch.zeros(len(PRIMITIVES)).cuda().requires_grad_(True)
                self._criterion = criterion

            def forward(self, x):
                return self.fc(self.conv(x).mean((2, 3))) * self.alphas.softmax(0)[0]

            def arch_parameters(self):
                return [self.alphas]
    """))
    (cnn / "architect.py").write_text(textwrap.dedent("""
        import torch

        class Architect:
            def __init__(self, model, args):
                self.model = model
                self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=args.arch_learning_rate)
                self.calls = 0

            def step(self, x, y, xv, yv, eta, network_optimizer, unrolled):
                self.optimizer.zero_grad()
                self.model._criterion(self.model(xv), yv).backward()
                self.optimizer.step()
    """))
    return root


def test_bench_search_times_the_original_from_a_user_checkout_and_compares(tmp_path, capsys):
    import genotypes

    src = _fake_original(tmp_path / "darts")
    assert main(["bench", "search", "--impl", "both", "--original-src", str(src)] + TINY) == 0
    result = _last_json(capsys)
    assert result["original_sec_per_step"] > 0 and result["speedup_mean"] > 0
    assert sys.modules["genotypes"] is genotypes  # the original's modules did not replace ours
    assert "model_search" not in sys.modules
    import torch

    assert getattr(torch.Tensor.cuda, "__name__", "") != "<lambda>"  # the .cuda() shim is undone


def test_bench_search_original_needs_a_checkout(tmp_path, capsys):
    assert main(["bench", "search", "--impl", "original"] + TINY) == 2
    assert "--original-src" in capsys.readouterr().err
    assert main(["bench", "search", "--impl", "original", "--original-src", str(tmp_path)] + TINY) == 2
    assert "quark0/darts" in capsys.readouterr().err


def test_bench_search_times_the_pcdarts_supernet_first_order_by_default(capsys):
    tiny = ["--C", "8", "--layers", "3", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu", "--json"]
    assert main(["bench", "search", "--method", "pcdarts"] + tiny) == 0
    result = _last_json(capsys)
    assert result["method"] == "pcdarts" and result["order"] == 1 and result["peak_memory_mb"] > 0
    assert main(["bench", "search", "--method", "pcdarts", "--impl", "both"] + tiny) == 2  # ours only
