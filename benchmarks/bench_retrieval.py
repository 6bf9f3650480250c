"""Retrieval: FAISS indexes of mets_fast against NumPy brute force, and one record end to end.

1,000 queries against 100,000 and 1,000,000 vectors (d = 128, clustered like real embeddings:
3,000 centres plus noise, unit length), queries on one thread: queries per second and recall@10
against exact search for Flat, IVF (nprobe calibrated, what ``kind="auto"`` builds at and above
200,000 vectors) and HNSW, side by side with NumPy brute force (all 1,000 queries in one matrix
product + argpartition) in the same run; build time (all cores) and the memory each index
holds.  Then one WFDB record end to end in a warm process: read, preprocess as the model's data
were, encode with ResNet1d-18, search 100,000 reports; median latency over repeats.

    python benchmarks/bench_retrieval.py [--quick] [--model RUN_DIR]
    python benchmarks/bench_retrieval.py --blas

``--blas``: a flat index's search time by queries per call, with FAISS's own threshold for its
BLAS path (128,000 queries in 1.15) and through ``EmbeddingIndex.search`` (the BLAS path from
``BLAS_FROM_QUERIES`` queries on), side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import shared_data, table, write_results  # noqa: E402

D, QUERIES, K = 128, 1000, 10


def clustered(n: int, rng, centres: np.ndarray, noise: float = 0.09) -> np.ndarray:
    """Unit vectors around the centres.  The noise is set so that search is as hard as on real
    embeddings: on 100,000 of these vectors, IVF needs about the share of its lists (2.5 %)
    that it needs on a trained model's own ECG embeddings (3 %, 8 of 256 lists for 10,000
    synthetic ECGs of the default run); at 0.06 one list would do, at 0.1 a fifth."""
    x = centres[rng.integers(0, len(centres), n)] + noise * rng.standard_normal((n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def numpy_search(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = q @ x.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index.index).nbytes)


def scale(n: int, repeats: int, seed: int = 0) -> list:
    import faiss
    from threadpoolctl import threadpool_limits

    from mets_fast.retrieval.index import EmbeddingIndex, recall_at_k

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3000, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x, q = clustered(n, rng, centres), clustered(QUERIES, rng, centres)
    rows = []
    builds = {}
    for kind, params in (("flat", {}), ("ivf", {}), ("hnsw", {"m": 32, "ef_construction": 40,
                                                              "ef_search": 48})):
        began = time.perf_counter()
        builds[kind] = EmbeddingIndex.build(x, kind=kind, **params)
        builds[kind].build_s = time.perf_counter() - began
        print(f"  n={n}: built {kind} in {builds[kind].build_s:.1f} s {builds[kind].params}",
              flush=True)
    with threadpool_limits(1):
        faiss.omp_set_num_threads(1)
        truth = None
        timings = {name: [] for name in ["numpy", *builds]}
        for r in range(repeats):
            for name in (["numpy", *builds] if r % 2 == 0 else [*builds, "numpy"][::-1]):
                began = time.perf_counter()
                ids = numpy_search(x, q, K) if name == "numpy" else builds[name].search(q, K)[1]
                timings[name].append(time.perf_counter() - began)
                if name == "numpy":
                    truth = ids
                else:
                    builds[name].found = ids
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        # HNSW's recall is bought at query time: a wider search of the same graph
        graph = builds["hnsw"].index.hnsw
        wide = []
        for ef in (128, 256):
            graph.efSearch = ef
            ts = []
            for _ in range(repeats):
                began = time.perf_counter()
                found = builds["hnsw"].search(q, K)[1]
                ts.append(time.perf_counter() - began)
            wide.append((ef, QUERIES / float(np.median(ts)), found))
        graph.efSearch = builds["hnsw"].params["ef_search"]
    numpy_qps = QUERIES / float(np.median(timings["numpy"]))
    rows.append({"n": n, "method": "numpy brute force", "qps": numpy_qps, "recall@10": 1.0,
                 "build_s": 0.0, "memory_mb": x.nbytes / 2**20, "vs_numpy": 1.0})
    auto = "flat" if n < 200_000 else "ivf"
    for kind, index in builds.items():
        qps = QUERIES / float(np.median(timings[kind]))
        rows.append({"n": n, "method": kind + (" (= auto)" if kind == auto else ""), "qps": qps,
                     "recall@10": recall_at_k(index.found, truth), "build_s": index.build_s,
                     "memory_mb": index_bytes(index) / 2**20, "vs_numpy": qps / numpy_qps,
                     "params": index.params})
    for ef, qps, found in wide:
        rows.append({"n": n, "method": f"hnsw, ef_search {ef}", "qps": qps,
                     "recall@10": recall_at_k(found, truth), "build_s": builds["hnsw"].build_s,
                     "memory_mb": index_bytes(builds["hnsw"]) / 2**20,
                     "vs_numpy": qps / numpy_qps, "params": {**builds["hnsw"].params,
                                                             "ef_search": ef}})
    return rows


def blas_threshold(sizes: tuple, repeats: int = 7) -> list:
    """Milliseconds of one flat search of `nq` queries (k = 10, all cores) with FAISS's own
    BLAS threshold and through ``EmbeddingIndex.search`` (ours, set per search), alternating,
    and the share of top-10 ids they agree on."""
    import faiss

    from mets_fast.retrieval.index import EmbeddingIndex

    rng = np.random.default_rng(0)
    default = faiss.cvar.distance_compute_blas_threshold
    rows = []
    for n in sizes:
        index = EmbeddingIndex.build(clustered(n, rng, rng.standard_normal((3000, D))),
                                     kind="flat")
        q = clustered(256, rng, rng.standard_normal((3000, D)))
        for nq in (1, 2, 4, 8, 16, 64, 256):
            times, found = {"faiss": [], "ours": []}, {}
            for _ in range(repeats):
                faiss.cvar.distance_compute_blas_threshold = default
                began = time.perf_counter()
                found["faiss"] = index.index.search(q[:nq], K)[1]
                times["faiss"].append(time.perf_counter() - began)
                began = time.perf_counter()
                found["ours"] = index.search(q[:nq], K)[1]
                times["ours"].append(time.perf_counter() - began)
            ms = {name: 1e3 * float(np.median(v)) for name, v in times.items()}
            rows.append({"n": n, "queries": nq, "faiss_default_ms": ms["faiss"],
                         "ours_ms": ms["ours"], "speed_up": ms["faiss"] / ms["ours"],
                         "same_ids": float((found["faiss"] == found["ours"]).mean())})
            print(f"  n={n:,} nq={nq}: {ms['faiss']:.2f} ms -> {ms['ours']:.2f} ms", flush=True)
    return rows


def end_to_end(model_dir: str | None, repeats: int) -> list:
    """Median latency of read + preprocess + encode + search 100,000 reports, per record."""
    import torch

    import mets_fast
    from mets_fast.data.records import read_record
    from mets_fast.retrieval.index import EmbeddingIndex
    from mets_fast.model import METSModel

    if model_dir:
        model = mets_fast.load(model_dir)
    else:  # an untrained model of the default architecture: the same work per query
        torch.manual_seed(0)
        model = METSModel(384, 128).eval()
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3000, model.embed_dim))
    gallery = clustered(100_000, rng, centres / np.linalg.norm(centres, axis=1, keepdims=True))
    index = EmbeddingIndex.build(gallery, [f"report {i}" for i in range(len(gallery))])
    records = [p.with_suffix("") for p in (shared_data("ptbxl/records100/00000/00001_lr.hea"),
                                           shared_data("ptbdb/s0010_re.hea")) if p is not None]
    if not records:
        records = [_write_record()]
    import faiss

    faiss.omp_set_num_threads(1)  # one query needs no thread team (and its spinning costs)
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        for path in records:
            def query():
                rec = read_record(path)
                x = model.preprocess(rec.signal, rec.fs, rec.leads)
                with torch.no_grad():
                    emb = model.encode_ecg(torch.from_numpy(x[None])).numpy()
                return index.search_texts(emb, 5)

            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the PTB record's extra leads
                for _ in range(3):
                    query()
                times = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    query()
                    times.append(time.perf_counter() - began)
            rec = read_record(path)
            rows.append({"record": Path(path).name, "fs": rec.fs, "leads": len(rec.leads),
                         "seconds": rec.signal.shape[1] / rec.fs, "threads": threads,
                         "median_ms": 1e3 * float(np.median(times)),
                         "p90_ms": 1e3 * float(np.quantile(times, 0.9))})
            print(f"  {rows[-1]['record']} ({threads} thread(s)): median "
                  f"{rows[-1]['median_ms']:.1f} ms", flush=True)
    return rows


def _write_record() -> Path:
    import tempfile

    import wfdb

    folder = Path(tempfile.mkdtemp(prefix="bench_retrieval-"))
    t = np.arange(5000) / 500.0
    signal = np.stack([np.sin(2 * np.pi * 1.2 * t) * (1 + 0.1 * k) for k in range(12)])
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(
        ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")),
        p_signal=signal.T, fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
        write_dir=str(folder))
    return folder / "rec"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 vectors only, few repeats")
    parser.add_argument("--model", help="a run directory for the end-to-end latency "
                                        "(default: an untrained model of the same shape)")
    parser.add_argument("--blas", action="store_true",
                        help="only the flat search's BLAS threshold, FAISS's against ours")
    args = parser.parse_args()
    if args.blas:
        rows = blas_threshold((10_000, 100_000, 1_000_000))
        print()
        print(table(["vectors", "queries a call", "FAISS default ms", "ours ms", "speed-up",
                     "same top-10 ids"],
                    [[r["n"], r["queries"], r["faiss_default_ms"], r["ours_ms"],
                      f"{r['speed_up']:.2f}x", r["same_ids"]] for r in rows]))
        print(f"\nwritten to {write_results('bench_retrieval_blas', {'k': K, 'rows': rows}, False)}")
        return
    sizes = (100_000,) if args.quick else (100_000, 1_000_000)
    rows = []
    for n in sizes:
        rows += scale(n, repeats=2 if args.quick else 5)
    latency = end_to_end(args.model, repeats=10 if args.quick else 50)
    print()
    print(table(["vectors", "method", "queries/s (1 thread)", "recall@10", "vs NumPy",
                 "build s", "memory MB"],
                [[r["n"], r["method"], r["qps"], r["recall@10"], r["vs_numpy"], r["build_s"],
                  r["memory_mb"]] for r in rows]))
    print()
    print(table(["record", "fs", "leads", "s", "threads", "median ms", "p90 ms"],
                [[r["record"], r["fs"], r["leads"], r["seconds"], r["threads"], r["median_ms"],
                  r["p90_ms"]] for r in latency]))
    path = write_results("bench_retrieval", {"dim": D, "queries": QUERIES, "k": K,
                                             "search": rows, "end_to_end": latency}, args.quick)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
