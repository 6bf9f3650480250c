"""The JSON files and documents the package writes: strict JSON (NumPy scalars as numbers, NaN
as null), written to a temporary name and renamed, never half."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import write_text


def plain(value):
    """`value` as strict JSON takes it."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def read_json(path: Path):
    """The JSON document at `path`; a ValueError naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def dumps(value, indent: int | None = 2) -> str:
    return json.dumps(plain(value), indent=indent, allow_nan=False)


def write_json(path: Path, value, *, indent: int | None = 2) -> None:
    """`value` as JSON at `path`, written atomically."""
    write_text(path, dumps(value, indent) + "\n")
