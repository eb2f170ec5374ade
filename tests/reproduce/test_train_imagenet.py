"""ImageNet recipe end to end on a tiny ImageFolder tree (PNG and JPEG files; the network sees 224x224)."""
from __future__ import annotations

import pytest
import torch
from train_helpers import make_imagefolder, tiny_imagenet

from reproduce.rundir import RunDir
from reproduce.train import train
from reproduce.train.common import topk_correct
from reproduce.train.imagenet import ImageNetTask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagefolder(tmp_path_factory.mktemp("imagenet"))


@pytest.mark.slow
def test_imagenet_run_reports_top1_and_top5_error_and_decays_lr_per_epoch(folder, tmp_path):
    record = train("imagenet", tiny_imagenet(folder, epochs=2, lr=0.1, gamma=0.5), tmp_path / "run", progress=False)
    assert record["dataset"] == "imagenet" and record["status"] == "finished"
    assert [m["lr"] for m in record["curve"]] == pytest.approx([0.1, 0.05])
    final = record["final"]
    assert 0 <= final["top1_error"] <= 100 and final["top5_error"] == 0.0  # 2 classes: top-5 always hits
    assert final["num_classes"] == 2


def test_imagenet_loader_yields_224_crops_from_small_images_with_workers(folder, tmp_path):
    task = ImageNetTask("imagenet", tiny_imagenet(folder, workers=2), _dist(), RunDir(tmp_path / "run"), progress=False)
    loader = task._loader(task.train_set, [[0, 1, 2]], torch.Generator().manual_seed(0))
    x, y = next(iter(loader))
    assert x.shape == (3, 3, 224, 224) and y.tolist() == [0, 0, 0]
    xv, _ = next(iter(task._loader(task.val_set, [[0, 1]], torch.Generator().manual_seed(0))))
    assert xv.shape == (2, 3, 224, 224)


def test_mismatched_class_folders_are_refused(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    (root / "val" / "n99999999").mkdir()
    (root / "val" / "n00000000" / "img_0.JPEG").rename(root / "val" / "n99999999" / "img_0.JPEG")
    with pytest.raises(ValueError, match="different class folders"):
        train("imagenet", tiny_imagenet(root), tmp_path / "run", progress=False)


def test_missing_imagenet_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageFolder"):
        train("imagenet", tiny_imagenet(tmp_path / "none"), tmp_path / "run", progress=False)


def test_topk_correct_caps_k_at_the_number_of_classes():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    c1, c5 = topk_correct(logits, torch.tensor([1, 1]))
    assert int(c1) == 1 and int(c5) == 2


def _dist():
    from reproduce.distributed import Dist

    return Dist()
