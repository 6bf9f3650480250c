"""The on-disk cache of report embeddings.

One SQLite database (Python's standard library; write-ahead logging, so the ranks of a
distributed run read and write it at once) holds every embedding ever computed, keyed by a
*space* — the hash of everything that decides a vector besides the text: the model's files, the
pooling, the maximum length, the template — and the exact text.  Each row carries a CRC of its
text and vector, checked when read: a row that fails is dropped and recomputed, and a database
SQLite cannot read is moved aside and rebuilt, so a damaged cache costs time, never wrong vectors.
Writes are transactions: a crash mid-write loses that write and nothing before it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

FORMAT_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    space TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (space, text)
) WITHOUT ROWID
"""


def _crc(text: str, vector: bytes) -> int:
    return zlib.crc32(vector, zlib.crc32(text.encode("utf-8")))


class EmbeddingCache:
    """Embeddings of one space: ``get(texts) -> {text: vector}`` and ``put({text: vector})``.

    The rows of the space are read once, on first use, into memory; later lookups are
    dictionary lookups, and rows other processes added since are picked up on a miss.  Any
    thread may use it (a server encodes prompts in its model thread), one at a time.
    """

    def __init__(self, directory: str | os.PathLike, space: str, dim: int):
        self.path = Path(directory) / "embeddings.sqlite"
        self.space = space
        self.dim = int(dim)
        self._rows: dict | None = None
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                     check_same_thread=False)  # used under self._lock
                db.execute("PRAGMA journal_mode=WAL")
                # the table and the version of a new database are written in one transaction:
                # a process reading between the two would take a fresh database for an old
                # one and move it aside under its writers
                db.execute("BEGIN IMMEDIATE")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables and version != FORMAT_VERSION:
                    db.execute("ROLLBACK")
                    db.close()
                    self._set_aside(f"format version {version}, expected {FORMAT_VERSION}")
                    continue
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                db.execute("COMMIT")
                return db
            except sqlite3.DatabaseError as exc:
                if attempt:
                    raise
                self._set_aside(f"unreadable ({exc})")
        raise RuntimeError("unreachable")

    def _set_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d%H%M%S')}-"
                                    f"{os.getpid()}")
        warnings.warn(f"embedding cache {self.path} is {why}: moved to {aside} and rebuilt")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                os.replace(source, Path(str(aside) + suffix))

    def _load(self) -> dict:
        rows, bad = {}, []
        try:
            for text, blob, crc in self._db.execute(
                    "SELECT text, vector, crc FROM embeddings WHERE space = ?", (self.space,)):
                if len(blob) != 4 * self.dim or _crc(text, blob) != crc:
                    bad.append(text)
                    continue
                rows[text] = np.frombuffer(blob, dtype=np.float32)
        except sqlite3.DatabaseError:
            self._db.close()
            self._set_aside("unreadable")
            self._db = self._connect()
            return {}
        if bad:
            warnings.warn(f"embedding cache {self.path}: {len(bad)} damaged row(s) dropped; "
                          f"they will be recomputed")
            with self._transaction():
                self._db.executemany("DELETE FROM embeddings WHERE space = ? AND text = ?",
                                     [(self.space, t) for t in bad])
        return rows

    def get(self, texts: Iterable[str]) -> dict:
        """The cached vectors among `texts` (read-only float32 arrays)."""
        with self._lock:
            return self._get(list(texts))

    def _get(self, texts: list) -> dict:
        if self._rows is None:
            self._rows = self._load()
        found = {t: self._rows[t] for t in texts if t in self._rows}
        missing = [t for t in texts if t not in found]
        if missing:  # another process may have added them since we loaded
            self._rows.update(self._load_some(missing))
            found.update({t: self._rows[t] for t in missing if t in self._rows})
        return found

    def _load_some(self, texts: list) -> dict:
        rows = {}
        for start in range(0, len(texts), 500):
            chunk = texts[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for text, blob, crc in self._db.execute(
                    f"SELECT text, vector, crc FROM embeddings WHERE space = ? AND text IN "
                    f"({marks})", (self.space, *chunk)):
                if len(blob) == 4 * self.dim and _crc(text, blob) == crc:
                    rows[text] = np.frombuffer(blob, dtype=np.float32)
        return rows

    def put(self, vectors: dict) -> None:
        """Stores `vectors` ({text: float32 (dim,)}) in one transaction."""
        rows = []
        for text, vector in vectors.items():
            blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            if len(blob) != 4 * self.dim:
                raise ValueError(f"vector of {len(blob) // 4} values for a cache of dim {self.dim}")
            rows.append((self.space, text, blob, _crc(text, blob)))
        with self._lock:
            with self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                                     rows)
            if self._rows is not None:
                self._rows.update({t: np.frombuffer(b, dtype=np.float32)
                                   for _, t, b, _ in rows})

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, tb):
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM embeddings WHERE space = ?",
                                    (self.space,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
