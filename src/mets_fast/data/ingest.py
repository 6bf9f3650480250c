"""Ingesting a source into a store: :func:`write_store` drains the ECGs a source yields
(:mod:`mets_fast.data.sources`) through the preprocessing into an :class:`ECGStore`, and sums
up what it wrote and skipped.  The ``prepare`` CLI and the cache of prepared stores both write
through here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .preprocess import Settings, preprocess
from .store import StoreWriter

BATCH = 256  # ECGs cleaned and written at a time


def write_store(out: Path, source: Iterable, n_max: int, settings: Settings,
                overwrite: bool = False, quiet: bool = False, extra: dict | None = None,
                required_leads=()) -> dict:
    """Drains `source` (:class:`~mets_fast.data.sources.Item` objects) into a store at `out`;
    returns the summary (written, skipped with reasons, padded ECGs, the leads present, ECGs
    without a report, label counts).  Each lead of `required_leads` must be present in some
    ECG, else nothing is written (ValueError naming them)."""
    from tqdm import tqdm

    rows, skips, lengths = [], [], []
    with StoreWriter(out, n_max, settings.leads, settings.samples, settings.fs, settings.dtype,
                     preprocessing={**settings.as_dict(), **(extra or {})},
                     overwrite=overwrite) as writer:
        batch: list = []

        def flush():
            if batch:
                start, stop = len(rows), len(rows) + len(batch)
                real = np.array([settings.samples if i.length is None else i.length
                                 for i in batch])
                writer.signals[start:stop] = preprocess(np.stack([i.signal for i in batch]),
                                                        settings, lengths=real)
                for k, item in enumerate(batch):
                    if item.mask is not None:
                        writer.lead_mask[start + k] = item.mask
                rows.extend(i.row for i in batch)
                lengths.extend(real)
                batch.clear()
                if stop % (16 * BATCH) == 0:
                    writer.release(stop)

        for item in tqdm(source, total=n_max, disable=quiet, unit="ecg",
                         desc=f"preparing {out.name}"):
            if item.signal is None:
                skips.append(item.row)
                continue
            batch.append(item)
            if len(batch) == BATCH:
                flush()
        flush()
        if not rows:
            detail = f"; the first error: {skips[0]['skip']}" if skips else ""
            raise ValueError(f"no ECG could be prepared for {out} ({len(skips)} skipped"
                             f"{detail})")
        present = writer.lead_mask[:len(rows)].sum(0)
        absent = [lead for lead, k in zip(settings.leads, present) if not k and lead in
                  set(required_leads)]
        if absent:
            raise ValueError(f"no record has the lead(s) {absent} (asked for with --leads; "
                             f"--allow-missing-leads stores them as zeros)")
        writer.shrink(len(rows))
        meta = pd.DataFrame(rows)
        writer.set_meta(meta)
    summary = summarize(meta, skips)
    summary["padded"] = int((np.asarray(lengths) < settings.samples).sum())
    summary["leads_present"] = {lead: int(k) for lead, k in zip(settings.leads, present)}
    return summary


def summarize(meta: pd.DataFrame, skipped: list) -> dict:
    summary = {"written": len(meta), "skipped": len(skipped),
               "skip_reasons": Counter(s["skip"].split(":")[0] for s in skipped),
               "skipped_ids": [s["id"] for s in skipped[:20]],
               "first_error": skipped[0]["skip"] if skipped else None,
               "splits": dict(Counter(meta["split"])) if len(meta) else {},
               "no_report": int((meta["report_clean"].astype(str).str.strip() == "").sum())
               if len(meta) else 0}
    for family in ("superclass", "rhythm", "form"):
        if family in meta and len(meta):
            summary[family] = dict(Counter(c for ls in meta[family] for c in ls).most_common())
    return summary
