"""Where the package keeps what it computes once and reuses: prepared stores and report
embeddings, under one cache directory that the data and the text layers both read from here."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$METS_FAST_CACHE``, else ``$XDG_CACHE_HOME/mets_fast``, else ``~/.cache/mets_fast``."""
    if os.environ.get("METS_FAST_CACHE"):
        return Path(os.environ["METS_FAST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mets_fast"
