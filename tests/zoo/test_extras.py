"""Optional dependencies: a missing extra is one line naming the pip command, never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo import extras

REPO = Path(__file__).resolve().parents[2]

# Runs `python -m reproduce --help` as if `tabulate` (a harness extra) were not installed.
_HIDE_TABULATE = """
import importlib.util as u, runpy, sys
real = u.find_spec
u.find_spec = lambda name, *a: None if name == "tabulate" else real(name, *a)
sys.argv = ["reproduce", "--help"]
runpy.run_module("reproduce", run_name="__main__", alter_sys=True)
"""


def test_require_names_the_install_command(monkeypatch):
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(extras.MissingExtraError) as e:
        extras.require("submitit", "--launcher slurm")
    assert str(e.value) == "--launcher slurm needs the package 'submitit': pip install 'darts-zoo[slurm]'"
    assert isinstance(e.value, ImportError)


def test_require_returns_the_module_when_installed():
    assert extras.require("json.decoder", "anything").__name__ == "json.decoder"


def test_harness_cli_without_its_extra_says_one_line():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", _HIDE_TABULATE], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: the harness needs tabulate: pip install 'darts-zoo[harness]'"]


def test_every_extra_named_in_the_table_exists_in_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    for extra in set(extras.EXTRA_OF.values()):
        assert f"\n{extra} = [" in text, extra
