"""The search spaces: the candidate ops of the conv and recurrent cells, in the original's order.

Kept apart from the named genotypes (:mod:`genotypes.cnn`, :mod:`genotypes.rnn`), which are built
with :mod:`genotypes.types`, so that the checks in types can know the ops without importing back.
"""

# The 8 candidate ops of the search, in the original's order (their index is the column of
# the architecture logits).
CNN_PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

# Every op an evaluated cell may use: the search ops plus the two that NASNet and AmoebaNet need.
CNN_OPS = CNN_PRIMITIVES + ("sep_conv_7x7", "conv_7x1_1x7")

# The recurrent cell's activations; "none" only in the search (a derived cell never uses it).
RNN_PRIMITIVES = ("none", "tanh", "relu", "sigmoid", "identity")
RNN_STEPS = 8
RNN_CONCAT = 8
