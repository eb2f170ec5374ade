"""The command line's last line of defence: filesystem errors and dead worker processes end in one line."""
from __future__ import annotations


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
