"""Each record says which CPU kernels torch chose, and the report shows them beside every run."""
import json

import torch
from test_report import cifar

from reproduce.provenance import cpu_kernels, provenance
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


def test_the_report_shows_each_runs_cpu_kernels(tmp_path):
    exp = cifar(tmp_path / "cifar10-darts_v2")
    path = exp / "runs" / "seed-0" / "record.json"
    record = json.loads(path.read_text())
    record["cpu"] = {"capability": "AVX512", "mkldnn": True, "onednn_version": "3.12.0"}
    path.write_text(json.dumps(record))
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "CPU kernels" in text and "AVX512, oneDNN 3.12.0" in text
