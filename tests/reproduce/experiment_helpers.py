"""What the experiment tests share (test_experiments*.py): a tiny CIFAR-10 recipe and the options of a quick
experiment on tiny data."""
from __future__ import annotations

from reproduce.experiments import ExperimentOptions

TINY = dict(epochs=2, C=4, layers=3, batch_size=16, eval_batch_size=32, limit=32, limit_eval=32, auxiliary=False,
            num_threads=1)


def _options(tmp_path, data, **kw):
    base = dict(experiment="cifar10", runs=2, out=str(tmp_path / "results" / "exp"), data=str(data), device="cpu",
                profile="quick", train_overrides=dict(TINY), progress=False)
    base.update(kw)
    return ExperimentOptions(**base)
