"""Stratified splits and per-class subsets: proportions per class, seeded, disjoint, pinned by a digest."""
from __future__ import annotations

import torch

from reproduce.data.images import channel_stats, parse_normalize, resize_square
from reproduce.data.split import digest, per_class_subset, stratified_split


def test_a_class_ordered_set_is_split_in_the_same_proportion_in_every_class():
    labels = torch.tensor([0] * 10 + [1] * 6 + [2] * 4)  # class order, as write_cifar10 in class order
    first, second = stratified_split(labels, 0.5, seed=0)
    assert sorted(torch.cat([first, second]).tolist()) == list(range(20))
    assert torch.bincount(labels[first]).tolist() == [5, 3, 2]
    assert torch.bincount(labels[second]).tolist() == [5, 3, 2]


def test_every_class_with_two_examples_lands_in_both_parts_and_singletons_in_the_first():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    first, second = stratified_split(labels, 0.9, seed=3)
    assert set(labels[second].tolist()) == {0, 2} and 1 in labels[first].tolist()


def test_the_split_is_seeded_and_its_digest_pins_it():
    labels = torch.arange(30) % 3
    a, b = stratified_split(labels, 0.5, seed=1), stratified_split(labels, 0.5, seed=1)
    c = stratified_split(labels, 0.5, seed=2)
    assert digest(*a, labels) == digest(*b, labels) != digest(*c, labels)
    assert digest(*a, labels) != digest(*a, (labels + 1) % 3)  # other labels, other digest


def test_per_class_subset_takes_a_share_of_each_class():
    labels = torch.tensor([0] * 40 + [1] * 8)
    idx = per_class_subset(labels, 0.1, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [4, 1]


def test_channel_stats_and_explicit_normalisation():
    x = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    x[0] = 255
    mean, std = channel_stats(x)
    assert mean == (0.5,) and std == (0.5,)
    assert parse_normalize("0.5/0.25", 3) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_resize_square_crops_the_centre_of_a_wide_image():
    x = torch.zeros(1, 1, 4, 8, dtype=torch.uint8)
    x[..., 2:6] = 200
    assert resize_square(x, 4).tolist() == [[[[200] * 4] * 4]]
