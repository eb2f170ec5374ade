"""plot() draws real diagram files with graphviz's dot; edges follow the genotype."""
from __future__ import annotations

import html
import re
import shutil

import pytest

import genotypes

MAGIC = {"pdf": b"%PDF-", "png": b"\x89PNG\r\n\x1a\n"}


def _check_magic(path, fmt):
    data = path.read_bytes()
    assert len(data) > 100, path
    if fmt == "svg":
        assert b"<svg" in data[:1000], path
    else:
        assert data.startswith(MAGIC[fmt]), path


def _svg_edges(path):
    titles = [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", path.read_text())]
    return sorted(tuple(t.split("->")) for t in titles if "->" in t)


def test_dot_is_installed():
    # README's test command installs graphviz; without dot the plot tests would not test anything.
    assert shutil.which("dot"), "graphviz's 'dot' program is not on PATH (apt-get install graphviz)"


@pytest.mark.parametrize("fmt", ["pdf", "png", "svg"])
def test_plot_cnn_writes_normal_and_reduction_cells(tmp_path, fmt):
    paths = genotypes.plot(genotypes.get("DARTS_V2"), tmp_path / "darts_v2", format=fmt, title="DARTS_V2")
    assert [p.name for p in paths] == [f"darts_v2_normal.{fmt}", f"darts_v2_reduce.{fmt}"]
    for p in paths:
        _check_magic(p, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary files left


@pytest.mark.parametrize("fmt", ["pdf", "png", "svg"])
def test_plot_rnn_writes_the_recurrent_cell(tmp_path, fmt):
    paths = genotypes.plot(genotypes.get("DARTS_V2", kind="rnn"), str(tmp_path / "rnn"), format=fmt)
    assert [p.name for p in paths] == [f"rnn_recurrent.{fmt}"]
    _check_magic(paths[0], fmt)


def test_plot_can_be_called_again_and_again(tmp_path):
    # genotypes.plot stays the function after the drawing module is imported.
    for name in ("DARTS_V1", "NASNet"):
        genotypes.plot(genotypes.get(name), tmp_path / name, format="svg")
    assert callable(genotypes.plot)
    assert len(list(tmp_path.iterdir())) == 4


def test_plot_drops_an_extension_equal_to_the_format_and_creates_directories(tmp_path):
    paths = genotypes.plot(genotypes.get("DARTS_V2"), tmp_path / "a" / "b" / "cell.png", format="png")
    assert [p.name for p in paths] == ["cell_normal.png", "cell_reduce.png"]
    assert all(p.parent == tmp_path / "a" / "b" for p in paths)


@pytest.mark.parametrize("name", ["DARTS_V2", "AmoebaNet"])
def test_plot_cnn_edges_follow_the_genotype_and_only_concat_nodes_feed_the_output(tmp_path, name):
    g = genotypes.get(name)
    normal, reduce = genotypes.plot(g, tmp_path / name, format="svg")
    for path, edges, concat in ((normal, g.normal, g.normal_concat), (reduce, g.reduce, g.reduce_concat)):
        names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(len(edges) // 2)]
        expected = [(names[j], str(k // 2)) for k, (_, j) in enumerate(edges)] + [(names[j], "c_{k}") for j in concat]
        assert _svg_edges(path) == sorted(expected)
        text = html.unescape(path.read_text())
        for op, _ in edges:
            assert f">{op}<" in text


def test_plot_rnn_edges_follow_the_genotype(tmp_path):
    g = genotypes.get("ENAS", kind="rnn")
    (path,) = genotypes.plot(g, tmp_path / "enas", format="svg")
    expected = [("x_{t}", "0"), ("h_{t-1}", "0")] + [(str(j), str(i + 1)) for i, (_, j) in enumerate(g.recurrent)]
    expected += [(str(j), "h_{t}") for j in g.concat]
    assert _svg_edges(path) == sorted(expected)


def test_plot_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format must be one of pdf, png, svg"):
        genotypes.plot(genotypes.get("DARTS_V2"), tmp_path / "x", format="jpg")


def test_plot_rejects_what_is_not_a_genotype(tmp_path):
    with pytest.raises(TypeError):
        genotypes.plot("DARTS_V2", tmp_path / "x", format="svg")


def test_plot_without_dot_explains_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install graphviz"):
        genotypes.plot(genotypes.get("DARTS_V2"), tmp_path / "x", format="svg")
