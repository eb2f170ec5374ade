"""The evaluation datasets in their usual on-disk formats, read safely.

- CIFAR-10 in torchvision's layout (``root/cifar-10-batches-py/{data_batch_1..5,test_batch}``):
  python pickles read with an allow-list unpickler that can only rebuild numpy arrays.
- Penn Treebank / WikiText-2 in the awd-lstm-lm layout (``path/{train,valid,test}.txt``),
  tokenised exactly as the original ``rnn/data.py``.
- ImageNet as an ImageFolder tree (``root/val/<wnid>/*.JPEG``).

Writers for tiny datasets in the same formats (``write_cifar10``, ``write_text_corpus``) are here
too, so tests and demos run the real readers.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import struct
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .fileio import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
WT2_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
AWD_GETDATA = "https://github.com/salesforce/awd-lstm-lm/blob/master/getdata.sh"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it was looked for; the message says where and how to get it."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in the expected format (truncated, corrupt, wrong shapes)."""


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_scalar():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _encode(text, encoding="latin1"):
    # what protocol-2 pickles written by Python 3 use to carry bytes; only text -> bytes
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError("_codecs.encode called with non-string arguments")
    return text.encode(encoding)


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _encode,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global before anything runs."""

    def find_class(self, module, name):
        factory = _NUMPY_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy arrays are allowed in this file"
            )
        return factory()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in this file")


def safe_unpickle_numpy(data: bytes):
    """Load a python pickle that may only hold containers, strings, numbers and numpy arrays."""
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _cifar_dir(root: PathLike) -> Path:
    root = Path(root).expanduser()
    if root.name == CIFAR10_DIRNAME or (root / CIFAR10_TEST_FILE).exists():
        return root
    return root / CIFAR10_DIRNAME


def _cifar_files(train: bool) -> Tuple[str, ...]:
    return CIFAR10_TRAIN_FILES if train else (CIFAR10_TEST_FILE,)


def _cifar_missing(root: PathLike, train: bool) -> List[Path]:
    d = _cifar_dir(root)
    return [d / f for f in _cifar_files(train) if not (d / f).is_file()]


def _get(entry: dict, key: str):
    if key in entry:
        return entry[key]
    if key.encode() in entry:
        return entry[key.encode()]
    raise KeyError(key)


def read_cifar10_batch(path: PathLike) -> Tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 python batch file -> (uint8 [N,3,32,32], int64 [N]), validated."""
    path = Path(path)
    raw = path.read_bytes()
    fix = f"delete {path.parent} and download CIFAR-10 again ({CIFAR10_URL})"
    try:
        entry = safe_unpickle_numpy(raw)
    except MemoryError:  # this process is short of memory (e.g. thousands of threads), not the file damaged
        raise MemoryError(f"while reading {path}, which is not at fault") from None
    except Exception as e:  # any failure to parse is a damaged file (refusals are UnpicklingErrors)
        raise DatasetFormatError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(entry, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, got {type(entry).__name__}; {fix}")
    try:
        data = _get(entry, "data")
        labels = _get(entry, "labels") if ("labels" in entry or b"labels" in entry) else _get(entry, "fine_labels")
    except KeyError as e:
        raise DatasetFormatError(f"{path}: no '{e.args[0]}' entry (keys: {sorted(map(str, entry))}); {fix}") from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(
            f"{path}: 'data' should be uint8 [N, 3072], got {data.dtype} {list(data.shape)}; {fix}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            f"{path}: 'labels' should be {data.shape[0]} integers, got {labels.dtype} {list(labels.shape)}; {fix}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{path}: labels outside 0..9 ({labels.min()}..{labels.max()}); {fix}")
    images = torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, 32, 32)))
    return images, torch.from_numpy(labels.astype(np.int64))


def download_cifar10(root: PathLike) -> None:
    """Download and extract CIFAR-10 into ``root`` with torchvision's checked (md5) download."""
    try:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except Exception as e:  # offline, proxy, disk, checksum: all the same to the user
        raise DatasetNotFoundError(_cifar_help(root, f"downloading it failed ({type(e).__name__}: {e})")) from None


def _cifar_help(root: PathLike, why: str) -> str:
    return (
        f"CIFAR-10 not found in {Path(root).expanduser()} (looked for {CIFAR10_DIRNAME}/"
        f"{{data_batch_1..5,test_batch}}): {why}. Get it with "
        f"`python -c \"import torchvision; torchvision.datasets.CIFAR10('{root}', download=True)\"` "
        f"or download {CIFAR10_URL} and extract it into {root}"
    )


def load_cifar10(root: PathLike, train: bool, download: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 train (50000) or test (10000) split as (uint8 [N,3,32,32], int64 [N]).

    Reads torchvision's on-disk format without unpickling anything but numpy arrays. When files
    are missing and ``download`` is true, downloads them (md5-checked) first.
    """
    missing = _cifar_missing(root, train)
    if missing:
        if not download:
            raise DatasetNotFoundError(_cifar_help(root, f"missing {', '.join(p.name for p in missing)}"))
        log.info("CIFAR-10 not found in %s; downloading", root)
        Path(root).expanduser().mkdir(parents=True, exist_ok=True)
        download_cifar10(Path(root).expanduser())
        missing = _cifar_missing(root, train)
        if missing:
            raise DatasetNotFoundError(_cifar_help(root, "the download did not produce the expected files"))
    d = _cifar_dir(root)
    parts = [read_cifar10_batch(d / f) for f in _cifar_files(train)]
    images = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels


class _Py2StylePickler(pickle._Pickler):
    """Protocol-2 pickler that writes bytes as Python 2 ``str`` (as the CIFAR-10 files were written)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_bytes_as_py2_str(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_as_py2_str


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _as_uint8_images(images, name: str) -> np.ndarray:
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or tuple(arr.shape[1:]) != (3, 32, 32):
        raise ValueError(f"{name} must be uint8 [N, 3, 32, 32], got {arr.dtype} {list(arr.shape)}")
    return arr.reshape(arr.shape[0], -1)


def write_cifar10(root: PathLike, train_images, train_labels, test_images, test_labels, batches: int = 5) -> Path:
    """Write a (tiny) CIFAR-10 in torchvision's on-disk format; returns the ``cifar-10-batches-py`` dir.

    Keys are written as Python 2 strings like the real files: ``data`` (uint8 [N, 3072]),
    ``labels`` (list of int), ``batch_label``, ``filenames``; plus ``batches.meta``. The training
    images are split over ``batches`` files ``data_batch_1..`` (the readers expect 5).
    """
    d = Path(root).expanduser() / CIFAR10_DIRNAME
    train = _as_uint8_images(train_images, "train_images")
    test = _as_uint8_images(test_images, "test_images")
    train_labels = [int(x) for x in (train_labels.tolist() if hasattr(train_labels, "tolist") else train_labels)]
    test_labels = [int(x) for x in (test_labels.tolist() if hasattr(test_labels, "tolist") else test_labels)]
    if len(train_labels) != len(train) or len(test_labels) != len(test):
        raise ValueError("the number of labels must match the number of images")

    def batch(data, labels, label, offset):
        return {
            b"batch_label": label.encode(),
            b"labels": labels,
            b"data": np.ascontiguousarray(data),
            b"filenames": [f"image_{offset + i:06d}.png".encode() for i in range(len(labels))],
        }

    splits = np.array_split(np.arange(len(train)), batches)
    for i, idx in enumerate(splits, 1):
        lo = int(idx[0]) if len(idx) else 0
        atomic_write_bytes(d / f"data_batch_{i}", _py2_pickle(
            batch(train[idx], [train_labels[j] for j in idx], f"training batch {i} of {batches}", lo)))
    atomic_write_bytes(d / CIFAR10_TEST_FILE, _py2_pickle(batch(test, test_labels, "testing batch 1 of 1", 0)))
    meta = {
        b"num_cases_per_batch": int(len(splits[0])) if batches else 0,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072,
    }
    atomic_write_bytes(d / "batches.meta", _py2_pickle(meta))
    return d


# --------------------------------------------------------------------------------------------
# Language modelling corpora (awd-lstm-lm layout)
# --------------------------------------------------------------------------------------------

class Dictionary:
    """Word <-> id, ids in order of first appearance (as the original rnn/data.py)."""

    def __init__(self):
        self.word2idx = {}
        self.idx2word: List[str] = []
        self.counter: Counter = Counter()
        self.total = 0

    def add_word(self, word: str) -> int:
        idx = self.word2idx.get(word)
        if idx is None:
            idx = len(self.idx2word)
            self.idx2word.append(word)
            self.word2idx[word] = idx
        self.counter[idx] += 1
        self.total += 1
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)


def _corpus_help(path: Path, missing: Sequence[str]) -> str:
    return (
        f"language-model corpus not found: {path} lacks {', '.join(missing)} (expected the awd-lstm-lm layout "
        f"train.txt/valid.txt/test.txt). Get Penn Treebank from {PTB_URL} (copy simple-examples/data/"
        f"ptb.{{train,valid,test}}.txt to {path}/{{train,valid,test}}.txt) or WikiText-2 from {WT2_URL} "
        f"(wiki.{{train,valid,test}}.tokens -> {{train,valid,test}}.txt), as {AWD_GETDATA} does"
    )


class Corpus:
    """train/valid/test token ids of an awd-lstm-lm corpus directory.

    Each line is split on whitespace and ends with ``<eos>``; the vocabulary grows over train,
    valid and test in that order, so ids equal the original's.
    """

    SPLITS = ("train", "valid", "test")

    def __init__(self, path: PathLike):
        self.path = Path(path).expanduser()
        missing = [f"{s}.txt" for s in self.SPLITS if not (self.path / f"{s}.txt").is_file()]
        if missing:
            raise DatasetNotFoundError(_corpus_help(self.path, missing))
        self.dictionary = Dictionary()
        self.train = self.tokenize(self.path / "train.txt")
        self.valid = self.tokenize(self.path / "valid.txt")
        self.test = self.tokenize(self.path / "test.txt")

    def tokenize(self, path: PathLike) -> torch.Tensor:
        ids: List[int] = []
        add = self.dictionary.add_word
        try:
            with open(path, "r", encoding="utf-8") as f:
                for line in f:
                    for word in line.split():
                        ids.append(add(word))
                    ids.append(add("<eos>"))
        except UnicodeDecodeError:
            raise DatasetFormatError(_not_utf8(Path(path))) from None
        return torch.tensor(ids, dtype=torch.long)


def _not_utf8(path: Path) -> str:
    """Where a corpus file stops being UTF-8 text (looked up only once decoding has failed)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return (f"{path}: line {number} is not UTF-8 text (byte {e.start + 1} of the line is "
                        f"{raw[e.start]:#04x}); convert the corpus to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    return f"{path} is not UTF-8 text; convert the corpus to UTF-8"


def batchify(data: torch.Tensor, batch_size: int, device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """Cut a 1-d token stream into ``batch_size`` columns: ``[nbatch, batch_size]`` (remainder dropped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    nbatch = data.size(0) // batch_size
    out = data.narrow(0, 0, nbatch * batch_size).view(batch_size, -1).t().contiguous()
    return out.to(device) if device is not None else out


def get_batch(source: torch.Tensor, i: int, bptt: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``source[i:i+L]`` and next-token targets (flattened), ``L = min(bptt, len - 1 - i)``."""
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def write_text_corpus(path: PathLike, train_lines: Iterable[str], valid_lines: Iterable[str],
                      test_lines: Iterable[str]) -> Path:
    """Write ``path/{train,valid,test}.txt`` (one sentence a line, as PTB) for tests and demos."""
    path = Path(path).expanduser()
    for name, lines in zip(Corpus.SPLITS, (train_lines, valid_lines, test_lines)):
        atomic_write_text(path / f"{name}.txt", "".join(f" {line} \n" for line in lines))
    return path


# --------------------------------------------------------------------------------------------
# ImageNet (ImageFolder)
# --------------------------------------------------------------------------------------------

def imagenet_eval_transform(resize: int = 256, crop: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The original test_imagenet.py preprocessing: resize 256, center crop 224, to tensor, normalise."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(resize),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def eval_transforms(preprocessing: dict):
    """torchvision eval transforms for a registry entry's or saved model's ``preprocessing`` (images only)."""
    from torchvision import transforms

    if "mean" not in preprocessing:
        raise ValueError("this model reads text, not images: it has no image transforms (see its 'preprocessing')")
    steps = [transforms.Grayscale(1)] if list(preprocessing.get("input_size") or [3])[0] == 1 else []  # 1 channel
    if preprocessing.get("resize"):
        steps.append(transforms.Resize(int(preprocessing["resize"])))
    if preprocessing.get("crop") and preprocessing.get("resize"):
        steps.append(transforms.CenterCrop(int(preprocessing["crop"])))
    return transforms.Compose([*steps, transforms.ToTensor(),
                               transforms.Normalize(list(preprocessing["mean"]), list(preprocessing["std"]))])


def _imagenet_help(path: Path, why: str) -> str:
    return (
        f"ImageNet split not found at {path}: {why}. Expected an ImageFolder tree {path}/<wnid>/<image>.JPEG "
        f"(1000 class folders); download ILSVRC2012 from https://image-net.org/ and arrange val/ into class "
        f"folders as in https://github.com/pytorch/examples/tree/main/imagenet (extract_ILSVRC.sh)"
    )


def imagenet_folder(root: PathLike, split: str = "val", transform=None):
    """``torchvision.datasets.ImageFolder(root/split)`` with the evaluation transform by default.

    Class indices follow the sorted folder names (as the original); empty class folders are allowed.
    """
    from torchvision.datasets import ImageFolder

    path = Path(root).expanduser() / split
    if not path.is_dir():
        raise DatasetNotFoundError(_imagenet_help(path, "no such directory"))
    tf = transform if transform is not None else imagenet_eval_transform()
    try:
        # empty class folders are allowed: they keep the class indices of a subset aligned with the model's
        return ImageFolder(str(path), transform=tf, allow_empty=True)
    except TypeError:  # pragma: no cover - torchvision < 0.18
        return ImageFolder(str(path), transform=tf)
    except FileNotFoundError as e:  # no class folders / no images
        raise DatasetNotFoundError(_imagenet_help(path, str(e))) from None


__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "IMAGENET_MEAN", "IMAGENET_STD", "DatasetNotFoundError", "DatasetFormatError",
    "load_cifar10", "read_cifar10_batch", "write_cifar10", "download_cifar10", "safe_unpickle_numpy",
    "Dictionary", "Corpus", "batchify", "get_batch", "write_text_corpus", "imagenet_eval_transform",
    "imagenet_folder", "CIFAR10_CLASSES",
]
