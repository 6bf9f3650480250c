"""The order of an epoch: which training ECGs it visits, in what order, as a function of (seed,
epoch) alone, so that every process of a run and a resumed run draw the same.

Without weights it is a permutation of the training rows (each ECG once).  With several sources
and weights (``--data synthetic@0.5``), each source fills its share of the epoch: a source with
fewer ECGs than its share is repeated (each of its ECGs a whole number of times, or one more),
one with more contributes a fresh random subset each epoch; the epoch keeps the length of one
pass over all the training rows, and the sources are mixed within every batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def shares(weights: Sequence[float | None], sizes: Sequence[int]) -> np.ndarray:
    """Each source's share of an epoch: the `weights` given (None where a source has none),
    the rest of the epoch split among the others in proportion to their `sizes` (training
    ECGs).  With every weight given, they are normalised to sum to one; with some, those given
    must sum to less than one.  Raises ValueError otherwise."""
    sizes = np.asarray(sizes, dtype=np.float64)
    given = np.array([np.nan if w is None else float(w) for w in weights])
    known = ~np.isnan(given)
    if known.all():
        return given / given.sum()
    taken = given[known].sum()
    if taken >= 1:
        raise ValueError(f"the --data weights given sum to {taken:g}: with sources left "
                         f"without one, they are shares of each epoch and must sum to less "
                         f"than 1 (the others share the rest by size)")
    out = np.where(known, given, 0.0)
    out[~known] = (1 - taken) * sizes[~known] / sizes[~known].sum()
    return out


def epoch_order(rows: np.ndarray, part: np.ndarray, share: np.ndarray | None, seed: int,
                epoch: int) -> np.ndarray:
    """The store positions an epoch visits, in order.

    Args:
        rows: the training rows ``(N,)``.
        part: the source of each row ``(N,)``, an index into `share`.
        share: each source's share of the epoch (:func:`shares`), or None: each row once.
        seed, epoch: what the order is a function of.
    """
    rng = np.random.default_rng([seed, epoch])
    if share is None:
        return rows[rng.permutation(len(rows))]
    counts = _apportion(np.asarray(share, dtype=np.float64), len(rows))
    picked = []
    for source, count in enumerate(counts):
        own = rows[part == source]
        if count == 0 or not len(own):
            continue
        laps = -(-count // len(own))
        picked.append(np.concatenate([own[rng.permutation(len(own))]
                                      for _ in range(laps)])[:count])
    order = np.concatenate(picked)
    return order[rng.permutation(len(order))]


def _apportion(share: np.ndarray, total: int) -> np.ndarray:
    """`total` split as `share` says, in whole numbers (largest remainders)."""
    exact = share * total
    counts = np.floor(exact).astype(np.int64)
    left = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:left]] += 1
    return counts
