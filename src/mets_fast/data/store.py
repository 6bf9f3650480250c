"""The ECG store: preprocessed signals in one memory-mapped array, metadata beside them.

A store is a directory::

    manifest.json   format name and version, N, leads, samples, fs, dtype, preprocessing
    signals.npy     (N, leads, samples) float16 or float32, opened memory-mapped
    meta.jsonl      one JSON object per ECG (pandas reads it with no extra dependency)

It is written into a temporary directory beside the target and renamed at the end, so an
interrupted run leaves no store behind (only a ``.<name>.tmp-*`` directory to delete).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .splits import SPLITS

FORMAT = "mets_fast.ecgstore"
VERSION = 1
REQUIRED_COLUMNS = ("id", "report", "report_clean", "split", "source", "superclass", "subclass",
                    "form", "rhythm")
LABEL_COLUMNS = ("superclass", "subclass", "form", "rhythm")


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

    def __init__(self, path: Path, manifest: dict, signals: np.ndarray, meta: pd.DataFrame):
        self.path = path
        self.manifest = manifest
        self.signals = signals
        self.meta = meta

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ECGStore":
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise FileNotFoundError(f"not an ECG store (no manifest.json): {path}")
        try:
            manifest = json.loads(manifest_file.read_text())
        except ValueError as exc:
            raise ValueError(f"{manifest_file} is not valid JSON: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is not a mets_fast ECG store "
                             f"(format {manifest.get('format')!r})")
        if manifest.get("version") != VERSION:
            raise ValueError(f"{path} has store format version {manifest.get('version')}; this "
                             f"mets_fast reads version {VERSION} (re-run mets_fast.prepare)")
        signals = np.load(path / "signals.npy", mmap_mode="r")
        expected = (manifest["n"], len(manifest["leads"]), manifest["samples"])
        if signals.shape != expected or signals.dtype != np.dtype(manifest["dtype"]):
            raise ValueError(f"{path}/signals.npy holds {signals.dtype} {signals.shape}, the "
                             f"manifest says {manifest['dtype']} {expected}")
        meta = pd.read_json(path / "meta.jsonl", lines=True, dtype=False) \
            if manifest["n"] else pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        if len(meta) != manifest["n"]:
            raise ValueError(f"{path}/meta.jsonl has {len(meta)} rows for {manifest['n']} ECGs")
        return cls(path, manifest, signals, meta)

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


class StoreWriter:
    """Writes a store atomically.  Use as a context manager::

        with StoreWriter(out, n, leads, samples, fs, preprocessing=...) as w:
            w.signals[i:j] = batch          # the memory map being written
            ...
            w.set_meta(meta)                # a DataFrame of n rows
        # renamed into place here; on an exception the temporary directory is removed
    """

    def __init__(self, path: str | os.PathLike, n: int, leads: Sequence[str], samples: int,
                 fs: float, dtype: str = "float16", preprocessing: dict | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ValueError(f"store dtype must be float16 or float32, got {dtype}")
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (--overwrite) to "
                                  f"replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-",
                                          dir=self.path.parent))
        self.manifest = {"format": FORMAT, "version": VERSION, "n": int(n),
                         "leads": list(leads), "samples": int(samples), "fs": float(fs),
                         "dtype": np.dtype(dtype).name, "preprocessing": preprocessing or {},
                         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.signals = np.lib.format.open_memmap(self._tmp / "signals.npy", mode="w+",
                                                 dtype=dtype, shape=(n, len(leads), samples))
        self._meta = None
        self._overwrite = overwrite

    def shrink(self, n: int) -> None:
        """Keep only the first `n` ECGs (when some inputs were skipped after the store was
        sized); the file is cut at commit."""
        if not 0 <= n <= self.manifest["n"]:
            raise ValueError(f"can only shrink to 0..{self.manifest['n']} ECGs, got {n}")
        self.manifest["n"] = int(n)

    def set_meta(self, meta: pd.DataFrame) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in meta]
        if missing:
            raise ValueError(f"store metadata lacks the columns {missing}")
        if len(meta) != self.manifest["n"]:
            raise ValueError(f"metadata has {len(meta)} rows for {self.manifest['n']} ECGs")
        bad = sorted(set(meta["split"]) - set(SPLITS))
        if bad:
            raise ValueError(f"split values must be {SPLITS}, got {bad}")
        self._meta = meta.reset_index(drop=True)

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
        self.signals.flush()
        allocated = self.signals.shape[0]
        del self.signals
        if self.manifest["n"] < allocated:
            _cut_npy(self._tmp / "signals.npy", self.manifest["n"])
        self._meta.to_json(self._tmp / "meta.jsonl", orient="records", lines=True,
                           force_ascii=False)
        (self._tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
        _fsync_dir(self._tmp)
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self.__dict__.pop("signals", None)
        shutil.rmtree(self._tmp, ignore_errors=True)


def _cut_npy(path: Path, n: int) -> None:
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
    tmp = path.with_name(path.name + ".cut")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        write(dst, header)
        src.seek(start)
        left = size
        while left:
            block = src.read(min(left, 1 << 24))
            dst.write(block)
            left -= len(block)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
