"""Time DARTS's dilated depthwise convolutions on CPU: the plain dilated kernel against zoo.ops.DilatedConv2d
(an undilated convolution on the input's phases), forward + backward (input and weight gradients), and the
difference of their float64 outputs (not part of the suite: it measures time).

Measured 2026-12-02 (torch 2.14.1+cu130, 2-vCPU AMD EPYC, 2 threads), median microseconds, batch 16:

    C  size k stride | NCHW plain, phases | channels_last plain, phases
    8   32  3   1    |  2189, 1077       | 1408, 1001
    8   32  5   1    |  5140, 2249       | 2728, 1592
    16  16  5   1    |  2259, 1703       | 1743,  985
    32   8  5   1    |  1265, 1601       | 1410, 1480   (8x8: DilatedConv2d now keeps the plain kernel)
    16  32  5   2    |  2630, 1296       | 6166,  826
    16  32  3   2    |  1328,  694       | 3417,  541
    32  16  5   2    |  1565, 1071       | 3482,  633

    python -m reproduce.benchmarks.dilated_conv
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from zoo.ops import DilatedConv2d

# batch, channels, size, kernel, stride: the dilated convs of a C=8, 5-cell search at batch 16
CASES = [(16, 8, 32, 3, 1), (16, 8, 32, 5, 1), (16, 16, 16, 5, 1), (16, 32, 8, 5, 1), (16, 16, 32, 5, 2),
         (16, 16, 32, 3, 2), (16, 32, 16, 5, 2)]
LAYOUTS = (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last))


def _median_us(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e6


def measure(batch: int, channels: int, size: int, kernel: int, stride: int, layout) -> dict:
    conv = DilatedConv2d(channels, channels, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=channels,
                         bias=False)
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=layout).requires_grad_()

    def plain():
        return F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    grad = torch.randn(plain().shape).contiguous(memory_format=layout)
    out = {name: _median_us(lambda f=f: torch.autograd.grad(f(), (x, conv.weight), grad))
           for name, f in (("plain", plain), ("phases", lambda: conv(x)))}
    conv64, x64 = conv.double(), x.detach().double()
    ref = F.conv2d(x64, conv64.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    out["max_abs_difference_float64"] = float((conv64(x64) - ref).detach().abs().max())
    conv.float()
    return out


def main() -> None:
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median microseconds, forward + backward")
    print("batch C size kernel stride | NCHW plain, phases | channels_last plain, phases | float64 difference")
    for case in CASES:
        rows = {name: measure(*case, layout) for name, layout in LAYOUTS}
        a, b = rows["NCHW"], rows["channels_last"]
        print(f"{case} | {a['plain']:.0f}, {a['phases']:.0f} | {b['plain']:.0f}, {b['phases']:.0f} | "
              f"{max(a['max_abs_difference_float64'], b['max_abs_difference_float64']):.1e}")


if __name__ == "__main__":
    main()
