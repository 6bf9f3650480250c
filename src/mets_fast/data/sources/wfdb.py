"""Any WFDB records, each one ECG: read at its own rate and lead set, resampled and cut to the
settings' length; its report from a CSV or from its header's comments.  Also the record reading
that the other record sources share, in this process or in spawned worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ...processes import worker_pool
from ..preprocess import DEFAULT_SETTINGS, Settings, fit_length
from ..records import read_record
from ..splits import split_groups
from ..store import store_row
from .items import Item, Source

SETTINGS = DEFAULT_SETTINGS  # 100 Hz, 10 s, the 12 leads, 50 Hz notch


def source(settings: Settings, paths: Sequence, *, seed: int = 0, workers: int = 1,
           reports: dict | None = None) -> Source:
    """The records at `paths` (see :func:`wfdb_source`)."""
    paths = list(paths)
    return Source(wfdb_source(paths, settings, seed, workers, reports), len(paths),
                  {"source": "wfdb", "seed": seed})


class Fitted(NamedTuple):
    """One record as a source needs it: the signal cut or padded to the settings' length, the
    leads it has, how many samples are real, its header comments, or the error that stopped
    it."""

    signal: np.ndarray | None
    mask: np.ndarray | None
    length: int
    comments: tuple
    error: str | None


def read_fitted(args) -> Fitted:
    """Worker: one WFDB record read, resampled and cut to length (runs in spawned processes,
    which run no parallel Numba code)."""
    path, fs, leads, samples = args
    try:
        record = read_record(path, fs=fs, leads=leads)
    except (OSError, ValueError) as exc:
        return Fitted(None, None, 0, (), f"{type(exc).__name__}: {exc}")
    return Fitted(fit_length(record.signal, samples), record.mask,
                  min(samples, record.signal.shape[1]), record.comments, None)


def read_many(tasks: list, workers: int, read=read_fitted) -> Iterable:
    """``read`` (:func:`read_fitted` by default; a module-level function, which spawned
    processes can import) over `tasks`, in order: in this process, or in `workers` spawned
    ones (:func:`~mets_fast.processes.worker_pool`: one core each, gone with this process)."""
    if workers <= 1:
        yield from map(read, tasks)
        return
    with worker_pool(workers) as pool:
        yield from pool.map(read, tasks, chunksize=16)


def wfdb_source(paths: list, settings: Settings, seed: int, workers: int,
                reports: dict | None = None):
    """Any WFDB records.  Each one's report: from `reports` (record name -> text, e.g. read by
    :func:`read_reports_csv`), else its header's comment lines (the PTB Diagnostic database
    keeps its clinical summary there), else none."""
    tasks = [(str(p), settings.fs, settings.leads, settings.samples) for p in paths]
    split = split_groups(np.arange(len(paths)), (0.8, 0.1, 0.1), seed)  # a record per patient
    for k, read in enumerate(read_many(tasks, workers)):
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


