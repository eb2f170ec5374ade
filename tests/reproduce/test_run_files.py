"""The files of a run directory: their permissions, and one-line errors for what users do to them."""
import os
import stat

import pytest

from reproduce.rundir import RunDir


@pytest.fixture
def umask():
    def set_umask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    os.umask(old)
    yield set_umask
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mask,mode", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_files_the_harness_writes_follow_the_process_umask(tmp_path, umask, mask, mode):
    umask(mask)
    run = RunDir(tmp_path / "run")
    run.start({"seed": 0, "epochs": 1})
    run.log_epoch({"epoch": 0, "train_loss": 1.0})
    run.trim_metrics(1)
    run.save_checkpoint({"epoch": 1})
    run.write_record({"status": "finished"})
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "record.json"):
        assert stat.S_IMODE(os.stat(run.path / name).st_mode) == mode, name
