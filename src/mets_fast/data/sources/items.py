"""What every source yields: one :class:`Item` per ECG, and the :class:`Source` that
:func:`~mets_fast.data.ingest.write_store` drains into a store."""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np


class Item(NamedTuple):
    """What a source yields per ECG: the signal ``(leads, samples)`` float32 at the settings'
    rate and length, its metadata row, which leads it really has (None: all) and how many of
    its samples are real (None: all; the rest is zero padding).  A record that could not be
    read is ``Item(None, {"id": ..., "skip": reason})``."""

    signal: np.ndarray | None
    row: dict
    mask: np.ndarray | None = None
    length: int | None = None


def skipped(name: str, exc: Exception) -> Item:
    return Item(None, {"id": name, "skip": f"{type(exc).__name__}: {exc}"})


class Source(NamedTuple):
    """A record source ready for :func:`write_store`: the ``(signal, row)`` items, an upper
    bound of their count, and what the store's manifest records about where they came from."""

    items: Iterable
    n_max: int
    extra: dict

