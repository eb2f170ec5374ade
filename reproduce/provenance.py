"""Where and how a run was made: commit, device, versions and the CPU kernels torch chose. Stored in every record.

The same CPU model on another machine can give other numbers: torch picks its CPU kernels at run time
(the vector instruction set it dispatches to, ``ATEN_CPU_CAPABILITY`` can lower it) and oneDNN picks its
own by the CPU's features, so float sums may come in another order. The search amplifies such rounding (a
genotype is an argmax over nearly equal weights), so another machine may find other cells. The record
keeps what decides the kernels (:func:`cpu_kernels`), so two runs that differ can be told apart.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import torch

_REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The project's commit (with '-dirty' if the tree has changes), or 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _cpu_model() -> Optional[str]:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _build_setting(config: str, name: str) -> Optional[str]:
    found = re.search(rf"{name}=([^,\s]+)", config)
    return found.group(1) if found else None


# The environment variables that lower or pin the instruction set oneDNN and MKL dispatch to (torch's own,
# ATEN_CPU_CAPABILITY, is its own field): set on one machine and not on another, they change the kernels.
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def cpu_kernels() -> Dict[str, Any]:
    """What decides the CPU kernels torch runs: the CPU model, the instruction set torch dispatches to
    (``torch.backends.cpu.get_cpu_capability()``, lowered by ``ATEN_CPU_CAPABILITY``), whether oneDNN (mkldnn)
    is used and its version, whether MKL is and its version, the BLAS and the parallel backend torch was built
    with, and the environment variables that steer oneDNN's and MKL's choice (:data:`KERNEL_ENV`, those set)."""
    config = torch.__config__.show()
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([\w.]+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    parallel = re.search(r"ATen parallel backend: (.+)", torch.__config__.parallel_info())
    return {
        "model": _cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "onednn_version": onednn.group(1) if onednn else None,
        "mkl": bool(torch.backends.mkl.is_available()),
        "mkl_version": mkl.group(1) if mkl else None,
        "blas": _build_setting(config, "BLAS_INFO"),
        "parallel": parallel.group(1).strip() if parallel else None,
        "env": {name: os.environ[name] for name in KERNEL_ENV if name in os.environ},
    }


def provenance(device) -> dict:
    return {
        "git_commit": git_commit(),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_kernels(),
    }
