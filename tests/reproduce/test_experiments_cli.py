"""The experiment commands: the command line, the dry run, and what is refused before any run."""
from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
from experiment_helpers import TINY, _options

from reproduce import experiments
from reproduce.experiments import run_experiment

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
                 "--device", "cpu", "--profile", "quick", "--epochs", "1", "--C", "4", "--layers", "3",
                 "--batch-size", "8", "--limit", "16", "--limit-eval", "8", "--no-auxiliary", "--num-threads", "1"]
                ) == 0  # a tiny recipe: the probe of the quick profile's own would take a 9 GB, 10-40 s training
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
    from reproduce.experiments.probe import own_peak_bytes

    peak = r", peak [\d.]+ [kMG]B" if own_peak_bytes() is not None else ""  # platforms without /proc: no peak
    assert re.search(r"2 x search cifar10 \(1 epochs\): [^;]+ each" + peak, time_line), time_line
    assert "2 x train cifar10 (1 epochs)" in time_line
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
