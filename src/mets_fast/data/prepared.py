"""Where training and evaluation data come from: ``--data synthetic | ptbxl:ROOT | mitbih:ROOT |
store:DIR``.  Sources other than a store are prepared once into the cache directory, keyed by
the source and every setting that changes the result, and reused."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from .build import PER_SYMBOL, mitbih_headers, open_source, write_store
from .preprocess import Settings
from .records import STANDARD_LEADS
from .splits import SPLIT_SCHEME
from .store import VERSION as STORE_VERSION
from .store import ECGStore

DATA_KINDS = ("synthetic", "ptbxl", "mitbih", "store")
# Bumped whenever the way a cached store is made changes (splits, windows, reports), so that
# stores made the old way are rebuilt rather than reused.
RECIPE_VERSION = 1
DATA_SEED = 0  # corpora and record splits do not change with the training seed

# The preprocessing of each source when it is prepared for training.  MIT-BIH: windows of 3 s
# centred on each beat, so the previous and the next beat are in view (prematurity is a
# matter of RR intervals); its notch is 60 Hz (the records are American; at 100 Hz the notch
# falls above Nyquist anyway and is skipped).
SOURCE_SETTINGS = {
    "synthetic": Settings(100.0, 10.0, STANDARD_LEADS, True, 50.0, "lead", "float16"),
    "ptbxl": Settings(100.0, 10.0, STANDARD_LEADS, True, 50.0, "lead", "float16"),
    "mitbih": Settings(100.0, 3.0, STANDARD_LEADS, True, 60.0, "lead", "float16"),
}


class DataSpec(NamedTuple):
    """A parsed ``--data`` value: the ``kind`` and, except for ``synthetic``, a ``path``."""

    kind: str
    path: Path | None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data(spec: str) -> DataSpec:
    """``"synthetic"``, ``"ptbxl:ROOT"``, ``"mitbih:ROOT"`` or ``"store:DIR"``; the path must
    exist.  Raises ValueError with the accepted forms otherwise."""
    forms = "synthetic, ptbxl:ROOT, mitbih:ROOT or store:DIR"
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--data must be one of {forms}, got {spec!r}")
    kind, sep, path = spec.strip().partition(":")
    if kind not in DATA_KINDS:
        raise ValueError(f"--data {spec!r}: unknown source {kind!r}; expected {forms}")
    if kind == "synthetic":
        if sep:
            raise ValueError(f"--data {spec!r}: synthetic takes no path")
        return DataSpec(kind, None)
    if not path:
        raise ValueError(f"--data {spec!r}: {kind} needs a path ({kind}:PATH)")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {spec!r}: {path} is not a directory")
    return DataSpec(kind, path)


def prepared_store(spec: DataSpec, *, n: int = 10000, settings: Settings | None = None,
                   cache_dir: Path | None = None, quiet: bool = False) -> Path:
    """The store of a data spec: a ``store:`` path as it is; anything else prepared once into
    ``<cache>/stores/<kind>-<key>`` (`n` ECGs for ``synthetic``; with `settings`, or the
    source's defaults in :data:`SOURCE_SETTINGS`) and reused.  Safe when several processes ask
    at once (a file lock; the first builds, the others wait and reuse)."""
    if spec.kind == "store":
        return spec.path
    from ..text.cache import default_cache_dir

    settings = settings or SOURCE_SETTINGS[spec.kind]
    key = {"kind": spec.kind, "settings": settings.as_dict(), "seed": DATA_SEED,
           "recipe": RECIPE_VERSION, "split_scheme": SPLIT_SCHEME,
           "store_version": STORE_VERSION}
    if spec.kind == "synthetic":
        key["n"] = int(n)
    else:
        key["root"] = str(spec.path.resolve())
        key["files"] = _fingerprint(spec)
        if spec.kind == "mitbih":
            key["per_symbol"] = PER_SYMBOL
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    parent = Path(cache_dir or default_cache_dir()) / "stores"
    parent.mkdir(parents=True, exist_ok=True)
    out = parent / f"{spec.kind}-{digest}"
    with open(parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(out):
            return out
        source = open_source(spec.kind, settings, root=spec.path, n=n, seed=DATA_SEED)
        write_store(out, source.items, source.n_max, settings, overwrite=out.exists(),
                    quiet=quiet, extra={**source.extra, "data": str(spec)})
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
        files = [f for h in mitbih_headers(spec.path) for f in (h, h.with_suffix(".atr"))]
    else:
        files = [spec.path / name for name in ("ptbxl_database.csv", "scp_statements.csv")]
    return [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files if f.is_file()]
