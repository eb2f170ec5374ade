"""`python -m zoo eval NAME_OR_DIR --data IMAGE_FOLDER`: a user's class folders, the model's own preprocessing,
top-1 / top-5 and the error per class. The tiny model's classifier reads nothing (zero weights) and its bias
ranks the classes 0 > 1 > ... > 9, so every prediction, and every figure below, holds on any CPU."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import zoo
from zoo.__main__ import main
from zoo.evaluate import evaluate


def _ranked_model(num_classes=10):
    torch.manual_seed(0)
    model = zoo.NetworkCIFAR(4, num_classes, 2, False, "DARTS_V2").eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.arange(num_classes, 0, -1, dtype=torch.float32))
    return model


def _folder(root, counts):
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):  # other sizes than the model's 32x32: the model's preprocessing resizes them
            Image.new("RGB", (40 + i, 36), color=(10 * i, 100, 200)).save(root / name / f"{i}.png")
    return root


def test_eval_on_an_image_folder_reports_top1_top5_and_the_error_per_class(tmp_path, capsys):
    saved = zoo.save_pretrained(_ranked_model(), tmp_path / "model", name="darts-cifar10",
                                metrics={"top1_error": 2.63}, metrics_source="not for these images")
    # CIFAR-10 class names: airplane is output 0, cat 3 (in the top 5), truck 9
    data = _folder(tmp_path / "images", {"airplane": 2, "cat": 1, "truck": 2})
    rc = main(["eval", str(saved), "--data", str(data), "--workers", "0", "--no-progress",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"] == "folder" and report["n"] == 5
    assert report["metrics"]["top1_error"] == pytest.approx(60.0)
    assert report["metrics"]["top5_error"] == pytest.approx(40.0)
    assert report["per_class"] == {"airplane": {"n": 2, "top1_error": 0.0}, "cat": {"n": 1, "top1_error": 100.0},
                                   "truck": {"n": 2, "top1_error": 100.0}}
    assert report["expected"] == {}  # the model's published figures are not figures of these images
    out = capsys.readouterr().out
    assert "error per class:" in out and "truck" in out


def test_folders_that_are_not_class_names_map_to_outputs_by_position(tmp_path):
    saved = zoo.save_pretrained(_ranked_model(num_classes=2), tmp_path / "model")
    data = _folder(tmp_path / "images", {"ants": 1, "bees": 3})
    report = evaluate(str(saved), data, workers=0, progress=False)
    assert report["per_class"] == {"ants": {"n": 1, "top1_error": 0.0}, "bees": {"n": 3, "top1_error": 100.0}}
    assert "top5_error" not in report["metrics"]  # two outputs: no top-5


def test_a_folder_that_does_not_fit_the_model_is_one_clear_error(tmp_path, capsys):
    saved = zoo.save_pretrained(_ranked_model(num_classes=2), tmp_path / "model")
    data = _folder(tmp_path / "images", {"a": 1, "b": 1, "c": 1})
    assert main(["eval", str(saved), "--data", str(data), "--workers", "0", "--no-progress"]) == 2
    assert "3 class folders and the model 2 outputs" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(saved), "--data", str(tmp_path / "empty"), "--dataset", "folder", "--no-progress"]) == 2
    assert "not an image folder" in capsys.readouterr().err
