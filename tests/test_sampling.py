"""The epoch order: a function of (seed, epoch); without weights each training ECG once (the
order runs before weights existed had); with weights each source its share, small sources
repeated, large ones subsampled; and the --data weights' checks."""

import numpy as np
import pytest

from mets_fast.data.spec import parse_data
from mets_fast.training.sampling import epoch_order, shares


def test_without_weights_each_row_once_as_before():
    rows = np.arange(10, 60)
    order = epoch_order(rows, np.zeros(50, int), None, 3, 2)
    assert np.array_equal(order, rows[np.random.default_rng([3, 2]).permutation(50)])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_each_source_fills_its_share(seed):
    rows = np.arange(1000)
    part = np.r_[np.zeros(900, int), np.ones(90, int), np.full(10, 2)]
    share = shares([0.5, None, None], [900, 90, 10])
    np.testing.assert_allclose(share, [0.5, 0.45, 0.05])
    order = epoch_order(rows, part, share, seed, 1)
    assert len(order) == 1000
    counts = np.bincount(part[order], minlength=3)
    assert list(counts) == [500, 450, 50]
    small = np.bincount(order[part[order] == 2] - 990, minlength=10)
    assert set(small) == {5}  # each ECG of the small source five times
    assert len(set(order[part[order] == 0])) == 500  # a subset, no repeats
    again = epoch_order(rows, part, share, seed, 1)
    assert np.array_equal(order, again)
    assert not np.array_equal(order, epoch_order(rows, part, share, seed, 2))


def test_weights_given_for_every_source_are_normalised():
    np.testing.assert_allclose(shares([1, 3], [10, 10]), [0.25, 0.75])


@pytest.mark.parametrize("weights,phrase", [([0.7, 0.5, None], "sum to 1.2")])
def test_weights_that_leave_nothing_for_the_others_are_refused(weights, phrase):
    with pytest.raises(ValueError, match=phrase):
        shares(weights, [1, 1, 1])


@pytest.mark.parametrize("text,phrase", [
    ("synthetic@0", "must be a number above 0"),
    ("synthetic@-1", "must be a number above 0"),
    ("synthetic@nan", "must be a number above 0"),
    ("synthetic@inf", "must be a number above 0"),
    ("synthetic@x", "unknown source 'synthetic@x'"),
])
def test_bad_weights_are_refused_naming_the_value(text, phrase):
    with pytest.raises(ValueError, match=phrase):
        parse_data(text, weighted=True)


def test_a_weight_is_for_training_only_and_an_at_sign_may_be_in_a_path(tmp_path):
    assert parse_data("synthetic@0.5", weighted=True).weight == 0.5
    with pytest.raises(ValueError, match="a weight .* is a share of training's epochs"):
        parse_data("synthetic@0.5")
    folder = tmp_path / "store@v2"
    folder.mkdir()
    spec = parse_data(f"store:{folder}")
    assert spec.path == folder and spec.weight is None
    assert parse_data(f"store:{folder}@2", weighted=True).weight == 2
