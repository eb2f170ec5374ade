"""Evaluation on small generated datasets in the real on-disk formats, against computed numbers."""
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo import datasets as D
from zoo import evaluate as E
from zoo.__main__ import main


class ClassFromPixel(nn.Module):
    """Right on every image by construction: the class is written into pixel (0, 0) of channel 0."""

    def forward(self, x):
        value = (x[:, 0, 0, 0] * D.CIFAR_STD[0] + D.CIFAR_MEAN[0]) * 255
        cls = torch.round((value - 10) / 20)
        return -(torch.arange(10, dtype=x.dtype) - cls[:, None]) ** 2


def _cifar_with_class_pixels(root, labels, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor(labels)
    test = torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=g)
    test[:, 0, 0, 0] = (20 * labels + 10).to(torch.uint8)
    train = torch.zeros(5, 3, 32, 32, dtype=torch.uint8)
    D.write_cifar10(root, train, torch.zeros(5, dtype=torch.long), test, labels)
    return test, labels


def test_cifar10_model_right_on_every_image_reports_zero_error(tmp_path):
    labels = [i % 10 for i in range(23)]
    _cifar_with_class_pixels(tmp_path, labels)
    for amp in (None, "bf16"):
        m = E.evaluate_cifar10(ClassFromPixel(), tmp_path, batch_size=7, amp=amp, progress=False, download=False)
        assert m["top1_error"] == 0.0 and m["top5_error"] == 0.0 and m["n"] == 23


def test_cifar10_errors_are_counted_exactly(tmp_path):
    labels = [i % 10 for i in range(20)]
    images, _ = _cifar_with_class_pixels(tmp_path, labels)
    # the files give other labels for the images of classes 0-3; the model's top-5 for class c are the
    # 5 classes nearest c: {0..4} for 0, 1 and 2, {1..5} for 3
    wrong = list(labels)
    wrong[0], wrong[1], wrong[2], wrong[3] = 1, 3, 7, 9  # in, in, out, out
    D.write_cifar10(tmp_path, torch.zeros(5, 3, 32, 32, dtype=torch.uint8), torch.zeros(5, dtype=torch.long),
                    images, torch.tensor(wrong))
    m = E.evaluate_cifar10(ClassFromPixel(), tmp_path, batch_size=6, progress=False, download=False)
    assert m["top1_error"] == pytest.approx(100 * 4 / 20)
    assert m["top5_error"] == pytest.approx(100 * 2 / 20)


def _constant_cifar_net(tmp_path, name=None):
    torch.manual_seed(0)
    model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2").eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.arange(10.0))  # always class 9; top-5 = {5, ..., 9}
    return zoo.save_pretrained(model, tmp_path / "model", name=name, card=False)


def test_eval_command_reports_measured_and_expected_side_by_side(tmp_path, capsys):
    d = _constant_cifar_net(tmp_path, name="darts-cifar10")
    _cifar_with_class_pixels(tmp_path / "data", [9, 9, 7, 0])
    out_json = tmp_path / "eval.json"
    rc = main(["eval", str(d), "--data", str(tmp_path / "data"), "--json", str(out_json), "--batch-size", "3",
               "--no-progress", "--no-download"])
    assert rc == 0
    out = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert report["metrics"]["top1_error"] == pytest.approx(50.0)
    assert report["metrics"]["top5_error"] == pytest.approx(25.0)
    assert report["expected"] == {"top1_error": 2.63} and report["expected_params"] == 3349342
    assert report["params"] == zoo.count_parameters(zoo.load(str(d))) and report["n"] == 4
    assert report["dataset"] == "cifar10" and report["split"] == "test" and report["amp"] == "none"
    line = next(x for x in out.splitlines() if x.startswith("top1_error"))
    assert line.split() == ["top1_error", "50.00", "2.63"]
    assert "params" in out and "3,349,342" in out


def test_eval_command_errors_are_one_line(tmp_path, capsys):
    d = _constant_cifar_net(tmp_path)
    assert main(["eval", str(d), "--data", str(tmp_path / "nodata"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 not found") and err.count("\n") == 1
    assert main(["eval", "darts-cifar1", "--data", str(tmp_path)]) == 2
    assert "Did you mean 'darts-cifar10'" in capsys.readouterr().err
    assert main(["eval", str(d), "--data", str(tmp_path), "--device", "cuda:7"]) == 2 or torch.cuda.is_available()


@pytest.mark.slow  # 224x224 forward passes
def test_imagenet_eval_on_an_image_folder(tmp_path):
    from PIL import Image

    model = zoo.NetworkImageNet(2, 6, 2, False, "DARTS_V2").eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.arange(6.0))  # always class 5; top-5 = {1, ..., 5}
    d = zoo.save_pretrained(model, tmp_path / "model", card=False)
    counts = {"c5": 2, "c0": 1, "c3": 1}
    for cls in ("c0", "c1", "c2", "c3", "c4", "c5"):
        (tmp_path / "data" / "val" / cls).mkdir(parents=True)
        for i in range(counts.get(cls, 0)):
            Image.new("RGB", (300, 260), (40 * i, 80, 120)).save(tmp_path / "data" / "val" / cls / f"{i}.JPEG")
    report = E.evaluate(str(d), tmp_path / "data", batch_size=3, workers=0, progress=False)
    assert report["dataset"] == "imagenet" and report["split"] == "val" and report["n"] == 4
    assert report["metrics"]["top1_error"] == pytest.approx(50.0)
    assert report["metrics"]["top5_error"] == pytest.approx(25.0)


def _words(n, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [vocab[int(i)] for i in torch.randint(0, len(vocab), (n,), generator=g)]


def _ptb_corpus(root):
    vocab = [f"w{i}" for i in range(7)]
    train = [" ".join(vocab)] + [" ".join(_words(6, vocab, s)) for s in range(3)]
    valid = [" ".join(_words(5, vocab, 10))]
    test = [" ".join(_words(n, vocab, 20 + n)) for n in (9, 14, 11, 17)]  # 51 words + 4 <eos> = 55 tokens
    D.write_text_corpus(root, train, valid, test)
    return vocab + ["<eos>"], test


def test_ptb_perplexity_equals_the_hand_computed_value(tmp_path):
    words, test_lines = _ptb_corpus(tmp_path / "ptb")
    V = len(words)  # train covers the whole vocabulary first: w0..w6, <eos>
    model = zoo.RNNModel(V, 4, 4, 4, genotype="DARTS_V2").eval()
    bias = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 0.25, 1.0])
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder.bias.copy_(bias)  # every prediction is softmax(bias), whatever the input
    tokens = [words.index(w) for line in test_lines for w in line.split() + ["<eos>"]]
    N = len(tokens)
    logZ = math.log(sum(math.exp(b) for b in bias.tolist()))
    nll = sum(logZ - bias[t].item() for t in tokens[1:])
    expected = math.exp(nll / N)  # the original divides by len(test_data), N, not by the N - 1 predictions
    d = zoo.save_pretrained(model, tmp_path / "model", card=False)
    report = E.evaluate(str(d), tmp_path / "ptb", progress=False)
    assert report["n"] == N == 55 and report["metrics"]["predictions"] == N - 1
    assert report["metrics"]["test_ppl"] == pytest.approx(expected, rel=1e-6)


def test_ptb_chunks_carry_the_hidden_state_like_one_long_sequence(tmp_path, zoo_ref):
    _, _ = _ptb_corpus(tmp_path / "ptb")
    torch.manual_seed(0)
    model = zoo.RNNModel(8, 6, 6, 6, genotype="DARTS_V2").eval()
    corpus = D.Corpus(tmp_path / "ptb")
    data = corpus.test.view(-1, 1)
    with torch.no_grad():
        lp, _ = model(data[:-1], model.init_hidden(1))
    nll = F.nll_loss(lp.view(-1, 8), data[1:].view(-1), reduction="sum").item()
    m = E.evaluate_ptb(model, tmp_path / "ptb", bptt=5, progress=False)
    assert m["test_ppl"] == pytest.approx(math.exp(nll / len(data)), rel=1e-5)


def test_ptb_vocabulary_mismatch_is_explained(tmp_path):
    _ptb_corpus(tmp_path / "ptb")
    model = zoo.RNNModel(10000, 4, 4, 4)
    with pytest.raises(ValueError, match="vocabulary has 10000 words but .* gives 8"):
        E.evaluate_ptb(model, tmp_path / "ptb", progress=False)
