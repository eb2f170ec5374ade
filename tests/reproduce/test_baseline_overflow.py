"""The random-architecture baseline beside absurd values: a random cell's seed whose final value would overflow the
statistics is excluded and listed with its run directory, like the searched cell's, and Welch's t stays a number."""
import json
import math

import pytest
from test_records import _non_finite
from test_report import RNN, experiment, record

import genotypes
from reproduce import random_baseline as rb
from reproduce.__main__ import main
from reproduce.aggregate import load_experiment


def ptb_with_baseline(root, cell_values, searched=(58.0, 59.0)):
    """A PTB experiment whose searched cell has ``searched`` (one test_ppl a seed) and random cell i the test_ppl
    ``cell_values[i]`` (one a seed, the same seeds)."""
    def ptb_record(seed, ppl, genotype):
        return record(seed, {"test_ppl": ppl, "valid_ppl": 62.0}, experiment="ptb", dataset="ptb", genotype=genotype,
                      curve_metric="valid_ppl")

    exp = experiment(root / "ptb-darts_v2", [ptb_record(s, v, RNN) for s, v in enumerate(searched)],
                     experiment="ptb", dataset="ptb", target="ptb", genotype=RNN)
    cells = [genotypes.format(g) for g in genotypes.sample.draw("rnn", len(cell_values), seed=0)]
    meta = {"kind": "random", "n": len(cells), "draw_seed": 0, "seeds": list(range(len(searched))),
            "cells": [{"index": i, "genotype": g} for i, g in enumerate(cells)]}
    (exp / "baseline").mkdir()
    (exp / "baseline" / "baseline.json").write_text(json.dumps(meta))
    for i, values in enumerate(cell_values):
        for seed, ppl in enumerate(values):
            run = exp / "baseline" / f"cell-{i}" / f"seed-{seed}"
            run.mkdir(parents=True)
            (run / "record.json").write_text(json.dumps(ptb_record(seed, ppl, cells[i])))
    return exp


def rows(exp_dir):
    exp = load_experiment(exp_dir)
    return rb.comparison_rows(exp.usable, rb.load(rb.root_of(exp_dir, exp.meta)), ["test_ppl"])


def test_a_random_cells_seed_that_overflows_the_statistics_is_excluded_and_listed(tmp_path):
    # cell 0's mean would be 7.5e307: beside cell 1's 61.5 the random cells' 95 % CI passes 1.8e308 (the report stopped)
    exp_dir = ptb_with_baseline(tmp_path, [(1.5e308, 60.0), (61.0, 62.0)])
    (row,) = rows(exp_dir)
    assert row["random"]["n"] == 2 and row["random"]["mean"] == pytest.approx((60.0 + 61.5) / 2)
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert ("`ptb-darts_v2/baseline/cell-0/seed-0` (random cell 0, seed 0): test_ppl 1.5e+308 is so far from its "
            "cell's other seeds'") in text
    cell = next(line for line in text.splitlines() if line.startswith("| 0 ") and "random" not in line)
    assert "test_ppl 60.00, valid_ppl 62.00" in cell and "2/2 (1 excluded)" in cell  # its other seed's mean
    assert not _non_finite(text)


def test_a_random_cell_whose_every_seed_is_absurd_is_left_out_of_the_comparison_and_named(tmp_path):
    # cell 0 has the same huge value twice (its own statistics are finite) but beside cells 1 and 2 they are not;
    # its mean was once infinite and the cell silently dropped
    exp_dir = ptb_with_baseline(tmp_path, [(1.5e308, 1.5e308), (61.0, 62.0), (63.0, 64.0)])
    (row,) = rows(exp_dir)
    assert row["random"]["n"] == 2 and row["left_out"] == [0]
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    for seed in (0, 1):
        assert (f"`ptb-darts_v2/baseline/cell-0/seed-{seed}` (random cell 0, seed {seed}): test_ppl 1.5e+308: its "
                "cell's mean is so far from the other random cells'") in text
    assert "left out of the comparison of test_ppl (no seed left in the statistics): random cell 0" in text
    assert not _non_finite(text)


def test_welch_t_of_huge_random_cells_beside_small_searched_values_is_a_number():
    # scaled by 2**664, the searched values' variance underflowed to 0 beside the random cells' 0: t was -inf
    row = rb.compare([58.0, 59.0], [1e200, 1e200, 1e200])
    assert math.isfinite(row["t"]) and row["t"] == pytest.approx(-(1e200 - 58.5) / (math.sqrt(0.5) / math.sqrt(2)))
    assert row["p"] == 0.0 and row["verdict"] == "better" and row["df"] == pytest.approx(1.0)
    mixed = rb.compare([58.0, 59.0], [1e200, 60.0, 61.0])  # 1e200 beside small ones: the t of the values unscaled
    assert mixed["t"] == pytest.approx(-1.0, rel=1e-6) and mixed["verdict"] == "not distinguishable"


def test_the_report_shows_welch_t_of_huge_random_cells_as_a_number(tmp_path):
    ptb_with_baseline(tmp_path, [(1e200, 1e200)] * 3)
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert not _non_finite(text)
    row = next(line for line in text.splitlines() if line.startswith("| test_ppl ") and "better" in line)
    assert "e+200 (1)" in row


def test_a_t_or_a_difference_beyond_the_range_of_a_float_is_said_so():
    huge_t = rb.compare([1.7e308, 1.7e308], [1.0, 1.5])  # 1.7e308 over a standard error of 0.25
    assert huge_t["t"] is None and huge_t["p"] == 0.0 and huge_t["verdict"] == "worse"
    assert huge_t["reason"] == "|t| exceeds the range of a float"
    apart = rb.compare([1.7e308, 1.7e308], [-1.7e308, -1.69e308])
    assert apart["difference"] is None and apart["verdict"] == "untested" and "difference" in apart["reason"]
    text = rb.format_table([dict(row, metric="test_loss") for row in (huge_t, apart)])
    assert not _non_finite(text) and "exceeds the range of a float" in text


def test_a_random_cells_seed_outside_its_domain_or_not_a_record_is_listed_and_its_cell_keeps_its_other_seeds(
        tmp_path):
    exp_dir = ptb_with_baseline(tmp_path, [(0.5, 60.0), (61.0, 62.0), (63.0, 64.0)])  # a perplexity below 1
    (exp_dir / "baseline" / "cell-2" / "seed-1" / "record.json").write_text("{")  # damaged: cell 2 lacks seed 1
    (row,) = rows(exp_dir)
    assert row["random"]["n"] == 2 and row["random"]["mean"] == pytest.approx((60.0 + 61.5) / 2)
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "`ptb-darts_v2/baseline/cell-0/seed-0` (random cell 0, seed 0): test_ppl 0.5 is outside its domain" in text
    assert "`ptb-darts_v2/baseline/cell-2/seed-1` (not a record): " in text and "not valid JSON" in text
