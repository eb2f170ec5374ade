"""reproduce.runner: the one runner of training and search, with a toy task (no data, milliseconds)."""
from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from reproduce import runner
from reproduce.distributed import Dist
from reproduce.rundir import RunDir


@dataclasses.dataclass
class ToyConfig:
    seed: int = 0
    epochs: int = 4
    deterministic: bool = False
    num_threads: int = 0


class ToyTask:
    """Draws from every generator each epoch: a resumed run equals an uninterrupted one only if the
    runner restores the generators' state with the task's."""

    kind, dataset, parameters = "search", "toy", 1

    def __init__(self, fail_at=None):
        self.total, self.fail_at = 0.0, fail_at

    def run_epoch(self, epoch):
        if epoch == self.fail_at:
            raise KeyboardInterrupt
        draw = random.random() + float(torch.rand(())) + float(__import__("numpy").random.rand())
        self.total += draw
        return {"draw": draw, "total": self.total}

    def state_dict(self):
        return {"total": self.total}

    def load_state_dict(self, state):
        self.total = state["total"]

    def final(self, curve):
        return {"total": curve[-1]["total"]}

    def record_fields(self, curve):
        return {"experiment": "toy", "genotype": "", "extra": True}


def _run(out, fail_at=None):
    return runner.run(out, ToyConfig(), lambda d, rundir, progress: ToyTask(fail_at), dist=lambda: Dist(),
                      progress=False)


def _curve(record):
    return [{k: v for k, v in m.items() if k != "time_s"} for m in record["curve"]]


def test_an_interrupted_run_resumes_into_the_same_run_and_a_finished_one_is_returned(tmp_path):
    whole = _run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", fail_at=2)
    assert [m["epoch"] for m in RunDir(tmp_path / "cut").metrics()] == [0, 1]
    resumed = _run(tmp_path / "cut")
    assert _curve(resumed) == _curve(whole) and resumed["final"] == whole["final"]
    assert resumed["kind"] == "search" and resumed["extra"] is True and "time_s" in resumed["curve"][0]
    assert _run(tmp_path / "cut", fail_at=0) == resumed  # finished: returned, not run again


def test_checkpoints_are_written_and_read_by_one_function_pair(tmp_path):
    rundir = RunDir(tmp_path)
    task = ToyTask()
    task.total = 3.5
    runner.save_run_checkpoint(rundir, task, epochs_done=2, wall_time_s=1.0)
    other = ToyTask()
    assert runner.load_run_checkpoint(rundir, other) == {"epoch": 2, "wall_time_s": 1.0}
    assert other.total == 3.5
    wrong = ToyTask()
    wrong.kind = "train"
    with pytest.raises(ValueError, match="not a toy train checkpoint"):
        runner.load_run_checkpoint(rundir, wrong)
