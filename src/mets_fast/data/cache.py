"""The cache of prepared stores: a source named by ``--data`` is prepared once, with the
model's or the source's preprocessing, into the package's cache directory, keyed by the source
and every setting that changes the result, and reused."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

from ..paths import default_cache_dir
from ..threads import default_threads
from .ingest import write_source
from .preprocess import Settings
from .sources import SETTINGS, challenge, mitbih, open_source
from .sources.synthetic import CORPUS_SIZE
from .spec import DataSpec
from .splits import SPLIT_SCHEME
from .store import VERSION as STORE_VERSION
from .store import ECGStore

# Bumped whenever the way a cached store is made changes (splits, windows, reports), so that
# stores made the old way are rebuilt rather than reused.
RECIPE_VERSION = 1
DATA_SEED = 0  # corpora and record splits do not change with the training seed


def prepared_store(spec: DataSpec, *, n: int = CORPUS_SIZE, settings: Settings | None = None,
                   cache_dir: Path | None = None, quiet: bool = False) -> Path:
    """The store of a data spec: a ``store:`` path as it is; anything else prepared once into
    ``<cache>/stores/<kind>-<key>`` (`n` ECGs for ``synthetic``; with `settings`, or the
    source's defaults, :data:`~mets_fast.data.sources.SETTINGS`) and reused.  Safe when several
    processes ask at once (a file lock; the first builds, the others wait and reuse)."""
    if spec.kind == "store":
        return spec.path
    settings = settings or SETTINGS[spec.kind]
    key = {"kind": spec.kind, "settings": settings.as_dict(), "seed": DATA_SEED,
           "recipe": RECIPE_VERSION, "split_scheme": SPLIT_SCHEME,
           "store_version": STORE_VERSION}
    if spec.kind == "synthetic":
        key["n"] = int(n)
    else:
        key["root"] = str(spec.path.resolve())
        key["files"] = _fingerprint(spec)
        if spec.kind == "mitbih":
            key["per_symbol"] = mitbih.PER_SYMBOL
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    parent = Path(cache_dir or default_cache_dir()) / "stores"
    parent.mkdir(parents=True, exist_ok=True)
    out = parent / f"{spec.kind}-{digest}"
    with open(parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(out):
            return out
        source = open_source(spec.kind, settings, root=spec.path, n=n, seed=DATA_SEED)
        # a sharded preparation that a killed process left is continued, not started again;
        # its shards are shared among this process's cores (a plain source takes no workers)
        write_source(out, source, settings, overwrite=out.exists(), resume=True, quiet=quiet,
                     extra={"data": str(spec)}, workers=default_threads())
    return out


def _usable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        ECGStore.open(path)
        return True
    except (OSError, ValueError):
        return False  # damaged or of an older format: rebuilt


def _fingerprint(spec: DataSpec) -> list:
    """Names, sizes and modification times of the files a prepared store is made from, so an
    edited data set is prepared again."""
    if spec.kind == "mitbih":
        files = [f for h in mitbih.mitbih_headers(spec.path) for f in (h, h.with_suffix(".atr"))]
    elif spec.kind == "challenge":
        files = challenge.challenge_headers([spec.path])
    elif spec.kind == "mimic-iv-ecg":
        files = [spec.path / "record_list.csv", spec.path / "machine_measurements.csv"]
    else:
        files = [spec.path / name for name in ("ptbxl_database.csv", "scp_statements.csv")]
    return [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files if f.is_file()]
