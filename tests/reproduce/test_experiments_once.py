"""Each step of an experiment happens once: every run's config is built and validated once, and every record is
read once on its way to the terminal summary and the report."""
from __future__ import annotations

import collections
import dataclasses
import pickle
from pathlib import Path

import pytest
from experiment_helpers import TINY, _options

from reproduce import config as run_config
from reproduce import records, tasks
from reproduce.experiments import execute, plan_experiment, run_experiment
from reproduce.layout import RECORD
from reproduce.train.recipes import CIFAR10Config


@pytest.fixture
def validations(monkeypatch):
    """The seed of every config validated, in order."""
    seen = []
    real = run_config.validate

    def counting(config):
        seen.append(getattr(config, "seed", None))
        return real(config)

    monkeypatch.setattr(run_config, "validate", counting)
    return seen


@pytest.fixture
def record_reads(monkeypatch):
    """How often each record.json was read, by path."""
    reads = collections.Counter()
    real = records.read_json

    def counting(path, *args, **kwargs):
        if Path(path).name == RECORD:
            reads[Path(path).resolve()] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(records, "read_json", counting)
    return reads


@pytest.mark.slow
def test_each_runs_config_is_validated_once_per_experiment(tmp_path, tiny_cifar, validations):
    run_experiment(_options(tmp_path, tiny_cifar, train_overrides=dict(TINY, epochs=1), report=False))
    assert sorted(validations) == [0, 1]  # the plan's; run_task takes the built config as it is


def test_a_built_config_is_not_validated_again_but_one_changed_or_made_by_hand_is(validations):
    built = run_config.build(CIFAR10Config, {"seed": 3})
    assert validations == [3] and run_config.is_validated(built)
    assert "_validated_values" not in run_config.to_dict(built)  # not a field: config.json and digests ignore it
    assert tasks.make_config("train", "cifar10", built) is built
    assert tasks.make_config("train", "cifar10", pickle.loads(pickle.dumps(built))).seed == 3  # a pool's worker
    assert validations == [3]
    tasks.make_config("train", "cifar10", dataclasses.replace(built, seed=4))
    by_hand = CIFAR10Config(seed=5)
    tasks.make_config("train", "cifar10", by_hand)
    built.seed = 6  # changed after it was built: its mark no longer holds
    tasks.make_config("train", "cifar10", built)
    assert validations == [3, 4, 5, 6]
    with pytest.raises(run_config.ConfigError, match="epochs"):
        tasks.make_config("train", "cifar10", dataclasses.replace(built, epochs=-1))
    again = run_config.build(CIFAR10Config, {})
    again.epochs = float(again.epochs)  # equal to the marked value (600 == 600.0), but not an integer
    with pytest.raises(run_config.ConfigError, match="epochs"):
        tasks.make_config("train", "cifar10", again)


@pytest.mark.slow
def test_each_record_is_read_once_for_the_summary_and_the_report(tmp_path, tiny_cifar, record_reads):
    result = run_experiment(_options(tmp_path, tiny_cifar, train_overrides=dict(TINY, epochs=1)))
    runs = sorted((tmp_path / "results" / "exp" / "runs").glob("seed-*/record.json"))
    assert len(runs) == 2 and result.report is not None and result.report.exists()
    assert dict(record_reads) == {path.resolve(): 1 for path in runs}

    # rerun: the plan looks at the finished runs (for --dry-run's estimate); after it, the launcher reads each record
    # once to skip its run, and the summary and the report render that reading
    plan = plan_experiment(_options(tmp_path, tiny_cifar, train_overrides=dict(TINY, epochs=1)))
    record_reads.clear()
    execute(plan)
    assert dict(record_reads) == {path.resolve(): 1 for path in runs}
