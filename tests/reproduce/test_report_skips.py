"""The report counts skip connections in each search's normal cell, epoch by epoch, beside its curves."""
from __future__ import annotations

import genotypes
from reproduce.report import Doc
from reproduce.report.search import skip_connections, skip_counts

V1 = genotypes.format(genotypes.get("DARTS_V1", "cnn"))  # 3 skip connections in the normal cell
V2 = genotypes.format(genotypes.get("DARTS_V2", "cnn"))  # 2


def _search(seed, texts, **extra):
    return {"seed": seed, "kind": "search", "curve": [{"epoch": i, "genotype": t} for i, t in enumerate(texts)],
            "config": extra.pop("config", {}), **extra}


def test_skip_counts_read_each_epochs_genotype():
    assert skip_counts([{"genotype": V2}, {"genotype": V1}, {"genotype": "not a genotype"}, {}]) == [
        2, 3, None, None]
    rnn = genotypes.format(genotypes.get("DARTS_V2", "rnn"))
    assert skip_counts([{"genotype": rnn}]) == [None]


def test_the_section_lists_the_counts_as_runs_of_epochs_and_the_guards_used():
    doc = Doc()
    skip_connections(doc, [
        _search(0, [V2, V2, V1]),
        _search(1, [V2, V1], config={"max_skip": 2, "early_stop": "skip:3"}, early_stop={"epoch": 1}),
        {"seed": 2, "kind": "search", "curve": [{"epoch": 0, "genotype": genotypes.format(
            genotypes.get("DARTS_V2", "rnn"))}]},  # a recurrent search: no skip connections to count
    ])
    table = [b for b in doc.blocks if b[0] == "table"][0]
    assert table[1] == ["search seed", "skip connections (epochs)", "guards"]
    assert table[2] == [[0, "2 (epochs 0-1), 3 (2)", "none"],
                        [1, "2 (epochs 0), 3 (1)", "max_skip 2; stopped after epoch 1 (skip:3)"]]


def test_no_conv_search_no_section():
    doc = Doc()
    skip_connections(doc, [])
    assert doc.blocks == []
