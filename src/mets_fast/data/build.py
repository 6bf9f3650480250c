"""Stores from ECG sources: the record sources (PTB-XL, MIT-BIH, any WFDB records, the
synthetic corpus) and :func:`write_store`, which drains one into an :class:`ECGStore`.  The
``prepare`` CLI and the trainer's cached stores both build through here."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..signal import resampled_length, to_samples
from .preprocess import Settings, fit_length, preprocess
from .records import STANDARD_LEADS, read_record, select_leads
from .splits import split_groups
from .store import LABEL_COLUMNS, StoreWriter, store_row

BATCH = 256  # ECGs cleaned and written at a time


class Item(NamedTuple):
    """What a source yields per ECG: the signal ``(leads, samples)`` float32 at the settings'
    rate and length, its metadata row, which leads it really has (None: all) and how many of
    its samples are real (None: all; the rest is zero padding).  A record that could not be
    read is ``Item(None, {"id": ..., "skip": reason})``."""

    signal: np.ndarray | None
    row: dict
    mask: np.ndarray | None = None
    length: int | None = None


def skipped(name: str, exc: Exception) -> Item:
    return Item(None, {"id": name, "skip": f"{type(exc).__name__}: {exc}"})


class _Read(NamedTuple):
    signal: np.ndarray | None
    mask: np.ndarray | None
    length: int
    comments: tuple
    error: str | None


def _read_one(args) -> _Read:
    """Worker: one WFDB record read, resampled and cut to length (runs in spawned processes,
    which run no parallel Numba code)."""
    path, fs, leads, samples = args
    try:
        record = read_record(path, fs=fs, leads=leads)
    except (OSError, ValueError) as exc:
        return _Read(None, None, 0, (), f"{type(exc).__name__}: {exc}")
    return _Read(fit_length(record.signal, samples), record.mask,
                 min(samples, record.signal.shape[1]), record.comments, None)


def _map_records(tasks: list, workers: int) -> Iterable:
    if workers <= 1:
        yield from map(_read_one, tasks)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_read_one, tasks, chunksize=16)


def ptbxl_source(root: Path, meta: pd.DataFrame, settings: Settings, rate: int | None,
                 workers: int):
    """The records of `meta` (read_ptbxl's table of the data set at `root`)."""
    rate = rate or (500 if settings.fs > 100 else 100)
    column = {100: "filename_lr", 500: "filename_hr"}[rate]
    tasks = [(str(root / f), settings.fs, settings.leads, settings.samples) for f in meta[column]]
    keep = ["id", "patient", "report", "report_clean", "split", "source", "superclass",
            "subclass", "form", "rhythm", "strat_fold"]
    rows = meta[keep].to_dict("records")
    for row, read in zip(rows, _map_records(tasks, workers)):
        yield Item(read.signal, row, read.mask, read.length) if read.error is None else \
            Item(None, {"id": row["id"], "skip": read.error})


MITBIH_WINDOWS = ("beats", "consecutive")
PER_SYMBOL = 300  # beat-centred windows kept per annotation symbol and record


def mitbih_source(root: Path, settings: Settings, seed: int, step: float | None = None,
                  windows: str = "beats", per_symbol: int = PER_SYMBOL):
    """MIT-BIH-format records (a ``.hea``/``.dat``/``.atr`` triple each) under `root`, split by
    record: validation records drawn (:func:`~mets_fast.data.mitbih.validation_records`) so
    that every METS beat class has beats on both sides where the records allow; the rest
    train (unseen patients are the test: there is no test split).

    `windows`: ``"beats"`` (the default, what the trainer uses): a window of
    ``settings.seconds`` centred on each beat, at most `per_symbol` beats of each annotation
    symbol per record (seeded), reported by its centre beat and rhythm
    (:func:`~mets_fast.data.mitbih.beat_report`), and labelled with its centre beat's METS
    class (column ``beat``: a list of one class, or empty); ``"consecutive"``: back-to-back windows (every `step` seconds)
    with reports of everything annotated in them (:func:`~mets_fast.data.mitbih.mitbih_windows`).
    """
    from .mitbih import (BEAT_SYMBOLS, beat_labels, beat_report, beat_windows, mitbih_windows,
                         read_mitbih)

    if windows not in MITBIH_WINDOWS:
        raise ValueError(f"windows must be one of {MITBIH_WINDOWS}, got {windows!r}")
    headers = mitbih_headers(root)
    held_out = set(mitbih_validation(headers, seed))
    for header in headers:
        name = header.stem
        try:
            rec = read_mitbih(header.with_suffix(""), fs=settings.fs)
        except (OSError, ValueError) as exc:
            yield skipped(f"mitbih-{name}", exc)
            continue
        split = "val" if name in held_out else "train"
        if windows == "beats":
            cut = beat_windows(rec, settings.samples, symbols="".join(sorted(BEAT_SYMBOLS)),
                               per_symbol=per_symbol, seed=seed)
            signals, mask = select_leads(cut.windows, rec.record.leads, settings.leads)
            for k, (centre, symbol, label) in enumerate(zip(cut.centres, cut.symbols,
                                                             cut.labels)):
                yield Item(signals[k], store_row(
                    f"mitbih-{name}-{int(centre)}", beat_report(rec, int(centre), symbol),
                    split, "mitbih", **beat_labels(rec, int(centre), symbol), patient=name,
                    beat=[label] if isinstance(label, str) else [],
                    start=int(centre) - settings.samples // 2), mask)
        else:
            cut, meta = mitbih_windows(rec, settings.seconds, step)
            signals, mask = select_leads(cut, rec.record.leads, settings.leads)
            for k, row in enumerate(meta.to_dict("records")):
                yield Item(signals[k], store_row(
                    f"mitbih-{name}-{row['start']}", row["report"], split, "mitbih",
                    **{f: row[f] for f in LABEL_COLUMNS}, patient=name, start=row["start"]),
                    mask)


def mitbih_headers(root: Path) -> list:
    """The headers of the MIT-BIH-format records under `root` (those with annotations)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIT-BIH folder not found: {root}")
    headers = [h for h in sorted(root.glob("*.hea")) if h.with_suffix(".atr").is_file()]
    if not headers:
        raise FileNotFoundError(f"{root} holds no MIT-BIH records (a .hea with its .atr)")
    return headers


def mitbih_validation(headers: list, seed: int) -> list:
    """The records :func:`mitbih_source` holds out for validation (by their annotations)."""
    from .mitbih import METS_CLASSES, validation_records

    counts = {}
    for h in headers:
        classes: Counter = Counter()
        for symbol, k in beat_symbols(h).items():
            if symbol in METS_CLASSES:
                classes[symbol] += k
        counts[h.stem] = classes
    return validation_records(counts, seed=seed)


def beat_symbols(header: Path) -> Counter:
    """Beats per annotation symbol of a record, from its annotations alone."""
    import wfdb

    from .mitbih import BEAT_SYMBOLS

    try:
        symbols = wfdb.rdann(str(header.with_suffix("")), "atr").symbol
    except Exception:  # the reader reports the bad record when it gets there
        return Counter()
    return Counter(s for s in symbols if s in BEAT_SYMBOLS)


def wfdb_source(paths: list, settings: Settings, seed: int, workers: int,
                reports: dict | None = None):
    """Any WFDB records.  Each one's report: from `reports` (record name -> text, e.g. read by
    :func:`read_reports_csv`), else its header's comment lines (the PTB Diagnostic database
    keeps its clinical summary there), else none."""
    tasks = [(str(p), settings.fs, settings.leads, settings.samples) for p in paths]
    split = split_groups(np.arange(len(paths)), (0.8, 0.1, 0.1), seed)  # a record per patient
    for k, read in enumerate(_map_records(tasks, workers)):
        stem = Path(paths[k]).name.removesuffix(".hea")
        name = f"wfdb-{stem}"
        if read.error is not None:
            yield Item(None, {"id": name, "skip": read.error})
            continue
        report = (reports or {}).get(stem) or (reports or {}).get(str(paths[k])) or \
            ". ".join(c.strip() for c in read.comments if c.strip())
        yield Item(read.signal, store_row(name, report, split[k], "wfdb", record=str(paths[k])),
                   read.mask, read.length)


def read_reports_csv(path: Path) -> dict:
    """A CSV of ``record`` and ``report`` columns as {record: report} (the record as given to
    prepare, or its name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reports file not found: {path}")
    table = pd.read_csv(path, dtype=str).fillna("")
    missing = {"record", "report"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} needs the columns 'record' and 'report'; it lacks "
                         f"{sorted(missing)} (columns: {list(table.columns)[:10]})")
    return {Path(r).name.removesuffix(".hea") if "/" in r else r: t
            for r, t in zip(table["record"], table["report"])}


def write_store(out: Path, source: Iterable, n_max: int, settings: Settings,
                overwrite: bool = False, quiet: bool = False, extra: dict | None = None,
                required_leads=()) -> dict:
    """Drains `source` (:class:`Item`s) into a store at `out`; returns the summary (written,
    skipped with reasons, padded ECGs, the leads present, ECGs without a report, label
    counts).  Each lead of `required_leads` must be present in some ECG, else nothing is
    written (ValueError naming them)."""
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


def count_windows(header: Path, settings: Settings, step: float | None) -> int:
    """Windows a MIT-BIH record will give, from its header alone (the length the reader will
    produce, resampled)."""
    import wfdb

    try:
        h = wfdb.rdheader(str(header.with_suffix("")))
    except Exception:  # the reader reports the bad record when it gets there
        return 0
    n = resampled_length(h.sig_len, h.fs, settings.fs)
    width = settings.samples
    hop = to_samples(step or settings.seconds, settings.fs)
    return max(0, (n - width) // hop + 1)




class Source(NamedTuple):
    """A record source ready for :func:`write_store`: the ``(signal, row)`` items, an upper
    bound of their count, and what the store's manifest records about where they came from."""

    items: Iterable
    n_max: int
    extra: dict


SOURCES = ("synthetic", "ptbxl", "mitbih", "wfdb")


def open_source(kind: str, settings: Settings, *, root: Path | None = None,
                paths: Sequence | None = None, n: int = 10000, seed: int = 0,
                workers: int = 1, rate: int | None = None, step: float | None = None,
                windows: str = "beats", reports: dict | None = None) -> Source:
    """The source of one kind (``"synthetic"``: `n` ECGs of the embedded corpus; ``"ptbxl"``
    and ``"mitbih"``: the data set at `root`; ``"wfdb"``: the records at `paths`)."""
    extra = {"source": kind, "seed": seed}
    if kind == "synthetic":
        from .synthetic import synthetic_batches

        unknown = [x for x in settings.leads if x not in STANDARD_LEADS]
        if unknown:
            raise ValueError(f"the synthetic corpus has the 12 standard leads "
                             f"{list(STANDARD_LEADS)}; {unknown} are not among them")
        index = [STANDARD_LEADS.index(x) for x in settings.leads]

        def items():
            for part in synthetic_batches(n, seed=seed, fs=settings.fs,
                                          seconds=settings.seconds):
                for k, row in enumerate(part.meta.to_dict("records")):
                    yield Item(part.signals[k, index], row)

        return Source(items(), n, extra)
    if kind == "ptbxl":
        from .ptbxl import read_ptbxl

        meta = read_ptbxl(root)
        return Source(ptbxl_source(Path(root), meta, settings, rate, workers), len(meta), extra)
    if kind == "mitbih":
        from .mitbih import BEAT_SYMBOLS

        headers = mitbih_headers(root)
        if windows == "beats":
            n_max = sum(min(k, PER_SYMBOL) for h in headers
                        for s, k in beat_symbols(h).items() if s in BEAT_SYMBOLS)
        else:
            n_max = sum(count_windows(h, settings, step) for h in headers)
        extra["windows"] = windows
        return Source(mitbih_source(Path(root), settings, seed, step, windows), n_max, extra)
    if kind == "wfdb":
        return Source(wfdb_source(list(paths), settings, seed, workers, reports), len(paths),
                      extra)
    raise ValueError(f"unknown source {kind!r}; expected one of {SOURCES}")
