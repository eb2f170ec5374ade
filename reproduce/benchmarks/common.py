"""Shared timing for benchmarks: warm-up, device sync, per-step times, peak memory, one JSON line."""
from __future__ import annotations

import argparse
import json
import resource
import sys

import torch


def add_common_arguments(parser: argparse.ArgumentParser, steps: int = 20) -> None:
    parser.add_argument("--steps", type=int, default=steps, help=f"timed steps (default: {steps})")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default: 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none", help="autocast dtype (default: none)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last memory format (default: the device's default, as a run would choose)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print only the JSON result line")


def setup(args) -> torch.device:
    if args.steps < 1 or args.warmup < 0:
        raise ValueError("--steps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    return device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Peak resident set size of the whole process (kilobytes on Linux).
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def report(result: dict, quiet: bool) -> int:
    if not quiet:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    print(json.dumps(result))
    return 0
