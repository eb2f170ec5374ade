"""Refusals in one line: a dry run's --out that is a file, an unknown --profile, and a bad value of a --config
file, which names the file (the value is not on the command line)."""
from __future__ import annotations

import json

import pytest

from reproduce import __main__ as cli


def refused(capsys, argv, *parts) -> str:
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for part in parts:
        assert part in err, err
    return err


def test_a_dry_run_refuses_an_out_that_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    refused(capsys, ["cifar10", "--dry-run", "--out", blocker], f"--out {blocker}: is an existing file")
    refused(capsys, ["cifar10", "--dry-run", "--out", blocker / "exp"], f"lies under {blocker}")
    assert blocker.read_text() == "x"


def test_an_unknown_profile_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["train", "cifar10", "--profile", "x", "--out", str(tmp_path / "run")])
    assert "invalid choice: 'x'" in capsys.readouterr().err
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"profile": "x"}))
    refused(capsys, ["train", "cifar10", "--config", config, "--out", tmp_path / "run"],
            f"--config {config}: profile must be one of paper, quick, demo")
    assert not (tmp_path / "run").exists()


def test_a_bad_value_of_a_config_file_names_the_file(capsys, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"epochs": 0}))
    refused(capsys, ["train", "cifar10", "--config", config, "--out", tmp_path / "r"],
            f"error: --config {config}: epochs must be >= 1")
    refused(capsys, ["search", "cifar10", "--config", config, "--out", tmp_path / "s"],
            f"error: --config {config}: epochs must be >= 1")
    refused(capsys, ["cifar10", "--dry-run", "--config", config, "--out", tmp_path / "e"],
            f"error: --config {config}: epochs must be >= 1")
    config.write_text(json.dumps({"epochz": 3}))
    refused(capsys, ["train", "cifar10", "--config", config, "--out", tmp_path / "r"],
            f"error: --config {config}: unknown CIFAR10Config field(s) epochz")
    # the option overrides the file: the bad value is the command line's, and the file is not blamed
    config.write_text(json.dumps({"epochs": 3}))
    err = refused(capsys, ["train", "cifar10", "--config", config, "--epochs", "0", "--out", tmp_path / "r"],
                  "epochs must be >= 1")
    assert "--config" not in err


@pytest.mark.parametrize("flag, value", [("--time", "-1"), ("--mem-gb", "-5")])
def test_negative_slurm_limits_are_refused_in_a_dry_run(capsys, tmp_path, flag, value):
    err = cli.main(["cifar10", "--dry-run", "--launcher", "slurm", "--partition", "x", flag, value,
                    "--out", str(tmp_path / "e")])
    assert err == 2, capsys.readouterr()
