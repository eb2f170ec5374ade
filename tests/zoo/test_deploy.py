"""Deployment of an evaluated network: torch.export, and ONNX checked against onnxruntime (the [onnx] extra)."""
from __future__ import annotations

import pytest
import torch

import zoo


def _small(cls=zoo.NetworkCIFAR, **kw):
    torch.manual_seed(0)
    return cls(8, 10, 5, True, "DARTS_V2", **kw).eval()


@pytest.mark.parametrize("features_only", [False, True])
def test_torch_export_of_an_evaluated_network_gives_its_outputs(features_only):
    model = _small()
    if features_only:
        model.features_only()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        want, got = model(x), exported.module()(x)
    if features_only:
        assert len(got) == len(want) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))
    else:
        assert torch.allclose(got, want, atol=1e-6)


def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(tmp_path):
    pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
    ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    model = _small(zoo.NetworkImageNet)
    x = torch.randn(2, 3, 224, 224)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["images"], output_names=["logits"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (2, 10)
    assert abs(got - want).max() < 1e-4
