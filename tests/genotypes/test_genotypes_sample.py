"""The random sampler of the DARTS spaces: valid cells, every op and input reachable, seeded."""
from __future__ import annotations

import random

import pytest

import genotypes
from genotypes import sample


def test_conv_cells_are_valid_with_two_different_inputs_per_node_and_no_none():
    for seed in range(200):
        g = sample.cnn(seed)
        genotypes.validate(g)
        assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
        for cell in (g.normal, g.reduce):
            assert len(cell) == 8
            for node in range(4):
                (op_a, a), (op_b, b) = cell[2 * node], cell[2 * node + 1]
                assert a != b and 0 <= a < node + 2 and 0 <= b < node + 2
                assert "none" not in (op_a, op_b)
        # what the searched cells look like: derive returns cells of the same space, and text round-trips
        assert genotypes.parse(genotypes.format(g)) == g


def test_every_conv_op_and_every_input_of_every_node_is_drawn():
    ops = {("normal", k): set() for k in range(8)} | {("reduce", k): set() for k in range(8)}
    inputs = {("normal", n): set() for n in range(4)} | {("reduce", n): set() for n in range(4)}
    for g in sample.draw("cnn", 400, seed=1):
        for name, cell in (("normal", g.normal), ("reduce", g.reduce)):
            for k, (op, j) in enumerate(cell):
                ops[name, k].add(op)
                inputs[name, k // 2].add(j)
    wanted = set(genotypes.cnn.PRIMITIVES) - {"none"}
    assert all(seen == wanted for seen in ops.values())
    assert all(seen == set(range(n + 2)) for (_, n), seen in inputs.items())


def test_recurrent_cells_are_valid_and_every_activation_and_predecessor_is_drawn():
    ops, preds = [set() for _ in range(8)], [set() for _ in range(8)]
    for g in sample.draw("rnn", 400, seed=2):
        genotypes.validate(g)
        assert g.concat == tuple(range(1, 9))
        for i, (op, pred) in enumerate(g.recurrent):
            ops[i].add(op)
            preds[i].add(pred)
    wanted = set(genotypes.rnn.PRIMITIVES) - {"none"}
    assert all(seen == wanted for seen in ops)
    assert all(seen == set(range(i + 1)) for i, seen in enumerate(preds))


def test_a_seed_gives_the_same_cells_and_another_seed_other_cells():
    for kind in ("cnn", "rnn"):
        assert sample.draw(kind, 5, seed=7) == sample.draw(kind, 5, seed=7)
        assert sample.draw(kind, 5, seed=7) != sample.draw(kind, 5, seed=8)
        assert len(set(sample.draw(kind, 5, seed=7))) == 5
        # a longer draw under the same seed begins with the shorter one (cells can be added later)
        assert sample.draw(kind, 8, seed=7)[:5] == sample.draw(kind, 5, seed=7)
    assert sample.cnn(3) == sample.cnn(random.Random(3))


def test_a_recorded_seed_gives_the_same_cell_on_every_platform():
    # random.Random's integer seeding and choice/sample/randrange are stable across Python versions;
    # this pins the first draw so a change of the sampler (which would orphan recorded seeds) is seen.
    first = sample.draw("cnn", 1, seed=0)[0]
    assert first == sample.cnn(0)
    assert genotypes.format(first) == (
        "Genotype(normal=[('max_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), "
        "('skip_connect', 1), ('sep_conv_5x5', 2), ('skip_connect', 1), ('avg_pool_3x3', 4)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), "
        "('max_pool_3x3', 2), ('skip_connect', 0), ('sep_conv_3x3', 2), ('skip_connect', 0), ('sep_conv_3x3', 4)], "
        "reduce_concat=range(2, 6))")


def test_sizes_and_bad_arguments():
    g = sample.cnn(0, steps=2, multiplier=1)
    assert len(g.normal) == 4 and g.normal_concat == (3,)
    assert sample.rnn(0, steps=3, concat=2).concat == (2, 3)
    with pytest.raises(ValueError, match="kind"):
        sample.draw("lstm", 1, seed=0)
    with pytest.raises(ValueError, match=">= 1"):
        sample.draw("cnn", 0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        sample.cnn("0")
    with pytest.raises(ValueError, match="only 'none'"):
        sample.cnn(0, primitives=("none",))
