"""Train / validation / test splits: whole groups (patients, records) to one side each, drawn
reproducibly; the one way every source of the package splits its ECGs."""

from __future__ import annotations

from typing import Sequence

import numpy as np

SPLITS = ("train", "val", "test")
# Bumped when the way splits are drawn changes: cached stores carry it in their key, so a store
# split the old way is prepared again.
SPLIT_SCHEME = 1


def split_groups(groups: Sequence, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 seed=0) -> np.ndarray:
    """The split of each item, ``"train"``, ``"val"`` or ``"test"``, whole groups together.

    Args:
        groups: one group label per item (a patient or record id; the item's own index where
            the data has no groups).
        fractions: of the *groups* going to train, val and test (non-negative, summing to 1);
            the cuts fall at ``round(cumulative fraction * groups)``.
        seed: anything ``numpy.random.default_rng`` takes; the distinct groups, sorted, are
            permuted with it.

    Returns an object array of split names, one per item."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1 (train, "
                         f"val, test), got {fractions}")
    groups = np.asarray(groups)
    names, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(names))
    cut1 = int(round(fractions[0] * len(names)))
    cut2 = int(round((fractions[0] + fractions[1]) * len(names)))
    of_group = np.empty(len(names), dtype=object)
    of_group[order[:cut1]], of_group[order[cut1:cut2]], of_group[order[cut2:]] = SPLITS
    return of_group[inverse.reshape(-1)]
