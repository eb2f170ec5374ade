"""parse() reads the text the original prints (without eval); format() writes it back."""
from __future__ import annotations

import collections

import pytest

import genotypes
from genotypes import Genotype, RNNGenotype

# The original's own namedtuples: their repr is exactly what its logs show.
OrigGenotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
OrigRNNGenotype = collections.namedtuple("Genotype", "recurrent concat")

ALL_NAMED = [("cnn", n) for n in genotypes.names("cnn")] + [("rnn", n) for n in genotypes.names("rnn")]


@pytest.mark.parametrize("kind,name", ALL_NAMED)
def test_format_then_parse_round_trips_every_named_genotype(kind, name):
    g = genotypes.get(name, kind)
    text = genotypes.format(g)
    assert genotypes.parse(text) == g
    assert genotypes.format(genotypes.parse(text)) == text


@pytest.mark.parametrize("kind,name", ALL_NAMED)
def test_parse_reads_the_original_repr_of_every_named_genotype(kind, name):
    g = genotypes.get(name, kind)
    if kind == "cnn":
        orig = OrigGenotype(list(g.normal), range(g.normal_concat[0], g.normal_concat[-1] + 1)
                            if list(g.normal_concat) == list(range(g.normal_concat[0], g.normal_concat[-1] + 1))
                            else list(g.normal_concat), list(g.reduce), list(g.reduce_concat))
    else:
        orig = OrigRNNGenotype(list(g.recurrent), list(g.concat))
    assert genotypes.parse(repr(orig)) == g


def test_parse_reads_a_search_log_line_with_ranges():
    text = (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=range(2, 6), "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=range(2, 6))"
    )
    g = genotypes.parse(text)
    assert isinstance(g, Genotype)
    assert g == genotypes.get("DARTS_V1")
    assert g.normal_concat == (2, 3, 4, 5)


def test_format_writes_contiguous_concat_as_range_like_the_original_log():
    text = genotypes.format(genotypes.get("DARTS_V2"))
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert "normal_concat=range(2, 6)" in text and "reduce_concat=range(2, 6)" in text
    # what the original's search log prints for this genotype
    orig = OrigGenotype(list(genotypes.cnn.DARTS_V2.normal), range(2, 6), list(genotypes.cnn.DARTS_V2.reduce),
                        range(2, 6))
    assert text == repr(orig)


def test_format_writes_non_contiguous_concat_as_a_list():
    assert "reduce_concat=[3, 4, 6]" in genotypes.format(genotypes.get("AmoebaNet"))
    assert "concat=[2, 5, 6, 9, 10, 11]" in genotypes.format(genotypes.get("ENAS", "rnn"))


def test_parse_reads_the_rnn_form_the_original_prints():
    text = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
            "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")
    g = genotypes.parse(text)
    assert isinstance(g, RNNGenotype)
    assert g == genotypes.get("DARTS_V2", kind="rnn")
    assert genotypes.format(g) == text


def test_parse_accepts_lists_tuples_whitespace_and_the_rnngenotype_name():
    text = """
        RNNGenotype(
            recurrent=[["relu", 0], ("tanh", 1)],
            concat=(1, 2),
        )
    """
    g = genotypes.parse(text)
    assert g == RNNGenotype((("relu", 0), ("tanh", 1)), (1, 2))


def test_parse_accepts_positional_fields_and_a_qualified_name():
    g = genotypes.get("DARTS_V2")
    text = f"genotypes.Genotype({list(g.normal)!r}, range(2, 6), {list(g.reduce)!r}, [2, 3, 4, 5])"
    assert genotypes.parse(text) == g


@pytest.mark.parametrize("code", [
    "Genotype(normal=__import__('os').system('x'), normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))",
    "Genotype(normal=[('sep_conv_3x3', 0)] * 8, normal_concat=range(2, 6), reduce=[], reduce_concat=[2])",
    "Genotype(normal=open('/etc/passwd').read(), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[(x, 0) for x in 'ab'], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', os.getpid())], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=lambda: 0, normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(**{'normal': []})",
    "__import__('os').system('echo pwned')",
    "exec('import os')",
])
def test_parse_rejects_code_with_value_error_and_never_runs_it(code, monkeypatch):
    import builtins

    def trap(*args, **kwargs):
        raise AssertionError("parse ran code")

    monkeypatch.setattr(builtins, "eval", trap)
    monkeypatch.setattr(builtins, "exec", trap)
    with pytest.raises(ValueError):
        genotypes.parse(code)


@pytest.mark.parametrize("text,match", [
    ("", "not well formed"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "not well formed"),
    ("hello world", "not well formed"),
    ("[('sep_conv_3x3', 0)]", "expected text of the form"),
    ("Foo(normal=[])", "expected Genotype"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2])", "lacks field"),
    ("Genotype(recurrent=[('relu', 0)])", "lacks field"),
    ("Genotype(recurrent=[('relu', 0)], concat=[1], colour='red')", "unknown field 'colour'"),
    ("Genotype([('relu', 0)], [1], recurrent=[('relu', 0)])", "given twice"),
    ("Genotype(1, 2, 3, 4, 5)", "too many positional"),
    ("Genotype(recurrent=[('relu', 0)], concat=range(1, 10**9))", "only hold"),
    ("Genotype(recurrent=[('relu', 0)], concat=range(0, 100000000000))", "values"),
    ("Genotype(recurrent=[('relu', 0)], concat=range('a', 3))", "malformed range"),
    ("Genotype(recurrent=[('relu', 0)], concat=range(1, 2, 0))", "malformed range"),
    ("Genotype(recurrent=[('relu', 0)], concat=range())", "malformed range"),
    ("Genotype(recurrent=[('relu', -'x')], concat=[1])", "only hold"),
    ("Genotype(recurrent=[('relu', 0.5)], concat=[1])", "only hold"),
    ("Genotype(recurrent=[('relu', True)], concat=[1])", "only hold"),
    ("Genotype(recurrent=[('relu', 0, 1)], concat=[1])", "expected an \\(op, input_index\\) pair"),
    ("Genotype(recurrent=[('relu', 0)], concat=5)", "expected a list or range"),
    ("Genotype(recurrent=[('relu', 0)], concat=['1'])", "expected integers"),
    ("Genotype(recurrent=[(1, 0)], concat=[1])", "expected an op name"),
    ("Genotype(recurrent=" + "[" * 150 + "]" * 150 + ", concat=[1])", "recurrent"),
    ("Genotype(recurrent=" + "[" * 5000 + "]" * 5000 + ", concat=[1])", "not well formed|nested too deeply"),
])
def test_parse_rejects_malformed_text_with_a_value_error_saying_why(text, match):
    with pytest.raises(ValueError, match=match):
        genotypes.parse(text)


def test_parse_rejects_non_text_with_a_type_error():
    with pytest.raises(TypeError):
        genotypes.parse(genotypes.get("DARTS_V2"))


def test_parse_validates_the_genotype_it_reads():
    text = genotypes.format(genotypes.get("DARTS_V2")).replace("dil_conv_3x3", "dil_conv_9x9")
    with pytest.raises(ValueError, match="unknown op 'dil_conv_9x9'"):
        genotypes.parse(text)


def test_format_rejects_what_is_not_a_genotype():
    with pytest.raises(TypeError):
        genotypes.format("DARTS_V2")
