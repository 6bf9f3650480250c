"""The FAISS report/ECG index and the retrieval CLIs: round trips, the automatic kind at its
threshold, exact recall of the flat index and the calibrated recall of IVF, refusals, and
``index build`` / ``retrieve`` / ``embed`` on a tiny model, store and records the tests write."""

import json

import numpy as np
import pytest
import torch

import mets_fast.retrieval.index as index_module
from mets_fast.embed import main as embed_main
from mets_fast.evaluation.evaluate import report_retrieval
from mets_fast.index import main as index_main
from mets_fast.retrieval import EmbeddingIndex, model_id
from mets_fast.retrieval.index import recall_at_k
from mets_fast.retrieve import main as retrieve_main


def clustered(n, d=16, centres=50, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    return (c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d))).astype(np.float32)


def brute_force(x, q, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    scores = q @ x.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, 1), ids


def test_flat_index_is_exact_and_round_trips(tmp_path):
    x, q = clustered(700, seed=1), clustered(40, seed=2)
    texts = [f"report {i}" for i in range(len(x))]
    index = EmbeddingIndex.build(x, texts, model_id="m1")
    assert index.kind == "flat" and len(index) == 700 and index.dim == 16
    scores, ids = index.search(q, 10)
    want_scores, want_ids = brute_force(x, q, 10)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert recall_at_k(ids, want_ids) == 1.0
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx", model_id="m1")
    again = loaded.search(q, 10)
    np.testing.assert_array_equal(again[1], ids)
    np.testing.assert_array_equal(again[0], scores)
    assert loaded.search_texts(q[:1], 3) == index.search_texts(q[:1], 3)
    assert loaded.search_texts(q[:1], 1)[0][0][0] == texts[ids[0, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_search_of_many_queries_equals_each_alone(seed):
    """From BLAS_FROM_QUERIES queries a call the flat search takes FAISS's BLAS path, below it
    the scan: both exact (brute force), whatever the batch and odd sizes (d = 13)."""
    x, q = clustered(1500, d=13, seed=seed), clustered(37, d=13, seed=seed + 10)
    index = EmbeddingIndex.build(x)
    want_scores, want_ids = brute_force(x, q, 7)
    for count in (1, index_module.BLAS_FROM_QUERIES - 1, index_module.BLAS_FROM_QUERIES, 37):
        got = [index.search(q[start:start + count], 7) for start in range(0, 37, count)]
        scores, ids = np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        assert recall_at_k(ids, want_ids) == 1.0


def test_add_continues_ids_and_save_replaces_the_index_there(tmp_path):
    x = clustered(300, seed=3)
    index = EmbeddingIndex.build(x[:200], [str(i) for i in range(200)])
    index.add(x[200:], [str(i) for i in range(200, 300)])
    _, ids = index.search(x[250:251], 1)
    assert ids[0, 0] == 250
    with pytest.raises(ValueError, match="holds texts"):
        index.add(x[:2])
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "notes.txt").write_text("mine")
    index.save(tmp_path / "idx")
    first = set(p.name for p in (tmp_path / "idx").iterdir())
    EmbeddingIndex.build(x[:50]).save(tmp_path / "idx")
    files = set(p.name for p in (tmp_path / "idx").iterdir())
    assert "notes.txt" in files and len(files) == len(first) - 1  # texts gone with the old index
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert len(loaded) == 50 and loaded.texts is None


def test_auto_kind_switches_at_the_threshold(monkeypatch):
    monkeypatch.setattr(index_module, "AUTO_EXACT_BELOW", 2000)
    x = clustered(2200, seed=4)  # new queries from the data's distribution: the last 200
    assert EmbeddingIndex.build(x[:1999]).kind == "flat"
    ivf = EmbeddingIndex.build(x[:2000])
    assert ivf.kind == "ivf" and 1 <= ivf.params["nprobe"] < ivf.params["nlist"]
    q = x[2000:]
    recall = recall_at_k(ivf.search(q, 10)[1], brute_force(x[:2000], q, 10)[1])
    assert recall >= 0.94  # calibrated for 0.97 leave-one-out


@pytest.mark.parametrize("kind,params", [("ivf", {"nlist": 16, "nprobe": 16}),
                                         ("hnsw", {"m": 16, "ef_search": 200})])
def test_approximate_kinds_with_generous_parameters_find_the_true_neighbours(kind, params,
                                                                            tmp_path):
    x, q = clustered(2000, seed=6), clustered(50, seed=7)
    index = EmbeddingIndex.build(x, kind=kind, **params)
    recall = recall_at_k(index.search(q, 10)[1], brute_force(x, q, 10)[1])
    assert recall >= (1.0 if kind == "ivf" else 0.95)  # nprobe = nlist scans every list
    index.save(tmp_path / kind)
    loaded = EmbeddingIndex.load(tmp_path / kind)
    np.testing.assert_array_equal(loaded.search(q, 5)[1], index.search(q, 5)[1])


@pytest.mark.parametrize("queries,k,error,phrase", [
    (np.zeros((2, 8), np.float32), 3, ValueError, "8 wide"),
    (np.full((1, 16), np.nan, np.float32), 3, ValueError, "NaN or inf"),
    (np.ones((1, 16), np.float32), 101, ValueError, "exceeds the 100"),
    (np.ones((1, 16), np.float32), 0, ValueError, "positive integer"),
    (np.ones((1, 16), np.int64), 3, TypeError, "floats"),
    (np.zeros((1, 16), np.float32), 3, ValueError, "all-zero"),
    (np.ones(16, np.float32), 3, ValueError, r"\(N, d\)"),
])
def test_bad_queries_are_refused(queries, k, error, phrase):
    index = EmbeddingIndex.build(clustered(100))
    with pytest.raises(error, match=phrase):
        index.search(queries, k)


def test_bad_builds_and_loads(tmp_path):
    with pytest.raises(ValueError, match="3 texts for 4 vectors"):
        EmbeddingIndex.build(clustered(4), ["a", "b", "c"])
    with pytest.raises(ValueError, match="kind must be"):
        EmbeddingIndex.build(clustered(4), kind="lsh")
    with pytest.raises(TypeError, match="unknown parameter"):
        EmbeddingIndex.build(clustered(4), kind="flat", nprobe=3)
    with pytest.raises(ValueError, match="without texts"):
        EmbeddingIndex.build(clustered(10)).search_texts(clustered(1), 1)
    EmbeddingIndex.build(clustered(10), model_id="run-a").save(tmp_path / "i")
    with pytest.raises(ValueError, match="built by model 'run-a'"):
        EmbeddingIndex.load(tmp_path / "i", model_id="run-b")
    with pytest.raises(FileNotFoundError, match="no index"):
        EmbeddingIndex.load(tmp_path / "nothing")
    manifest = json.loads((tmp_path / "i" / "index.json").read_text())
    (tmp_path / "i" / "index.json").write_text(json.dumps({**manifest, "version": 7}))
    with pytest.raises(ValueError, match="version 7"):
        EmbeddingIndex.load(tmp_path / "i")


# ------------------------------------------------------------------------------------ CLIs


@pytest.fixture(scope="module")
def store(trained):
    from mets_fast.data import ECGStore

    args = json.loads((trained / "args.json").read_text())
    from mets_fast.data.cache import prepared_store
    from mets_fast.data.spec import DataSpec

    return ECGStore.open(prepared_store(DataSpec("synthetic", None), n=args["corpus_size"]))


def test_index_build_retrieve_and_embed(trained, store, tmp_path, twelve_lead, capsys):
    record, _ = twelve_lead
    reports, ecgs = tmp_path / "reports", tmp_path / "ecgs"
    assert index_main(["build", "--model", str(trained), "--store", str(store.path), "--out",
                       str(reports), "--quiet"]) == 0
    assert index_main(["build", "--model", str(trained), "--store", str(store.path), "--out",
                       str(ecgs), "--ecgs", "--quiet"]) == 0
    rep = EmbeddingIndex.load(reports)
    assert rep.items == "reports" and len(rep) == store.meta["report_clean"].nunique()
    assert EmbeddingIndex.load(ecgs).items == "ecgs" and len(EmbeddingIndex.load(ecgs)) == len(store)
    capsys.readouterr()
    assert retrieve_main(["--model", str(trained), "--index", str(reports), str(record), "-k",
                          "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    hits = result["queries"][0]["results"]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert all(h["text"] in set(store.meta["report_clean"]) for h in hits)
    assert retrieve_main(["--model", str(trained), "--index", str(ecgs), "--text",
                          "atrial fibrillation.", "-k", "2"]) == 0
    assert "synthetic-" in capsys.readouterr().out
    # embed: the store's ECGs, in store order, equal what the model computes
    out = tmp_path / "e.npy"
    assert embed_main(["--model", str(trained), "--store", str(store.path), "--out", str(out),
                       "--quiet"]) == 0
    import mets_fast

    model = mets_fast.load(trained)
    np.testing.assert_allclose(np.load(out), model.embed_ecgs(store.signals[:]).numpy(),
                               atol=1e-6)
    lines = tmp_path / "r.txt"
    lines.write_text("sinus rhythm.\n\natrial fibrillation.\n")
    assert embed_main(["--model", str(trained), "--reports", str(lines), "--out",
                       str(tmp_path / "r.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "r.npy").shape == (2, model.embed_dim)
    assert embed_main(["--model", str(trained), str(record), "--out", str(tmp_path / "x.npy"),
                       "--quiet"]) == 0
    assert np.load(tmp_path / "x.npy").shape == (1, model.embed_dim)


def test_retrieval_refusals(trained, store, tmp_path, capsys):
    other = tmp_path / "other"
    EmbeddingIndex.build(clustered(10, d=128), [str(i) for i in range(10)],
                      model_id="someone-else").save(other)
    assert retrieve_main(["--model", str(trained), "--index", str(other), "--text", "x"]) == 1
    assert "built by model 'someone-else'" in capsys.readouterr().err
    assert retrieve_main(["--model", str(trained), "--index", str(other)]) == 2
    assert embed_main(["--model", str(trained), "--out", str(tmp_path / "a.npy")]) == 2
    assert embed_main(["--model", str(trained), "--reports", str(tmp_path / "none.txt"),
                       "--out", str(tmp_path / "a.npy")]) == 1
    assert "not found" in capsys.readouterr().err
    assert index_main(["build", "--model", str(trained), "--reports", str(tmp_path / "a"),
                       "--out", str(tmp_path / "i"), "--ecgs"]) == 2
    from mets_fast.data import StoreWriter
    import pandas as pd

    empty = tmp_path / "empty"
    with StoreWriter(empty, 0, list(store.leads), 1000, 100.0,
                     preprocessing=store.preprocessing) as w:
        w.set_meta(pd.DataFrame(columns=["id", "report", "report_clean", "split", "source",
                                         "superclass", "subclass", "form", "rhythm"]))
    assert index_main(["build", "--model", str(trained), "--store", str(empty), "--out",
                       str(tmp_path / "i"), "--ecgs", "--quiet"]) == 1
    assert "empty" in capsys.readouterr().err


def test_retrieval_recall_counts_own_report_hits(trained):
    """With ECG embeddings replaced by their own reports' embeddings, every ECG retrieves its
    own report first (the reports are distinct)."""
    import mets_fast

    model = mets_fast.load(trained)
    reports = ["sinus rhythm.", "atrial fibrillation.", "left bundle branch block.",
               "sinus rhythm."]
    ecgs = np.zeros((4, len(model.settings.leads), model.settings.samples), np.float32)
    with torch.no_grad():
        own = model.encode_texts(reports)
    model.embed_ecgs = lambda x, **kw: own  # an oracle encoder
    r = report_retrieval(model, ecgs, reports)
    assert r["recall@1"] == 1.0 and r["n"] == 4 and r["reports"] == 3
    assert model_id(model).startswith(model.run_id[:16])


def test_index_parameters_that_crash_faiss_are_refused():
    x = clustered(60)
    for kind, params, phrase in (("hnsw", {"m": 0}, "m must be"), ("hnsw", {"m": 1}, "m must be"),
                                 ("hnsw", {"m": -1}, "m must be"),
                                 ("hnsw", {"ef_search": 0}, "ef_search must be"),
                                 ("hnsw", {"ef_construction": -2}, "ef_construction must be"),
                                 ("ivf", {"nprobe": 0}, "nprobe must be"),
                                 ("ivf", {"nlist": 4, "nprobe": 5}, "nprobe must lie"),
                                 ("ivf", {"target_recall": float("nan")}, "target_recall"),
                                 ("ivf", {"target_recall": 0}, "target_recall"),
                                 ("ivf", {"target_recall": 1.5}, "target_recall")):
        with pytest.raises(ValueError, match=phrase):
            EmbeddingIndex.build(x, kind=kind, **params)


@pytest.mark.parametrize("kind,params", [("hnsw", {}), ("hnsw", {"ef_search": 1}),
                                         ("ivf", {"nlist": 15, "nprobe": 1})])
def test_approximate_results_are_always_complete(kind, params):
    """k up to the index's size: every id once, never -1, scores as exact search gives."""
    x = clustered(231)
    texts = [str(i) for i in range(231)]
    approximate = EmbeddingIndex.build(x, texts, kind=kind, **params)
    exact = EmbeddingIndex.build(x, texts, kind="flat")
    for k in (1, 100, 231):
        scores, ids = approximate.search(x[:5], k)
        assert (ids >= 0).all() and all(len(set(row)) == k for row in ids)
        want, _ = exact.search(x[:5], k)
        if k == 231:
            np.testing.assert_allclose(scores, want, atol=1e-5)
        assert all(len(hits) == k for hits in approximate.search_texts(x[:5], k))
