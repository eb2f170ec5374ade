"""Small datasets for the demo that need no download, in the real on-disk formats.

- Images: scikit-learn's 8x8 handwritten digits (bundled with scikit-learn), upscaled to 32x32
  RGB and written as CIFAR-10 python batches (``zoo.datasets.write_cifar10``), split into train
  and test sets stratified by class.
- Text: a corpus sampled from a seeded first-order Markov chain over a small vocabulary with a
  sparse random transition matrix, written in the awd-lstm-lm layout (``train/valid/test.txt``).
  The end of a sentence is a state of the chain (it becomes the reader's ``<eos>`` token), so the
  token stream a language model sees is exactly the chain's output. Its entropy rate is known
  exactly: ``H = -sum_i pi_i sum_j P_ij log P_ij`` with ``pi`` the stationary distribution, and
  no model can reach a perplexity below ``exp(H)`` on average.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Sequence

import numpy as np
import torch

from zoo.datasets import write_cifar10, write_text_corpus
from zoo.extras import require

EOS = "<eos>"


# ---------------------------------------------------------------------------------------------
# Images: the 8x8 digits as a tiny CIFAR-10
# ---------------------------------------------------------------------------------------------

def digits_as_cifar(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's digits (1797 images) as uint8 [N,3,32,32] train/test tensors with int64 labels.

    Pixel values 0..16 become 0..255; the 8x8 images are upscaled bilinearly to 32x32 and repeated
    over the three channels. The split is stratified by class and seeded.
    """
    load_digits = require("sklearn.datasets", "the demo's digits").load_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # [N,1,8,8] in 0..1
    images = torch.nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    rng = np.random.default_rng(seed)
    test_idx: List[int] = []
    for c in range(10):
        idx = np.flatnonzero(digits.target == c)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))].tolist())
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    train = np.flatnonzero(~is_test)
    test = np.flatnonzero(is_test)
    rng.shuffle(train)
    rng.shuffle(test)
    train, test = torch.from_numpy(train), torch.from_numpy(test)
    return images[train], labels[train], images[test], labels[test]


def write_digits_cifar(root, test_fraction: float = 0.2, seed: int = 0) -> Dict[str, int]:
    """Write the digits under ``root/cifar-10-batches-py``; returns the split sizes."""
    train_x, train_y, test_x, test_y = digits_as_cifar(test_fraction, seed)
    write_cifar10(root, train_x, train_y, test_x, test_y)
    return {"train": int(len(train_y)), "test": int(len(test_y)), "classes": 10}


# ---------------------------------------------------------------------------------------------
# Text: a seeded Markov source with a known entropy rate
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class MarkovSource:
    """A first-order Markov chain over ``words`` (``words[0]`` is the end of a sentence)."""

    words: List[str]
    P: np.ndarray  # [V, V] row-stochastic transition matrix
    seed: int

    @property
    def stationary(self) -> np.ndarray:
        return stationary_distribution(self.P)

    @property
    def entropy_rate(self) -> float:
        """Nats per token."""
        return entropy_rate(self.P)

    @property
    def best_perplexity(self) -> float:
        """exp(entropy rate): the lowest perplexity any model can reach on average."""
        return math.exp(self.entropy_rate)

    def sample(self, n_tokens: int, rng: np.random.Generator) -> List[int]:
        """``n_tokens`` state ids, starting after an end of sentence and ending with one."""
        cum = np.cumsum(self.P, axis=1)
        cum[:, -1] = 1.0
        u = rng.random(n_tokens)
        out = []
        state = 0
        for i in range(n_tokens):
            state = int(np.searchsorted(cum[state], u[i], side="right"))
            out.append(state)
        if out and out[-1] != 0:  # close the last sentence (a line of the corpus)
            while out[-1] != 0:
                state = int(np.searchsorted(cum[state], rng.random(), side="right"))
                out.append(state)
        return out

    def sentences(self, states: Sequence[int]) -> List[str]:
        lines, words = [], []
        for s in states:
            if s == 0:
                lines.append(" ".join(words))
                words = []
            else:
                words.append(self.words[s])
        return lines

    def cross_entropy(self, states: Sequence[int]) -> float:
        """Mean -log P of each token given the previous one (the true model's loss on this sample), nats."""
        states = np.asarray(states)
        if len(states) < 2:
            raise ValueError("need at least two tokens")
        return float(-np.log(self.P[states[:-1], states[1:]]).mean())


def stationary_distribution(P: np.ndarray) -> np.ndarray:
    """The stationary distribution pi (pi P = pi, sum 1) of an irreducible chain."""
    P = np.asarray(P, dtype=np.float64)
    values, vectors = np.linalg.eig(P.T)
    if int(np.sum(np.abs(values - 1.0) < 1e-9)) != 1:
        raise ValueError("the chain has no unique stationary distribution (is it irreducible?)")
    k = int(np.argmin(np.abs(values - 1.0)))
    pi = np.real(vectors[:, k])
    pi = pi / pi.sum()
    if np.any(pi < -1e-12) or not np.allclose(pi @ P, pi, atol=1e-10):
        raise ValueError("the chain has no unique stationary distribution (is it irreducible?)")
    return np.clip(pi, 0, None) / np.clip(pi, 0, None).sum()


def entropy_rate(P: np.ndarray) -> float:
    """H = -sum_i pi_i sum_j P_ij log P_ij, in nats, of a stationary first-order chain."""
    P = np.asarray(P, dtype=np.float64)
    pi = stationary_distribution(P)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(P > 0, np.log(np.where(P > 0, P, 1.0)), 0.0)
    return float(-(pi[:, None] * P * logs).sum())


def markov_source(vocab: int = 40, successors: int = 4, mean_sentence: float = 10.0, concentration: float = 1.0,
                  seed: int = 0) -> MarkovSource:
    """A random sparse chain: each word is followed by ``successors`` random words (Dirichlet weights)
    or by the end of the sentence (probability 1/mean_sentence); a sentence starts with any word.
    """
    if vocab < 2 or not 1 <= successors <= vocab:
        raise ValueError(f"need vocab >= 2 and 1 <= successors <= vocab, got {vocab}, {successors}")
    if mean_sentence <= 1:
        raise ValueError(f"mean_sentence must be > 1, got {mean_sentence}")
    rng = np.random.default_rng(seed)
    V = vocab + 1
    P = np.zeros((V, V))
    P[0, 1:] = rng.dirichlet(np.full(vocab, concentration))  # sentence starts
    p_end = 1.0 / mean_sentence
    for i in range(1, V):
        nxt = 1 + rng.choice(vocab, size=successors, replace=False)
        P[i, nxt] = rng.dirichlet(np.full(successors, concentration)) * (1 - p_end)
        P[i, 0] = p_end
    words = [EOS] + [f"w{i:02d}" for i in range(vocab)]
    return MarkovSource(words=words, P=P, seed=seed)


def write_markov_corpus(path, source: MarkovSource, train_tokens: int = 20000, valid_tokens: int = 3000,
                        test_tokens: int = 3000, seed: int = 0) -> dict:
    """Sample the three splits and write them in the awd-lstm-lm layout; returns a description.

    The description holds the entropy rate, the best achievable perplexity exp(H), and the true
    model's perplexity on each split as written (what an oracle would score on this sample).
    """
    rng = np.random.default_rng(seed)
    splits = {name: source.sample(n, rng) for name, n in (("train", train_tokens), ("valid", valid_tokens),
                                                          ("test", test_tokens))}
    write_text_corpus(path, source.sentences(splits["train"]), source.sentences(splits["valid"]),
                      source.sentences(splits["test"]))
    return {
        "vocabulary": len(source.words),
        "tokens": {k: len(v) for k, v in splits.items()},
        "entropy_rate_nats": source.entropy_rate,
        "best_perplexity": source.best_perplexity,
        "oracle_perplexity": {k: math.exp(source.cross_entropy([0] + v)) for k, v in splits.items()},
        "seed": source.seed,
    }


__all__ = ["digits_as_cifar", "write_digits_cifar", "MarkovSource", "markov_source", "stationary_distribution",
           "entropy_rate", "write_markov_corpus", "EOS"]
