"""derive.cnn(..., max_skip=M): P-DARTS's cap on the skip connections of the normal cell.

``data/pdarts_skip_cap_cases.json`` holds what P-DARTS's own code (chenxin061/pdarts, train_search.py:
the end of its last stage, where each edge keeps three operations) derives from six random last-stage
cases, for caps M = 4..0 (key "None": no cap). It was made by running their functions
(``get_min_k_no_zero``, ``check_sk_number``, ``delete_min_sk_prob``, ``keep_1_on``, ``keep_2_branches``,
``parse_network``) on logits drawn with numpy's default_rng(0) (normal, rounded to 2 decimals, skip
connections given +1 so that 4 to 8 of them are chosen; cases with fewer than 3 skipped). Our
``alphas_normal`` holds the three logits of each edge and -inf for the operations their last stage had
already dropped, so our softmax equals theirs. They list a node's two inputs in input order, DARTS by
strength, so the cells are compared node by node as sets.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import genotypes
from genotypes import derive

CASES = json.loads((Path(__file__).parent / "data" / "pdarts_skip_cap_cases.json").read_text())
PRIMS = list(genotypes.cnn.PRIMITIVES)


def _logits(case):
    return np.array([[-math.inf if v is None else v for v in row] for row in case["alphas_normal"]], np.float32)


def _nodes(gene):
    return [sorted(map(tuple, gene[2 * i:2 * i + 2])) for i in range(len(gene) // 2)]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_the_cap_derives_the_cells_p_darts_derives(i):
    case, alphas = CASES[i], _logits(CASES[i])
    assert _nodes(derive.cnn(alphas, alphas).normal) == _nodes(case["normal"]["None"])
    for cap in ("4", "3", "2", "1", "0"):
        g = derive.cnn(alphas, alphas, max_skip=int(cap))
        assert _nodes(g.normal) == _nodes(case["normal"][cap]), f"max_skip={cap}"
        assert derive.normal_skips(g) <= int(cap)
        assert g.reduce == derive.cnn(alphas, alphas).reduce  # the reduction cell is never touched


def test_the_cases_make_the_cap_move_edges_not_only_operations():
    # a weakened edge losing its place to another edge of its node is the part of the rule easiest to miss
    moved = 0
    for case in CASES:
        inputs = [sorted(j for _, j in gene) for gene in map(_nodes, case["normal"].values())]
        moved += len({json.dumps(x) for x in inputs}) > 1
    assert moved >= 3


def test_a_written_out_cap_replaces_the_weakest_skip_and_lets_a_weakened_edge_go():
    # node 0 (rows 0, 1): skip on both edges, row 1's the weaker; node 1 (rows 2-4): skip on row 2 only,
    # with row 4 the third-strongest edge. Other nodes: sep_conv_3x3 on their first two inputs.
    W = np.full((14, 8), -4.0, np.float32)
    skip, sep3, max3 = PRIMS.index("skip_connect"), PRIMS.index("sep_conv_3x3"), PRIMS.index("max_pool_3x3")
    W[0, skip], W[0, sep3] = 3.0, 1.0
    W[1, skip], W[1, max3] = 2.0, 0.5
    W[2, skip], W[2, max3] = 2.5, -3.0  # without its skip, row 2 is weak: row 4 takes its place
    W[3, sep3] = 2.0
    W[4, sep3] = 1.5
    for r in (5, 6, 9, 10):
        W[r, sep3] = 2.0
    assert derive.normal_skips(derive.cnn(W, W)) == 3
    one = derive.cnn(W, W, max_skip=2).normal  # row 1 has the smallest skip probability
    assert _nodes(one)[:2] == [[("max_pool_3x3", 1), ("skip_connect", 0)], [("sep_conv_3x3", 1), ("skip_connect", 0)]]
    none = derive.cnn(W, W, max_skip=0).normal
    assert _nodes(none)[:2] == [[("max_pool_3x3", 1), ("sep_conv_3x3", 0)], [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)]]
    assert derive.cnn(W, W, max_skip=3) == derive.cnn(W, W)  # a cap already met changes nothing


def test_a_negative_cap_is_refused():
    W = np.zeros((14, 8), np.float32)
    with pytest.raises(ValueError, match="max_skip"):
        derive.cnn(W, W, max_skip=-1)
