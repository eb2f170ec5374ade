import pickle

import numpy as np
import pytest
import torch

from zoo import datasets as D


def _tiny(n_train=11, n_test=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n_train,), generator=g),
            torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n_test,), generator=g))


def test_cifar10_roundtrip_in_torchvision_layout(tmp_path):
    tr, tl, te, tel = _tiny()
    d = D.write_cifar10(tmp_path, tr, tl, te, tel)
    assert d.name == "cifar-10-batches-py"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    x, y = D.load_cifar10(tmp_path, train=True, download=False)
    assert x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, tr) and torch.equal(y, tl)
    x, y = D.load_cifar10(tmp_path, train=False, download=False)
    assert torch.equal(x, te) and torch.equal(y, tel)


def test_cifar10_files_read_like_torchvision_reads_them(tmp_path):
    tr, tl, te, tel = _tiny()
    d = D.write_cifar10(tmp_path, tr, tl, te, tel)
    with open(d / "test_batch", "rb") as f:  # trusted: we just wrote it
        entry = pickle.load(f, encoding="latin1")
    assert entry["labels"] == tel.tolist()
    assert np.array_equal(entry["data"], te.numpy().reshape(4, -1))


def test_cifar10_missing_offline_says_where_and_how(tmp_path, monkeypatch):
    with pytest.raises(D.DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        D.load_cifar10(tmp_path / "none", train=False, download=False)

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(D.DatasetNotFoundError, match="downloading it failed.*network unreachable"):
        D.load_cifar10(tmp_path / "none", train=False, download=True)


def test_cifar10_truncated_or_malformed_file_is_a_clear_error(tmp_path):
    tr, tl, te, tel = _tiny()
    d = D.write_cifar10(tmp_path, tr, tl, te, tel)
    raw = (d / "test_batch").read_bytes()
    (d / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(D.DatasetFormatError, match="test_batch.*download CIFAR-10 again"):
        D.load_cifar10(tmp_path, train=False, download=False)
    (d / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, 4))
    with pytest.raises(D.DatasetFormatError, match=r"uint8 \[N, 3072\]"):
        D.load_cifar10(tmp_path, train=False, download=False)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar10_reader_refuses_code_in_the_pickle(tmp_path):
    tr, tl, te, tel = _tiny()
    d = D.write_cifar10(tmp_path, tr, tl, te, tel)
    (d / "test_batch").write_bytes(pickle.dumps({"data": _Evil(), "labels": []}, 2))
    with pytest.raises(D.DatasetFormatError, match="refusing to load global '(posix|os).system'"):
        D.load_cifar10(tmp_path, train=False, download=False)


def test_corpus_tokenises_as_the_original(tmp_path):
    D.write_text_corpus(tmp_path, ["a b c", "b  a"], ["c d"], ["e a"])
    c = D.Corpus(tmp_path)
    # vocabulary over train, valid, test in order of first appearance; <eos> ends every line
    assert c.dictionary.idx2word == ["a", "b", "c", "<eos>", "d", "e"]
    assert c.train.tolist() == [0, 1, 2, 3, 1, 0, 3]
    assert c.valid.tolist() == [2, 4, 3]
    assert c.test.tolist() == [5, 0, 3]
    assert c.train.dtype == torch.long
    assert c.dictionary.total == 13 and c.dictionary.counter[3] == 4


def test_corpus_missing_files_name_ptb_and_wikitext_sources(tmp_path):
    (tmp_path / "train.txt").write_text("a\n")
    with pytest.raises(D.DatasetNotFoundError, match="valid.txt, test.txt.*simple-examples.tgz.*wikitext-2"):
        D.Corpus(tmp_path)


def test_batchify_and_get_batch_follow_the_original():
    data = torch.arange(11)
    b = D.batchify(data, 3)
    assert b.shape == (3, 3)
    assert b.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    x, y = D.get_batch(b, 0, bptt=35)
    assert x.tolist() == [[0, 3, 6], [1, 4, 7]] and y.tolist() == [1, 4, 7, 2, 5, 8]


def test_imagenet_folder_reads_class_tree_and_explains_missing(tmp_path):
    from PIL import Image

    for cls in ("n01", "n02"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        Image.new("RGB", (300, 280), (10, 20, 30)).save(tmp_path / "val" / cls / "x.JPEG")
    ds = D.imagenet_folder(tmp_path)
    x, y = ds[1]
    assert x.shape == (3, 224, 224) and y == 1
    expected = (10 / 255 - D.IMAGENET_MEAN[0]) / D.IMAGENET_STD[0]
    assert abs(float(x[0, 100, 100]) - expected) < 0.02
    with pytest.raises(D.DatasetNotFoundError, match="image-net.org"):
        D.imagenet_folder(tmp_path, split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DatasetNotFoundError, match="ImageFolder"):
        D.imagenet_folder(tmp_path, split="empty")
