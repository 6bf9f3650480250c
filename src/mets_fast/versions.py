"""File versions: one policy for every file the package writes (store, embedding cache,
checkpoint and run, index).  Each carries the version of its format; a reader accepts the
versions it has code for, refuses a newer one (naming both versions and what to do), and says
how to remake an older one it cannot read.  The embedding cache, which holds only what can be
computed again, sets an unreadable database aside instead (``text/cache.py``)."""

from __future__ import annotations

import os

from .jsonio import read_json


def check_version(version, current: int, *, what: str, path: str | os.PathLike,
                  remake: str, readable: tuple | None = None) -> int:
    """Returns `version` when this mets_fast reads it: one of `readable` (default: only
    `current`).  Otherwise raises ValueError naming `path`, the file's version and this
    mets_fast's: a non-integer version is damage; a newer one asks for a newer mets_fast; an
    older one without a reader says how to remake the file (`remake`).

    `what` names the format in the messages (``"store"``, ``"run"``, ``"index"``)."""
    readable = (current,) if readable is None else tuple(readable)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} gives the format version as {version!r} "
                         f"({type(version).__name__}); this mets_fast reads {what} format "
                         f"version {current}, an integer: the file is damaged")
    if version > current:
        raise ValueError(f"{path} was written by a newer mets_fast ({what} format version "
                         f"{version}; this one reads up to {current}): upgrade mets_fast")
    if version not in readable:
        raise ValueError(f"{path} has {what} format version {version}, which this mets_fast "
                         f"no longer reads (it reads {', '.join(map(str, readable))}): "
                         f"{remake}")
    return version


def read_manifest(path: str | os.PathLike, fmt: str, current: int, *, what: str, remake: str,
                  not_ours: str, readable: tuple | None = None) -> dict:
    """The JSON object at `path` (a file the caller has found), checked: its ``format`` is
    `fmt` (else ValueError `not_ours`, formatted with ``found``: the format it names) and its
    ``version`` one this mets_fast reads (:func:`check_version`)."""
    manifest = read_json(path)
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != fmt:
        raise ValueError(not_ours.format(found=found))
    check_version(manifest.get("version"), current, what=what, path=path, remake=remake,
                  readable=readable)
    return manifest
