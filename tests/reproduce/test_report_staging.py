"""The hidden directory a report draws into: one that a report killed outright (kill -9) left is removed by the next
report, and nothing else that looks like one is touched."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import cifar

from reproduce.report import staging, write_report

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and process ids are POSIX")

# a report stopped after drawing every figure, before moving them into figures/: there it is killed
_STALL = """
import sys, time
from reproduce import report

def stall(drawing, fig_root):
    print(drawing, flush=True)
    time.sleep(120)

report.install_figures = stall
report.write_report(sys.argv[1])
"""


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _staging_dir(base: Path, pid: int, host: str = "", mark=True, suffix="ab12cd_9") -> Path:
    host = host or staging.host()
    path = base / f".figures-{host}-{pid}-{suffix}"
    (path / "exp").mkdir(parents=True)
    (path / "exp" / "final_test_error.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    if mark is True:
        mark = {"program": staging.PROGRAM, "host": host, "pid": pid}
    if mark is not None:
        (path / staging.MARK).write_text(json.dumps(mark))
    return path


def test_the_directory_a_killed_report_drew_into_is_removed_by_the_next_report(tmp_path):
    cifar(tmp_path / "cifar10-darts_v2")
    proc = subprocess.Popen([sys.executable, "-c", _STALL, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        left = Path(proc.stdout.readline().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert left.parent == tmp_path and (left / "cifar10-darts_v2" / "final_test_error.png").is_file()
    assert left.name.startswith(f".figures-{staging.host()}-{proc.pid}-") and (left / staging.MARK).is_file()
    assert "(figures/cifar10-darts_v2/final_test_error.png)" in write_report(tmp_path).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md", "cifar10-darts_v2", "figures"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [".written-by-report", "cifar10-darts_v2"]


def test_an_empty_one_of_a_report_killed_before_it_marked_it_is_removed_too(tmp_path):
    empty = tmp_path / f".figures-{staging.host()}-{_dead_pid()}-x1y2z3_q"
    empty.mkdir()
    assert staging.remove_abandoned(tmp_path) == [empty] and not empty.exists()


def test_nothing_that_is_not_provably_a_killed_reports_is_touched(tmp_path):
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [
            _staging_dir(tmp_path, live.pid, suffix="live0001"),  # a report still drawing on this host
            _staging_dir(tmp_path, os.getpid(), suffix="mine0001"),  # this process's own
            _staging_dir(tmp_path, dead, host="another.host", suffix="other001"),  # its process may live there
            _staging_dir(tmp_path, dead, mark=None, suffix="nomark01"),  # files but no mark: someone else's
            _staging_dir(tmp_path, dead, mark={"program": "something else", "host": staging.host(), "pid": dead},
                         suffix="program1"),
            _staging_dir(tmp_path, dead, mark={"program": staging.PROGRAM, "host": staging.host(), "pid": dead + 1},
                         suffix="otherpid"),
        ]
        odd = tmp_path / ".figures-by-hand"  # not the name a report gives
        odd.mkdir()
        (tmp_path / staging.MARK).write_text("x")
        target = _staging_dir(tmp_path / "elsewhere", dead, suffix="target01")
        link = tmp_path / f".figures-{staging.host()}-{dead}-link0001"
        link.symlink_to(target, target_is_directory=True)
        (tmp_path / f".figures-{staging.host()}-{dead}-afile001").write_text("a file, not a directory")
        before = sorted(str(p) for p in tmp_path.rglob("*"))
        assert staging.remove_abandoned(tmp_path) == []
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
        assert all((k / "exp" / "final_test_error.png").is_file() for k in kept + [target])
        removed = _staging_dir(tmp_path, dead, suffix="killed01")  # beside them, a killed report's goes
        assert staging.remove_abandoned(tmp_path) == [removed] and not removed.exists()
    finally:
        live.kill()
        live.wait()


def test_a_leftover_that_cannot_be_removed_is_named_and_the_report_goes_on(tmp_path, monkeypatch, caplog):
    cifar(tmp_path / "cifar10-darts_v2")
    left = _staging_dir(tmp_path, _dead_pid())

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(staging.shutil, "rmtree", refuse)
    write_report(tmp_path, with_figures=False)
    assert left.is_dir() and (tmp_path / "REPORT.md").is_file()
    assert f"could not remove {left}, left by a report that was killed: " in caplog.text


@pytest.mark.parametrize("blocker", ["file", "link"])
def test_a_file_or_link_where_an_experiments_figures_go_is_refused_before_anything_changes(tmp_path, capsys, blocker):
    from reproduce.__main__ import main

    cifar(tmp_path / "a-first")
    cifar(tmp_path / "b-second")
    report = write_report(tmp_path)
    figures = tmp_path / "figures"
    before = {p: p.read_bytes() for p in [report, *figures.rglob("*.png")] if "b-second" not in str(p)}
    for p in (tmp_path / "a-first").rglob("record.json"):  # the next report would redraw a-first differently
        p.write_text(p.read_text().replace("2.7", "3.7"))
    blocked = figures / "b-second"
    for p in blocked.iterdir():
        p.unlink()
    blocked.rmdir()
    if blocker == "file":
        blocked.write_text("mine")
    else:
        (tmp_path / "elsewhere").mkdir()
        blocked.symlink_to(tmp_path / "elsewhere")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{blocked} is in the way of the figures of experiment b-second" in err
    assert {p: p.read_bytes() for p in before} == before  # REPORT.md and a-first's figures as they were
    assert blocked.is_symlink() if blocker == "link" else blocked.read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".figures-")]
