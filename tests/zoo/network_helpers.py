"""What the tests of the zoo's networks share (test_networks*.py): the genotypes of the original and a small network."""
from __future__ import annotations

from pathlib import Path

import torch

import zoo

CNN_NAMES = ["DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"]  # every CNN genotype of the original
RNN_NAMES = ["ENAS", "DARTS_V1", "DARTS_V2"]
ZOO_DIR = Path(zoo.__file__).resolve().parent
TOL = 1e-5  # the reference README's equivalence tolerance


def _small(cls, name, num_classes=10, auxiliary=True, C=8, layers=5):
    torch.manual_seed(0)
    return cls(C, num_classes, layers, auxiliary, name)
