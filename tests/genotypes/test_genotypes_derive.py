"""derive.cnn / derive.rnn reproduce the original's genotype() on the reference cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import genotypes
from genotypes import Genotype, RNNGenotype, derive


def _edges(pairs):
    return tuple((op, int(j)) for op, j in pairs)


def test_reference_cases_use_the_same_primitive_order(load_json):
    assert load_json("genotype_parse_cases.json")["primitives"] == list(genotypes.cnn.PRIMITIVES)
    assert load_json("rnn_genotype_parse_cases.json")["primitives"] == list(genotypes.rnn.PRIMITIVES)


def test_derive_cnn_matches_every_reference_case(load_json):
    cases = load_json("genotype_parse_cases.json")["cases"]
    assert len(cases) >= 1
    for i, case in enumerate(cases):
        g = derive.cnn(case["alphas_normal"], case["alphas_reduce"])
        assert isinstance(g, Genotype)
        assert g.normal == _edges(case["normal"]), f"case {i}"
        assert g.reduce == _edges(case["reduce"]), f"case {i}"
        assert g.normal_concat == tuple(case["normal_concat"]), f"case {i}"
        assert g.reduce_concat == tuple(case["reduce_concat"]), f"case {i}"


def test_derive_rnn_matches_every_reference_case(load_json):
    cases = load_json("rnn_genotype_parse_cases.json")["cases"]
    assert len(cases) >= 1
    for i, case in enumerate(cases):
        g = derive.rnn(case["weights"])
        assert isinstance(g, RNNGenotype)
        assert g.recurrent == _edges(case["recurrent"]), f"case {i}"
        assert g.concat == tuple(case["concat"]), f"case {i}"


def test_derive_takes_tensors_arrays_and_lists_alike(load_json):
    case = load_json("genotype_parse_cases.json")["cases"][0]
    expected = derive.cnn(case["alphas_normal"], case["alphas_reduce"])
    as_tensor = derive.cnn(torch.tensor(case["alphas_normal"], requires_grad=True), torch.tensor(case["alphas_reduce"]))
    as_array = derive.cnn(np.array(case["alphas_normal"]), np.array(case["alphas_reduce"], dtype=np.float64))
    assert as_tensor == expected == as_array


def test_derive_cnn_never_chooses_none_even_when_it_dominates():
    n = derive.num_cnn_edges(4)
    alphas = torch.zeros(n, 8)
    alphas[:, 0] = 100.0  # 'none' strongest everywhere
    alphas[:, 4] = 1.0  # then sep_conv_3x3
    g = derive.cnn(alphas, alphas)
    assert all(op == "sep_conv_3x3" for op, _ in g.normal + g.reduce)


def test_derive_cnn_ranks_edges_by_their_strongest_non_none_op():
    n = derive.num_cnn_edges(4)
    alphas = torch.zeros(n, 8)
    # Node 0 (rows 0, 1): input 1 has the strongest non-none op; input 0 has a huge 'none' only.
    alphas[0, 0] = 50.0
    alphas[1, 7] = 5.0
    # Node 1 (rows 2, 3, 4): inputs 2 and 0 are the strongest, in that order.
    alphas[4, 6] = 6.0
    alphas[2, 1] = 4.0
    alphas[3, 2] = 1.0
    g = derive.cnn(alphas, alphas)
    assert g.normal[0] == ("dil_conv_5x5", 1)
    assert g.normal[2:4] == (("dil_conv_3x3", 2), ("max_pool_3x3", 0))
    assert len(g.normal) == 8 and g.normal_concat == (2, 3, 4, 5)


def test_derive_cnn_ties_keep_the_first_op_and_the_lower_input():
    g = derive.cnn(torch.zeros(14, 8), torch.zeros(14, 8))
    # All equal: the original's loop keeps the first non-none op and sorted() keeps input order.
    assert g.normal == tuple(("max_pool_3x3", j) for i in range(4) for j in (0, 1))


def test_derive_cnn_with_other_steps_and_multiplier():
    steps = 3
    g = derive.cnn(torch.randn(derive.num_cnn_edges(steps), 8), torch.randn(derive.num_cnn_edges(steps), 8),
                   steps=steps, multiplier=2)
    assert len(g.normal) == 2 * steps
    assert g.normal_concat == (3, 4) and g.reduce_concat == (3, 4)


def test_derive_rnn_never_chooses_none_and_concats_the_last_states():
    w = torch.zeros(derive.num_rnn_edges(8), 5)
    w[:, 0] = 100.0
    w[:, 3] = 1.0
    g = derive.rnn(w)
    assert all(op == "sigmoid" for op, _ in g.recurrent)
    assert g.concat == tuple(range(1, 9))
    assert derive.rnn(w, concat=3).concat == (6, 7, 8)


def test_derive_rejects_logits_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"alphas_normal has shape \(13, 8\), expected \(14, 8\)"):
        derive.cnn(torch.zeros(13, 8), torch.zeros(14, 8))
    with pytest.raises(ValueError, match=r"alphas_reduce has shape \(14, 7\)"):
        derive.cnn(torch.zeros(14, 8), torch.zeros(14, 7))
    with pytest.raises(ValueError, match=r"weights has shape \(36, 4\), expected \(36, 5\)"):
        derive.rnn(torch.zeros(36, 4))


def test_derived_genotypes_round_trip_through_text(load_json):
    case = load_json("genotype_parse_cases.json")["cases"][0]
    g = derive.cnn(case["alphas_normal"], case["alphas_reduce"])
    assert genotypes.parse(genotypes.format(g)) == g
    r = derive.rnn(load_json("rnn_genotype_parse_cases.json")["cases"][0]["weights"])
    assert genotypes.parse(genotypes.format(r)) == r
