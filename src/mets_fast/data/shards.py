"""Preparing a corpus of records too large for one pass of one process (MIMIC-IV-ECG's 800,035
ECGs) into a store: in shards, in parallel, in flat memory, resumably.

The records are cut into contiguous shards of ``shard_size``.  Each shard is read, preprocessed
(in chunks of :data:`CHUNK`, so the result does not depend on who prepares it) and written by one
process, this one or one of ``workers`` spawned ones (their Numba kernels on one thread each),
into a file of its own in a work folder beside the store, ``.<store>.partial/``.  A shard is
committed when its rows are on disk and its index (which records it kept, their lead masks and
real lengths, why the others were skipped) has been renamed into place; a process killed at any
moment loses at most the shards it was writing, and ``resume=True`` prepares only those.

As shards are committed, their rows are appended in order to the store's ``signals.npy`` (by
the kernel, ``os.copy_file_range``: no copy through this process's memory), while the others are
still being prepared, each shard file deleted once the progress file says it is in (so the disk
holds the store and a few shards, never the corpus twice).  At the end the metadata is the
source's columns at the kept rows, the store is renamed into place and the work folder removed.  The
result is the same, byte for byte (signals, metadata, lead mask), whatever ``workers`` and
however often the run was killed and resumed.

Memory: the parent holds the metadata columns and the record paths, a worker one chunk of
records; neither grows with the shards written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from ..atomic import atomic_file, commit_dir, fsync_dir, lock, write_text
from ..processes import worker_pool
from .summary import check_leads, check_written, summarize
from .preprocess import Settings, preprocess
from .store import check_meta, check_replaceable, cut_npy, new_manifest, write_parts

CHUNK = 256  # records read and preprocessed at a time within a shard
SHARD_SIZE = 1024
PLAN = 1  # the work folder's layout; a folder of another layout is not resumed


class ShardedSource(NamedTuple):
    """A corpus prepared by :func:`write_sharded`: one record path per row of `meta` (the
    store's metadata columns, :data:`~mets_fast.data.store.REQUIRED_COLUMNS` and any others), a
    module-level `read` taking ``(path, fs, leads, samples)`` and returning a
    :class:`~mets_fast.data.sources.wfdb.Fitted` (spawned processes import it), the records
    dropped before reading (``{"id", "skip"}`` each, for the summary) and what the manifest
    records about the source."""

    records: list
    meta: pd.DataFrame
    read: Callable
    skipped: list
    extra: dict


class _Shard(NamedTuple):
    index: int
    records: list
    settings: Settings
    read: Callable
    folder: str


def write_sharded(out: Path, source: ShardedSource, settings: Settings, *, workers: int = 1,
                  shard_size: int = SHARD_SIZE, resume: bool = False, overwrite: bool = False,
                  quiet: bool = False, required_leads=()) -> dict:
    """Prepares `source` into a store at `out` (see the module's description); returns the
    summary of :func:`~mets_fast.data.ingest.write_store`.

    A work folder left by an interrupted run is continued with `resume` (when it was started
    with the same records, settings and shard size; else it is an error, or with `overwrite`
    discarded) and discarded with `overwrite` alone; with neither it is an error.  `resume`
    where the store is already complete returns the summary of a run that wrote nothing
    (``written`` None), unless `overwrite` asks for it to be made again.  Data that cannot be
    prepared is a ValueError, and removes the work folder; an interruption (a kill, Ctrl-C, a
    full disk) keeps it for `resume`."""
    out = Path(out)
    if len(source.records) != len(source.meta):
        raise ValueError(f"{len(source.records)} records for {len(source.meta)} metadata rows")
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    work = out.with_name(f".{out.name}.partial")
    if out.exists() and not overwrite and not (work / "plan.json").is_file():
        if resume:
            return {"written": None}
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    check_replaceable(out)
    work.mkdir(parents=True, exist_ok=True)
    held = lock(work, f"preparing {out}")
    try:
        plan = {"layout": PLAN, "settings": settings.as_dict(), "extra": source.extra,
                "shard_size": int(shard_size), "records": _digest(source.records)}
        if (work / "plan.json").is_file():
            same = json.loads((work / "plan.json").read_text()) == plan
            if resume and same and _committed(work):  # killed after its store was in place
                if out.exists() and not overwrite:
                    shutil.rmtree(work)
                    return {"written": None}
                _clear(work)  # that store is gone, or to be made again
            if resume and not same and not overwrite:
                raise FileExistsError(f"{work} was started with other records or settings "
                                      f"than these: pass --overwrite to start over")
            if not resume and not overwrite:
                raise FileExistsError(f"{work} holds an interrupted preparation of {out}: pass "
                                      f"--resume to continue it or --overwrite to start over")
            elif not (resume and same):
                _clear(work)
        if not (work / "plan.json").is_file():
            (work / "shards").mkdir(exist_ok=True)
            write_text(work / "plan.json", json.dumps(plan))
        try:
            n_shards = -(-len(source.records) // shard_size)
            appender = _Appender(work, n_shards, (len(source.records), len(settings.leads),
                                                  settings.samples), settings.dtype)
            _prepare_shards(work, source, settings, workers, shard_size, quiet, out.name,
                            appender)
            summary = _finish(work, out, source, settings, shard_size, required_leads,
                              appender)
        except ValueError:
            shutil.rmtree(work, ignore_errors=True)
            raise
    finally:
        os.close(held)
    return summary


def _committed(work: Path) -> bool:
    """Whether the run of `work` had renamed its store into place when it was killed (its
    appending began, and the store folder it appended into is gone)."""
    return (work / "appended.json").is_file() and not (work / "store").exists()


def _clear(work: Path) -> None:
    for entry in work.iterdir():
        if entry.name != ".lock":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _digest(records: list) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(str(r).encode() + b"\n")
    return h.hexdigest()


def _index_file(work: Path, s: int) -> Path:
    return work / "shards" / f"{s:06d}.npz"


def _rows_file(work: Path, s: int) -> Path:
    return work / "shards" / f"{s:06d}.rows"


def _prepare_shards(work: Path, source: ShardedSource, settings: Settings, workers: int,
                    shard_size: int, quiet: bool, name: str, appender: "_Appender") -> None:
    from tqdm import tqdm

    n = len(source.records)
    shards = [_Shard(s, source.records[a:a + shard_size], settings, source.read,
                     str(work / "shards"))
              for s, a in enumerate(range(0, n, shard_size))
              if not _index_file(work, s).is_file()]
    done = n - sum(len(s.records) for s in shards)
    with tqdm(total=n, initial=done, disable=quiet, unit="ecg",
              desc=f"preparing {name}") as bar:
        if workers <= 1 or len(shards) <= 1:
            for shard in shards:
                bar.update(prepare_shard(shard))
                appender.catch_up()
        else:
            _in_parallel(shards, min(workers, len(shards)), bar, appender)


def _in_parallel(shards: list, workers: int, bar, appender: "_Appender") -> None:
    """`shards` prepared by this process and ``workers - 1`` spawned ones, each taking the
    next shard when it is done with one (this process works from the start, while the others
    start up and import; a feeding thread hands the spawned ones their shards and appends the
    committed ones to the store, its disk writes overlapping the work)."""
    from ..threads import numeric_threads

    queue, lock, failed = iter(shards), threading.Lock(), threading.Event()

    def take():
        with lock:
            return None if failed.is_set() else next(queue, None)

    def feed(pool) -> list:
        running, finished = set(), []
        for shard in filter(None, (take() for _ in range(workers - 1))):
            running.add(pool.submit(prepare_shard, shard))
        while running:
            ready, running = wait(running, return_when=FIRST_COMPLETED)
            for future in ready:
                finished.append(future)
                if future.exception() is not None:
                    failed.set()
                    continue
                bar.update(future.result())
                appender.catch_up()
                shard = take()
                if shard is not None:
                    running.add(pool.submit(prepare_shard, shard))
        return finished

    with worker_pool(workers - 1) as pool:
        with ThreadPoolExecutor(1) as feeder:
            fed = feeder.submit(feed, pool)
            try:
                with numeric_threads(1):  # one core of the `workers`, as each spawned one
                    for shard in iter(take, None):  # (the feeder appends: this one works)
                        bar.update(prepare_shard(shard))
            finally:
                failed.set()  # whatever ended this loop, no more shards are handed out
            for future in fed.result():
                future.result()  # a worker's error, raised here


def prepare_shard(shard: _Shard) -> int:
    """Worker: reads, preprocesses and writes one shard (its kept rows to ``NNNNNN.rows``,
    then its index ``NNNNNN.npz``, the commit); returns its number of records.  A record
    whose preprocessed signal holds NaN or inf (beyond +-65504 in a float16 store) is skipped
    with that reason, as an unreadable one is: one record must not stop a corpus."""
    settings, folder = shard.settings, Path(shard.folder)
    kept, masks, lengths, errors = [], [], [], []
    with open(folder / f"{shard.index:06d}.rows", "wb") as rows:
        for a in range(0, len(shard.records), CHUNK):
            batch = []
            for k, path in enumerate(shard.records[a:a + CHUNK], start=a):
                fitted = shard.read((path, settings.fs, settings.leads, settings.samples))
                if fitted.error is not None:
                    errors.append((k, fitted.error))
                else:
                    batch.append((k, fitted))
            if not batch:
                continue
            x = preprocess(np.stack([f.signal for _, f in batch]), settings,
                           lengths=np.array([f.length for _, f in batch]))
            with np.errstate(over="ignore"):  # an overflow is found and reported below
                x = np.ascontiguousarray(x, dtype=settings.dtype)
            finite = np.isfinite(x).reshape(len(x), -1).all(1)
            for (k, fitted), ok in zip(batch, finite):
                if not ok:
                    errors.append((k, f"ValueError: holds NaN or inf after preprocessing "
                                      f"(beyond +-65504 in {settings.dtype}: rescale it, or "
                                      f"store float32)"))
                    continue
                kept.append(k)
                masks.append(np.ones(len(settings.leads), bool) if fitted.mask is None
                             else fitted.mask)
                lengths.append(fitted.length)
            rows.write(x[finite].tobytes())
        rows.flush()
        os.fsync(rows.fileno())
    errors.sort()
    with atomic_file(folder / f"{shard.index:06d}.npz", suffix=".npz") as tmp:
        np.savez(tmp, kept=np.array(kept, np.int64),
                 mask=np.array(masks, bool).reshape(len(kept), len(settings.leads)),
                 length=np.array(lengths, np.int64),
                 skipped=np.array([k for k, _ in errors], np.int64),
                 error=np.array([e for _, e in errors], dtype=str))
    return len(shard.records)


def _finish(work: Path, out: Path, source: ShardedSource, settings: Settings,
            shard_size: int, required_leads, appender: "_Appender") -> dict:
    """Appends what is left of the shards' rows into the store, writes its metadata, mask and
    manifest, and renames it into place."""
    n_shards = appender.n_shards
    kept, masks, lengths, skipped = [], [], [], list(source.skipped)
    for s in range(n_shards):
        with np.load(_index_file(work, s)) as index:
            kept.append(index["kept"] + s * shard_size)
            masks.append(index["mask"])
            lengths.append(index["length"])
            skipped.extend({"id": source.meta["id"].iloc[s * shard_size + k], "skip": str(e)}
                           for k, e in zip(index["skipped"], index["error"]))
    kept, mask = np.concatenate(kept), np.concatenate(masks)
    check_written(out, len(kept), skipped)
    check_leads(settings.leads, mask, required_leads)
    meta = check_meta(source.meta.iloc[kept], len(kept))
    store = appender.finish(len(kept))
    manifest = new_manifest(len(kept), settings.leads, settings.samples, settings.fs,
                            settings.dtype, {**settings.as_dict(), **source.extra})
    write_parts(store, manifest, meta, mask)
    commit_dir(store, out)
    shutil.rmtree(work)
    summary = summarize(meta, skipped)
    summary["padded"] = int((np.concatenate(lengths) < settings.samples).sum())
    summary["leads_present"] = {lead: int(k) for lead, k in zip(settings.leads, mask.sum(0))}
    return summary


class _Appender:
    """The store's ``signals.npy`` in the making: the committed shards' rows appended in
    order as they come in (so the writing overlaps the preparation), each shard file deleted
    once ``appended.json`` (shards and bytes in) records it; a killed run resumes from there.
    Its header claims every record until :meth:`finish` cuts it to those kept."""

    def __init__(self, work: Path, n_shards: int, most: tuple, dtype: str):
        self.work, self.n_shards = work, n_shards
        self.store = work / "store"
        self.store.mkdir(exist_ok=True)
        self.target, self.progress = self.store / "signals.npy", work / "appended.json"
        if self.progress.is_file():
            self.state = json.loads(self.progress.read_text())
        else:
            header = _npy_header(most, dtype)
            with atomic_file(self.target) as tmp:
                tmp.write_bytes(header)
            self.state = {"shards": 0, "bytes": len(header)}
            write_text(self.progress, json.dumps(self.state))
        with open(self.target, "r+b") as dest:
            dest.truncate(self.state["bytes"])  # what a killed append left past its record
        for s in range(self.state["shards"]):
            _rows_file(work, s).unlink(missing_ok=True)
        self._lock = threading.Lock()

    def catch_up(self) -> None:
        """Appends every committed shard that follows the last one in."""
        with self._lock, open(self.target, "r+b") as dest:
            while self.state["shards"] < self.n_shards and \
                    _index_file(self.work, self.state["shards"]).is_file():
                s = self.state["shards"]
                rows = _rows_file(self.work, s)
                with open(rows, "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    _copy(src.fileno(), dest.fileno(), size, self.state["bytes"])
                os.fsync(dest.fileno())
                self.state = {"shards": s + 1, "bytes": self.state["bytes"] + size}
                write_text(self.progress, json.dumps(self.state))
                rows.unlink()

    def finish(self, n: int) -> Path:
        """The folder of the store, its signals holding all the `n` rows kept."""
        self.catch_up()
        if self.state["shards"] != self.n_shards:
            raise RuntimeError(f"{self.n_shards - self.state['shards']} shard(s) of "
                               f"{self.work} were never committed")
        cut_npy(self.target, n)
        fsync_dir(self.work / "shards")
        return self.store


def _npy_header(shape: tuple, dtype: str) -> bytes:
    """The header numpy writes for an array of `shape` and `dtype` (``.npy`` format 1.0)."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(int(v) for v in shape)})
    return buffer.getvalue()


def _copy(src: int, dest: int, size: int, offset: int) -> None:
    """`size` bytes of `src` from its start to `dest` at `offset`, in the kernel where it can
    (``copy_file_range``), else through a buffer."""
    done = 0
    while done < size:
        try:
            step = os.copy_file_range(src, dest, size - done, done, offset + done)
        except (AttributeError, OSError):
            step = 0
        if step == 0:
            data = os.pread(src, min(size - done, 1 << 24), done)
            step = os.pwrite(dest, data, offset + done)
        done += step
