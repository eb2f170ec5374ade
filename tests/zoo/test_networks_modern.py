"""The zoo's networks on modern PyTorch (autocast, channels_last, torch.compile) and on any device."""
from __future__ import annotations

import re

import pytest
import torch
from network_helpers import ZOO_DIR, _small

import genotypes
import zoo

# ---------------------------------------------------------------- modern PyTorch: autocast, channels_last, compile

@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_cnn_forward_under_bf16_autocast_on_cpu(cls, size):
    model = _small(cls, "DARTS_V2", layers=3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), ref, atol=0.15, rtol=0.1)


def test_cnn_trains_under_bf16_autocast_on_cpu():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).train()
    model.drop_path_prob = 0.2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, aux = model(torch.randn(2, 3, 32, 32))
    (logits.float().sum() + aux.float().sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_rnn_forward_under_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    tokens = torch.randint(0, 20, (4, 2))
    with torch.no_grad():
        ref, _ = model(tokens, model.init_hidden(2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = model(tokens, model.init_hidden(2))
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_channels_last_forward_equals_contiguous(cls, size):
    model = _small(cls, "DARTS_V2", layers=3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_torch_compile_graph_capture_trains_equal_to_eager():
    # aot_eager traces forward and backward through dynamo/AOTAutograd without a C++ compiler.
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3, C=4).train()
    x = torch.randn(2, 3, 32, 32)  # the CIFAR auxiliary head needs the 8x8 map of a 32x32 input
    torch.manual_seed(1)
    ref_logits, ref_aux = model(x)
    ref_grad = torch.autograd.grad(ref_logits.sum() + ref_aux.sum(), model.classifier.weight)[0]
    compiled = torch.compile(model, backend="aot_eager")
    torch.manual_seed(1)
    logits, aux = compiled(x)
    grad = torch.autograd.grad(logits.sum() + aux.sum(), model.classifier.weight)[0]
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_cell_equals_eager():
    # The default backend (inductor) generates and compiles C++ kernels: ~25 s of CPU for one cell on a cold
    # cache, about a minute for a whole network, so this compiles one tiny DARTS_V2 reduction cell (with
    # sep_conv, dil_conv, max_pool, factorized-reduce skip); the whole network is traced by the aot_eager test.
    from zoo.cnn import Cell

    torch.manual_seed(0)
    cell = Cell(genotypes.get("DARTS_V2"), 8, 8, 4, reduction=True, reduction_prev=False).eval()
    s0, s1 = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        ref = cell(s0, s1)
        out = torch.compile(cell, fullgraph=True)(s0, s1)
    assert out.shape == (2, 16, 4, 4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- device-agnostic code

def test_no_module_of_the_zoo_hard_codes_cuda():
    offenders = []
    for path in sorted(ZOO_DIR.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\.cuda\(|torch\.cuda\.\w+Tensor|Variable\(", code):
                offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert offenders == []


def test_networks_follow_the_device_and_dtype_of_their_parameters():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).to(torch.float64).train()
    model.drop_path_prob = 0.2
    logits, aux = model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert logits.dtype == aux.dtype == torch.float64
    rnn = zoo.RNNModel(20, 8, 8, 8).to(torch.float64).train()
    hidden = rnn.init_hidden(2)
    assert hidden[0].dtype == torch.float64
    log_prob, _ = rnn(torch.randint(0, 20, (3, 2)), hidden)
    assert log_prob.dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_networks_run_on_cuda():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).cuda().train()
    model.drop_path_prob = 0.2
    logits, aux = model(torch.randn(2, 3, 32, 32, device="cuda"))
    (logits.sum() + aux.sum()).backward()
    rnn = zoo.RNNModel(20, 8, 8, 8).cuda().train()
    log_prob, hidden = rnn(torch.randint(0, 20, (3, 2), device="cuda"), rnn.init_hidden(2))
    assert log_prob.is_cuda and hidden[0].is_cuda


def test_drop_path_with_a_tensor_probability_drops_whole_samples_and_is_exact_at_zero():
    from zoo.ops import drop_path

    x = torch.randn(64, 3, 4, 4)
    assert torch.equal(drop_path(x, torch.tensor(0.0)), x)
    torch.manual_seed(0)
    out = drop_path(x, torch.tensor(0.25))
    kept = [i for i in range(64) if out[i].abs().sum() > 0]
    assert 30 < len(kept) < 64  # about 3/4 kept
    for i in range(64):
        expected = x[i] / 0.75 if i in kept else torch.zeros_like(x[i])
        torch.testing.assert_close(out[i], expected)


def test_a_compiled_network_keeps_one_graph_while_a_tensor_drop_path_probability_changes():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3, C=4).train()
    model.drop_path_prob = torch.zeros(())
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(2, 3, 32, 32)
    for p in (0.0, 0.1, 0.2):
        model.drop_path_prob.fill_(p)
        compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
