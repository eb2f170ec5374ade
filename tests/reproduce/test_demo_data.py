"""The demo's data: digits as CIFAR-10 batches, and a Markov corpus whose entropy rate is known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reproduce import demo_data
from reproduce.demo_data import EOS, markov_source, write_digits_cifar, write_markov_corpus
from zoo.datasets import Corpus, load_cifar10


def test_entropy_rate_of_a_two_state_chain_matches_the_hand_computed_value():
    # state 0 -> 0 or 1 with 1/2 each; state 1 -> 0 always: pi = (2/3, 1/3), H = (2/3) ln 2
    P = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert np.allclose(demo_data.stationary_distribution(P), [2 / 3, 1 / 3])
    assert demo_data.entropy_rate(P) == pytest.approx(2 / 3 * math.log(2), abs=1e-12)


def test_entropy_rate_of_an_iid_source_is_its_entropy():
    p = np.array([0.5, 0.25, 0.25])
    P = np.tile(p, (3, 1))
    assert demo_data.entropy_rate(P) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)


def test_a_reducible_chain_is_refused():
    with pytest.raises(ValueError, match="stationary"):
        demo_data.stationary_distribution(np.eye(2))


def test_markov_source_is_sparse_row_stochastic_and_seeded():
    source = markov_source(vocab=12, successors=3, mean_sentence=5.0, seed=4)
    P = source.P
    assert P.shape == (13, 13) and np.allclose(P.sum(1), 1.0)
    assert all((P[i] > 0).sum() == 4 for i in range(1, 13))  # 3 successors + end of sentence
    assert np.allclose(P[1:, 0], 1 / 5.0) and P[0, 0] == 0
    assert np.array_equal(P, markov_source(vocab=12, successors=3, mean_sentence=5.0, seed=4).P)
    assert not np.array_equal(P, markov_source(vocab=12, successors=3, mean_sentence=5.0, seed=5).P)
    assert source.best_perplexity == pytest.approx(math.exp(source.entropy_rate))
    with pytest.raises(ValueError):
        markov_source(vocab=3, successors=5)


def test_the_true_chain_scores_the_entropy_rate_on_a_long_sample():
    source = markov_source(vocab=15, successors=3, seed=1)
    states = source.sample(200_000, np.random.default_rng(0))
    assert source.cross_entropy(states) == pytest.approx(source.entropy_rate, abs=0.02)


def test_corpus_reads_back_as_exactly_the_chains_output(tmp_path):
    source = markov_source(vocab=10, successors=3, seed=2)
    info = write_markov_corpus(tmp_path / "txt", source, train_tokens=2000, valid_tokens=300, test_tokens=300, seed=7)
    corpus = Corpus(tmp_path / "txt")
    assert set(corpus.dictionary.idx2word) <= set(source.words) and EOS in corpus.dictionary.word2idx
    # the reader's token stream is the sampled stream (word per state, <eos> at each end of sentence)
    rng = np.random.default_rng(7)
    train_states = source.sample(2000, rng)
    words = [corpus.dictionary.idx2word[i] for i in corpus.train.tolist()]
    assert words == [source.words[s] for s in train_states]
    assert info["tokens"]["train"] == len(corpus.train) and info["tokens"]["test"] == len(corpus.test)
    assert info["best_perplexity"] == pytest.approx(math.exp(info["entropy_rate_nats"]))
    # an oracle on a finite sample scores near, not exactly at, the bound
    assert info["oracle_perplexity"]["train"] == pytest.approx(info["best_perplexity"], rel=0.1)


def test_digits_are_written_as_cifar10_batches_split_by_class(tmp_path):
    sizes = write_digits_cifar(tmp_path, test_fraction=0.2, seed=0)
    train_x, train_y = load_cifar10(tmp_path, train=True, download=False)
    test_x, test_y = load_cifar10(tmp_path, train=False, download=False)
    assert sizes == {"train": len(train_y), "test": len(test_y), "classes": 10}
    assert len(train_y) + len(test_y) == 1797
    assert train_x.shape[1:] == (3, 32, 32) and test_x.dtype.is_floating_point is False
    assert bool((train_x[:, 0] == train_x[:, 1]).all()) and int(train_x.max()) == 255
    counts = np.bincount(test_y.numpy(), minlength=10)
    assert counts.min() >= 30 and counts.max() <= 40  # about 20 % of each class (~180 per class)
    # the same seed gives the same split
    again = demo_data.digits_as_cifar(0.2, seed=0)
    assert bool((again[0] == train_x).all()) and bool((again[3] == test_y).all())
