"""Genotype types, search spaces and named genotypes equal the original (quark0/darts f276dd3)."""
from __future__ import annotations

import collections

import pytest

import genotypes
from genotypes import Genotype, RNNGenotype

# Values written out from the original's cnn/genotypes.py and rnn/genotypes.py at commit f276dd3.
ORIGINAL_CNN = {
    "NASNet": dict(
        normal=[("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 1)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        reduce_concat=[4, 5, 6],
    ),
    "AmoebaNet": dict(
        normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
                ("skip_connect", 0), ("avg_pool_3x3", 1)],
        normal_concat=[4, 5, 6],
        reduce=[("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
                ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        reduce_concat=[3, 4, 6],
    ),
    "DARTS_V1": dict(
        normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "DARTS_V2": dict(
        normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        reduce_concat=[2, 3, 4, 5],
    ),
}

# Later cells of the same search space, written out from their authors' code (see genotypes/cnn.py for sources).
LATER_CNN = {
    "PC_DARTS_cifar": dict(
        normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "PC_DARTS_image": dict(
        normal=[("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
                ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
                ("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 3)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "PDARTS": dict(
        normal=[("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
                ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "GDAS_V1": dict(
        normal=[("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_5x5", 4), ("sep_conv_3x3", 3)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
                ("dil_conv_5x5", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1)],
        reduce_concat=[2, 3, 4, 5],
    ),
}

ORIGINAL_RNN = {
    "ENAS": dict(
        recurrent=[("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3), ("relu", 4),
                   ("relu", 7), ("relu", 8), ("relu", 8), ("relu", 8)],
        concat=[2, 5, 6, 9, 10, 11],
    ),
    "DARTS_V1": dict(
        recurrent=[("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1), ("relu", 5),
                   ("relu", 1)],
        concat=range(1, 9),
    ),
    "DARTS_V2": dict(
        recurrent=[("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5),
                   ("tanh", 3), ("relu", 5)],
        concat=range(1, 9),
    ),
}


def _as_tuples(fields: dict) -> dict:
    return {k: tuple(tuple(e) if isinstance(e, tuple) else e for e in v) for k, v in fields.items()}


def test_genotype_types_have_the_original_field_names():
    assert Genotype._fields == ("normal", "normal_concat", "reduce", "reduce_concat")
    assert RNNGenotype._fields == ("recurrent", "concat")


def test_cnn_primitives_are_the_original_eight_in_order():
    assert list(genotypes.cnn.PRIMITIVES) == [
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    ]


def test_cnn_ops_add_only_the_two_ops_nasnet_and_amoebanet_need():
    assert list(genotypes.cnn.OPS) == list(genotypes.cnn.PRIMITIVES) + ["sep_conv_7x7", "conv_7x1_1x7"]


def test_rnn_primitives_steps_and_concat_are_the_originals():
    assert list(genotypes.rnn.PRIMITIVES) == ["none", "tanh", "relu", "sigmoid", "identity"]
    assert genotypes.rnn.STEPS == 8
    assert genotypes.rnn.CONCAT == 8


@pytest.mark.parametrize("name", sorted(ORIGINAL_CNN))
def test_named_cnn_genotype_equals_the_original(name):
    g = getattr(genotypes.cnn, name)
    assert isinstance(g, Genotype)
    assert g._asdict() == _as_tuples(ORIGINAL_CNN[name])
    assert genotypes.get(name) is g
    assert genotypes.cnn.NAMED[name] is g


@pytest.mark.parametrize("name", sorted(ORIGINAL_RNN))
def test_named_rnn_genotype_equals_the_original(name):
    g = getattr(genotypes.rnn, name)
    assert isinstance(g, RNNGenotype)
    assert g._asdict() == _as_tuples(ORIGINAL_RNN[name])
    assert genotypes.get(name, kind="rnn") is g
    assert genotypes.rnn.NAMED[name] is g


@pytest.mark.parametrize("name", sorted(LATER_CNN))
def test_later_named_cnn_genotype_equals_its_authors_code(name):
    g = genotypes.get(name)
    assert g._asdict() == _as_tuples(LATER_CNN[name])
    assert genotypes.get("PCDARTS") is genotypes.get("PC_DARTS_cifar")


def test_named_cnn_genotypes_are_exactly_the_original_and_the_cited_later_ones():
    assert set(genotypes.names("cnn")) == set(ORIGINAL_CNN) | set(LATER_CNN) | {"DARTS", "PCDARTS"}


def test_darts_alias_is_darts_v2_for_both_kinds():
    assert genotypes.cnn.DARTS is genotypes.cnn.DARTS_V2
    assert genotypes.rnn.DARTS is genotypes.rnn.DARTS_V2
    assert genotypes.get("DARTS") is genotypes.cnn.DARTS_V2
    assert genotypes.get("DARTS", kind="rnn") is genotypes.rnn.DARTS_V2


def test_every_cnn_genotype_of_the_original_is_named():
    assert set(ORIGINAL_CNN) | {"DARTS"} <= set(genotypes.names("cnn"))
    assert set(genotypes.names("rnn")) == set(ORIGINAL_RNN) | {"DARTS"}


def test_later_named_cnn_genotypes_use_only_ops_of_the_search_space():
    for name, g in genotypes.cnn.NAMED.items():
        genotypes.validate(g)
        if name not in ORIGINAL_CNN and name != "DARTS":
            ops = {op for op, _ in g.normal + g.reduce}
            assert ops <= set(genotypes.cnn.PRIMITIVES) - {"none"}, name


def test_concat_is_stored_as_a_tuple_of_ints_so_lists_and_ranges_compare_equal():
    orig = ORIGINAL_CNN["DARTS_V2"]
    a = genotypes.make_cnn(orig["normal"], range(2, 6), orig["reduce"], [2, 3, 4, 5])
    assert a == genotypes.cnn.DARTS_V2
    assert a.normal_concat == (2, 3, 4, 5) and isinstance(a.normal_concat, tuple)
    assert all(isinstance(e, tuple) for e in a.normal)


def test_genotypes_equal_to_the_original_namedtuple_values():
    # The original's own namedtuple with the same values compares equal field by field.
    Orig = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    o = Orig(**ORIGINAL_CNN["DARTS_V2"])
    g = genotypes.get("DARTS_V2")
    assert [tuple(f) for f in o] == [tuple(f) for f in g]


def test_get_is_case_insensitive():
    assert genotypes.get("darts_v2") is genotypes.cnn.DARTS_V2
    assert genotypes.get("nasnet") is genotypes.cnn.NASNet
    assert genotypes.get("enas", kind="rnn") is genotypes.rnn.ENAS


def test_get_unknown_name_lists_known_names_and_suggests_the_closest():
    with pytest.raises(ValueError) as info:
        genotypes.get("DARTS_V3")
    msg = str(info.value)
    assert "'DARTS_V3'" in msg
    assert "Did you mean 'DARTS_V2'?" in msg
    for name in genotypes.names("cnn"):
        assert name in msg
    assert isinstance(info.value, genotypes.UnknownGenotypeError)
    assert isinstance(info.value, KeyError)  # also a KeyError, for dict-like use


def test_get_unknown_name_suggests_despite_case():
    with pytest.raises(ValueError, match="Did you mean 'AmoebaNet'"):
        genotypes.get("amoeba")


def test_get_unknown_rnn_name_lists_rnn_names():
    with pytest.raises(ValueError) as info:
        genotypes.get("ENAS_V2", kind="rnn")
    msg = str(info.value)
    assert "Did you mean 'ENAS'?" in msg
    assert all(name in msg for name in genotypes.names("rnn"))


def test_get_name_of_the_other_kind_says_which_kind():
    with pytest.raises(ValueError, match="kind='rnn'"):
        genotypes.get("ENAS")
    with pytest.raises(ValueError, match="kind='cnn'"):
        genotypes.get("NASNet", kind="rnn")


def test_get_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="kind must be 'cnn' or 'rnn'"):
        genotypes.get("DARTS_V2", kind="transformer")


def test_nothing_in_genotypes_imports_torch_at_import_time():
    import subprocess
    import sys

    code = "import sys, genotypes; genotypes.get('DARTS_V2'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resolve_accepts_a_name_text_or_genotype_and_checks_the_kind():
    import genotypes

    g = genotypes.get("DARTS_V2")
    assert genotypes.resolve("DARTS_V2") is g
    assert genotypes.resolve(" darts_v2 ") is g
    assert genotypes.resolve(genotypes.format(g)) == g
    assert genotypes.resolve(g) is g
    assert genotypes.resolve("ENAS", "rnn") == genotypes.get("ENAS", "rnn")
    with pytest.raises(TypeError, match="conv Genotype"):
        genotypes.resolve(genotypes.get("ENAS", "rnn"), "cnn")
    with pytest.raises(ValueError):
        genotypes.resolve("NO_SUCH_CELL")
    with pytest.raises(ValueError, match="kind"):
        genotypes.resolve("DARTS_V2", "transformer")
