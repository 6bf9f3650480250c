"""Embeddings of a trained model for whatever a user has: a store's ECGs, a file of reports, WFDB
records of any rate and lead set; the indexes made of them, and the queries searched in them.
``mets-fast embed``, ``mets-fast index`` and ``python -m mets_fast.retrieve`` all go through
here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_file
from ..data.preprocess import check_compatible
from .index import EmbeddingIndex

_REPORT_CHUNK = 256  # reports per step of the progress bar


def model_id(model, template: str | None = None) -> str:
    """Names the embedding space of a trained model: its weights' hash together with the
    key of its text space (`template`: the report template by default), so an index refuses
    queries from any other model."""
    return f"{(model.run_id or 'unsaved')[:16]}-{model.text_space.key(template)[:16]}"


def embed_store(model, store, quiet: bool = False, batch_size: int = 256) -> np.ndarray:
    """The ECG embeddings ``(N, d)`` float32 of every ECG of a store, in store order."""
    from tqdm import tqdm

    if not len(store):
        raise ValueError(f"the store {store.path} is empty: no ECG to embed")
    check_compatible(store, model.settings)
    out = []
    for start in tqdm(range(0, len(store), batch_size), disable=quiet, unit="batch",
                      desc="embedding ECGs", file=sys.stderr):
        out.append(model.embed_ecgs(store.signals[start:start + batch_size]).cpu().numpy())
    return np.concatenate(out)


def embed_reports(model, reports: Sequence[str], quiet: bool = False) -> np.ndarray:
    """Report embeddings ``(N, d)``: each text through the frozen language model (with the
    report template, as in training; its cache) and the text projection."""
    from tqdm import tqdm

    reports = list(reports)
    if not reports:
        raise ValueError("no reports to embed")
    out = []
    with torch.no_grad(), tqdm(total=len(reports), disable=quiet, unit="report",
                               desc="embedding reports", file=sys.stderr) as bar:
        for start in range(0, len(reports), _REPORT_CHUNK):
            chunk = reports[start:start + _REPORT_CHUNK]
            out.append(model.encode_texts(chunk).cpu().numpy())
            bar.update(len(chunk))
    return np.concatenate(out)


def embed_records(model, paths: Sequence, quiet: bool = False) -> np.ndarray:
    """One embedding per WFDB record ``(len(paths), d)``: the record read at its own rate,
    preprocessed as the model's data were (``model.preprocess``), cut into windows of the
    model's length when longer, and the windows' embeddings averaged and normalised.  A record
    sharing no lead with the model is an error."""
    return np.concatenate([recording_query(model.embed_ecgs(model.record_windows(p)))
                           for p in paths])


def recording_query(window_embeddings) -> np.ndarray:
    """One recording's query vector ``(1, d)``: the mean of its windows' embeddings ``(n, d)``,
    normalised."""
    mean = torch.as_tensor(window_embeddings).float().mean(0)
    return F.normalize(mean, dim=0)[None].cpu().numpy()


def read_reports(path: str | os.PathLike) -> list:
    """Reports from a file: a ``.csv`` with a ``report_clean`` or ``report`` column, a
    ``.jsonl`` of objects with one of those keys, or plain text with one report per line
    (blank lines skipped)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reports file not found: {path}")
    if path.suffix in (".csv", ".jsonl"):
        table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True)
        column = next((c for c in ("report_clean", "report") if c in table), None)
        if column is None:
            raise ValueError(f"{path} has no 'report_clean' or 'report' column (columns: "
                             f"{list(table.columns)[:10]})")
        texts = [t for t in table[column].fillna("").astype(str) if t.strip()]
    else:
        texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"{path} holds no reports")
    return texts


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """`array` as float32 to a ``.npy`` file, written atomically."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"--out must name a .npy file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32))
    return path


def index_store(model, store, items: str = "reports", kind: str = "auto",
                quiet: bool = False) -> EmbeddingIndex:
    """An index of a store's distinct reports (``items="reports"``) or of its ECGs (``"ecgs"``,
    known by their ids), embedded by `model`."""
    if items == "ecgs":
        return EmbeddingIndex.build(embed_store(model, store, quiet),
                                    store.meta["id"].astype(str).tolist(), kind=kind,
                                    model_id=model_id(model), items="ecgs")
    reports = store.meta["report_clean"].fillna("").astype(str)
    texts = sorted({t for t in reports if t.strip()})
    if not texts:
        raise ValueError(f"the store {store.path} holds no reports to index")
    return index_reports(model, texts, kind, quiet)


def index_reports(model, reports: Sequence[str], kind: str = "auto",
                  quiet: bool = False) -> EmbeddingIndex:
    """An index of the distinct texts among `reports`, embedded by `model`."""
    texts = sorted(set(reports))
    return EmbeddingIndex.build(embed_reports(model, texts, quiet), texts, kind=kind,
                                model_id=model_id(model), items="reports")


def embed_queries(model, records: Sequence = (), texts: Sequence[str] = ()) -> np.ndarray:
    """Query vectors ``(n, d)``: one per WFDB record (:func:`embed_records`) or per report
    text (through the language model with the report template, as an index of reports holds
    them); give records or texts."""
    if bool(records) == bool(texts):
        raise ValueError("give WFDB records or report texts to look up (one of the two)")
    if records:
        return embed_records(model, records)
    with torch.no_grad():
        return model.encode_texts(list(texts)).cpu().numpy()
