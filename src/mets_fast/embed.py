"""Embeddings of a trained model for whatever a user has: a store's ECGs, a file of reports, WFDB
records of any rate and lead set; and ``mets-fast embed``, which writes them to a ``.npy``.

    mets-fast embed --model runs/x --store stores/ptbxl --out ecgs.npy
    mets-fast embed --model runs/x --reports reports.txt --out reports.npy
    mets-fast embed --model runs/x rec1 rec2 --out records.npy
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def model_id(model, template: str | None = None) -> str:
    """Names the embedding space of a trained model: its weights' hash together with the
    cache key of its text encoder's space (`template`: the report template by default), so an
    index refuses queries from any other model."""
    from .text import REPORT_TEMPLATE
    from .text.encoder import space_key

    text = model.text
    space = space_key(text.get("identity", ""), text.get("pooling", "mean"),
                      int(text.get("max_length", 256)),
                      text.get("template", REPORT_TEMPLATE) if template is None else template,
                      text.get("dtype", "float32"))
    return f"{getattr(model, 'run_id', 'unsaved')[:16]}-{space[:16]}"


def embed_store(model, store, quiet: bool = False, batch_size: int = 256) -> np.ndarray:
    """The ECG embeddings ``(N, d)`` float32 of every ECG of a store, in store order."""
    from tqdm import tqdm

    from .evaluation.datasets import check_compatible

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
    reports = list(reports)
    if not reports:
        raise ValueError("no reports to embed")
    if not quiet:
        print(f"embedding {len(reports)} reports ...", file=sys.stderr, flush=True)
    with torch.no_grad():
        return model.encode_texts(reports).cpu().numpy()


def embed_records(model, paths: Sequence, quiet: bool = False) -> np.ndarray:
    """One embedding per WFDB record ``(len(paths), d)``: the record read at its own rate,
    preprocessed as the model's data were (``model.preprocess``), cut into windows of the
    model's length when longer, and the windows' embeddings averaged and normalised.  A record
    sharing no lead with the model is an error."""
    from .data.records import read_record

    out = []
    for path in paths:
        rec = read_record(path)
        if not set(rec.leads) & set(model.settings.leads):
            raise ValueError(f"record {path} has the leads {list(rec.leads)}, none of which the "
                             f"model takes ({list(model.settings.leads)})")
        windows = model.preprocess(rec.signal, rec.fs, rec.leads, windows=True)
        out.append(F.normalize(model.embed_ecgs(windows).mean(0), dim=0))
    return torch.stack(out).cpu().numpy()


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
    """`array` to a ``.npy`` file, written to a temporary name and renamed."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"--out must name a .npy file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32))
    os.replace(tmp, path)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mets-fast embed", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--store", help="embed every ECG of this store (in store order)")
    source.add_argument("--reports", help="embed the reports of this file (.txt one per line, "
                                          ".csv or .jsonl with a report column)")
    parser.add_argument("records", nargs="*", metavar="RECORD",
                        help="WFDB records to embed (one vector per record)")
    parser.add_argument("--out", required=True, help="the .npy file to write (N, d) float32")
    parser.add_argument("--threads", type=int, help="threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [bool(args.store), bool(args.reports), bool(args.records)]
    if sum(chosen) != 1:
        print("error: give exactly one of --store, --reports or records", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from .data.store import ECGStore
    from .model import load

    try:
        model = load(args.model)
        if args.store:
            emb = embed_store(model, ECGStore.open(args.store), args.quiet)
        elif args.reports:
            emb = embed_reports(model, read_reports(args.reports), args.quiet)
        else:
            emb = embed_records(model, args.records, args.quiet)
        path = save_npy(args.out, emb)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{emb.shape[0]} embeddings of {emb.shape[1]} written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
