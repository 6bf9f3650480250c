"""Three real ECGs to try a model on, shipped with the package: 12-lead, 10 s, 100 Hz records of
PTB-XL (Wagner et al. 2020, CC BY 4.0; see ``NOTICE.md`` beside this file), each labelled by
PTB-XL's cardiologists.

    >>> import mets_fast
    >>> from mets_fast import examples
    >>> rec = mets_fast.read_record(examples.path("atrial_fibrillation"))

``python -m mets_fast.examples`` prints their paths, one per line, for the command line::

    python -m mets_fast.zeroshot --model RUN --record $(python -m mets_fast.examples) \\
        --classes "atrial fibrillation" "sinus rhythm" "sinus bradycardia" --kind rhythm
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

_HERE = Path(__file__).resolve().parent


class Example(NamedTuple):
    """One shipped record: its PTB-XL ``ecg_id``, file stem, SCP-ECG statements and report."""

    ecg_id: int
    stem: str
    scp_codes: tuple
    report: str


RECORDS = {
    "sinus_rhythm": Example(3, "00003_lr", ("NORM", "SR"), "sinusrhythmus normales ekg"),
    "atrial_fibrillation": Example(
        318, "00318_lr", ("NDT", "DIG", "STD_", "AFIB"),
        "atrial fibrillation. st segments are depressed in ii, iii, avf, v4,5,6. non-specific "
        "but consistent with myocardial ischaemia and digitalis effect."),
    "sinus_bradycardia": Example(2, "00002_lr", ("NORM", "SBRAD"),
                                 "sinusbradykardie sonst normales ekg"),
}


def names() -> list:
    """The examples' names: ``sinus_rhythm``, ``atrial_fibrillation``, ``sinus_bradycardia``."""
    return list(RECORDS)


def path(name: str) -> Path:
    """The record path (without extension, as ``read_record`` and the commands take it) of the
    example `name`."""
    if name not in RECORDS:
        raise ValueError(f"no example named {name!r}; the examples are {names()}")
    return _HERE / RECORDS[name].stem
