"""``search text`` / ``train text`` on a text folder written here: the vocabulary comes from train.txt,
unseen words become <unk> (counted), --vocab-size caps it; bad folders fail in one line; ptb keeps its reader."""
from __future__ import annotations

import json
import logging

import pytest
from search_helpers import one_thread
from train_helpers import refused_in_one_line, train_interrupted

import zoo
from reproduce.__main__ import main
from reproduce.corpora import load_corpus
from reproduce.data.text import UNK, TextCorpus
from reproduce.export import export_run
from zoo.datasets import write_text_corpus

TRAIN = ["the cat sat on the mat", "the dog sat on the rug", "a cat ran"] * 8
VALID = ["the cat sat on the sofa", "a dog ran far"] * 4
TEST = ["the bird sat on the mat"] * 4


@pytest.fixture()
def corpus(tmp_path):
    return write_text_corpus(tmp_path / "text", TRAIN, VALID, TEST)


def test_the_vocabulary_comes_from_train_and_unseen_words_are_counted_as_unk(corpus, caplog):
    with caplog.at_level(logging.INFO, logger="reproduce.data.text"):
        text = TextCorpus(corpus)
    words = text.dictionary.idx2word
    assert words[:4] == ["the", "cat", "sat", "on"] and "sofa" not in words and words[-1] == UNK
    assert text.unknown == {"train": 0, "valid": 8, "test": 4}  # 4 x sofa, 4 x far; 4 x bird
    assert "<unk> replaces 0 of" in caplog.text and "8 of 48 valid tokens" in caplog.text
    ptb = load_corpus(corpus, "ptb")  # the paper's preset keeps the original's vocabulary over all splits
    assert "sofa" in ptb.dictionary.word2idx and UNK not in ptb.dictionary.word2idx


def test_vocab_size_caps_the_vocabulary_to_the_most_frequent_training_words(corpus):
    text = TextCorpus(corpus, vocab_size=5)
    # "the" 32 times, then cat, sat, on 16 times each: ties go to the first seen
    assert len(text.dictionary) == 5 and set(text.dictionary.idx2word) == {"the", "<eos>", "cat", "sat", UNK}
    assert text.unknown["train"] > 0


def test_search_train_and_export_on_a_text_folder(corpus, tmp_path):
    tiny = ["--emsize", "8", "--nhid", "8", "--nhidlast", "8", "--batch-size", "4", "--eval-batch-size", "2",
            "--bptt", "6", "--epochs", "1", "--device", "cpu", "--deterministic", "--no-progress"]
    with one_thread():
        assert main(["search", "text", "--data", str(corpus), "--out", str(tmp_path / "s"), "--order", "1",
                     *tiny]) == 0
        assert main(["train", "text", "--data", str(corpus), "--genotype-from", str(tmp_path / "s"), "--out",
                     str(tmp_path / "t"), "--test-batch-size", "2", *tiny]) == 0
    record = json.loads((tmp_path / "t" / "record.json").read_text())
    assert record["data"]["vocabulary"] == len(record["data"]["words"]) and record["data"]["unknown"]["test"] == 4
    saved = export_run(tmp_path / "t", tmp_path / "m")
    assert zoo.load(str(saved)).encoder.weight.shape[0] == record["data"]["vocabulary"]
    card = (saved / "README.md").read_text()
    assert f"text corpus {corpus}" in card and "Penn Treebank" not in card and "NOT comparable" in card


def test_a_missing_or_non_utf8_split_fails_in_one_line(corpus, tmp_path, capsys):
    (corpus / "valid.txt").unlink()
    refused_in_one_line(capsys, ["train", "text", "--data", str(corpus), "--out", str(tmp_path / "t")],
                        "no valid.txt")
    (corpus / "valid.txt").write_bytes("caf\xe9\n".encode("latin1"))
    refused_in_one_line(capsys, ["search", "text", "--data", str(corpus), "--out", str(tmp_path / "s")],
                        "valid.txt: line 1 is not UTF-8")
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()


def test_a_training_resumed_on_another_corpus_is_refused_and_keeps_its_checkpoint(corpus, tmp_path):
    from reproduce.rundir import DamagedCheckpointError
    from reproduce.train import RECIPES, train
    config = RECIPES["text"](data=str(corpus), emsize=8, nhid=8, nhidlast=8, batch_size=4, eval_batch_size=2,
                             test_batch_size=2, bptt=6, epochs=2, device="cpu", deterministic=True)
    out = tmp_path / "run"
    with one_thread():
        train_interrupted(config, out, "text")
    checkpoint = (out / "checkpoint.pt").read_bytes()
    write_text_corpus(corpus, TRAIN[:-1] + ["a dog sat"], VALID, TEST)  # one sentence changed
    with one_thread(), pytest.raises(DamagedCheckpointError, match="another corpus") as e:
        train("text", config, out, progress=False)
    assert "\n" not in str(e.value) and (out / "checkpoint.pt").read_bytes() == checkpoint


def test_a_best_checkpoint_of_another_run_is_never_rolled_back_to(corpus, tmp_path):
    """best.pt left in a directory by another run (another config, or after checkpoint.pt was deleted) is not
    this run's: a rollback or the final evaluation must not load it."""
    import shutil

    from reproduce.distributed import Dist
    from reproduce.rundir import RunDir
    from reproduce.train import RECIPES, train
    from reproduce.train.lm import LMTask

    tiny = dict(data=str(corpus), emsize=8, nhid=8, nhidlast=8, batch_size=4, eval_batch_size=2, test_batch_size=2,
                bptt=6, epochs=1, device="cpu", deterministic=True)
    with one_thread():
        train("text", RECIPES["text"](**tiny), tmp_path / "a", progress=False)
    import torch

    def task(config, where):
        return LMTask("text", config, Dist(device=torch.device("cpu")), RunDir(where), progress=False)

    same = task(RECIPES["text"](**tiny), tmp_path / "a")
    same.best_epoch = 0  # as its checkpoint says
    assert same._load_best() is not None
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt")
    other = task(RECIPES["text"](**dict(tiny, learning_rate=5.0)), tmp_path / "b")
    other.best_epoch = 0
    assert other._load_best() is None  # another config's
    fresh = task(RECIPES["text"](**tiny), tmp_path / "b")  # this config, but no best epoch of its own yet
    assert fresh.best_epoch == -1 and fresh._load_best() is None
