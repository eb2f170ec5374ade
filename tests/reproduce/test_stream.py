"""Image folders too large for memory are streamed from disk with the same augmentation: a streamed run
computes exactly what the in-memory run computes."""
from __future__ import annotations

import pytest
import torch
from image_helpers import write_image_folder
from search_helpers import one_thread

from reproduce.config import ConfigError, build
from reproduce.data.images import DataSourceError, channel_stats, load_images
from reproduce.data.stream import StreamedImages, streamed_stats
from reproduce.train import RECIPES, train
from zoo.image_folder import scan


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("s"), {"a": 6, "b": 5, "c": 4}, size=14, mode="RGB")


def test_streamed_batches_equal_the_decoded_images_and_their_statistics(folder):
    decoded = load_images(str(folder), image_size=12).train[0]
    streamed = StreamedImages([f for f, _ in scan(folder).splits["train"]], 3, 12, workers=2)
    assert len(streamed) == 15 and streamed.shape == (15, 3, 12, 12)
    assert torch.equal(streamed[torch.tensor([4, 0, 9])], decoded[[4, 0, 9]])
    assert torch.equal(streamed[3:7], decoded[3:7])
    for a, b in zip(streamed_stats(streamed), channel_stats(decoded)):
        assert a == pytest.approx(b, abs=1e-6)


def test_a_streamed_training_run_equals_the_in_memory_run(folder, tmp_path):
    base = dict(data=str(folder), image_size=12, normalize="0.4/0.3", C=4, layers=3, epochs=1, batch_size=4,
                device="cpu", deterministic=True, arch="DARTS_V2", auxiliary=False, valid_portion=0.25)
    with one_thread():
        memory = train("images", RECIPES["images"](**base), tmp_path / "memory", progress=False)
        streamed = train("images", RECIPES["images"](**base, in_memory_mb=0, workers=2), tmp_path / "stream",
                         progress=False)
    assert streamed["data"]["path"] == "streamed from disk" and memory["data"]["path"] == "decoded once into memory"
    drop = ("time_s",)
    assert [{k: v for k, v in m.items() if k not in drop} for m in streamed["curve"]] == [
        {k: v for k, v in m.items() if k not in drop} for m in memory["curve"]]
    assert streamed["final"] == memory["final"]


def test_streaming_needs_an_image_size(folder, tmp_path):
    config = RECIPES["images"](data=str(folder), in_memory_mb=0, device="cpu")
    with pytest.raises(DataSourceError, match="streamed from disk, which needs --image-size"):
        train("images", config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="workers"):
        build(RECIPES["images"], {"data": str(folder), "workers": -1})
