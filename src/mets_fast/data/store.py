"""The ECG store: preprocessed signals in one memory-mapped array, metadata beside them.

A store is a directory::

    manifest.json   format name and version, N, leads, samples, fs, dtype, preprocessing
    signals.npy     (N, leads, samples) float16 or float32, opened memory-mapped
    meta.parquet    one row per ECG, in columns (format 1 stores kept one JSON object per
                    line in meta.jsonl: still read)
    lead_mask.npy   (N, leads) bool: which leads each ECG really has (absent: all of them)

Parquet, because a store of 800,000 ECGs has 800,000 metadata rows: as columns they are written
and read in seconds, in a few hundred MB, where JSON lines took minutes and gigabytes.

It is written into a temporary directory beside the target and renamed at the end
(:mod:`mets_fast.atomic`), so an interrupted run leaves no store behind: only a
``.<name>.tmp-<pid>-*`` directory, which the next writer of that store removes once its process
is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_file, commit_dir, temp_dir
from ..versions import read_manifest
from .splits import SPLITS

FORMAT = "mets_fast.ecgstore"
VERSION = 2
READABLE = (1, 2)
META = {1: "meta.jsonl", 2: "meta.parquet"}
REQUIRED_COLUMNS = ("id", "report", "report_clean", "split", "source", "superclass", "subclass",
                    "form", "rhythm")
LABEL_COLUMNS = ("superclass", "subclass", "form", "rhythm")


# What a store directory holds: --overwrite replaces a directory of these files only
STORE_FILES = frozenset({"manifest.json", "signals.npy", "lead_mask.npy", *META.values()})


def check_replaceable(path: str | os.PathLike) -> None:
    """Raises ValueError unless `path` may be replaced by a new store (``--overwrite``): it is
    absent, an empty directory, or a store (its ``manifest.json`` names this format) holding
    nothing but a store's files.  A plain file, a folder of other files, a store with files of
    someone else's inside: refused, naming what is there, so that nothing a user keeps is
    deleted for a store."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not an ECG store: --overwrite replaces only a "
                         f"store or an empty folder; give another --out")
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ECG store (no mets_fast manifest.json) and holds "
                         f"{shown}: --overwrite replaces only a store or an empty folder; "
                         f"give another --out")
    others = [n for n in names if n not in STORE_FILES or not (path / n).is_file()]
    if others:
        raise ValueError(f"{path} is an ECG store but also holds {', '.join(others[:5])}, "
                         f"which are not a store's: move them out, or give another --out")


def store_row(id: str, report: str, split: str | None, source: str, *,
              report_clean: str | None = None, superclass=(), subclass=(), form=(), rhythm=(),
              **extra) -> dict:
    """One ECG's metadata row with every required column (label columns as lists of codes;
    ``report_clean`` defaults to the report itself), then any `extra` columns."""
    return {"id": id, "report": report,
            "report_clean": report if report_clean is None else report_clean,
            "split": split, "source": source, "superclass": list(superclass),
            "subclass": list(subclass), "form": list(form), "rhythm": list(rhythm), **extra}


class ECGStore:
    """A read-only view of a store: ``len(store)``, ``store.signals`` (the memory map, indexed
    without copies), ``store.fs``, ``store.leads``, ``store.meta`` (a DataFrame, label columns
    as lists of codes) and ``store.preprocessing`` (the settings the signals were made with)."""

    def __init__(self, path: Path, manifest: dict, signals: np.ndarray, meta: pd.DataFrame,
                 lead_mask: np.ndarray | None = None):
        self.path = path
        self.manifest = manifest
        self.signals = signals
        self.meta = meta
        self._lead_mask = lead_mask

    @property
    def lead_mask(self) -> np.ndarray:
        """``(N, leads)`` bool: True where an ECG really has the lead, False where the row is a
        zero stand-in for a lead its recording lacked (all True for a store without a mask)."""
        if self._lead_mask is None:
            return np.ones((len(self), len(self.leads)), dtype=bool)
        return self._lead_mask

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ECGStore":
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise FileNotFoundError(f"not an ECG store (no manifest.json): {path}")
        manifest = read_manifest(manifest_file, FORMAT, VERSION, what="store",
                                 remake="prepare the data again (python -m mets_fast.prepare)",
                                 not_ours=f"{path} is not a mets_fast ECG store (format "
                                          f"{{found!r}})", readable=READABLE)
        for key in ("n", "leads", "samples", "fs", "dtype"):
            if key not in manifest:
                raise ValueError(f"{manifest_file} lacks {key!r}: the manifest is damaged")
        expected = (manifest["n"], len(manifest["leads"]), manifest["samples"])
        signals = _open_signals(path / "signals.npy", expected, np.dtype(manifest["dtype"]))
        meta_file = path / META[manifest["version"]]
        if manifest["n"]:
            if not meta_file.is_file():
                raise FileNotFoundError(f"{path} lacks {meta_file.name}: the store is incomplete")
            meta = read_meta(meta_file)
        else:
            meta = pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        if len(meta) != manifest["n"]:
            raise ValueError(f"{meta_file} has {len(meta)} rows for {manifest['n']} ECGs: it is "
                             f"truncated or does not belong to these signals")
        mask = None
        if (path / "lead_mask.npy").is_file():
            mask = np.load(path / "lead_mask.npy")
            if mask.shape != expected[:2] or mask.dtype != bool:
                raise ValueError(f"{path}/lead_mask.npy holds {mask.dtype} {mask.shape}, the "
                                 f"manifest needs bool {expected[:2]}")
        return cls(path, manifest, signals, meta, mask)

    def __len__(self) -> int:
        return self.manifest["n"]

    @property
    def fs(self) -> float:
        return float(self.manifest["fs"])

    @property
    def leads(self) -> tuple:
        return tuple(self.manifest["leads"])

    @property
    def preprocessing(self) -> dict:
        return dict(self.manifest.get("preprocessing", {}))

    def split(self, name: str) -> np.ndarray:
        """Row indices of a split (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return np.flatnonzero(self.meta["split"].to_numpy() == name)

    def __repr__(self) -> str:
        return (f"ECGStore({str(self.path)!r}, n={len(self)}, leads={len(self.leads)}, "
                f"samples={self.manifest['samples']}, fs={self.fs:g})")

    @classmethod
    def concat(cls, stores: list) -> "ECGStore":
        """Several stores read as one, in order (rows of the second follow the first's), each
        row keeping its split; for training on several sources.  The stores must hold ECGs of
        one shape (leads, samples, rate, sample type); the preprocessing recorded is the
        first's.  Nothing is copied: ``signals`` gathers from each store's memory map."""
        stores = list(stores)
        if len(stores) == 1:
            return stores[0]
        first = stores[0]
        shape = (first.leads, first.manifest["samples"], first.fs, first.manifest["dtype"])
        for other in stores[1:]:
            theirs = (other.leads, other.manifest["samples"], other.fs, other.manifest["dtype"])
            if theirs != shape:
                raise ValueError(f"the stores {first.path} and {other.path} hold ECGs of other "
                                 f"shapes (leads, samples, Hz, type: {shape} and {theirs}): "
                                 f"prepare them with the same settings to train on both")
        manifest = {**first.manifest, "n": sum(len(x) for x in stores),
                    "parts": [str(x.path) for x in stores]}
        meta = pd.concat([x.meta for x in stores], ignore_index=True)
        mask = np.concatenate([x.lead_mask for x in stores])
        return cls(first.path, manifest, StackedSignals([x.signals for x in stores]), meta,
                   mask)


class StackedSignals:
    """The signals of several stores as one ``(N, leads, samples)`` array for reading: an
    integer, a slice or an array of row numbers gives a NumPy array, gathered from each
    store's memory map (no copy of the stores)."""

    def __init__(self, parts: list):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.offsets[-1]),) + tuple(parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        rows = np.arange(self.shape[0])[key] if isinstance(key, slice) else np.asarray(key)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= self.shape[0])):
            raise IndexError(f"rows must be a 1-d array within [0, {self.shape[0]})")
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(part):
            where = part == k
            out[where] = self.parts[k][rows[where] - self.offsets[k]]
        return out


def read_meta(path: Path) -> pd.DataFrame:
    """A store's metadata: ``meta.parquet`` (list columns, such as the label codes, as Python
    lists) or a format-1 store's ``meta.jsonl``; damage is a ValueError naming the file."""
    if path.suffix == ".jsonl":
        try:
            return pd.read_json(path, lines=True, dtype=False)
        except ValueError as exc:
            raise ValueError(f"{path} is damaged or truncated (not one JSON object per line: "
                             f"{exc})") from exc
    import pyarrow as pa

    try:
        meta = pd.read_parquet(path, engine="pyarrow")
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path} is damaged or truncated ({exc})") from exc
    for column in meta.columns[meta.dtypes == object]:
        values = meta[column].to_numpy()
        if any(isinstance(v, np.ndarray) for v in values[:1]):
            meta[column] = [list(v) if isinstance(v, np.ndarray) else v for v in values]
    return meta


def write_meta(meta: pd.DataFrame, path: Path) -> None:
    """`meta` as Parquet at `path` (zstd; the same rows give the same bytes).  A column whose
    rows mix types that Parquet cannot hold in one column is a ValueError naming it."""
    import pyarrow as pa

    try:
        meta.to_parquet(path, engine="pyarrow", compression="zstd", index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"store metadata cannot be written as columns: {exc}") from exc


def write_parts(folder: Path, manifest: dict, meta: pd.DataFrame, mask: np.ndarray) -> None:
    """What a store holds beside its signals, into `folder`: the metadata, the lead mask
    (only when some lead is missing) and, last, the manifest."""
    write_meta(meta, folder / META[VERSION])
    if not mask.all():
        np.save(folder / "lead_mask.npy", mask)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def new_manifest(n: int, leads: Sequence[str], samples: int, fs: float, dtype: str,
                 preprocessing: dict | None) -> dict:
    """The manifest of a store being written."""
    if np.dtype(dtype) not in (np.float16, np.float32):
        raise ValueError(f"store dtype must be float16 or float32, got {dtype}")
    return {"format": FORMAT, "version": VERSION, "n": int(n), "leads": list(leads),
            "samples": int(samples), "fs": float(fs), "dtype": np.dtype(dtype).name,
            "preprocessing": preprocessing or {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def check_meta(meta: pd.DataFrame, n: int) -> pd.DataFrame:
    """`meta` checked as a store of `n` ECGs needs it (the required columns, `n` rows, split
    names, string reports), its index reset; else a ValueError naming the problem."""
    missing = [c for c in REQUIRED_COLUMNS if c not in meta]
    if missing:
        raise ValueError(f"store metadata lacks the columns {missing}")
    if len(meta) != n:
        raise ValueError(f"metadata has {len(meta)} rows for {n} ECGs")
    bad = sorted(set(map(str, meta["split"])) - set(SPLITS))
    if bad:
        raise ValueError(f"split values must be {SPLITS}, got {bad}")
    for column in ("report", "report_clean"):
        kinds = meta[column].map(lambda r: isinstance(r, str)).to_numpy()
        if not kinds.all():
            row = int(np.flatnonzero(~kinds)[0])
            raise ValueError(f"metadata row {row} ({meta['id'].iloc[row]!r}): {column} is "
                             f"{type(meta[column].iloc[row]).__name__} "
                             f"{meta[column].iloc[row]!r}, not a string (use '' for none)")
    return meta.reset_index(drop=True)


def _drop_pages(signals: np.ndarray, start: int, stop: int) -> None:
    """Unmaps the whole pages of rows ``[start, stop)`` of a memory-mapped array from this
    process (written or only read, they stay in the page cache; the next access maps them
    again), so that reading or writing a store of any size keeps resident memory flat."""
    import mmap

    raw = getattr(signals, "_mmap", None)
    if raw is None or not hasattr(raw, "madvise") or not len(signals):
        return
    row = signals[0].nbytes
    first = -(-(signals.offset + start * row) // mmap.PAGESIZE) * mmap.PAGESIZE
    end = min((signals.offset + stop * row) // mmap.PAGESIZE * mmap.PAGESIZE, len(raw))
    if end > first:
        raw.madvise(mmap.MADV_DONTNEED, first, end - first)


def _open_signals(path: Path, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """signals.npy memory-mapped, after checking that the file holds what the manifest says
    (numpy's own errors on a damaged file name neither the file nor the damage)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} lacks signals.npy: the store is incomplete")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                    np.lib.format.read_array_header_2_0)
            found, _, found_dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise ValueError(f"{path} is damaged: its .npy header cannot be read ({exc})") from exc
    if tuple(found) != tuple(shape) or found_dtype != dtype:
        raise ValueError(f"{path} holds {found_dtype} {tuple(found)}, the manifest says "
                         f"{dtype} {tuple(shape)}")
    need = offset + int(np.prod(shape)) * dtype.itemsize
    if size < need:
        raise ValueError(f"{path} is truncated: {size} bytes, its {dtype} {tuple(shape)} need "
                         f"{need}")
    return np.load(path, mmap_mode="r")


class StoreWriter:
    """Writes a store atomically.  Use as a context manager::

        with StoreWriter(out, n, leads, samples, fs, preprocessing=...) as w:
            w.signals[i:j] = batch          # the memory map being written
            w.lead_mask[i:j] = mask         # optional: the leads each ECG really has
            ...
            w.set_meta(meta)                # a DataFrame of n rows
        # checked and renamed into place here; on an exception the temporary directory goes

    At commit the signals are checked: NaN, and values that overflow float16 (beyond
    +-65504, stored as inf), are refused naming the row; so are reports that are not strings.
    """

    def __init__(self, path: str | os.PathLike, n: int, leads: Sequence[str], samples: int,
                 fs: float, dtype: str = "float16", preprocessing: dict | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self.manifest = new_manifest(n, leads, samples, fs, dtype, preprocessing)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (--overwrite) to "
                                  f"replace it")
        check_replaceable(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_dir(self.path)
        self.signals = np.lib.format.open_memmap(self._tmp / "signals.npy", mode="w+",
                                                 dtype=dtype, shape=(n, len(leads), samples))
        self.lead_mask = np.ones((n, len(leads)), dtype=bool)
        self._meta = None
        self._overwrite = overwrite

    def release(self, stop: int) -> None:
        """Writes rows ``[0, stop)`` of the memory map to disk and drops their pages from this
        process's memory (they stay in the page cache), so that writing a store of any size
        keeps the writer's resident memory flat."""
        self.signals.flush()
        _drop_pages(self.signals, 0, stop)

    def shrink(self, n: int) -> None:
        """Keep only the first `n` ECGs (when some inputs were skipped after the store was
        sized); the file is cut at commit."""
        if not 0 <= n <= self.manifest["n"]:
            raise ValueError(f"can only shrink to 0..{self.manifest['n']} ECGs, got {n}")
        self.manifest["n"] = int(n)

    def set_meta(self, meta: pd.DataFrame) -> None:
        self._meta = check_meta(meta, self.manifest["n"])

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.abort()
            return
        self.commit()

    def commit(self) -> None:
        if self._meta is None:
            self.abort()
            raise ValueError("store metadata was never set (StoreWriter.set_meta)")
        self._check_values()
        self.signals.flush()
        allocated = self.signals.shape[0]
        del self.signals
        if self.manifest["n"] < allocated:
            cut_npy(self._tmp / "signals.npy", self.manifest["n"])
        write_parts(self._tmp, self.manifest, self._meta, self.lead_mask[:self.manifest["n"]])
        commit_dir(self._tmp, self.path)

    def _check_values(self) -> None:
        """Refuses signals holding NaN or inf (float16 stores inf for what exceeds 65504).
        Reads the rows in blocks and drops each block's pages after it (the check would
        otherwise map the whole store into the writer's memory)."""
        n = self.manifest["n"]
        rows = max(1, (1 << 18) // max(1, self.signals[0].size if n else 1))  # 256 Ki values
        for start in range(0, n, rows):
            block = self.signals[start:min(n, start + rows)]
            finite = np.isfinite(block).reshape(len(block), -1).all(1)
            _drop_pages(self.signals, start, start + len(block))
            if not finite.all():
                row = start + int(np.flatnonzero(~finite)[0])
                ecg = self._meta["id"].iloc[row]
                self.abort()
                raise ValueError(
                    f"signals row {row} (ECG {ecg!r}) holds NaN or inf; in a "
                    f"{self.manifest['dtype']} store that is also a value beyond its range "
                    f"(+-65504 for float16): clean or rescale it, or store float32")

    def abort(self) -> None:
        self.__dict__.pop("signals", None)
        shutil.rmtree(self._tmp, ignore_errors=True)


def cut_npy(path: Path, n: int) -> None:
    """Keeps the first `n` rows of a ``.npy`` file in place: its header is rewritten for the
    new shape (numpy pads headers so that the row count can change without moving the data)
    and the file truncated after row `n`.  Should the header ever change length, the rows are
    copied behind the new header a block at a time, never all in memory."""
    fmt = np.lib.format
    with open(path, "r+b") as f:
        version = fmt.read_magic(f)
        read, write = ((fmt.read_array_header_1_0, fmt.write_array_header_1_0)
                       if version == (1, 0) else
                       (fmt.read_array_header_2_0, fmt.write_array_header_2_0))
        shape, fortran, dtype = read(f)
        start = f.tell()
        new_shape = (n,) + tuple(shape[1:])
        size = int(np.prod(new_shape)) * dtype.itemsize
        header = {"descr": fmt.dtype_to_descr(dtype), "fortran_order": fortran,
                  "shape": new_shape}
        f.seek(0)
        write(f, header)  # the magic string, then the header
        if f.tell() == start:
            f.truncate(start + size)
            return
    with atomic_file(path) as tmp, open(path, "rb") as src, open(tmp, "wb") as dst:
        write(dst, header)
        src.seek(start)
        left = size
        while left:
            block = src.read(min(left, 1 << 24))
            dst.write(block)
            left -= len(block)
