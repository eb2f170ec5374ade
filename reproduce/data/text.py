"""A text corpus of one's own (``search text`` / ``train text``): any folder of train.txt, valid.txt, test.txt.

Tokens as the awd-lstm-lm reader makes them (whitespace-split words, ``<eos>`` at the end of every
line), but the vocabulary comes from ``train.txt`` alone: words of valid.txt or test.txt that train.txt
lacks become ``<unk>``, and the log counts them. ``vocab_size`` caps the vocabulary to the most
frequent training words (``<eos>`` and ``<unk>`` included in the count); the rest become ``<unk>``
too. Ids follow the first appearance in train.txt, as the original's. The paper's presets ``ptb``
and ``wt2`` keep the original's reader (:class:`zoo.datasets.Corpus`, vocabulary over all three
splits), so their ids and results stay the original's.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List

import torch

from zoo import datasets as zds

from ..corpora import load_corpus
from .split import digest

log = logging.getLogger(__name__)

EOS, UNK = "<eos>", "<unk>"


def _lines(path: Path) -> List[List[str]]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return [line.split() + [EOS] for line in f]
    except UnicodeDecodeError:
        raise zds.DatasetFormatError(zds._not_utf8(path)) from None  # the reader's message: line and byte


class TextCorpus:
    """``dictionary`` (zoo.datasets.Dictionary), ``train``/``valid``/``test`` token ids, ``unknown`` counts."""

    def __init__(self, path, vocab_size: int = 0):
        self.path = Path(path).expanduser()
        missing = [f"{s}.txt" for s in zds.Corpus.SPLITS if not (self.path / f"{s}.txt").is_file()]
        if missing:
            raise zds.DatasetNotFoundError(f"text corpus {self.path}: no {', '.join(missing)} (a text corpus is a "
                                           "folder of train.txt, valid.txt and test.txt, one sentence a line)")
        splits = {s: _lines(self.path / f"{s}.txt") for s in zds.Corpus.SPLITS}
        train_words = [w for line in splits["train"] for w in line]
        if not train_words:
            raise zds.DatasetFormatError(f"{self.path / 'train.txt'} is empty")
        keep = set(train_words)
        if vocab_size and len(keep) > vocab_size - 1:  # room for <unk>
            ranked = [w for w, _ in Counter(train_words).most_common() if w != EOS]  # ties: first appearance
            keep = {EOS, *ranked[:max(0, vocab_size - 2)]}
        self.dictionary = zds.Dictionary()
        for w in train_words:
            if w in keep:
                self.dictionary.add_word(w)
        self.unknown: Dict[str, int] = {}
        ids = {}
        for name, lines in splits.items():
            words = [w for line in lines for w in line]
            unseen = sum(1 for w in words if w not in self.dictionary.word2idx)
            if unseen and UNK not in self.dictionary.word2idx:
                self.dictionary.add_word(UNK)
            unk = self.dictionary.word2idx.get(UNK)
            ids[name] = torch.tensor([self.dictionary.word2idx.get(w, unk) for w in words], dtype=torch.long)
            self.unknown[name] = unseen
        self.train, self.valid, self.test = ids["train"], ids["valid"], ids["test"]
        log.info("text corpus %s: vocabulary of %d words from train.txt%s; <unk> replaces %s", self.path,
                 len(self.dictionary), f" (capped at {vocab_size})" if vocab_size else "",
                 ", ".join(f"{n} of {len(ids[s])} {s} tokens" for s, n in self.unknown.items()))

    def describe(self) -> dict:
        """What records and model cards say about the corpus; ``words`` is the vocabulary in id order."""
        return {"source": f"text corpus {self.path}", "vocabulary": len(self.dictionary),
                "tokens": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
                "unknown": dict(self.unknown), "words": list(self.dictionary.idx2word),
                "digest": digest(self.train, self.valid, self.test),
                "preprocessing": {"tokenizer": "whitespace + <eos> per line (awd-lstm-lm rnn/data.py)",
                                  "vocabulary": "train.txt only; unseen words are <unk>"}}


def corpus_for(config, dataset: str):
    """The corpus a recurrent search or recipe reads: one's own (``text``: vocabulary from train.txt) or the
    paper's presets (``ptb``, ``wt2``: the original's reader)."""
    if dataset == "text":
        return TextCorpus(config.data, config.vocab_size)
    return load_corpus(config.data, dataset)


__all__ = ["TextCorpus", "corpus_for", "EOS", "UNK"]
