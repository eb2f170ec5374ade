"""Reproduce the channels_last crash of the CPU conv search (not part of the test suite: it kills processes).

Trigger (found 2026-12-02, torch 2.14.1+cu130, oneDNN 3.12.0): the **weight gradient** of a 1x1
convolution with **stride 2** on a **channels_last** input with **few channels** (4 -> 2 at 16x16,
batch 16; 6 -> 2 at 32x32, batch 2), computed by oneDNN's **AVX2** code. The process dies with
"double free or corruption" (SIGABRT) or a segfault, at one thread as at several. The forward pass
and the input gradient are fine, and so are wider convolutions (16 -> 8 at 32x32, 48 -> 16 at 16x16)
and the second grid's convolution on the odd-sized ``x[:, :, 1:, 1:]``. On a CPU with AVX-512,
oneDNN takes other kernels and nothing crashes; ``ONEDNN_MAX_CPU_ISA=AVX2`` (what this script sets)
makes such a CPU take the AVX2 code, which is how a 2-vCPU EPYC with AVX-512 showed it. The
DARTS supernet hits it in FactorizedReduce (the cells after a reduction) at small C.

The fix (zoo.ops.FactorizedReduce): the stride-2 subsample, then a 1x1 convolution with stride 1:
the same products and sums, and no strided backward-weights kernel. This script runs each case in a
fresh process both ways and prints the exit codes (0: ran; -6 SIGABRT, -11 SIGSEGV: crashed)::

    python -m reproduce.benchmarks.channels_last_crash        # ONEDNN_MAX_CPU_ISA=AVX2
    python -m reproduce.benchmarks.channels_last_crash ALL    # the CPU's own kernels
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

CASES = [(4, 2, 16, 16), (6, 2, 32, 2), (2, 1, 8, 2), (16, 8, 32, 16), (48, 16, 16, 16)]  # C_in, C_out, size, batch


def one_case(c_in: int, c_out: int, size: int, batch: int, form: str, repeats: int = 20) -> None:
    """Forward and backward (input and weight gradients) ``repeats`` times; a crash kills this process."""
    torch.set_num_threads(1)
    w = torch.randn(c_out, c_in, 1, 1).contiguous(memory_format=torch.channels_last)
    for _ in range(repeats):
        x = torch.randn(batch, c_in, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
        weight = w.clone().requires_grad_()
        y = F.conv2d(x, weight, stride=2) if form == "strided" else F.conv2d(x[:, :, ::2, ::2], weight)
        y.sum().backward()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("isa", nargs="?", default="AVX2", help="ONEDNN_MAX_CPU_ISA for the children (ALL: no limit)")
    parser.add_argument("case", nargs="*", help=argparse.SUPPRESS)  # a child: C_IN C_OUT SIZE BATCH FORM
    args = parser.parse_args(argv)
    if args.case:  # a child: run one case
        *sizes, form = args.case
        one_case(*map(int, sizes), form)
        return 0
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=args.isa)
    print(f"torch {torch.__version__}, ONEDNN_MAX_CPU_ISA={args.isa}")
    print("C_in C_out size batch | strided 1x1 conv (the original) | subsample + 1x1 conv (ours)")
    for case in CASES:
        codes = []
        for form in ("strided", "subsample"):
            cmd = [sys.executable, "-m", "reproduce.benchmarks.channels_last_crash", args.isa, *map(str, case), form]
            codes.append(subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode)
        print(" ".join(f"{v:>4}" for v in case), "|", f"exit {codes[0]:>3}", "|", f"exit {codes[1]:>3}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
