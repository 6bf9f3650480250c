"""Ingesting a source into a store: :func:`write_store` drains the ECGs a source yields
(:mod:`mets_fast.data.sources`) through the preprocessing into an :class:`ECGStore`, and sums
up what it wrote and skipped; a corpus too large for that goes through
:func:`~mets_fast.data.shards.write_sharded`.  The ``prepare`` CLI and the cache of prepared
stores both write through :func:`write_source`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .preprocess import Settings, preprocess
from .shards import ShardedSource, write_sharded
from .store import StoreWriter
from .summary import check_leads, check_written, summarize

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
        check_written(out, len(rows), skips)
        check_leads(settings.leads, writer.lead_mask[:len(rows)], required_leads)
        present = writer.lead_mask[:len(rows)].sum(0)
        writer.shrink(len(rows))
        meta = pd.DataFrame(rows)
        writer.set_meta(meta)
    summary = summarize(meta, skips)
    summary["padded"] = int((np.asarray(lengths) < settings.samples).sum())
    summary["leads_present"] = {lead: int(k) for lead, k in zip(settings.leads, present)}
    return summary


def write_source(out: Path, source, settings: Settings, *, workers: int = 1,
                 overwrite: bool = False, resume: bool = False, shard_size: int | None = None,
                 quiet: bool = False, extra: dict | None = None, required_leads=()) -> dict:
    """`source` (a :class:`~mets_fast.data.sources.Source` or a
    :class:`~mets_fast.data.shards.ShardedSource`) prepared into a store at `out`; returns the
    summary.  `workers` prepare a sharded source's shards (a plain source's record readers
    were chosen when it was opened); `resume` continues a sharded source's interrupted run (a
    plain source has none: it is prepared from the start); `shard_size` applies to a sharded
    source only (ValueError otherwise); `extra` is added to what the manifest records about
    the source."""
    if isinstance(source, ShardedSource):
        source = source._replace(extra={**source.extra, **(extra or {})})
        return write_sharded(out, source, settings, workers=workers, overwrite=overwrite,
                             resume=resume, quiet=quiet, required_leads=required_leads,
                             **({} if shard_size is None else {"shard_size": shard_size}))
    if shard_size is not None:
        raise ValueError("shard sizes apply to sources prepared in shards (mimic-iv-ecg)")
    return write_store(out, source.items, source.n_max, settings, overwrite, quiet,
                       {**source.extra, **(extra or {})}, required_leads=required_leads)
