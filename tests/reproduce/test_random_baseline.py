"""The random-architecture baseline: --baseline parsing, the per-cell aggregation, the comparison and its verdict."""
from __future__ import annotations

import json

import pytest
from scipy import stats as st

import genotypes
from reproduce import random_baseline as rb


def test_baseline_option_parses_n_and_an_optional_draw_seed():
    assert rb.parse(None) is None and rb.parse("") is None
    assert rb.parse("random:5") == rb.BaselineSpec("random", 5, 0)
    assert rb.parse("random:3:7") == rb.BaselineSpec("random", 3, 7)
    for bad in ("random", "random:0", "random:x", "grid:3", "random:2:-1", "random:1:2:3"):
        with pytest.raises(ValueError, match="--baseline"):
            rb.parse(bad)


def test_verdict_is_better_when_the_searched_cell_is_clearly_lower():
    row = rb.compare([10.0, 10.2, 9.9], [20.0, 22.0, 21.0, 19.5])
    assert row["verdict"] == "better" and row["p"] < 0.05
    assert row["difference"] == pytest.approx(row["searched"]["mean"] - row["random"]["mean"])
    ref = st.ttest_ind([10.0, 10.2, 9.9], [20.0, 22.0, 21.0, 19.5], equal_var=False)
    assert row["t"] == pytest.approx(ref.statistic) and row["p"] == pytest.approx(ref.pvalue)
    assert row["searched"]["n"] == 3 and row["random"]["n"] == 4
    assert row["searched"]["ci95_low"] < row["searched"]["mean"] < row["searched"]["ci95_high"]


def test_verdict_is_worse_when_the_searched_cell_is_clearly_higher():
    assert rb.compare([30.0, 31.0, 29.5], [20.0, 22.0, 21.0])["verdict"] == "worse"


def test_verdict_is_not_distinguishable_when_the_samples_overlap():
    row = rb.compare([10.0, 14.0, 12.0], [11.0, 13.0, 12.5, 10.5])
    assert row["verdict"] == "not distinguishable" and row["p"] >= 0.05


def test_no_test_with_one_value_on_a_side_or_no_spread():
    one_cell = rb.compare([10.0, 11.0], [20.0])
    assert one_cell["verdict"] == "untested" and "one random cell" in one_cell["reason"] and one_cell["p"] is None
    assert rb.compare([10.0], [20.0, 21.0])["verdict"] == "untested"
    flat = rb.compare([5.0, 5.0], [5.0, 5.0])
    assert flat["verdict"] == "untested" and "spread" in flat["reason"]


def _record(seed, genotype, value, params, metric="test_error"):
    return {"status": "finished", "seed": seed, "genotype": genotype, "parameters": params,
            "final": {metric: value}}


def _write(run_dir, record):
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps(record))


def test_each_random_cell_counts_once_as_the_mean_of_its_seeds(tmp_path):
    cells = [genotypes.format(g) for g in genotypes.sample.draw("cnn", 3, seed=0)]
    meta = {"kind": "random", "n": 3, "draw_seed": 0, "seeds": [0, 1],
            "cells": [{"index": i, "genotype": g} for i, g in enumerate(cells)]}
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "baseline.json").write_text(json.dumps(meta))
    values = {0: (20.0, 22.0), 1: (30.0, 34.0), 2: (25.0, None)}  # cell 2 lacks seed 1: it does not count
    for i, (a, b) in values.items():
        _write(tmp_path / "baseline" / f"cell-{i}" / "seed-0", _record(0, cells[i], a, 100 + i))
        if b is not None:
            _write(tmp_path / "baseline" / f"cell-{i}" / "seed-1", _record(1, cells[i], b, 100 + i))
    assert rb.root_of(tmp_path, {}) == rb.root_of(tmp_path, {"baseline": {"dir": "baseline"}}) == tmp_path / "baseline"
    baseline = rb.load(rb.root_of(tmp_path, {}))
    assert baseline.spec == rb.BaselineSpec("random", 3, 0) and baseline.seeds == [0, 1]
    assert [c.index for c in baseline.complete_cells()] == [0, 1]
    assert baseline.cell_means("test_error") == [21.0, 32.0]

    searched = [_record(0, "x", 10.0, 90), _record(1, "x", 11.0, 90)]
    (row,) = rb.comparison_rows(searched, baseline, ["test_error", "test_ppl"])
    assert row["metric"] == "test_error" and row["random"]["n"] == 2 and row["random"]["mean"] == 26.5
    assert row["searched_parameters"] == [90] and row["random_parameters"] == [100, 101]
    text = rb.format_table([row])
    assert "90 / 100..101" in text and row["verdict"] in text


def test_no_baseline_directory_means_no_baseline(tmp_path):
    assert rb.load(tmp_path) is None


def test_a_bad_baseline_option_is_a_one_line_error_with_exit_code_2(capsys, tmp_path):
    from reproduce.__main__ import main

    assert main(["cifar10", "--baseline", "random:x", "--dry-run", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "random:N" in err
