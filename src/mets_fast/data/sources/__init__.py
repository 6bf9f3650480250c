"""The sources of ECGs, one module each, each declaring its default preprocessing once
(``SETTINGS``) and a ``source(settings, ...)`` that yields its ECGs for
:func:`~mets_fast.data.ingest.write_store`:

- ``synthetic``: the embedded synthetic corpus;
- ``ptbxl``: PTB-XL from its root directory;
- ``mitbih``: MIT-BIH-format records with beat annotations, windowed;
- ``wfdb``: any WFDB records;
- ``challenge``: PhysioNet/CinC Challenge 2020/2021 trees (WFDB headers over ``.mat`` files);
- ``mimic-iv-ecg``: MIMIC-IV-ECG's tree (its two tables and WFDB records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..preprocess import Settings
from ..shards import ShardedSource
from . import challenge, mimic, mitbih, ptbxl, synthetic, wfdb
from .items import Item, Source, skipped

_MODULES = {"synthetic": synthetic, "ptbxl": ptbxl, "mitbih": mitbih, "wfdb": wfdb,
            "challenge": challenge, "mimic-iv-ecg": mimic}
SOURCES = tuple(_MODULES)
SETTINGS = {kind: module.SETTINGS for kind, module in _MODULES.items()}


def open_source(kind: str, settings: Settings, *, root: Path | None = None,
                paths: Sequence | None = None, n: int = synthetic.CORPUS_SIZE, seed: int = 0,
                workers: int = 1, rate: int | None = None, step: float | None = None,
                windows: str = "beats", reports: dict | None = None,
                split: str = "patient",
                lead_names: dict | None = None) -> Source | ShardedSource:
    """The source of one kind (``"synthetic"``: `n` ECGs of the embedded corpus; ``"ptbxl"``
    and ``"mitbih"``: the data set at `root`; ``"wfdb"``: the records at `paths`;
    ``"challenge"``: the trees at `paths`, or at `root`; ``"mimic-iv-ecg"``: the tree at
    `root`, split by patient or, with ``split="random"``, by record, as a
    :class:`~mets_fast.data.shards.ShardedSource`).  `lead_names`: a Challenge tree's own lead
    names mapped to standard ones (``{"ECG": "I"}``)."""
    if kind == "synthetic":
        return synthetic.source(settings, n, seed=seed)
    if kind == "ptbxl":
        return ptbxl.source(settings, root, seed=seed, workers=workers, rate=rate)
    if kind == "mitbih":
        return mitbih.source(settings, root, seed=seed, step=step, windows=windows)
    if kind == "wfdb":
        return wfdb.source(settings, paths, seed=seed, workers=workers, reports=reports)
    if kind == "challenge":
        return challenge.source(settings, paths or [root], seed=seed, workers=workers,
                                lead_names=lead_names)
    if kind == "mimic-iv-ecg":
        return mimic.source(settings, root, seed=seed, split=split)
    raise ValueError(f"unknown source {kind!r}; expected one of {SOURCES}")


__all__ = ["Item", "Source", "skipped", "open_source", "SOURCES", "SETTINGS"]
