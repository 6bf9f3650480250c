"""Where the development data live: the real records and tables the project's tests and
benchmarks read (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data(item: str = "", anchor: str | os.PathLike | None = None) -> Path | None:
    """`item` (a path inside the shared data folder; "" for the folder) under
    ``$METS_FAST_DATA``, else under ``shared/data`` beside the checkout that holds `anchor` (a
    file of the tests or benchmarks; default the working directory): the first folder that
    has it, or None where none does."""
    roots = [Path(os.environ["METS_FAST_DATA"])] if os.environ.get("METS_FAST_DATA") else []
    start = Path(anchor).resolve() if anchor else Path.cwd().resolve()
    roots += [parent / "shared" / "data" for parent in [start, *start.parents]]
    for root in roots:
        if (root / item).exists():
            return root / item
    return None
