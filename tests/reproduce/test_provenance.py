"""Each record says which CPU kernels torch chose, and the report shows them beside every run."""
import json
import os
from pathlib import Path

import torch
from test_report import cifar

from reproduce.provenance import KERNEL_ENV, cpu_kernels, provenance
from reproduce.report import write_report


def test_a_record_keeps_the_cpu_kernels_torch_chose(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    cpu = provenance("cpu")["cpu"]
    assert cpu == cpu_kernels()
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability()
    assert cpu["ATEN_CPU_CAPABILITY"] == "avx2"
    assert cpu["mkldnn"] == (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    assert cpu["mkl"] == torch.backends.mkl.is_available()
    json.dumps(cpu, allow_nan=False)  # fits a record


def test_a_record_keeps_the_cpu_model_the_onednn_and_mkl_versions_and_the_kernel_environment(monkeypatch):
    config = torch.__config__.show()
    cpu = cpu_kernels()
    if Path("/proc/cpuinfo").is_file():  # Linux: the model name the kernel reports
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        assert cpu["model"] == (names[0] if names else cpu["model"])
    if torch.backends.mkldnn.is_available():
        assert cpu["onednn_version"] and f"v{cpu['onednn_version']}" in config
    if torch.backends.mkl.is_available() and "Math Kernel Library" in config:
        assert cpu["mkl_version"] and f"Version {cpu['mkl_version']}" in config
    assert all(name not in cpu["env"] for name in KERNEL_ENV if name not in os.environ)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    env = cpu_kernels()["env"]
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["MKL_CBWR"] == "COMPATIBLE"


def test_the_report_shows_each_runs_cpu_kernels(tmp_path):
    exp = cifar(tmp_path / "cifar10-darts_v2")
    path = exp / "runs" / "seed-0" / "record.json"
    record = json.loads(path.read_text())
    record["cpu"] = {"capability": "AVX512", "mkldnn": True, "onednn_version": "3.12.0"}
    path.write_text(json.dumps(record))
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "CPU kernels" in text and "AVX512, oneDNN 3.12.0" in text
    record["cpu"]["env"] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    path.write_text(json.dumps(record))
    assert "AVX512, oneDNN 3.12.0, ONEDNN_MAX_CPU_ISA=AVX2" in write_report(tmp_path, with_figures=False).read_text()
