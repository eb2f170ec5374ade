"""Why the conv search's channels_last on CPU sums its BatchNorm statistics itself (not part of the suite: it
measures round-off, which differs from CPU to CPU).

Found 2026-12-02 (torch 2.14.1+cu130, 2-vCPU AMD EPYC): PyTorch's CPU BatchNorm in channels_last computes its
batch statistics in float32 far less accurately than in NCHW, and the worse the larger an input's mean is
against its spread (the variance of a shifted input loses digits). Every edge of the supernet ends in a
BatchNorm in training mode, and the second-order architecture gradient takes a finite difference of two
gradients (eps = 0.01 / ||v||), which turns that error into a visible one: against a float64 computation,
the second-order gradient of a tiny supernet (C=4, 3 cells, batch 4, 32x32) was off by 3.9e-4 (relative) in
channels_last and 3.7e-6 in NCHW (other draws gave 6e-3 against 4e-6, and 5e-2 against 5e-6 at batch 8); the
architecture gradient alone, at 20 random weights, was off by more than 1e-4 in 6 of 20 cases in
channels_last and 1 of 20 in NCHW. The other ops (pools, depthwise and 1x1 convs, ReLU) are as accurate in
either layout. Turning oneDNN off does not change it: the error is BatchNorm's own.

The search therefore runs channels_last on CPU with :class:`reproduce.search.accurate_bn.AccurateStatisticsBatchNorm2d`
(statistics by cascaded column sums, PyTorch's kernels for the rest; NCHW's kernels on a copy for inputs
of at most 8192 values): the last column below, with the column sums at every size. Over seeds 0-19
(2026-12-02, scratch runs of :func:`second_order_errors`), the median relative error was 4.0e-6 with it, 4.7e-6
in NCHW and 6.8e-3 in plain channels_last; more than 1e-4 in 7, 8 and 18 of the 20 draws. Some draws are
ill-conditioned for every layout (seed 4: 1.2e-3 in NCHW and with it); the NCHW copy this replaced gave 2.0e-2
there.

    python -m reproduce.benchmarks.channels_last_accuracy
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..search import architect
from ..search.accurate_bn import AccurateStatisticsBatchNorm2d, use_accurate_statistics
from ..search.cnn_supernet import Network

LAYOUTS = (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last))
# what the search runs on CPU: channels_last with the BatchNorm statistics by column sums (forced here at every
# size: below COPY_UP_TO values the search uses NCHW's kernels on a copy, the NCHW column's arithmetic)
SEARCH_DEFAULT = "channels_last, column sums"


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def use_column_sums(model: nn.Module) -> nn.Module:
    """The search's BatchNorm, with its column sums at every size (no NCHW copy for small inputs)."""
    model = use_accurate_statistics(model)
    for module in model.modules():
        if isinstance(module, AccurateStatisticsBatchNorm2d):
            module.copy_up_to = 0
    return model


def batchnorm_errors(shift: float, seed: int = 0) -> dict:
    """Relative errors of float32 BatchNorm (training mode, no affine) against float64, per layout: (output,
    input gradient), on an input of mean ``shift`` and spread 0.1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 4, 32, 32, dtype=torch.float64, generator=g) * 0.1 + shift
    grad_out = torch.randn(x.shape, dtype=torch.float64, generator=g)

    def run(dtype, layout, accurate_statistics=False):
        xi = x.to(dtype).contiguous(memory_format=layout).requires_grad_(True)
        bn = nn.BatchNorm2d(4, affine=False).to(dtype)
        if accurate_statistics:
            use_column_sums(bn)
        y = bn(xi)
        (gx,) = torch.autograd.grad(y, xi, grad_out.to(dtype).contiguous(memory_format=layout))
        return y, gx

    ref = run(torch.float64, torch.contiguous_format)
    errors = {name: tuple(_relative(a, b) for a, b in zip(run(torch.float32, layout), ref)) for name, layout in LAYOUTS}
    errors[SEARCH_DEFAULT] = tuple(_relative(a, b) for a, b in zip(run(torch.float32, torch.channels_last, True), ref))
    return errors


def second_order_errors(seed: int = 0) -> dict:
    """Relative error of the float32 second-order architecture gradient against float64, per layout."""
    torch.manual_seed(seed)
    base = Network(C=4, num_classes=10, layers=3)
    alphas = [a.detach() for a in base.new_alphas()]
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(2)]

    def run(dtype, layout, accurate_statistics=False):
        model = copy.deepcopy(base).to(dtype).to(memory_format=layout)
        if accurate_statistics:
            use_column_sums(model)
        logits = [a.to(dtype).clone().requires_grad_(True) for a in alphas]

        def loss_on(k):
            x, y = batches[k]
            return lambda: (F.cross_entropy(model(x.to(dtype).contiguous(memory_format=layout), *logits), y), None)

        grads, _ = architect.second_order(model, logits, loss_on(0), loss_on(1), lr=0.025, momentum=0.9,
                                          weight_decay=3e-4)
        return torch.cat([t.flatten() for t in grads])

    ref = run(torch.float64, torch.contiguous_format)
    errors = {name: _relative(run(torch.float32, layout), ref) for name, layout in LAYOUTS}
    errors[SEARCH_DEFAULT] = _relative(run(torch.float32, torch.channels_last, accurate_statistics=True), ref)
    return errors


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}; float32 against float64, relative error")
    print("BatchNorm (training mode), input mean | NCHW output, input grad | channels_last output, input grad | "
          f"{SEARCH_DEFAULT} output, input grad")
    for shift in (0.0, 10.0, 100.0):
        e = batchnorm_errors(shift)
        print(f"  {shift:6.1f} | {e['NCHW'][0]:.1e}, {e['NCHW'][1]:.1e} | "
              f"{e['channels_last'][0]:.1e}, {e['channels_last'][1]:.1e} | "
              f"{e[SEARCH_DEFAULT][0]:.1e}, {e[SEARCH_DEFAULT][1]:.1e}")
    for seed in range(6):
        e = second_order_errors(seed)
        print(f"second-order architecture gradient (C=4, 3 cells, batch 4, seed {seed}): NCHW {e['NCHW']:.1e}, "
              f"channels_last {e['channels_last']:.1e}, {SEARCH_DEFAULT} (the search's CPU default above 8192 values) "
              f"{e[SEARCH_DEFAULT]:.1e}")


if __name__ == "__main__":
    main()
