"""validate() and the constructors reject impossible genotypes with a ValueError naming the problem."""
from __future__ import annotations

import pytest

import genotypes
from genotypes import Genotype, RNNGenotype, make_cnn, make_rnn

V2 = genotypes.cnn.DARTS_V2
R2 = genotypes.rnn.DARTS_V2


def _cnn(**changes) -> Genotype:
    return V2._replace(**changes)


@pytest.mark.parametrize("kind,name", [("cnn", n) for n in genotypes.names("cnn")]
                         + [("rnn", n) for n in genotypes.names("rnn")])
def test_every_named_genotype_is_valid(kind, name):
    genotypes.validate(genotypes.get(name, kind))


@pytest.mark.parametrize("genotype,match", [
    (_cnn(normal=(("sep_conv_9x9", 0),) + V2.normal[1:]), "normal: unknown op 'sep_conv_9x9' on edge 0"),
    (_cnn(reduce=V2.reduce[:3] + (("conv_3x3", 1),) + V2.reduce[4:]), "reduce: unknown op 'conv_3x3' on edge 3"),
    (_cnn(normal=V2.normal[:2] + (("sep_conv_3x3", 3),) + V2.normal[3:]), r"normal: edge 2 \(node 3\) takes input 3"),
    (_cnn(normal=(("sep_conv_3x3", 2),) + V2.normal[1:]), r"edge 0 \(node 2\) takes input 2.*0\.\.1"),
    (_cnn(reduce=(("max_pool_3x3", -1),) + V2.reduce[1:]), "reduce: edge 0 .* takes input -1"),
    (_cnn(normal=V2.normal[:-1]), "normal has 7 edges; a conv cell needs two per node"),
    (_cnn(reduce=()), "reduce has 0 edges"),
    (_cnn(normal_concat=(2, 3, 4, 6)), r"normal_concat \[2, 3, 4, 6\] names node\(s\) \[6\].*0\.\.5"),
    (_cnn(reduce_concat=()), "reduce_concat is empty"),
    (_cnn(normal_concat=(2, 2, 3)), "normal_concat .* repeats a node"),
    (_cnn(normal_concat=(-1, 2)), r"names node\(s\) \[-1\]"),
    (_cnn(normal_concat=("2", "3")), "normal_concat .* expected integers"),
    (_cnn(normal=(("sep_conv_3x3",),) + V2.normal[1:]), r"normal: edge 0 .* expected an \(op, input_index\) pair"),
    (_cnn(normal=(("sep_conv_3x3", 1.0),) + V2.normal[1:]), "normal: edge 0 has input index 1.0"),
    (_cnn(normal=((3, 1),) + V2.normal[1:]), "normal: edge 0 has op 3"),
])
def test_validate_names_the_problem_of_a_bad_cnn_genotype(genotype, match):
    with pytest.raises(ValueError, match=match):
        genotypes.validate(genotype)
    with pytest.raises(ValueError, match=match):
        make_cnn(*genotype)
    # The same genotype written as text is rejected by parse(), with the same message or, for a value of the
    # wrong type, the parser's own.
    if all(len(e) == 2 for e in genotype.normal):
        with pytest.raises(ValueError, match=f"{match}|may only hold"):
            genotypes.parse(genotypes.format(genotype))


@pytest.mark.parametrize("genotype,match", [
    (R2._replace(recurrent=(("softmax", 0),) + R2.recurrent[1:]), "recurrent: unknown activation 'softmax' on step 0"),
    (R2._replace(recurrent=(("none", 0),) + R2.recurrent[1:]), "unknown activation 'none'"),
    (R2._replace(recurrent=R2.recurrent[:2] + (("relu", 3),) + R2.recurrent[3:]),
     r"step 2 \(state 3\) reads state 3.*0\.\.2"),
    (R2._replace(recurrent=(("relu", -1),) + R2.recurrent[1:]), "step 0 .* reads state -1"),
    (R2._replace(recurrent=()), "recurrent has no steps"),
    (R2._replace(concat=tuple(range(1, 10))), r"concat .* names node\(s\) \[9\].*0\.\.8"),
    (R2._replace(concat=()), "concat is empty"),
    (R2._replace(concat=(1, 1)), "repeats a node"),
])
def test_validate_names_the_problem_of_a_bad_rnn_genotype(genotype, match):
    with pytest.raises(ValueError, match=match):
        genotypes.validate(genotype)
    with pytest.raises(ValueError, match=match):
        make_rnn(*genotype)
    with pytest.raises(ValueError, match=match):
        genotypes.parse(genotypes.format(genotype))


def test_validate_accepts_directly_built_genotypes_with_lists_and_ranges_like_the_originals():
    genotypes.validate(Genotype(list(V2.normal), range(2, 6), list(V2.reduce), [2, 3, 4, 5]))
    genotypes.validate(RNNGenotype(list(R2.recurrent), range(1, 9)))


def test_constructors_accept_numpy_and_torch_integers_and_store_plain_ints():
    import numpy as np
    import torch

    g = make_cnn([(op, np.int64(j)) for op, j in V2.normal], np.arange(2, 6),
                 [(op, torch.tensor(j)) for op, j in V2.reduce], [2, 3, 4, 5])
    assert g == V2
    assert all(type(j) is int for _, j in g.normal + g.reduce) and all(type(c) is int for c in g.normal_concat)
    with pytest.raises(ValueError, match="expected an integer"):
        make_cnn([(op, torch.tensor(1.0)) for op, _ in V2.normal], [2], V2.reduce, [2])


def test_validate_accepts_cells_of_other_sizes():
    # Three nodes with concat of all of them; a one-step recurrent cell.
    make_cnn([("skip_connect", 0), ("sep_conv_3x3", 1)] * 3, [2, 3, 4], [("max_pool_3x3", 0)] * 6, [4])
    make_rnn([("tanh", 0)], [1])


def test_validate_rejects_what_is_not_a_genotype_with_a_type_error():
    with pytest.raises(TypeError, match="not a genotype"):
        genotypes.validate(("normal", "reduce"))


# --- size bounds: a small input never makes us read or build an enormous cell -------------------------------

class _HugeSequence:
    """Claims 10**12 items; reading more than a few hundred of them fails the test (nothing may expand it)."""

    def __len__(self):
        return 10 ** 12

    def __iter__(self):
        for i in range(1000):
            yield ("skip_connect", 0) if i % 2 else 2
        raise AssertionError("the whole sequence was read before its size was checked")


def _big_cnn_edges(nodes: int):
    return [("skip_connect", 0), ("sep_conv_3x3", 1)] * nodes


def test_a_genotype_with_20000_nodes_is_refused_naming_the_limit():
    edges = _big_cnn_edges(20_000)
    big = Genotype(tuple(edges), (2, 3), V2.reduce, V2.reduce_concat)
    for attempt in (lambda: genotypes.validate(big), lambda: make_cnn(edges, [2, 3], V2.reduce, [2])):
        with pytest.raises(ValueError, match=r"normal has 40000 edges; .*at most 64 intermediate nodes"):
            attempt()
    with pytest.raises(ValueError, match="at most 64"):
        genotypes.parse(genotypes.format(big))
    steps = tuple(("tanh", 0) for _ in range(20_000))
    with pytest.raises(ValueError, match="recurrent has 20000 edges"):
        genotypes.validate(RNNGenotype(steps, (1,)))
    with pytest.raises(ValueError, match="recurrent has 20000 edges"):
        make_rnn(steps, [1])


def test_the_largest_allowed_cell_is_valid():
    limit = genotypes.types.MAX_NODES
    make_cnn(_big_cnn_edges(limit), range(2, limit + 2), _big_cnn_edges(limit), [2])
    make_rnn([("tanh", 0)] * limit, range(1, limit + 1))
    with pytest.raises(ValueError, match="at most 64"):
        make_rnn([("tanh", 0)] * (limit + 1), [1])


@pytest.mark.parametrize("field", ["normal", "normal_concat", "reduce_concat"])
def test_lists_and_concat_ranges_are_measured_before_they_are_read(field):
    huge = {"normal_concat": range(1, 3 * 10 ** 8), "reduce_concat": _HugeSequence(), "normal": _HugeSequence()}
    fields = dict(V2._asdict(), **{field: huge[field]})
    with pytest.raises(ValueError, match=f"{field} has .*at most"):
        make_cnn(**fields)
    with pytest.raises(ValueError, match=f"{field} has .*at most"):
        genotypes.validate(Genotype(**fields))
    with pytest.raises(ValueError, match="concat has .*at most"):
        make_rnn(R2.recurrent, range(0, 10 ** 40))  # longer than sys.maxsize: len() itself would overflow


def test_an_endless_iterator_as_concat_is_refused():
    import itertools

    with pytest.raises(ValueError, match="concat has 67 nodes"):
        make_rnn(R2.recurrent, itertools.count(1))
