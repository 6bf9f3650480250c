"""The sharded writer on a source made here: rows in order whatever the shard size, a record
whose preprocessed signal overflows float16 skipped with its reason, and bad arguments."""

import numpy as np
import pandas as pd
import pytest

from mets_fast.data import ECGStore
from mets_fast.data.preprocess import Settings
from mets_fast.data.shards import ShardedSource, write_sharded
from mets_fast.data.sources.wfdb import Fitted
from mets_fast.data.store import store_row

SETTINGS = Settings(100.0, 1.0, ("I", "II"), False, None, "none", "float16")


def fake_read(args):
    """A record named by its amplitude: "3" is 3 mV everywhere; "bad" cannot be read."""
    path, fs, leads, samples = args
    if path == "bad":
        return Fitted(None, None, 0, (), "OSError: cannot read bad")
    signal = np.full((len(leads), samples), float(path), np.float32)
    signal[1] *= -1
    return Fitted(signal, np.array([True, float(path) < 5]), samples, (), None)


def _source(records):
    meta = pd.DataFrame([store_row(f"r{k}", "sinus rhythm", "train", "test")
                         for k in range(len(records))])
    return ShardedSource(list(records), meta, fake_read, [{"id": "x", "skip": "NoReport: none"}],
                         {"source": "test"})


@pytest.mark.parametrize("shard_size", [1, 2, 3, 100])
def test_rows_in_order_whatever_the_shard_size(tmp_path, shard_size):
    records = ["1", "bad", "2", "3", "7", "bad", "4"]
    summary = write_sharded(tmp_path / "s", _source(records), SETTINGS, shard_size=shard_size,
                            quiet=True)
    store = ECGStore.open(tmp_path / "s")
    assert list(store.meta["id"]) == ["r0", "r2", "r3", "r4", "r6"]
    np.testing.assert_array_equal(store.signals[:, 0, 0], [1, 2, 3, 7, 4])
    np.testing.assert_array_equal(store.signals[:, 1, 5], [-1, -2, -3, -7, -4])
    assert store.lead_mask[:, 1].tolist() == [True, True, True, False, True]
    assert summary["written"] == 5 and summary["skipped"] == 3
    assert summary["skip_reasons"] == {"NoReport": 1, "OSError": 2}


def test_a_record_beyond_float16_is_skipped_with_its_reason(tmp_path):
    summary = write_sharded(tmp_path / "s", _source(["1", "70000", "2"]), SETTINGS,
                            shard_size=2, quiet=True)
    assert ECGStore.open(tmp_path / "s").meta["id"].tolist() == ["r0", "r2"]
    assert summary["skip_reasons"]["ValueError"] == 1 and summary["skipped_ids"] == ["x", "r1"]


@pytest.mark.parametrize("call,phrase", [
    (lambda t: write_sharded(t / "s", _source(["1"]), SETTINGS, shard_size=0), "shard size"),
    (lambda t: write_sharded(t / "s", _source(["1"])._replace(records=["1", "2"]), SETTINGS),
     "2 records for 1 metadata rows"),
])
def test_bad_arguments_are_refused(tmp_path, call, phrase):
    with pytest.raises(ValueError, match=phrase):
        call(tmp_path)
    assert not list(tmp_path.iterdir())
