"""The experiment driver: seeds, resume, refusal of mixed configs, the search pipeline, the CLI."""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch

from reproduce import experiments, scheduler, tasks
from reproduce.experiments import ExperimentMismatchError, ExperimentOptions, run_experiment

TINY = dict(epochs=2, C=4, layers=3, batch_size=16, eval_batch_size=32, limit=32, limit_eval=32, auxiliary=False,
            num_threads=1)


def _options(tmp_path, data, **kw):
    base = dict(experiment="cifar10", runs=2, out=str(tmp_path / "results" / "exp"), data=str(data), device="cpu",
                profile="quick", train_overrides=dict(TINY), progress=False)
    base.update(kw)
    return ExperimentOptions(**base)


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


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def test_cli_lists_the_four_experiments_with_recipe_fields(capsys):
    from reproduce.__main__ import main

    for name in ("cifar10", "ptb", "imagenet", "wt2"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "--runs" in text and "--gpus" in text and "--profile" in text and "--epochs" in text
        assert "--launcher" in text and "--partition" in text
    main_help = capsys.readouterr()
    assert main_help is not None


def test_cli_turns_user_errors_into_one_line_and_exit_code_2(capsys, tmp_path):
    from reproduce.__main__ import main

    assert main(["cifar10", "--arch", "NOPE", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "NOPE" in err[0]
    assert main(["cifar10", "--seeds", "0,0", "--out", str(tmp_path / "x")]) == 2


def test_dry_run_checks_configs_and_shows_the_gpu_queue_without_running(capsys, tmp_path, tiny_cifar):
    from reproduce.__main__ import main

    out = tmp_path / "c10"
    assert main(["cifar10", "--dry-run", "--gpus", "0,1", "--runs", "3", "--out", str(out), "--data", str(tiny_cifar),
                 "--device", "cpu", "--profile", "quick", "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "GPU 0: seeds [0, 2]" in text and "GPU 1: seeds [1]" in text and "compared with: cifar10" in text
    assert not out.exists()
    assert main(["cifar10", "--dry-run", "--out", str(out), "--layers", "1"]) == 2  # impossible value: refused


@pytest.mark.slow
def test_cli_runs_an_experiment_and_prints_the_summary_table(capsys, tmp_path, tiny_cifar):
    from reproduce.__main__ import main

    out = tmp_path / "results" / "c10"
    code = main(["cifar10", "--runs", "2", "--profile", "quick", "--out", str(out), "--data", str(tiny_cifar),
                 "--device", "cpu", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "16",
                 "--limit", "32", "--limit-eval", "32", "--no-auxiliary", "--no-progress", "--no-report"])
    assert code == 0
    text = capsys.readouterr().out
    assert "test_error" in text and "2.76" in text and "not comparable" in text
    assert not (tmp_path / "results" / "REPORT.md").exists()
    assert json.loads((out / "runs" / "seed-1" / "config.json").read_text())["C"] == 4


def test_a_run_that_fails_before_its_first_epoch_leaves_no_directory_behind(tmp_path, tiny_cifar):
    options = _options(tmp_path, tmp_path / "no-cifar-here", runs=1)
    with pytest.raises(Exception, match="CIFAR-10|cifar"):
        run_experiment(options)
    assert not (tmp_path / "results" / "exp").exists()
    # a directory that was there before is left as it was
    (tmp_path / "results" / "exp").mkdir(parents=True)
    with pytest.raises(Exception, match="CIFAR-10|cifar"):
        run_experiment(options)
    assert (tmp_path / "results" / "exp").is_dir()


def test_gpus_with_the_slurm_launcher_is_an_error_not_ignored(tmp_path, tiny_cifar):
    with pytest.raises(ValueError, match="--gpus.*--launcher slurm.*--gpus-per-job"):
        run_experiment(_options(tmp_path, tiny_cifar, gpus=["0", "1"], launcher="slurm"))
    assert not (tmp_path / "results").exists()


def test_dry_run_checks_the_data_and_says_how_long_the_plan_takes_here(tmp_path, tiny_cifar, caplog):
    from zoo.datasets import DatasetNotFoundError

    caplog.set_level("INFO")
    lines = experiments.plan_experiment(_options(tmp_path, tiny_cifar, runs=3)).describe()
    said = [r.getMessage() for r in caplog.records if "probe" in r.getMessage()]
    assert len(said) == 1 and "measuring a 2-step probe" in said[0]  # said before it trains the probe
    assert any(line.startswith("data: ") and "(found)" in line for line in lines)
    time_line = next(line for line in lines if line.startswith("time on cpu: about"))
    assert "3 x train cifar10 (2 epochs)" in time_line  # three runs of the recipe, from a measured epoch
    assert not (tmp_path / "results").exists()  # a dry run writes nothing
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10"):
        experiments.plan_experiment(_options(tmp_path, tmp_path / "no-data")).describe()


def test_dry_run_of_the_search_pipeline_estimates_searches_selection_and_final_runs(tmp_path, tiny_cifar):
    options = _options(tmp_path, tiny_cifar, search=True, search_seeds=[0, 1], selection_epochs=1, order=1,
                       selection_overrides=dict(valid_split=16),
                       search_overrides=dict(epochs=1, C=4, layers=3, batch_size=8, train_examples=64, num_threads=1))
    lines = experiments.plan_experiment(options).describe()
    time_line = next(line for line in lines if line.startswith("time on cpu: about"))
    assert "2 x search cifar10" in time_line and "2 x train cifar10 (1 epochs)" in time_line
    assert "2 x train cifar10 (2 epochs)" in time_line


def test_pcdarts_search_pipeline_uses_the_methods_recipe_first_order_and_its_target(tmp_path, tiny_cifar):
    """The real search and training on tiny data: 2 PC-DARTS searches, their selection, 1 final run, 1 random cell."""
    from reproduce.commands.experiments import _order

    assert _order(types.SimpleNamespace(order=None, method="pcdarts")) == 1
    assert _order(types.SimpleNamespace(order=None, method="darts")) == 2
    search = dict(epochs=1, C=8, layers=3, batch_size=8, train_examples=16, arch_start_epoch=0, num_threads=1)
    result = run_experiment(_options(tmp_path, tiny_cifar, search=True, order=1, method="pcdarts", search_seeds=[0, 1],
                                     runs=1, selection_epochs=1, search_overrides=search, baseline="random:1",
                                     selection_overrides={"valid_split": 8},
                                     train_overrides=dict(TINY, epochs=1)))
    exp_dir = tmp_path / "results" / "exp"
    meta = json.loads((exp_dir / "experiment.json").read_text())
    assert meta["target"] == "cifar10-pcdarts" and meta["method"] == "pcdarts"
    assert meta["search"]["method"] == "pcdarts" and meta["order"] == 1
    search_record = json.loads((exp_dir / "search" / "seed-0" / "record.json").read_text())
    cfg = search_record["config"]
    assert (cfg["method"], cfg["partial_channels"], cfg["edge_normalization"], cfg["learning_rate"]) == (
        "pcdarts", 4, True, 0.1)
    assert search_record["experiment"] == "search-cifar10-pcdarts-order1"
    sel = json.loads((exp_dir / "selection.json").read_text())
    assert [c["search_seed"] for c in sel["candidates"]] == [0, 1] and sel["chosen"] in (0, 1)
    assert len(result.records) == 1 and result.baseline["n"] == 1
    assert experiments.default_out(experiments.EXPERIMENTS["cifar10"], None, None, True, 1, "paper",
                                   method="pcdarts") == Path("results/cifar10-search-pcdarts-order1")
    report = result.report.read_text()
    assert "search method pcdarts" in report and "cifar10-pcdarts" in report


def test_a_baseline_counts_against_the_run_cap_and_in_the_dry_run_estimate(tmp_path, tiny_cifar, capsys):
    from reproduce.__main__ import main

    for baseline in ("random:1000000000", "random:1001", f"random:{10 ** 40}"):
        assert main(["cifar10", "--baseline", baseline, "--runs", "1", "--dry-run", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --baseline") and "at most 1000" in err and "\n" not in err, err
    with pytest.raises(ValueError, match="asks for 1010 runs"):  # 101 cells x 10 seeds
        experiments.plan_experiment(_options(tmp_path, tiny_cifar, runs=10, baseline="random:101")).describe()
    lines = experiments.plan_experiment(_options(tmp_path, tiny_cifar, runs=2, baseline="random:3")).describe()
    time_line = next(line for line in lines if line.startswith("time on cpu: about"))
    assert "2 x train cifar10" in time_line and "6 x train cifar10" in time_line  # the 3 cells x 2 seeds count
    assert not (tmp_path / "results").exists()


def test_a_report_of_the_users_inside_out_is_refused_before_any_training(tmp_path, tiny_cifar):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "REPORT.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="REPORT.md exists and was not written by `python -m reproduce report`"):
        run_experiment(_options(tmp_path, tiny_cifar, out=str(out)))
    assert [p.name for p in out.iterdir()] == ["REPORT.md"] and (out / "REPORT.md").read_text() == "my notes"
    (out / "REPORT.md").unlink()
    (out / "figures").mkdir()
    (out / "figures" / "plot.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="figures holds files, but there is no report beside it"):
        run_experiment(_options(tmp_path, tiny_cifar, out=str(out)))


def test_a_changed_recipe_of_the_selection_or_final_runs_is_refused_before_any_search(tmp_path, tiny_cifar):
    """With --search the cells are not known when the plan is made, but the runs already trained under
    selection/ and runs/ have a recipe: rerunning with another one is refused at once, not after the searches."""
    import json

    from reproduce.experiments.spec import ExperimentMismatchError

    search = dict(epochs=1, C=4, layers=3, batch_size=8, train_examples=64, num_threads=1)
    options = _options(tmp_path, tiny_cifar, search=True, search_seeds=[0], selection_epochs=1, order=1,
                       selection_overrides=dict(valid_split=16), search_overrides=search)
    plan = experiments.plan_experiment(options)
    for part, config in (("selection", plan.work[1][2]), ("runs", plan.work[2][2])):
        where = tmp_path / "earlier" / part / "seed-0"  # runs of an earlier command, trained with another cell
        where.mkdir(parents=True)
        (where / "config.json").write_text(json.dumps(dict(config, genotype="DARTS_V1", seed=0)))
        changed = _options(tmp_path, tiny_cifar, search=True, search_seeds=[0], selection_epochs=1, order=1,
                           selection_overrides=dict(valid_split=16), search_overrides=search,
                           out=str(tmp_path / "earlier"), train_overrides=dict(options.train_overrides,
                                                                                learning_rate=0.5))
        with pytest.raises(ExperimentMismatchError, match="learning_rate"):
            experiments.plan_experiment(changed)
        same = dict(vars(changed), train_overrides=options.train_overrides)
        experiments.plan_experiment(type(options)(**same))  # the same recipe, another cell: fine
        (where / "config.json").unlink()
