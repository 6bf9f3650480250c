"""FAISS search over a trained model's embeddings of distinct reports, or of ECGs: "which
reports describe ECGs like this one?", "which ECGs match this report?", "which stored ECGs
resemble this one?", over a few thousand items or millions.

Vectors are L2-normalised, so inner product is cosine similarity.  ``kind="auto"`` searches
exactly (``IndexFlatIP``) below :data:`AUTO_EXACT_BELOW` vectors and, from there on, with an
inverted-file index (IVF) whose probe count is calibrated at build time: vectors of the data are
searched leave-one-out both ways and ``nprobe`` doubled until their recall@10 against exact
search reaches ``target_recall`` (0.97), so the speed bought never costs more than the recall
asked (for queries from the data's own distribution; ECG queries of a report index differ, and
``nprobe`` can be given).

An index directory holds ``index.json`` (format, version, kind, what the vectors are, width,
count, the model that built it, parameters) and, named in it, the FAISS file and the texts; the
manifest is written last and renamed into place, so a directory always holds one whole index.
``mets-fast index build`` (``mets_fast/index.py``) makes one from a model and a store.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_file, write_text
from ..checksums import describe, verify
from ..jsonio import read_json, write_json
from ..versions import read_manifest

FORMAT = "mets_fast.index"
# 2: what the vectors are is the manifest's "items" (version 1 called it "contents")
VERSION = 2
MANIFEST = "index.json"
AUTO_EXACT_BELOW = 200_000
KINDS = ("auto", "flat", "ivf", "hnsw")
ITEMS = ("reports", "ecgs")
# the FAISS class each saved kind reads back as: a manifest naming another is refused
_FAISS_TYPES = {"flat": "IndexFlatIP", "ivf": "IndexIVFFlat", "hnsw": "IndexHNSWFlat"}


# FAISS 1.15 scans a flat index query by query (SIMD) below 128,000 queries a call; its BLAS
# path (one matrix product per block) is 1.3-12x faster from 8 queries on (2 cores, 10k-1M
# vectors, d = 128: 64 queries of 100k in 15 ms against 61 ms; the same top-10), while below
# 8 a lowered threshold makes the scan itself up to 2.7x slower, so the threshold is set per
# search: `python benchmarks/bench_retrieval.py --blas`.  It is one global of FAISS: a search
# in another thread meanwhile may take the other path (the same results, another speed).
BLAS_FROM_QUERIES = 8


def _faiss(queries: int | None = None):
    """FAISS; with `queries`, its BLAS threshold set for a search of that many queries."""
    import faiss  # imported here: `import mets_fast.index` stays light

    if queries is not None:
        faiss.cvar.distance_compute_blas_threshold = \
            BLAS_FROM_QUERIES if queries >= BLAS_FROM_QUERIES else _scan_threshold()
    return faiss


@functools.cache
def _scan_threshold() -> int:
    """FAISS's own threshold, read before this module first sets it."""
    import faiss

    return faiss.cvar.distance_compute_blas_threshold


class EmbeddingIndex:
    """L2-normalised embeddings of one kind of item (``items``: ``"reports"``, the distinct
    reports, or ``"ecgs"``) in a FAISS index, with the texts or ids they stand for.  Build with
    :meth:`build`, extend with :meth:`add`, query with :meth:`search` / :meth:`search_texts`,
    keep with :meth:`save` / :meth:`load`."""

    def __init__(self, index, kind: str, params: dict, texts: list | None,
                 model_id: str | None, items: str = "reports"):
        if items not in ITEMS:
            raise ValueError(f"items must be one of {ITEMS}, got {items!r}")
        self.index, self.kind, self.params = index, kind, dict(params)
        self.texts, self.model_id, self.items = texts, model_id, items

    # ---------------------------------------------------------------------------- building

    @classmethod
    def build(cls, embeddings: np.ndarray, texts: Sequence[str] | None = None,
              kind: str = "auto", model_id: str | None = None, items: str = "reports",
              **params) -> "EmbeddingIndex":
        """An index of `embeddings` ``(N, d)`` (normalised here; float32 or float64) of
        `items` (``"reports"`` or ``"ecgs"``), standing for `texts` (one per row: the report
        texts, or ECG ids; None: rows are known by their positions).

        Kinds and their parameters: ``"flat"`` (exact); ``"ivf"`` (``nlist``: lists, default
        about 4 sqrt(N); ``nprobe``: lists searched, default calibrated to ``target_recall``);
        ``"hnsw"`` (``m`` 32, ``ef_construction`` 80, ``ef_search`` 64); ``"auto"``: flat below
        200,000 vectors, IVF from there."""
        x = _vectors(embeddings, None, "embeddings")
        texts = _texts(texts, len(x))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "auto":
            kind = "flat" if len(x) < AUTO_EXACT_BELOW else "ivf"
        faiss = _faiss()
        d = x.shape[1]
        params = dict(params)
        if kind == "flat":
            _no_params(params, "flat")
            index = faiss.IndexFlatIP(d)
            index.add(x)
        elif kind == "hnsw":
            # FAISS aborts, crashes or hangs on an HNSW degree below 2 and on search or
            # construction depths below 1: refused here, by name
            m = _whole(params.pop("m", 32), "m", 2)
            ef_construction = _whole(params.pop("ef_construction", 80), "ef_construction", 1)
            ef_search = _whole(params.pop("ef_search", 64), "ef_search", 1)
            _no_params(params, "hnsw")
            index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            index.add(x)
            params = {"m": m, "ef_construction": ef_construction, "ef_search": ef_search}
        else:
            nlist = _whole(params.pop("nlist", max(1, min(int(4 * np.sqrt(len(x))),
                                                          len(x) // 39 or 1))), "nlist", 1)
            nprobe = params.pop("nprobe", None)
            target = params.pop("target_recall", 0.97)
            _no_params(params, "ivf")
            if not 1 <= nlist <= len(x):
                raise ValueError(f"nlist must lie in [1, {len(x)}] (the vectors), got {nlist}")
            if nprobe is not None and not 1 <= _whole(nprobe, "nprobe", 1) <= nlist:
                raise ValueError(f"nprobe must lie in [1, {nlist}] (the lists), got {nprobe}")
            if isinstance(target, bool) or not isinstance(target, (int, float)) or \
                    not 0 < target <= 1:
                raise ValueError(f"target_recall must be a number in (0, 1], got {target!r}")
            target = float(target)
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = x[rng.choice(len(x), size=min(len(x), 64 * nlist), replace=False)]
            index.train(sample)
            index.add(x)
            if nprobe is None:
                nprobe = _calibrate(index, x, target, rng)
            index.nprobe = int(nprobe)
            params = {"nlist": nlist, "nprobe": int(nprobe), "target_recall": target}
        return cls(index, kind, params, texts, model_id, items)

    def add(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> None:
        """Appends vectors (ids continue the row positions); `texts` as at build."""
        x = _vectors(embeddings, self.dim, "embeddings")
        if (self.texts is None) != (texts is None):
            raise ValueError("this index " + ("has no texts: add vectors without them"
                                              if self.texts is None else
                                              "holds texts: add one per vector"))
        texts = _texts(texts, len(x))
        self.index.add(x)
        if texts is not None:
            self.texts.extend(texts)

    # ---------------------------------------------------------------------------- querying

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple:
        """The `k` nearest rows of each query ``(Q, d)`` by cosine similarity: ``(scores,
        ids)``, both ``(Q, k)``, ids being row positions in build/add order, best first."""
        q = _vectors(queries, self.dim, "queries")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if k > len(self):
            raise ValueError(f"k = {k} exceeds the {len(self)} vectors of the index")
        _faiss(len(q))
        scores, ids = self.index.search(q, int(k))
        short = np.flatnonzero((ids < 0).any(1))
        if len(short):
            # an approximate index can find fewer than k rows (HNSW's graph, IVF's probed
            # lists): those queries are answered exactly, so a result never holds -1
            scores[short], ids[short] = self._exact_search(q[short], int(k))
        return scores, ids.astype(np.int64)

    def _exact_search(self, q: np.ndarray, k: int) -> tuple:
        """Exact search over the same vectors: HNSW keeps them in a flat index; IVF with every
        list probed (for this call only) is exact."""
        faiss = _faiss()
        if self.kind == "hnsw":
            return faiss.downcast_index(self.index.storage).search(q, k)
        if self.kind == "ivf":
            return self.index.search(q, k, params=faiss.SearchParametersIVF(
                nprobe=self.index.nlist))
        return self.index.search(q, k)

    def search_texts(self, queries: np.ndarray, k: int) -> list:
        """Per query, the `k` nearest texts as ``(text, score)`` pairs, best first."""
        if self.texts is None:
            raise ValueError("this index was built without texts: use search() for row ids")
        scores, ids = self.search(queries, k)
        return [[(self.texts[i], float(s)) for i, s in zip(row_ids, row_scores)]
                for row_ids, row_scores in zip(ids, scores)]

    # -------------------------------------------------------------------------------- disk

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes the index into `directory` (created if new; an index already there is
        replaced, other files are left alone)."""
        faiss = _faiss()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:12]
        files = {"index": f"index-{token}.faiss", "texts": f"texts-{token}.json"}
        with atomic_file(directory / files["index"]) as tmp:
            faiss.write_index(self.index, str(tmp))
        if self.texts is not None:
            write_text(directory / files["texts"], json.dumps(self.texts, ensure_ascii=False))
        else:
            files.pop("texts")
        old = _manifest_files(directory)
        manifest = {"format": FORMAT, "version": VERSION, "kind": self.kind, "dim": self.dim,
                    "n": len(self), "model_id": self.model_id, "items": self.items,
                    "params": self.params, "files": files,
                    "checksums": {name: describe(directory / name) for name in files.values()},
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(directory / MANIFEST, manifest)
        for name in old:
            if name not in files.values():
                (directory / name).unlink(missing_ok=True)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, model_id: str | None = None) -> "EmbeddingIndex":
        """The index saved in `directory`.  With `model_id`, refuses an index that another
        model built (its vectors would not be comparable with this model's queries)."""
        directory = Path(directory)
        manifest = _read_manifest(directory)
        if model_id is not None and manifest.get("model_id") != model_id:
            raise ValueError(f"the index in {directory} was built by model "
                             f"{manifest.get('model_id')!r}, not by this one ({model_id!r}): "
                             f"rebuild it with `mets-fast index build --model ...`")
        faiss = _faiss()
        where = f"{directory / MANIFEST}"
        for role, name in manifest["files"].items():
            path = directory / name
            if not path.is_file():
                raise ValueError(f"the index in {directory} is incomplete: its {role} file "
                                 f"{name} is missing")
            if name in manifest.get("checksums", {}):  # older indexes record none
                verify(path, manifest["checksums"][name], where)
        path = directory / manifest["files"]["index"]
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path} is not a readable FAISS index (truncated or damaged): "
                             f"{str(exc).strip().splitlines()[-1]}") from None
        expected = _FAISS_TYPES[manifest["kind"]]
        if type(index).__name__ != expected or int(index.d) != manifest["dim"]:
            raise ValueError(f"{path} holds a {type(index).__name__} of {index.d}-d vectors, "
                             f"but {where} describes a {manifest['kind']} index ({expected}) of "
                             f"{manifest['dim']}-d vectors: the files do not belong together")
        texts = None
        if "texts" in manifest["files"]:
            texts = read_json(directory / manifest["files"]["texts"])
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{directory / manifest['files']['texts']} must hold a JSON "
                                 f"list of strings, one per vector")
        if int(index.ntotal) != manifest["n"] or (texts is not None and len(texts) != index.ntotal):
            raise ValueError(f"the index in {directory} is damaged: its files disagree on the "
                             f"number of vectors ({where}: {manifest['n']}, {path.name}: "
                             f"{index.ntotal}" + ("" if texts is None else
                                                  f", texts: {len(texts)}") + ")")
        if manifest["kind"] == "ivf":
            index.nprobe = manifest["params"]["nprobe"]
        elif manifest["kind"] == "hnsw":
            index.hnsw.efSearch = manifest["params"]["ef_search"]
        return cls(index, manifest["kind"], manifest["params"], texts, manifest.get("model_id"),
                   manifest["items"])

    def __repr__(self) -> str:
        return (f"EmbeddingIndex(items={self.items!r}, kind={self.kind!r}, n={len(self)}, "
                f"dim={self.dim}, {self.params})")


# ------------------------------------------------------------------------------- internals


def _vectors(x, dim: int | None, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if x.dtype.kind not in "f":
        raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} are {x.shape[1]} wide but the index holds {dim}-d vectors")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x).all(axis=1)).sum())
        raise ValueError(f"{name} hold NaN or inf in {bad} row(s)")
    x = np.array(x, dtype=np.float32, order="C")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} hold {int((norms == 0).sum())} all-zero row(s), which have no "
                         f"direction to compare")
    return x / norms


def _texts(texts, n: int) -> list | None:
    if texts is None:
        return None
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, one per vector, not one string")
    texts = [str(t) for t in texts]
    if len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} vectors: give one per vector")
    return texts


def _whole(value, name: str, least: int) -> int:
    """`value` as an integer of at least `least`, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _no_params(params: dict, kind: str) -> None:
    if params:
        raise TypeError(f"unknown parameter(s) for kind {kind!r}: {sorted(params)}")


def _calibrate(index, x: np.ndarray, target: float, rng) -> int:
    """The smallest power-of-two ``nprobe`` at which held-out queries find at least `target`
    of their exact 10 nearest neighbours.  The queries are data vectors searched leave-one-out
    (each one's own row dropped from both answers), so they are as hard as new queries from the
    data's distribution, not the trivially easy copies of indexed rows."""
    faiss = _faiss()
    picks = rng.choice(len(x), size=min(len(x), 300), replace=False)
    queries = x[picks]
    k = min(10, len(x) - 1)
    if k < 1:
        return 1
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    truth = _drop_self(exact.search(queries, k + 1)[1], picks, k)
    nprobe = 1
    while nprobe < index.nlist:
        index.nprobe = nprobe
        found = _drop_self(index.search(queries, k + 1)[1], picks, k)
        if recall_at_k(found, truth) >= target:
            break
        nprobe *= 2
    return min(nprobe, index.nlist)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """The share of the exact top-k ids (`truth`, ``(Q, k)``) that `found` ``(Q, k)`` holds."""
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist()))
    return hits / truth.size


def _drop_self(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    return np.array([[i for i in row if i != o][:k] for row, o in zip(ids.tolist(), own)])


def _read_manifest(directory: Path) -> dict:
    """``index.json``, checked: every key the loader reads is there with a value of its kind,
    and the parameters are those of the kind (ValueError naming the file and the key)."""
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no index in {directory} (no {MANIFEST}; build one with "
                                f"`mets-fast index build`)")
    manifest = read_manifest(path, FORMAT, VERSION, what="index", readable=(1, 2),
                             remake="build it again with `mets-fast index build`",
                             not_ours=f"{directory} does not hold a mets_fast index")
    if manifest["version"] == 1:
        manifest["items"] = manifest.pop("contents", "reports")

    def bad(key, expected):
        return ValueError(f"{path} is damaged: {key} must be {expected}, got "
                          f"{manifest.get(key)!r}; build the index again with "
                          f"`mets-fast index build`")

    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("index"), str) or \
            not all(isinstance(v, str) and v and "/" not in v for v in files.values()):
        raise bad("files", "an object naming its 'index' (and 'texts') file in the directory")
    if manifest.get("kind") not in _FAISS_TYPES:
        raise bad("kind", f"one of {sorted(_FAISS_TYPES)}")
    if manifest.get("items") not in ITEMS:
        raise bad("items", f"one of {ITEMS}")
    for key in ("dim", "n"):
        if isinstance(manifest.get(key), bool) or not isinstance(manifest.get(key), int) or \
                manifest[key] < 1:
            raise bad(key, "a positive integer")
    params = manifest.get("params")
    needs = {"flat": (), "ivf": ("nlist", "nprobe"), "hnsw": ("m", "ef_search")}[manifest["kind"]]
    if not isinstance(params, dict) or any(
            isinstance(params.get(k), bool) or not isinstance(params.get(k), int)
            or params[k] < 1 for k in needs):
        raise bad("params", f"the parameters of a {manifest['kind']} index (positive integers "
                            f"{', '.join(needs) or 'none'})")
    if not isinstance(manifest.get("checksums", {}), dict):
        raise bad("checksums", "an object of file name -> size and SHA-256")
    return manifest


def _manifest_files(directory: Path) -> list:
    try:
        return list(_read_manifest(directory)["files"].values())
    except (FileNotFoundError, ValueError, KeyError):
        return []
