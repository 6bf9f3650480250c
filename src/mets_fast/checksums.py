"""Checksums: how a file the package wrote is known, when read back, to be the file it wrote.

A writer records the size and SHA-256 of each file it makes (:func:`describe`) in the manifest
that names it (a checkpoint's ``state.json``, an index's ``index.json``), or, for a safetensors
file, in the file's own header (:func:`tensor_bytes`), so the check travels with the file
wherever it is copied.  A reader calls :func:`verify` / :func:`read_tensors` and gets one
ValueError naming the file when a byte differs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_BLOCK = 1 << 22
_KEY = "mets_fast.sha256"  # the safetensors metadata entry: SHA-256 of the data section


def sha256(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> str:
    """The hex SHA-256 of the bytes ``[start, stop)`` of a file (all of it by default)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = None if stop is None else stop - start
        while left is None or left > 0:
            block = f.read(_BLOCK if left is None else min(_BLOCK, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()


def describe(path: str | os.PathLike) -> dict:
    """``{"size": bytes, "sha256": hex}`` of a file, as a manifest records it."""
    return {"size": Path(path).stat().st_size, "sha256": sha256(path)}


def verify(path: str | os.PathLike, recorded: dict, where: str) -> None:
    """Raises ValueError naming `path` unless its size and SHA-256 are those `recorded` (as
    :func:`describe` gave them when it was written; `where` names the record)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing (named in {where})")
    size = path.stat().st_size
    if size != recorded.get("size"):
        raise ValueError(f"{path} is damaged or truncated: {size} bytes, {recorded.get('size')} "
                         f"when it was written ({where})")
    if "sha256" in recorded and sha256(path) != recorded["sha256"]:
        raise ValueError(f"{path} is damaged: its SHA-256 differs from the one {where} recorded "
                         f"when it was written")


# --------------------------------------------------------------------------- safetensors


def tensor_bytes(tensors: dict) -> bytes:
    """`tensors` (name -> CPU tensor) as a safetensors file whose header records the SHA-256 of
    its data section: a copy damaged anywhere is refused by :func:`read_tensors`."""
    from safetensors.torch import save

    plain = save(tensors)  # the data section does not depend on the metadata
    start = 8 + int.from_bytes(plain[:8], "little")
    digest = hashlib.sha256(memoryview(plain)[start:]).hexdigest()
    return save(tensors, metadata={_KEY: digest})


def read_tensors(path: str | os.PathLike) -> dict:
    """The tensors of a safetensors file, checked: the file is whole (its header's offsets fit
    its size) and, where its header records one (:func:`tensor_bytes`), the data section's
    SHA-256 matches.  A ValueError names the file otherwise."""
    from safetensors.torch import load_file

    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 + header_len:
                raise ValueError("its header is cut")
            header = json.loads(f.read(header_len))
        if not isinstance(header, dict):
            raise ValueError("its header is not an object")
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path} is truncated or not a safetensors file ({exc})") from exc
    start = 8 + header_len
    if size < start + end:
        raise ValueError(f"{path} is truncated: {size} bytes, its header needs {start + end}")
    recorded = (header.get("__metadata__") or {}).get(_KEY)
    if recorded is not None and sha256(path, start, start + end) != recorded:
        raise ValueError(f"{path} is damaged: the SHA-256 of its tensors differs from the one "
                         f"recorded in it when it was written")
    try:
        return load_file(path)
    except Exception as exc:  # safetensors' own error types are not ValueErrors
        raise ValueError(f"{path} cannot be read as safetensors: {exc}") from exc


def nonfinite_tensors(tensors: dict) -> list:
    """The names of the floating tensors of `tensors` that hold NaN or inf."""
    return [name for name, t in tensors.items()
            if t.is_floating_point() and not bool(t.isfinite().all())]
