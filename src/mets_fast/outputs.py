"""Where a command may write: its ``--out`` is checked before any work is done, so a wrong path
fails in a second with one line, not after minutes of computing with a traceback, and a command
never mixes its files into a folder that holds something else."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError


def output_dir(path: str | os.PathLike, flag: str = "--out", *,
               own: str | None = None) -> Path:
    """`path` as a directory a command may write into: absent (made later), or a directory.
    With `own` (the file that marks the command's own output, e.g. ``index.json``), an
    existing directory must be empty or hold that file: a command's output then never lands
    among other files (a run directory, a store)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a directory")
    if own is not None and path.is_dir() and any(path.iterdir()) and \
            not (path / own).is_file():
        raise UsageError(f"{flag} {path} holds other files (no {own}): give a new or empty "
                         f"directory")
    _writable_parent(path, flag)
    return path


def output_file(path: str | os.PathLike, suffix: str, flag: str = "--out") -> Path:
    """`path` as a file a command may write (replacing one there): it ends in `suffix` and is
    not a directory."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a {suffix} file name")
    if path.suffix != suffix:
        raise UsageError(f"{flag} must name a {suffix} file, got {path}")
    _writable_parent(path, flag)
    return path


def _writable_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` must be a directory (folders below it are made
    when the command writes)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path} lies under {parent}, which is a file")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: {parent} is not writable")
