"""python -m genotypes {list, show, plot}: output, files, and one-line errors with exit code 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import genotypes
from genotypes.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "genotypes", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_cli_show_prints_the_genotype_as_the_original_does():
    out = _run("show", "DARTS_V2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == genotypes.format(genotypes.get("DARTS_V2"))
    assert genotypes.parse(out.stdout) == genotypes.get("DARTS_V2")


def test_cli_show_unknown_name_exits_2_with_a_one_line_error():
    out = _run("show", "DARTS_V3")
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: unknown cnn genotype 'DARTS_V3'")
    assert "Did you mean 'DARTS_V2'?" in lines[0]
    assert "Traceback" not in out.stderr


def test_cli_plot_writes_files_into_the_out_directory(tmp_path):
    out = _run("plot", "DARTS_V2", "--out", str(tmp_path / "figs"), "--format", "png")
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert written == ["DARTS_V2_normal.png", "DARTS_V2_reduce.png"]
    assert all((tmp_path / "figs" / n).read_bytes().startswith(b"\x89PNG") for n in written)
    assert sorted(Path(line).name for line in out.stdout.split()) == written


def test_cli_plot_unknown_name_exits_2_with_a_one_line_error(tmp_path):
    out = _run("plot", "NASnet2", "--out", str(tmp_path))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Did you mean 'NASNet'?" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_list_names_both_kinds():
    out = _run("list")
    assert out.returncode == 0, out.stderr
    rows = [tuple(line.split("\t")) for line in out.stdout.splitlines()]
    assert rows == [("cnn", n) for n in genotypes.names("cnn")] + [("rnn", n) for n in genotypes.names("rnn")]


# In-process calls of main() for the remaining paths (fast; the subprocess tests above cover the entry point).

def test_cli_list_one_kind(capsys):
    assert main(["list", "--kind", "rnn"]) == 0
    assert capsys.readouterr().out.split() == [w for n in genotypes.names("rnn") for w in ("rnn", n)]


def test_cli_show_rnn_and_genotype_text(capsys):
    assert main(["show", "ENAS", "--kind", "rnn"]) == 0
    text = capsys.readouterr().out.strip()
    assert genotypes.parse(text) == genotypes.get("ENAS", "rnn")
    assert main(["show", text]) == 0
    assert capsys.readouterr().out.strip() == text


def test_cli_show_malformed_text_exits_2(capsys):
    assert main(["show", "Genotype(normal=__import__('os').system('x'))"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_show_rnn_name_without_kind_says_which_kind(capsys):
    assert main(["show", "ENAS"]) == 2
    assert "kind='rnn'" in capsys.readouterr().err


def test_cli_plot_genotype_text_and_rnn(tmp_path, capsys):
    text = genotypes.format(genotypes.get("DARTS_V1"))
    assert main(["plot", text, "--out", str(tmp_path), "--format", "svg"]) == 0
    assert main(["plot", "DARTS_V2", "--kind", "rnn", "--out", str(tmp_path), "--format", "pdf"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "DARTS_V2_recurrent.pdf", "genotype_normal.svg", "genotype_reduce.svg"]


def test_cli_plot_without_dot_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["plot", "DARTS_V2", "--out", str(tmp_path)]) == 2
    assert "graphviz" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["list", "show", "plot"])
def test_cli_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_cli_takes_names_and_text_of_either_kind_through_genotypes_resolve(capsys):
    rnn_text = genotypes.format(genotypes.get("DARTS_V2", "rnn"))
    assert main(["show", rnn_text]) == 0  # text says its own kind
    assert capsys.readouterr().out.strip() == rnn_text
    assert main(["show", "darts_v1"]) == 0  # a name, case-insensitive
    assert capsys.readouterr().out.strip() == genotypes.format(genotypes.get("DARTS_V1"))
    assert main(["show", rnn_text, "--kind", "cnn"]) == 2  # the wrong kind, asked for explicitly
    assert "expected a cnn genotype" in capsys.readouterr().err
