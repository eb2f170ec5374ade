"""reproduce.aggregate: loading experiments, refusing mixed configs and profiles, paper targets."""
import json
from pathlib import Path

import pytest

from reproduce import aggregate
from reproduce import targets as targets_mod
from reproduce.aggregate import MixedConfigError, check_consistent, load_experiment

GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
CONFIG = {"epochs": 600, "batch_size": 96, "learning_rate": 0.025, "cutout": True, "device": "cuda:0",
          "workers": 4, "seed": 0, "data": "/data/cifar"}


def record(seed, error, config=None, **extra):
    cfg = dict(CONFIG, seed=seed)
    cfg.update(config or {})
    r = {"experiment": "cifar10", "kind": "train", "dataset": "cifar10", "genotype": GENOTYPE, "seed": seed,
         "config": cfg, "final": {"test_error": error},
         "curve": [{"epoch": e, "test_error": error + 10.0 / (e + 1), "train_loss": 1.0 / (e + 1)} for e in range(3)],
         "parameters": 3349342, "wall_time_s": 3600.0 + seed, "status": "finished", "git_commit": "a" * 40,
         "device": "NVIDIA H100", "torch": "2.14.1", "python": "3.11.9", "platform": "Linux"}
    r.update(extra)
    return r


def write_experiment(root: Path, records, meta=None, unfinished=()):
    root.mkdir(parents=True, exist_ok=True)
    m = {"experiment": "cifar10", "dataset": "cifar10", "arch": "DARTS_V2", "genotype": GENOTYPE, "profile": "paper",
         "order": 2, "target": "cifar10", "seeds": [r["seed"] for r in records] + list(unfinished), "search": None}
    m.update(meta or {})
    (root / "experiment.json").write_text(json.dumps(m))
    for r in records:
        d = root / "runs" / f"seed-{r['seed']}"
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(r))
    for s in unfinished:
        d = root / "runs" / f"seed-{s}"
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(dict(CONFIG, seed=s)))
    return root


def test_load_experiment_reads_finished_records_sorted_by_seed_and_lists_unfinished_runs(tmp_path):
    exp_dir = write_experiment(tmp_path / "cifar10", [record(2, 2.9), record(0, 2.7), record(1, 2.8)],
                               unfinished=[3])
    failed = record(4, 9.9, status="failed")
    (exp_dir / "runs" / "seed-4").mkdir()
    (exp_dir / "runs" / "seed-4" / "record.json").write_text(json.dumps(failed))
    exp = load_experiment(exp_dir)
    assert exp.seeds == [0, 1, 2]
    assert exp.unfinished == ["seed-3", "seed-4"]
    assert [v for _, v in exp.values("test_error")] == [2.7, 2.8, 2.9]
    assert exp.summary("test_error")["mean"] == pytest.approx(2.8)
    assert exp.metrics() == ["test_error"]
    assert exp.profile == "paper" and exp.comparable


def test_directory_without_experiment_json_is_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment.json"):
        load_experiment(tmp_path)


def test_configs_differing_only_in_seed_and_runtime_fields_are_accepted():
    check_consistent([record(0, 2.7), record(1, 2.8, config={"device": "cpu", "workers": 0, "data": "/tmp/x",
                                                             "progress": False, "num_threads": 2})])


def test_mixed_configs_are_refused_naming_every_field_that_differs():
    records = [record(0, 2.7), record(1, 2.8, config={"epochs": 20}), record(2, 2.9, config={"batch_size": 64})]
    with pytest.raises(MixedConfigError) as e:
        check_consistent(records)
    msg = str(e.value)
    assert "config.epochs" in msg and "config.batch_size" in msg
    assert "600: seed 0, seed 2" in msg and "20: seed 1" in msg
    assert "seed" not in msg.split("Values:")[0].replace("the seed", "")  # the seed itself is not a difference
    assert "device" not in msg
    assert isinstance(e.value, ValueError)


def test_nested_config_fields_are_compared_and_named_with_their_path():
    a = record(0, 2.7, config={"train": {"epochs": 600, "device": "cuda"}})
    b = record(1, 2.8, config={"train": {"epochs": 600, "device": "cpu"}})
    check_consistent([a, b])  # train.device is run-time only
    c = record(2, 2.8, config={"train": {"epochs": 50, "device": "cpu"}})
    with pytest.raises(MixedConfigError, match=r"config\.train\.epochs"):
        check_consistent([a, c])


def test_records_of_different_genotypes_are_refused():
    other = record(1, 2.8, genotype=GENOTYPE.replace("dil_conv_3x3", "sep_conv_5x5"))
    with pytest.raises(MixedConfigError, match="genotype") as e:
        check_consistent([record(0, 2.7), other])
    assert "sha1" in str(e.value) and len(str(e.value)) < 600  # long texts are abbreviated


def test_profiles_are_never_mixed():
    with pytest.raises(MixedConfigError, match="profile"):
        check_consistent([record(0, 2.7, profile="paper"), record(1, 2.8, profile="quick")])
    with pytest.raises(MixedConfigError, match="profile"):  # in the config too
        check_consistent([record(0, 2.7, config={"profile": "paper"}), record(1, 2.8, config={"profile": "quick"})])
    with pytest.raises(MixedConfigError, match="experiment.json says 'paper'"):
        check_consistent([record(0, 2.7, profile="quick")], profile="paper")


def test_load_experiment_refuses_mixed_records(tmp_path):
    exp_dir = write_experiment(tmp_path / "x", [record(0, 2.7), record(1, 2.8, config={"cutout": False})])
    with pytest.raises(MixedConfigError, match="config.cutout"):
        load_experiment(exp_dir)


def test_quick_profile_experiment_is_not_comparable_and_is_not_tested(tmp_path):
    exp_dir = write_experiment(tmp_path / "q", [record(0, 2.7), record(1, 2.8)], meta={"profile": "quick"})
    exp = load_experiment(exp_dir)
    assert not exp.comparable
    rows = aggregate.compare_experiment(exp, targets_mod.load_targets())
    assert rows and all(r.result["verdict"] == "not comparable" and r.result["p"] is None for r in rows)


def test_find_experiments_at_any_depth(tmp_path):
    write_experiment(tmp_path / "a", [record(0, 2.7)])
    write_experiment(tmp_path / "demo" / "cnn", [record(0, 2.7)])
    found = aggregate.find_experiments(tmp_path)
    assert found == [tmp_path / "a", tmp_path / "demo" / "cnn"]


def test_target_is_read_from_experiment_json_or_inferred_from_experiment_and_order():
    targets = targets_mod.load_targets()
    assert targets_mod.target_key({"target": "ptb-released"}, targets) == "ptb-released"
    assert targets_mod.target_key({"experiment": "cifar10", "order": 1}, targets) == "cifar10-first-order"
    assert targets_mod.target_key({"experiment": "cifar10", "order": 2}, targets) == "cifar10"
    assert targets_mod.target_key({"experiment": "ptb", "arch": "DARTS_V1"}, targets) == "ptb-first-order"
    assert targets_mod.target_key({"experiment": "wt2"}, targets) == "wt2"
    assert targets_mod.target_key({"experiment": "demo-cnn", "target": None}, targets) is None
    with pytest.raises(ValueError, match="known"):
        targets_mod.target_key({"target": "cifar100"}, targets)


def test_comparison_rows_cover_paper_released_model_and_reproduction(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "c", [record(0, 2.7), record(1, 2.8), record(2, 2.9)]))
    rows = aggregate.compare_experiment(exp, targets_mod.load_targets())
    kinds = [(r.role, r.target, r.metric) for r in rows]
    assert kinds == [("paper", "cifar10", "test_error"), ("related", "cifar10-released", "test_error"),
                     ("reproduction", "cifar10/reproduction-0", "test_error")]
    paper, released, li = rows
    assert paper.result["test"] == "welch" and paper.paper == {"mean": 2.76, "std": 0.09, "n": 10, "unit": "%"}
    assert released.result["test"] == "one-sample"
    assert li.paper["mean"] == 2.78 and li.source == "li-talwalkar-2019"


def test_paper_json_holds_every_target_the_issue_names():
    t = targets_mod.load_targets()["targets"]
    assert t["cifar10"]["metrics"]["test_error"] == {"mean": 2.76, "std": 0.09, "n": 10, "unit": "%"}
    assert t["cifar10-first-order"]["metrics"]["test_error"]["mean"] == 3.00
    assert t["cifar10-first-order"]["metrics"]["test_error"]["std"] == 0.14
    assert t["cifar10-released"]["metrics"]["test_error"]["mean"] == 2.63
    assert t["imagenet"]["metrics"]["top1_error"]["mean"] == 26.7
    assert t["imagenet"]["metrics"]["top5_error"]["mean"] == 8.7
    assert t["ptb"]["metrics"] == {"valid_ppl": {"mean": 58.1}, "test_ppl": {"mean": 55.7}}
    assert t["ptb-released"]["metrics"]["test_ppl"]["mean"] == 55.68
    assert t["ptb-first-order"]["metrics"] == {"valid_ppl": {"mean": 60.2}, "test_ppl": {"mean": 57.6}}
    assert t["wt2"]["metrics"] == {"valid_ppl": {"mean": 71.2}, "test_ppl": {"mean": 69.6}}
    li_cifar = t["cifar10"]["reproductions"][0]["metrics"]["test_error"]
    assert (li_cifar["mean"], li_cifar["std"], li_cifar["n"]) == (2.78, 0.12, 10)
    assert t["ptb"]["reproductions"][0]["metrics"]["test_ppl"]["mean"] == 55.9
    sources = targets_mod.load_targets()["sources"]
    for key, spec in t.items():
        assert spec["source"] in sources and "where" in spec and "verified" in spec, key


def test_malformed_paper_json_is_refused(tmp_path):
    bad = tmp_path / "paper.json"
    bad.write_text(json.dumps({"targets": {"x": {"metrics": {"test_error": {"std": 1}}}}}))
    with pytest.raises(ValueError, match="mean"):
        targets_mod.load_targets(bad)
    with pytest.raises(FileNotFoundError, match="--paper"):
        targets_mod.load_targets(tmp_path / "missing.json")


def test_a_seed_run_twice_is_refused(tmp_path):
    exp_dir = write_experiment(tmp_path / "d", [record(0, 2.7), record(1, 2.8)])
    (exp_dir / "runs" / "copy-of-seed-1").mkdir()
    (exp_dir / "runs" / "copy-of-seed-1" / "record.json").write_text(json.dumps(record(1, 2.9)))
    with pytest.raises(ValueError, match="seed 1 was run twice"):
        load_experiment(exp_dir)


def test_experiment_json_marked_not_comparable_is_not_tested_and_bookkeeping_is_not_a_metric(tmp_path):
    recs = [record(s, e) for s, e in [(0, 2.7), (1, 2.8)]]
    for r in recs:
        r["final"].update(best_epoch=599, rollbacks=0, train_acc=99.1)
    exp = load_experiment(write_experiment(tmp_path / "n", recs, meta={"comparable": False}))
    assert not exp.comparable
    assert exp.metrics() == ["test_error", "train_acc"] and exp.primary_metrics() == ["test_error"]


def test_the_paper_targets_travel_with_the_package_for_regular_installs(tmp_path):
    import reproduce
    from reproduce.targets import load_targets, project_paper_path

    checkout = project_paper_path()
    assert checkout.parent.name == "results"
    installed = project_paper_path(checkout_root=tmp_path)  # no results/ there, as in site-packages
    assert installed == Path(reproduce.__file__).resolve().parent / "paper.json"
    assert installed.read_text() == checkout.read_text()  # reproduce/paper.json is results/paper.json
    assert load_targets(installed) == load_targets(checkout)
