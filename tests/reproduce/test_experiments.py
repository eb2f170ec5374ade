"""The experiment driver: seeds, resume, refusal of mixed configs, the search pipeline. The command line, the dry run
and what is refused before any run: test_experiments_cli.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from experiment_helpers import TINY, _options

from reproduce import experiments, scheduler, tasks
from reproduce.experiments import ExperimentMismatchError, ExperimentOptions, run_experiment

# ---------------------------------------------------------------------------------------------
# Resolving seeds, names and targets
# ---------------------------------------------------------------------------------------------

def test_seeds_come_from_runs_or_an_explicit_list():
    assert experiments.resolve_seeds(None, None, 10) == list(range(10))
    assert experiments.resolve_seeds(3, None, 10) == [0, 1, 2]
    assert experiments.resolve_seeds(None, [5, 7], 10) == [5, 7]
    assert experiments.parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(ValueError, match="--runs 3 but --seeds gives 2"):
        experiments.resolve_seeds(3, [0, 1], 10)
    with pytest.raises(ValueError, match="twice"):
        experiments.resolve_seeds(None, [1, 1], 10)
    with pytest.raises(ValueError, match="integers"):
        experiments.parse_seeds("a,b")


def test_default_runs_are_practical_for_each_experiment():
    assert experiments.EXPERIMENTS["cifar10"].default_runs == 10
    assert all(experiments.EXPERIMENTS[e].default_runs < 10 for e in ("ptb", "imagenet", "wt2"))


def test_default_directory_and_target_follow_the_arch_search_and_profile(tmp_path):
    spec = experiments.EXPERIMENTS["cifar10"]
    assert experiments.default_out(spec, "DARTS_V2", "g", False, 2, "paper") == Path("results/cifar10-darts_v2")
    assert experiments.default_out(spec, None, None, True, 1, "quick") == Path("results/cifar10-search-order1-quick")

    def target(**kw):
        return experiments.plan_experiment(ExperimentOptions("cifar10", runs=1, out=str(tmp_path / "x"), **kw)).target

    assert target(arch="DARTS_V1") == "cifar10-first-order"
    assert target(search=True, order=2) == "cifar10"
    assert target(arch="NASNet") is None
    assert target(genotype="DARTS_V2") is None  # a custom cell: no published figure measured it
    targets = json.loads((Path(experiments.__file__).parents[2] / "results" / "paper.json").read_text())["targets"]
    for key, t in targets.items():
        if t.get("experiment") in experiments.EXPERIMENTS:
            assert set(t["metrics"]) <= set(experiments.EXPERIMENTS[t["experiment"]].metrics), key


def test_impossible_requests_are_refused_before_any_work(tmp_path, tiny_cifar):
    with pytest.raises(ValueError, match="at most one of --arch, --genotype and --search"):
        run_experiment(_options(tmp_path, tiny_cifar, arch="DARTS_V1", search=True))
    with pytest.raises(ValueError, match="--search is not available for imagenet"):
        run_experiment(_options(tmp_path, tiny_cifar, experiment="imagenet", search=True))
    import genotypes

    rnn_cell = genotypes.format(genotypes.get("DARTS_V2", "rnn"))
    with pytest.raises(ValueError, match="RNNGenotype"):
        run_experiment(_options(tmp_path, tiny_cifar, genotype=rnn_cell))
    with pytest.raises(ValueError, match="unknown CIFAR10Config field"):
        run_experiment(_options(tmp_path, tiny_cifar, train_overrides={"epoch": 3}))
    with pytest.raises(ValueError, match="profile"):
        run_experiment(_options(tmp_path, tiny_cifar, profile="fast"))
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------------------------------------
# Real runs on tiny data
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_experiment_trains_each_seed_aggregates_and_writes_the_report(tmp_path, tiny_cifar):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("the user's own report")  # beside --out: not ours to touch
    result = run_experiment(_options(tmp_path, tiny_cifar))
    exp_dir = tmp_path / "results" / "exp"
    assert (tmp_path / "results" / "REPORT.md").read_text() == "the user's own report"
    meta = json.loads((exp_dir / "experiment.json").read_text())
    assert meta["experiment"] == "cifar10" and meta["arch"] == "DARTS_V2" and meta["profile"] == "quick"
    assert meta["seeds"] == [0, 1] and meta["target"] == "cifar10" and meta["search"] is None
    assert meta["comparable"] is False and "NOT comparable" in meta["note"]
    for seed in (0, 1):
        record = json.loads((exp_dir / "runs" / f"seed-{seed}" / "record.json").read_text())
        assert record["seed"] == seed and record["status"] == "finished" and len(record["curve"]) == 2
        assert record["config"]["experiment"] == "cifar10"
    assert result.summary["test_error"]["n"] == 2
    assert result.report == exp_dir / "REPORT.md"  # inside what the user named (--out), never its parent
    report = result.report.read_text()
    assert "cifar10" in report

    # the aggregation refuses a run whose config differs in more than the seed, naming the field
    from reproduce.aggregate import MixedConfigError, load_experiment

    odd = json.loads((exp_dir / "runs" / "seed-1" / "record.json").read_text())
    odd["seed"], odd["config"]["seed"], odd["config"]["learning_rate"] = 9, 9, 0.5
    (exp_dir / "runs" / "seed-9").mkdir()
    (exp_dir / "runs" / "seed-9" / "record.json").write_text(json.dumps(odd))
    with pytest.raises(MixedConfigError, match="learning_rate"):
        load_experiment(exp_dir)


@pytest.mark.slow
def test_rerun_skips_finished_seeds_resumes_the_interrupted_one_and_adds_new_ones(tmp_path, tiny_cifar, monkeypatch):
    from reproduce.rundir import RunDir

    run_experiment(_options(tmp_path, tiny_cifar, seeds=[0], runs=None, report=False))
    runs = tmp_path / "results" / "exp" / "runs"
    finished_before = (runs / "seed-0" / "record.json").read_text()

    # seed 1 is killed right after its first epoch's checkpoint
    real_save = RunDir.save_checkpoint

    def save_then_die(self, state):
        real_save(self, state)
        if self.path.name == "seed-1":
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(_options(tmp_path, tiny_cifar, seeds=[0, 1, 2], runs=None, report=False))
    monkeypatch.setattr(RunDir, "save_checkpoint", real_save)
    assert not (runs / "seed-1" / "record.json").exists() and (runs / "seed-1" / "checkpoint.pt").exists()
    first_epoch = (runs / "seed-1" / "metrics.jsonl").read_text().splitlines()
    assert len(first_epoch) == 1
    assert not (runs / "seed-2").exists()

    trained = []
    real_run_task = scheduler.run_task
    monkeypatch.setattr(scheduler, "run_task", lambda kind, dataset, config, out, progress=False: (
        trained.append(Path(out).name), real_run_task(kind, dataset, config, out, progress))[1])
    result = run_experiment(_options(tmp_path, tiny_cifar, seeds=[0, 1, 2], runs=None, report=False))
    assert trained == ["seed-1", "seed-2"]  # seed 0 was finished: not run again
    assert (runs / "seed-0" / "record.json").read_text() == finished_before
    lines = (runs / "seed-1" / "metrics.jsonl").read_text().splitlines()
    assert lines[0] == first_epoch[0] and len(lines) == 2  # resumed after epoch 1, not restarted
    assert [r["seed"] for r in result.records] == [0, 1, 2]
    meta = json.loads((tmp_path / "results" / "exp" / "experiment.json").read_text())
    assert meta["seeds"] == [0, 1, 2]


@pytest.mark.slow
def test_a_rerun_with_another_config_or_profile_is_refused(tmp_path, tiny_cifar):
    run_experiment(_options(tmp_path, tiny_cifar, runs=1, train_overrides=dict(TINY, epochs=1), report=False))
    with pytest.raises(ExperimentMismatchError, match=r"learning_rate \(saved 0.025, now 0.1\)"):
        run_experiment(_options(tmp_path, tiny_cifar, runs=1, train_overrides=dict(TINY, epochs=1, lr=0.1)))
    with pytest.raises(ExperimentMismatchError, match="profile"):
        run_experiment(_options(tmp_path, tiny_cifar, runs=1, profile="paper", train_overrides=dict(TINY, epochs=1)))
    with pytest.raises(ExperimentMismatchError, match="arch"):
        run_experiment(_options(tmp_path, tiny_cifar, runs=1, arch="DARTS_V1", train_overrides=dict(TINY, epochs=1)))
    # new seeds must share the config of the seeds already there (else the report refuses them after training)
    with pytest.raises(ExperimentMismatchError, match=r"already holds runs with another config: epochs"):
        run_experiment(_options(tmp_path, tiny_cifar, seeds=[1], runs=None, train_overrides=dict(TINY, epochs=2)))
    assert not (tmp_path / "results" / "exp" / "runs" / "seed-1").exists()


def test_gpu_and_slurm_plans_can_be_made_on_a_machine_without_gpus(tmp_path, tiny_cifar, monkeypatch):
    # A login node has no GPU: the configs say device 'cuda' for the jobs, and only the jobs check it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    options = _options(tmp_path, tiny_cifar, device=None, gpus=["0", "1"])
    lines = experiments.plan_experiment(options).describe()  # built and checked, no error
    assert any("GPU 0" in line for line in lines)
    from reproduce.train import train

    with pytest.raises(ValueError, match="no CUDA device is available"):
        train("cifar10", dict(TINY, device="cuda", data=str(tiny_cifar)), tmp_path / "run", progress=False)


def test_records_carry_their_profile_so_profiles_are_never_aggregated_together(tmp_path, tiny_cifar):
    from reproduce.aggregate import MixedConfigError, load_experiment

    result = run_experiment(_options(tmp_path, tiny_cifar, runs=1, train_overrides=dict(TINY, epochs=1),
                                     report=False))
    assert [r["config"]["profile"] for r in result.records] == ["quick"]
    # quick runs copied into a paper experiment are refused, not tested against the paper
    exp = tmp_path / "results" / "exp"
    meta = json.loads((exp / "experiment.json").read_text())
    (exp / "experiment.json").write_text(json.dumps(dict(meta, profile="paper", comparable=True)))
    with pytest.raises(MixedConfigError, match="profile"):
        load_experiment(exp)


def test_the_demo_profile_is_not_offered_by_the_experiment_commands(capsys):
    from reproduce.__main__ import main

    with pytest.raises(SystemExit):
        main(["cifar10", "--profile", "demo", "--dry-run"])
    assert "invalid choice: 'demo'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The search pipeline's selection logic, with stand-in search and training
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def fake_runs(monkeypatch):
    """Searches that 'find' DARTS_V1 or DARTS_V2 by seed, trainings whose validation error depends on the cell."""
    import dataclasses

    import genotypes

    @dataclasses.dataclass
    class FakeSearchConfig:
        seed: int = 0
        order: int = 2
        epochs: int = 50
        data: str = "data/cifar10"
        device: str = "auto"

    monkeypatch.setitem(tasks.TASKS, ("search", "cifar10"), (FakeSearchConfig, None))
    monkeypatch.setitem(tasks.TASKS, ("search", "ptb"), (FakeSearchConfig, None))
    calls = []

    def run_task(kind, dataset, config, out, progress=False):
        config = config if isinstance(config, dict) else dataclasses.asdict(config)  # a planned job's built config
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        calls.append((kind, out.parent.name, config["seed"]))
        if kind == "search":
            name = "DARTS_V1" if config["seed"] % 2 else "DARTS_V2"
            record = {"status": "finished", "kind": "search", "seed": config["seed"], "config": config,
                      "genotype": genotypes.format(genotypes.get(name, "cnn"))}
        else:
            v2 = config["genotype"] == genotypes.format(genotypes.get("DARTS_V2", "cnn"))
            final = {"valid_error": 10.0 - config["seed"] if v2 else 20.0, "test_error": 5.0 + config["seed"] / 10}
            record = {"status": "finished", "kind": "train", "experiment": config["experiment"], "dataset": dataset,
                      "seed": config["seed"], "config": config, "genotype": config["genotype"], "final": final,
                      "curve": [dict(final, epoch=0)]}
        (out / "config.json").write_text(json.dumps(config))
        (out / "record.json").write_text(json.dumps(record))
        return record

    monkeypatch.setattr(scheduler, "run_task", run_task)
    return calls


def test_search_pipeline_selects_the_best_cell_by_short_training_validation(tmp_path, tiny_cifar, fake_runs):
    import genotypes

    result = run_experiment(_options(tmp_path, tiny_cifar, search=True, order=1, search_seeds=[0, 1, 2, 3], runs=2,
                                     selection_epochs=7, report=False))
    exp_dir = tmp_path / "results" / "exp"
    kinds = [(k, where) for k, where, _ in fake_runs]
    assert kinds == [("search", "search")] * 4 + [("train", "selection")] * 4 + [("train", "runs")] * 2
    sel = json.loads((exp_dir / "selection.json").read_text())
    assert sel["metric"] == "valid_error" and [c["search_seed"] for c in sel["candidates"]] == [0, 1, 2, 3]
    assert [c["valid_metric"] for c in sel["candidates"]] == [10.0, 20.0, 8.0, 20.0]
    assert sel["chosen"] == 2  # the DARTS_V2 cell with the lowest validation error
    v2 = genotypes.format(genotypes.get("DARTS_V2", "cnn"))
    meta = json.loads((exp_dir / "experiment.json").read_text())
    assert meta["genotype"] == v2 and meta["arch"] is None and meta["order"] == 1
    assert meta["target"] == "cifar10-first-order"
    assert meta["search"] == {"order": 1, "seeds": [0, 1, 2, 3], "short_epochs": 7}
    sel_cfg = json.loads((exp_dir / "selection" / "seed-0" / "config.json").read_text())
    assert sel_cfg["epochs"] == 7 and sel_cfg["valid_split"] == 5000 and sel_cfg["experiment"] == "cifar10-selection"
    final_cfg = json.loads((exp_dir / "runs" / "seed-1" / "config.json").read_text())
    assert final_cfg["genotype"] == v2 and final_cfg["valid_split"] == 0 and final_cfg["epochs"] == TINY["epochs"]
    assert [r["seed"] for r in result.records] == [0, 1]

    # rerunning skips everything; asking for another order in the same directory is refused
    fake_runs.clear()
    run_experiment(_options(tmp_path, tiny_cifar, search=True, order=1, search_seeds=[0, 1, 2, 3], runs=2,
                            selection_epochs=7, report=False))
    assert fake_runs == []
    with pytest.raises(ExperimentMismatchError, match="order"):
        run_experiment(_options(tmp_path, tiny_cifar, search=True, order=2, search_seeds=[0, 1, 2, 3], runs=2,
                                selection_epochs=7, report=False))
