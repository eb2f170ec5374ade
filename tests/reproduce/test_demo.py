"""The demo end to end (its --fast sizes): searches of both orders for conv and recurrent cells,
selection, several seeds, aggregation and the report, with the real search and training code."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reproduce import demo, device


def test_the_markov_bound_is_a_reference_of_the_experiment_not_a_published_target():
    info = {"best_perplexity": 3.5, "entropy_rate_nats": math.log(3.5), "oracle_perplexity": {"test": 3.6}}
    (ref,) = demo.markov_references(info)
    assert ref["metrics"] == {"valid_ppl": 3.5, "test_ppl": 3.5}
    assert "reference bound" in ref["label"] and "not a published figure" in ref["note"]
    assert demo.NO_TARGETS["targets"] == {}


def test_demo_defaults_write_to_runs_and_use_every_usable_core(monkeypatch):
    from reproduce.__main__ import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.out == "runs/demo" and args.jobs is None and args.threads == 1
    assert demo.DEFAULT_OUT == "runs/demo"
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert demo.usable_cores() == 3


def test_every_demo_run_is_deterministic_and_the_demo_has_a_random_baseline():
    for sizes in (demo.FULL, demo.FAST):
        for cfg in (sizes.cnn_search, sizes.cnn_train, sizes.rnn_search, sizes.rnn_train):
            assert cfg["deterministic"] is True
        assert sizes.baseline.startswith("random:") and int(sizes.baseline.split(":")[1]) >= 2
        assert len(sizes.seeds) >= 2  # the searched cell's side of the t-test needs two values


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
    assert main(["demo", "--fast", "--out", str(out), "--no-progress", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    sources = json.loads((out / "sources.json").read_text())
    best = sources["text"]["best_perplexity"]
    assert best == pytest.approx(math.exp(sources["text"]["entropy_rate_nats"]))
    assert f"exp(H) = {best:.3f}" in printed and "NOT comparable" in printed
    jobs = min(2, demo.usable_cores())  # --jobs is clamped to the usable cores
    assert f"({jobs} runs at a time, 1 torch threads each)" in printed
    assert "supernets at the end of their search" in printed
    assert "against 2 random cells" in printed

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
        assert meta["target"] is None  # no published figure applies to the demo's data
        # both search orders of a task share one baseline directory, trained once
        task = name.split("-")[0]
        assert meta["baseline"] == {"kind": "random", "n": 2, "draw_seed": 0, "dir": f"../{task}-random"}
        baseline_dir = out / f"{task}-random"
        baseline = json.loads((baseline_dir / "baseline.json").read_text())
        assert baseline["seeds"] == demo.FAST.seeds and len(baseline["cells"]) == 2
        for cell in baseline["cells"]:
            assert cell["genotype"] != meta["genotype"] and cell["parameters"] > 0
            for seed in demo.FAST.seeds:
                record = json.loads((baseline_dir / f"cell-{cell['index']}" / f"seed-{seed}" / "record.json")
                                    .read_text())
                assert record["genotype"] == cell["genotype"] and record["seed"] == seed
                assert record["config"]["num_threads"] == 1 and record["config"]["deterministic"] is True
        if experiment == "ptb":
            assert [r["label"] for r in meta["references"]] == ["reference bound exp(H) of the Markov source"]

    assert not list(out.rglob("checkpoint.pt")), "checkpoints of finished runs are removed"
    assert "checkpoint.pt" in (out / ".gitignore").read_text() and "data/" in (out / ".gitignore").read_text()
    report = (out / "REPORT.md").read_text()
    for name in ("digits-order2", "digits-order1", "markov-order2", "markov-order1"):
        assert name in report
    assert "not comparable" in report and "exp(H)" in report
    assert report.count("Searched cell against random cells") == 4
    for line in report.splitlines():  # no figure is called published: the demo has none
        if line.startswith("|"):
            assert "published" not in line.replace("not a published figure", ""), line
    assert "reference bound exp(H)" in report and "supernet" in report
    assert list((out / "figures").rglob("*.png")), "the report has figures"

    # a run of the pool's worker processes gives exactly what the same run gives in this process
    from reproduce.tasks import run_task

    for kind, dataset, run_dir in (("search", "cifar10", out / "digits-order2" / "search" / "seed-0"),
                                   ("train", "ptb", out / "markov-order1" / "runs" / "seed-1")):
        pooled = json.loads((run_dir / "record.json").read_text())
        here = run_task(kind, dataset, pooled["config"], str(tmp_path / "again" / kind), progress=False)
        assert here["final"] == pooled["final"]


def test_one_job_runs_the_experiments_one_after_another_here_with_a_baseline_per_task(tmp_path, monkeypatch):
    from reproduce.experiments import ExperimentResult

    seen = []

    def fake_experiment(options):
        seen.append((options.out, options.pool, options.baseline_dir, options.search_overrides["num_threads"]))
        return ExperimentResult(out=Path(options.out), experiment={}, records=[], selection=None, summary={},
                                report=None)

    monkeypatch.setattr(demo, "run_experiment", fake_experiment)
    result = demo.run_demo(tmp_path, fast=True, progress=False, report=False, jobs=1)
    assert result.jobs == 1 and result.threads == 1
    assert [Path(out).name for out, *_ in seen] == ["digits-order2", "digits-order1", "markov-order2", "markov-order1"]
    assert all(pool is None and threads == 1 for _, pool, _, threads in seen)
    assert [Path(d).name for *_, d, _ in seen] == ["digits-random"] * 2 + ["markov-random"] * 2
    with pytest.raises(ValueError, match="must be >= 1"):
        demo.run_demo(tmp_path, fast=True, progress=False, report=False, jobs=0)


def test_jobs_are_clamped_to_the_usable_cores_and_threads_bounded(tmp_path, monkeypatch, caplog, capsys):
    from reproduce.__main__ import main

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    seen = []
    monkeypatch.setattr(demo, "_run_side_by_side", lambda plans, jobs, progress: seen.append(jobs) or {})
    with caplog.at_level("WARNING"):
        result = demo.run_demo(tmp_path / "a", fast=True, progress=False, report=False, jobs=64)
    assert result.jobs == 2 and seen == [2] and "--jobs 64: this process may use 2 cores" in caplog.text
    for argv, needle in ((["--threads", "100000"], "--threads must be at most 64 here"),
                         (["--device", "mps"], "no mps device is available here")):
        assert main(["demo", "--out", str(tmp_path / "b"), "--fast", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and "\n" not in err, err
        assert not (tmp_path / "b").exists()  # refused before anything is written


def test_the_demo_never_writes_into_a_directory_of_the_users(tmp_path, capsys):
    from reproduce.__main__ import main

    (tmp_path / ".gitignore").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds files the demo did not write (.gitignore)" in err and "\n" not in err, err
    assert [p.name for p in tmp_path.iterdir()] == [".gitignore"] and (tmp_path / ".gitignore").read_text() == "mine"
