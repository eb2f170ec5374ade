"""The command line's last line of defence: filesystem errors and dead worker processes end in one line, and a
failed start leaves nothing behind, not even the parent directories it created."""
from __future__ import annotations

import pytest


def test_filesystem_errors_and_dead_workers_end_in_one_line(tmp_path, tiny_cifar, capsys, monkeypatch):
    import concurrent.futures

    from reproduce import __main__ as cli

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = ["cifar10", "--runs", "1", "--profile", "quick", "--device", "cpu", "--data", str(tiny_cifar),
            "--out", str(blocker / "exp"), "--no-progress", "--no-report", "--epochs", "1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "a-file" in err

    def died(args):
        raise concurrent.futures.process.BrokenProcessPool("A child process terminated abruptly")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["demo", "--out", str(tmp_path / "demo")])
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: argparse_namespace(args, died))
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a worker process died") and "\n" not in err


def argparse_namespace(args, func):
    args.func = func
    return args


def test_a_failed_start_removes_the_parent_directories_it_created(tmp_path, capsys):
    """--out a/b/c with missing data: a, b and c were created on the way and go again (a run, an experiment)."""
    from reproduce import __main__ as cli

    missing = tmp_path / "no-data"
    assert cli.main(["train", "cifar10", "--data", str(missing), "--out", str(tmp_path / "tr" / "a" / "b"),
                     "--epochs", "1", "--no-progress"]) == 2
    assert cli.main(["cifar10", "--runs", "1", "--data", str(missing), "--out", str(tmp_path / "sub" / "exp"),
                     "--no-progress", "--no-report"]) == 2
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_experiment_whose_queued_runs_wrote_only_their_logs_leaves_only_the_logs_it_names(tmp_path, tiny_cifar,
                                                                                             monkeypatch):
    """With --gpus, each run's output goes to log.txt in its run directory; a run that failed at once wrote
    nothing else, so the failed start removes the experiment directory but for that log: the error carries the
    log's last line and names the log, which holds the whole traceback."""
    import sys

    from reproduce import scheduler
    from reproduce.experiments import ExperimentOptions, run_experiment

    def failing(job):
        return [sys.executable, "-c", "import sys; print('ValueError: no such data'); sys.exit(2)"]

    monkeypatch.setattr(scheduler, "worker_command", failing)
    out = tmp_path / "exp"
    options = ExperimentOptions(experiment="cifar10", runs=1, out=str(out), data=str(tiny_cifar), device="cpu",
                                gpus=("0",), progress=False, report=False, train_overrides={"epochs": 1})
    with pytest.raises(scheduler.RunsFailedError, match="ValueError: no such data") as e:
        run_experiment(options)
    left = sorted(p for p in out.rglob("*") if not p.is_dir())
    assert [p.name for p in left] == ["log.txt"] and "ValueError: no such data" in left[0].read_text()
    assert f"(log {left[0]})" in str(e.value)  # where the evidence is


def test_a_run_does_not_write_into_a_directory_of_someone_elses_files(tmp_path, tiny_cifar, capsys):
    from reproduce import __main__ as cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("mine")
    argv = ["train", "cifar10", "--data", str(tiny_cifar), "--epochs", "1", "--C", "4", "--layers", "3",
            "--batch-size", "8", "--no-auxiliary", "--no-progress", "--device", "cpu"]
    assert cli.main(argv + ["--out", str(home)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds other files (thesis.tex) and no run" in err and "\n" not in err
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".DS_Store").write_text("")  # hidden files do not make a directory someone else's
    assert cli.main(argv + ["--out", str(fresh)]) == 0
    assert (fresh / "record.json").exists()


def test_temporaries_left_by_a_killed_write_are_removed_when_the_run_takes_its_directory(tmp_path):
    from reproduce.rundir import RunDir

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    stale = [run / ".checkpoint.pt.ab12cd.tmp", run / ".record.json.x9.tmp", run / ".best.pt.q.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    (run / ".notes.tmp").write_text("not ours")
    with RunDir(run).lock():
        assert not any(p.exists() for p in stale)
    assert (run / ".notes.tmp").exists() and (run / "config.json").exists()
