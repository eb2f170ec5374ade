"""Recurrent-cell search space and the named recurrent genotypes.

Values are exactly those of the original (quark0/darts, rnn/genotypes.py, commit f276dd3).
"""
from . import spaces
from .types import make_rnn

PRIMITIVES = spaces.RNN_PRIMITIVES
STEPS = spaces.RNN_STEPS
CONCAT = spaces.RNN_CONCAT

# Pham et al., "Efficient Neural Architecture Search via Parameter Sharing", ICML 2018.
ENAS = make_rnn(
    recurrent=[
        ("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3),
        ("relu", 4), ("relu", 7), ("relu", 8), ("relu", 8), ("relu", 8),
    ],
    concat=[2, 5, 6, 9, 10, 11],
)

# DARTS first order (Liu et al., arXiv:1806.09055).
DARTS_V1 = make_rnn(
    recurrent=[
        ("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3),
        ("relu", 4), ("identity", 1), ("relu", 5), ("relu", 1),
    ],
    concat=range(1, 9),
)

# DARTS second order (Liu et al., arXiv:1806.09055): the cell of the paper's PTB table.
DARTS_V2 = make_rnn(
    recurrent=[
        ("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1),
        ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5),
    ],
    concat=range(1, 9),
)

DARTS = DARTS_V2

NAMED = {"ENAS": ENAS, "DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS}
