"""Files that are not regular files (a FIFO, a link to a device) or are larger than any file of theirs are
refused in one line naming them, before they are opened: opening a FIFO for reading blocks until a writer
comes, and /dev/zero reads without end.

A reader that regresses to opening the FIFO would block the test for good; a helper thread opens each FIFO
for writing once a reader waits on it, so such a regression fails (the reader then sees an empty file)
instead of hanging.
"""
from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from reproduce import __main__ as cli
from reproduce.commands.experiments import _read_genotype
from reproduce.config import ConfigError, load_config_file
from reproduce.jsonfile import MAX_JSON_BYTES, BadFileError, read_json, read_json_lines
from reproduce.report.staging import _mark
from reproduce.rundir import DamagedCheckpointError, load_checked

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@pytest.fixture
def fifo(tmp_path):
    """A FIFO; a thread unblocks any reader that opens it (so a regression fails rather than hangs)."""
    path = tmp_path / "record.json"
    os.mkfifo(path)
    done = threading.Event()

    def unblock():
        while not done.is_set():
            try:  # succeeds only while a reader has it open (ENXIO otherwise)
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
            time.sleep(0.05)

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join(5)


@pytest.fixture
def device(tmp_path):
    """A link to a character device (/dev/null: harmless if a regression reads it, unlike /dev/zero)."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    path = tmp_path / "checkpoint.pt"
    path.symlink_to("/dev/null")
    return path


def test_json_readers_refuse_fifos_devices_and_oversized_files(fifo, device, tmp_path):
    with pytest.raises(BadFileError, match=r"record\.json: is a named pipe \(FIFO\), not a regular file"):
        read_json(fifo)
    with pytest.raises(BadFileError, match=r"record\.json: is a named pipe"):
        read_json_lines(fifo)
    with pytest.raises(BadFileError, match=r"checkpoint\.pt: is a character device"):
        read_json(device)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(BadFileError, match=rf"big\.json: {MAX_JSON_BYTES + 1} bytes, more than"):
        read_json(big)
    assert read_json_lines(tmp_path / "missing.jsonl") == []  # a missing file is still no lines


def test_checkpoint_loader_refuses_fifos_and_devices(fifo, device):
    with pytest.raises(DamagedCheckpointError, match=r"record\.json: is a named pipe"):
        load_checked(fifo)
    with pytest.raises(DamagedCheckpointError, match=r"checkpoint\.pt: is a character device"):
        load_checked(device)


def test_config_and_genotype_files_refuse_fifos_and_devices(fifo, device):
    with pytest.raises(ConfigError, match=r"^--config .*record\.json: is a named pipe"):
        load_config_file(fifo)
    with pytest.raises(ConfigError, match=r"^--config .*checkpoint\.pt: is a character device"):
        load_config_file(device)
    with pytest.raises(ConfigError, match=r"record\.json: is a named pipe.*--genotype"):
        _read_genotype(str(fifo))
    assert _mark(fifo.parent) is None  # a report's staging mark (named .staging-by-report)
    (fifo.parent / ".staging-by-report").symlink_to(fifo)
    assert _mark(fifo.parent) is None


def test_a_genotype_file_larger_than_any_genotype_is_refused(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("x" * 10_000_000)
    with pytest.raises(ConfigError, match=r"g\.txt: 10000000 bytes, more than"):
        _read_genotype(str(path))


def test_report_with_a_fifo_paper_file_ends_in_one_line(fifo, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    argv = ["report", str(results), "--no-figures", "--out", str(tmp_path / "R.md"), "--paper", str(fifo)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "record.json: is a named pipe" in err
