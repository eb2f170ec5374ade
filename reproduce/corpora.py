"""The language-model corpora (Penn Treebank, WikiText-2), loaded with an error that names where each comes from."""
from __future__ import annotations

from pathlib import Path

from zoo import datasets as zds

# Where each corpus comes from, and how its files become train.txt/valid.txt/test.txt (the awd-lstm-lm layout).
SOURCES = {
    "ptb": ("Penn Treebank", zds.PTB_URL, "simple-examples/data/ptb.{split}.txt"),
    "wt2": ("WikiText-2", zds.WT2_URL, "wikitext-2/wiki.{split}.tokens"),
}


def load_corpus(path, dataset: str) -> zds.Corpus:
    """The corpus at ``path``; DatasetNotFoundError naming ``dataset``'s own source when files are missing."""
    try:
        return zds.Corpus(path)
    except zds.DatasetNotFoundError:
        if dataset not in SOURCES:
            raise
        name, url, member = SOURCES[dataset]
        path = Path(path).expanduser()
        missing = [f"{s}.txt" for s in zds.Corpus.SPLITS if not (path / f"{s}.txt").is_file()]
        raise zds.DatasetNotFoundError(
            f"{name} not found: {path} lacks {', '.join(missing)} (the awd-lstm-lm layout). Get it from {url} and copy "
            f"{member.format(split='{train,valid,test}')} to {path}/{{train,valid,test}}.txt, or point --data at "
            "the directory holding train.txt, valid.txt and test.txt") from None
