"""Three ECGs to try a model on, without any data set: 12-lead, 10 s, 500 Hz WFDB records of the
package's synthetic corpus (sinus rhythm, atrial fibrillation, sinus bradycardia), each with the
report the corpus wrote for it.  They are written once into the cache (``$METS_FAST_CACHE``)
on first use; real records are never shipped with the package.

    >>> import mets_fast
    >>> from mets_fast import examples
    >>> rec = mets_fast.read_record(examples.path("atrial_fibrillation"))

``python -m mets_fast.examples`` prints their paths, one per line, for the command line::

    python -m mets_fast.zeroshot --model RUN --record $(python -m mets_fast.examples) \\
        --classes "atrial fibrillation" "sinus rhythm" "sinus bradycardia" --kind rhythm
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import commit_dir, lock, temp_dir
from ..data.cache import RECIPE_VERSION
from ..paths import default_cache_dir

# example name -> the synthetic corpus's rhythm code it shows
RHYTHMS = {"sinus_rhythm": "SR", "atrial_fibrillation": "AFIB", "sinus_bradycardia": "SBRAD"}
_FS, _POOL = 500.0, 200  # the corpus ECGs searched (seed 0) for the first of each rhythm


def names() -> list:
    """The examples' names: ``sinus_rhythm``, ``atrial_fibrillation``, ``sinus_bradycardia``."""
    return list(RHYTHMS)


def path(name: str) -> Path:
    """The record path (without extension, as ``read_record`` and the commands take it) of the
    example `name`, written into the cache if it is not there yet."""
    if name not in RHYTHMS:
        raise ValueError(f"no example named {name!r}; the examples are {names()}")
    return folder() / name


def report(name: str) -> str:
    """The report the synthetic corpus wrote for the example `name`."""
    header = path(name).with_suffix(".hea").read_text().splitlines()
    return next(line[len("# report: "):] for line in header if line.startswith("# report: "))


def folder() -> Path:
    """The cache folder holding the three records (made, under a lock, on first use)."""
    target = default_cache_dir() / "examples" / f"synthetic-{RECIPE_VERSION}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    held = lock(target.parent, "writing the example records")
    try:
        if not target.is_dir():  # another process may have written them meanwhile
            tmp = temp_dir(target)
            _write(tmp)
            commit_dir(tmp, target)
    finally:
        os.close(held)
    return target


def _write(directory: Path) -> None:
    import numpy as np
    import wfdb

    from ..data.records import STANDARD_LEADS
    from ..data.sources.synthetic import synthetic_corpus

    corpus = synthetic_corpus(_POOL, seed=0, fs=_FS)
    for name, code in RHYTHMS.items():
        k = next(i for i, rhythm in enumerate(corpus.meta["rhythm"]) if list(rhythm) == [code])
        wfdb.wrsamp(name, fs=_FS, units=["mV"] * 12, sig_name=list(STANDARD_LEADS),
                    p_signal=np.asarray(corpus.signals[k], dtype=np.float64).T,
                    fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                    comments=[f"report: {corpus.meta['report'].iloc[k]}"],
                    write_dir=str(directory))
