"""One process per run directory: a second one is refused at once, with who holds it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from search_helpers import cifar_config, one_thread, tiny_cifar
from train_helpers import make_cifar
from train_helpers import tiny_cifar as tiny_train_config

from reproduce.rundir import LOCK, RunDir, RunInUseError
from reproduce.search import search
from reproduce.train import train

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

_HOLD = """
import sys, time
from reproduce.rundir import RunDir
with RunDir(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_in_subprocess(path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path):
    run = tmp_path / "run"
    with RunDir(run).lock():
        assert (run / LOCK).read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(RunInUseError, match=f"is in use by pid {os.getpid()} on .* since"):
            with RunDir(run).lock():
                pass
    assert not (run / LOCK).exists()  # removed on the way out
    with RunDir(run).lock():  # and free again
        pass


def test_a_directory_the_lock_created_is_removed_if_nothing_was_written(tmp_path):
    with RunDir(tmp_path / "empty").lock():
        pass
    assert not (tmp_path / "empty").exists()
    with RunDir(tmp_path / "used").lock():
        (tmp_path / "used" / "config.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == ["config.json"]


def test_kill_9_leaves_no_lock_behind(tmp_path):
    run = tmp_path / "run"
    proc = _hold_in_subprocess(run)
    try:
        with pytest.raises(RunInUseError, match=f"in use by pid {proc.pid} "):
            with RunDir(run).lock():
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / LOCK).exists()  # the file stays after kill -9, the lock does not
    with RunDir(run).lock():
        assert (run / LOCK).read_text().startswith(f"pid {os.getpid()} ")


def test_training_into_a_directory_in_use_is_refused_and_touches_nothing(tmp_path):
    data = make_cifar(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    proc = _hold_in_subprocess(out)
    try:
        with pytest.raises(RunInUseError, match="the same run is going on"):
            train("cifar10", tiny_train_config(data, epochs=1), out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        proc.kill()
        proc.wait()
    record = train("cifar10", tiny_train_config(data, epochs=1), out, progress=False)
    assert record["status"] == "finished"
    assert not (out / LOCK).exists()


def test_search_into_a_directory_in_use_is_refused(tmp_path):
    data = tiny_cifar(tmp_path / "data")
    out = tmp_path / "search"
    with one_thread():
        proc = _hold_in_subprocess(out)
        try:
            with pytest.raises(RunInUseError, match="in use by pid"):
                search("cifar10", cifar_config(data, epochs=1), out, progress=False)
        finally:
            proc.kill()
            proc.wait()
        assert search("cifar10", cifar_config(data, epochs=1), out, progress=False)["status"] == "finished"


def test_a_failed_start_leaves_no_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError):
        search("cifar10", cifar_config(tmp_path / "no-data", epochs=1), out, progress=False)
    assert not out.exists()


def test_the_cli_says_it_in_one_line(tmp_path):
    data = make_cifar(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    proc = _hold_in_subprocess(out)
    try:
        t0 = time.time()
        cli = subprocess.run([sys.executable, "-m", "reproduce", "train", "cifar10", "--arch", "DARTS_V2",
                              "--data", str(data), "--out", str(out), "--device", "cpu", "--epochs", "1",
                              "--C", "4", "--layers", "3"], capture_output=True, text=True, timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert cli.returncode == 2, cli.stderr
    assert f"in use by pid {proc.pid}" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert time.time() - t0 < 120  # refused at once, not after training


def test_a_filesystem_without_locks_runs_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level("WARNING"):
        with RunDir(tmp_path / "run").lock():
            (tmp_path / "run" / "config.json").write_text("{}")
    assert "running without protection" in caplog.text and "No locks available" in caplog.text


def test_a_lock_file_released_between_open_and_flock_is_taken_anew(tmp_path, monkeypatch):
    import fcntl

    real_flock, calls = fcntl.flock, []

    def holder_leaves_first(fd, op):  # the holder unlinks its file just as we open it
        if not calls:
            os.unlink(tmp_path / "run" / LOCK)
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", holder_leaves_first)
    (tmp_path / "run").mkdir()
    with RunDir(tmp_path / "run").lock():
        assert len(calls) == 2 and (tmp_path / "run" / LOCK).exists()


def test_a_lock_file_removed_during_the_run_is_no_error(tmp_path):
    with RunDir(tmp_path / "run").lock():
        (tmp_path / "run" / "metrics.jsonl").write_text("")
        os.unlink(tmp_path / "run" / LOCK)
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_an_unlockable_filesystem_leaves_no_lock_file_and_no_empty_directory(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with RunDir(tmp_path / "run").lock():
        assert not (tmp_path / "run" / LOCK).exists()
    assert not (tmp_path / "run").exists()


def test_cleanup_leaves_another_starters_lock_file_alone(tmp_path):
    run = tmp_path / "run"
    with RunDir(run).lock():
        os.unlink(run / LOCK)  # ours removed under us, and someone else's appears
        (run / LOCK).write_text("pid 1 on elsewhere since then\n")
    assert (run / LOCK).read_text() == "pid 1 on elsewhere since then\n"


def test_a_run_directory_that_cannot_be_one_is_named_in_one_line(tmp_path):
    from reproduce.rundir import RunDirNotWritableError

    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirNotWritableError, match="is a file, not a run directory"):
        with RunDir(tmp_path / "f").lock():
            pass
    with pytest.raises(RunDirNotWritableError, match=r"f/run is not writable \(Not a directory"):
        with RunDir(tmp_path / "f" / "run").lock():
            pass
    assert (tmp_path / "f").read_text() == "x"
