"""The experimental ``--cuda-graphs`` training step against eager steps (CUDA only; skipped elsewhere).

These run in ``.ci/gpu-checks`` on a GPU machine. They pin down what the graphed step must do:
the same losses and weights as eager steps, fresh drop-path masks on every replay, a new capture
per epoch (learning rate and drop-path probability change), and eager steps for a short last batch.
"""
from __future__ import annotations

import copy

import pytest
import torch
from train_helpers import make_cifar, tiny_cifar

import zoo
from reproduce.optim import make_sgd
from reproduce.train import train
from reproduce.train.common import GraphedCNNStep, cnn_train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def exact_cudnn():
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def _pair(lr=0.025):
    torch.manual_seed(0)
    model = zoo.NetworkCIFAR(4, 10, 3, True, "DARTS_V2").cuda().train()
    twin = copy.deepcopy(model)
    return [(m, list(m.parameters()), make_sgd(m.parameters(), lr, momentum=0.9, weight_decay=3e-4))
            for m in (model, twin)]


def test_graphed_steps_equal_eager_steps(exact_cudnn):
    (model, params, opt), (twin, twin_params, twin_opt) = _pair()
    device = torch.device("cuda")
    kw = dict(auxiliary_weight=0.4, grad_clip=5.0)
    graphed = GraphedCNNStep(model, opt, params, device, warmup=2, **kw)
    g = torch.Generator(device="cuda").manual_seed(1)
    for _ in range(6):  # 2 eager warm-up steps, the capture, then replays
        x = torch.randn(8, 3, 32, 32, device="cuda", generator=g)
        y = torch.randint(0, 10, (8,), device="cuda", generator=g)
        loss, correct = graphed(x, y)
        twin_loss, twin_correct = cnn_train_step(twin, twin_opt, x, y, params=twin_params, device=device, **kw)
        torch.testing.assert_close(loss, twin_loss, rtol=1e-5, atol=1e-6)
        assert int(correct) == int(twin_correct)
    assert graphed.graph is not None
    for p, q in zip(params, twin_params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_every_replay_draws_new_drop_path_masks():
    (model, params, opt), _ = _pair(lr=0.0)  # no weight change: only the masks make the losses differ
    model.drop_path_prob = 0.5
    graphed = GraphedCNNStep(model, opt, params, torch.device("cuda"), warmup=1, auxiliary_weight=0.4, grad_clip=5.0)
    x = torch.randn(8, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (8,), device="cuda")
    losses = [float(graphed(x, y)[0]) for _ in range(6)]
    assert graphed.graph is not None
    assert len(set(losses[2:])) == len(losses[2:]), losses  # the replays


def test_recipe_with_cuda_graphs_follows_the_eager_recipe(tmp_path, exact_cudnn):
    # 88 images in batches of 16: per epoch 3 eager warm-up steps, the capture, a replay and a short eager
    # last batch; two epochs, so a recapture
    data = make_cifar(tmp_path / "data", n_train=88, n_test=16)
    kw = dict(device="cuda", deterministic=True, drop_path_prob=0.0, epochs=2, batch_size=16)
    eager = train("cifar10", tiny_cifar(data, **kw), tmp_path / "eager", progress=False)
    graphed = train("cifar10", tiny_cifar(data, cuda_graphs=True, **kw), tmp_path / "graphed", progress=False)
    for a, b in zip(eager["curve"], graphed["curve"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-3)
