"""The demo end to end (its --fast sizes): searches of both orders for conv and recurrent cells,
selection, several seeds, aggregation and the report, with the real search and training code."""
from __future__ import annotations

import json
import math

import pytest

from reproduce import demo


def test_demo_targets_name_the_markov_optimum_for_both_perplexities():
    info = {"best_perplexity": 3.5, "entropy_rate_nats": math.log(3.5), "oracle_perplexity": {"test": 3.6}}
    paper = demo._targets(info)
    target = paper["targets"][demo.MARKOV_TARGET]
    assert target["metrics"] == {"valid_ppl": {"mean": 3.5}, "test_ppl": {"mean": 3.5}}
    assert target["source"] in paper["sources"]


def test_only_checkpoints_of_finished_runs_are_removed(tmp_path):
    done, running = tmp_path / "a" / "seed-0", tmp_path / "a" / "seed-1"
    for d in (done, running):
        d.mkdir(parents=True)
        (d / "checkpoint.pt").write_bytes(b"x")
    (done / "record.json").write_text(json.dumps({"status": "finished"}))
    assert demo._remove_finished_checkpoints(tmp_path) == 1
    assert not (done / "checkpoint.pt").exists() and (running / "checkpoint.pt").exists()


@pytest.mark.slow
def test_fast_demo_runs_the_whole_pipeline_and_writes_records_and_report(tmp_path, capsys):
    from reproduce.__main__ import main

    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    sources = json.loads((out / "sources.json").read_text())
    best = sources["text"]["best_perplexity"]
    assert best == pytest.approx(math.exp(sources["text"]["entropy_rate_nats"]))
    assert f"exp(H) = {best:.3f}" in printed and "NOT comparable" in printed

    for name, experiment, order in (("digits-order2", "cifar10", 2), ("digits-order1", "cifar10", 1),
                                    ("markov-order2", "ptb", 2), ("markov-order1", "ptb", 1)):
        exp_dir = out / name
        meta = json.loads((exp_dir / "experiment.json").read_text())
        assert meta["experiment"] == experiment and meta["profile"] == "demo" and meta["order"] == order
        assert meta["search"]["order"] == order and meta["comparable"] is False
        selection = json.loads((exp_dir / "selection.json").read_text())
        assert [c["search_seed"] for c in selection["candidates"]] == demo.FAST.search_seeds
        chosen = min(selection["candidates"], key=lambda c: c["valid_metric"])
        assert selection["chosen"] == chosen["search_seed"] and meta["genotype"] == chosen["genotype"]
        for seed in demo.FAST.search_seeds:
            search = json.loads((exp_dir / "search" / f"seed-{seed}" / "record.json").read_text())
            assert search["config"]["order"] == order and search["status"] == "finished"
        for seed in demo.FAST.seeds:
            record = json.loads((exp_dir / "runs" / f"seed-{seed}" / "record.json").read_text())
            assert record["genotype"] == meta["genotype"] and record["seed"] == seed
            metric = "test_error" if experiment == "cifar10" else "test_ppl"
            assert math.isfinite(record["final"][metric])
            if experiment == "ptb":  # no model beats the source's entropy rate by more than sampling noise
                assert record["final"]["test_ppl"] > 0.9 * best
        assert meta["target"] == (demo.MARKOV_TARGET if experiment == "ptb" else None)

    assert not list(out.rglob("checkpoint.pt")), "checkpoints of finished runs are removed"
    assert "checkpoint.pt" in (out / ".gitignore").read_text() and "data/" in (out / ".gitignore").read_text()
    report = (out / "REPORT.md").read_text()
    for name in ("digits-order2", "digits-order1", "markov-order2", "markov-order1"):
        assert name in report
    assert "not comparable" in report and "exp(H)" in report
    assert list((out / "figures").rglob("*.png")), "the report has figures"
