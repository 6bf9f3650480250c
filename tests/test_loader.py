"""The training loader against the plain gather it replaced: the same values bit for bit, in the
same order, errors raised where the batch is taken, and no thread left behind."""

import threading

import numpy as np
import pytest
import torch

from mets_fast.training.loader import BatchLoader, gather


def _plain(signals, ids):
    return torch.from_numpy(signals[ids].astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_are_the_plain_gather_bit_for_bit(tmp_path, dtype, seed):
    rng = np.random.default_rng(seed)
    n, leads, samples = 97, 3, 17  # odd shapes
    signals = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=dtype,
                                        shape=(n, leads, samples))
    signals[:] = rng.standard_normal((n, leads, samples)) * 1e3
    signals[0, 0, :3] = [np.finfo(dtype).max, np.finfo(dtype).tiny, -0.0]  # extreme values
    order = rng.permutation(n)
    batches = [np.sort(order[a:a + size]) for a, size in ((0, 1), (1, 13), (14, 50), (64, 33))]
    with BatchLoader(signals, batches, "cpu") as loader:
        seen = list(loader)
    assert len(seen) == len(batches)
    for (ids, x), expected in zip(seen, batches):
        assert np.array_equal(ids, expected) and x.dtype == torch.float32
        assert torch.equal(x, _plain(signals, expected))
        assert torch.equal(gather(signals, expected), _plain(signals, expected))


def test_an_error_in_the_thread_is_raised_at_its_batch():
    signals = np.zeros((10, 2, 5), np.float16)
    batches = [np.array([0, 1]), np.array([3, 99]), np.array([2])]
    with BatchLoader(signals, batches, "cpu") as loader:
        batches_seen = iter(loader)
        ids, _ = next(batches_seen)
        assert list(ids) == [0, 1]
        with pytest.raises(IndexError, match="99"):
            next(batches_seen)


def test_leaving_early_stops_the_thread():
    signals = np.zeros((1000, 2, 5), np.float32)
    batches = [np.arange(k, k + 10) for k in range(0, 990, 10)]
    before = threading.active_count()
    with BatchLoader(signals, batches, "cpu") as loader:
        for b, _ in enumerate(loader):
            if b == 2:
                break
    assert threading.active_count() == before
    loader = BatchLoader(signals, batches, "cpu")
    with pytest.raises(RuntimeError):
        with loader:
            for _ in loader:
                raise RuntimeError("the step failed")
    assert not loader._thread.is_alive()


def test_the_transform_sees_each_batch_with_its_number():
    signals = np.arange(40, dtype=np.float16).reshape(10, 1, 4)
    batches = [np.array([0, 1]), np.array([5]), np.array([2, 9])]
    seen = []

    def transform(k, ids, x):
        seen.append((k, list(ids)))
        return x + k

    with BatchLoader(signals, batches, "cpu", transform) as loader:
        out = list(loader)
    assert seen == [(0, [0, 1]), (1, [5]), (2, [2, 9])]
    for k, (ids, x) in enumerate(out):
        assert torch.equal(x, _plain(signals, ids) + k)
