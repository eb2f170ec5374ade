"""Only the paper's recipe is tested against the paper: any other recipe field marks the runs not comparable,
naming the fields (reproduce.comparable, used by the aggregation, the report and the experiment driver)."""
import json

from test_report import cifar, experiment, record

from reproduce import comparable
from reproduce.aggregate import load_experiment
from reproduce.config import to_dict
from reproduce.experiments import ExperimentOptions, run_experiment
from reproduce.report import write_report
from reproduce.train import RECIPES

OVERRIDDEN = {"epochs": 1, "C": 4, "layers": 3}


def test_the_paper_recipe_with_other_device_and_speed_options_has_no_differences():
    config = dict(to_dict(RECIPES["cifar10"]()), device="cuda:3", data="/elsewhere", num_threads=4, compile=True,
                  channels_last=True, deterministic=True, cuda_graphs=True, eval_batch_size=512, seed=7,
                  genotype="Genotype(...)", experiment="x", profile="paper")
    assert comparable.recipe_differences("train", "cifar10", config) == {}
    config.update(OVERRIDDEN, amp="bf16")
    assert comparable.recipe_differences("train", "cifar10", config) == {
        "C": (36, 4), "amp": ("none", "bf16"), "epochs": (600, 1), "layers": (20, 3)}
    # the language models' evaluation batch changes how the text is cut: a recipe field there
    ptb = dict(to_dict(RECIPES["ptb"]()), eval_batch_size=1)
    assert comparable.recipe_differences("train", "ptb", ptb) == {"eval_batch_size": (10, 1)}


def test_records_with_an_overridden_recipe_are_not_tested_and_the_report_names_the_fields(tmp_path):
    exp_dir = experiment(tmp_path / "cifar10-darts_v2", [record(s, {"test_error": e}, config=OVERRIDDEN)
                                                        for s, e in [(0, 40.0), (1, 41.0), (2, 42.0)]])
    exp = load_experiment(exp_dir)
    assert exp.profile == "paper" and not exp.comparable
    assert exp.recipe_differences() == {"C": (36, 4), "epochs": (600, 1), "layers": (20, 3)}
    text = write_report(tmp_path, with_figures=False).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cifar10 ") and "test_error" in line)
    assert "not comparable" in row and "worse" not in row and "welch" not in text
    assert ("not the paper's recipe: C (paper 36, this run 4), epochs (paper 600, this run 1), "
            "layers (paper 20, this run 3)") in text


def test_the_paper_recipe_on_another_device_is_tested(tmp_path):
    cifar(tmp_path / "cifar10-darts_v2")  # records of the paper's recipe on a CPU
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "| welch " in text and "not comparable" not in text


def test_the_driver_marks_an_overridden_paper_profile_not_comparable(tmp_path, tiny_cifar, capsys):
    from reproduce.__main__ import main

    out = tmp_path / "results" / "exp"
    assert main(["cifar10", "--dry-run", "--out", str(out), "--data", str(tiny_cifar), "--device", "cpu",
                 "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "16", "--num-threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "NOT tested against it: not the paper's recipe (C (paper 36, this run 4), " in text
    assert "epochs (paper 600, this run 1)" in text and "layers (paper 20, this run 3)" in text
    tiny = dict(epochs=1, C=4, layers=3, batch_size=16, eval_batch_size=32, limit=32, limit_eval=32, auxiliary=False,
                num_threads=1)
    run_experiment(ExperimentOptions(experiment="cifar10", runs=1, out=str(out), data=str(tiny_cifar), device="cpu",
                                     profile="paper", train_overrides=tiny, progress=False))
    meta = json.loads((out / "experiment.json").read_text())
    assert meta["profile"] == "paper" and meta["comparable"] is False
    assert "auxiliary (paper True, this run False)" in meta["recipe_differences"]
    assert "not the paper's recipe" in meta["note"]
    report = (out / "REPORT.md").read_text()  # with --out given, the report goes into that directory
    assert "**Not comparable with the paper**: not the paper's recipe: C (paper 36, this run 4)" in report
