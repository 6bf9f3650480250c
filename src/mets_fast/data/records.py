"""Reading any WFDB record: standard lead names, lead selection, resampling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from ..signal import handle_nonfinite, resample
from .wfdb_fast import read_plain, require_file

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Names the databases use for the standard leads, case-folded.  MIT-BIH's modified limb leads
# (MLII, MLI, MLIII) count as their standard counterparts.
_ALIASES = {name.lower(): name for name in STANDARD_LEADS}
_ALIASES.update({"mli": "I", "mlii": "II", "mliii": "III", "ml2": "II", "d1": "I", "d2": "II",
                 "d3": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF"})


class Record(NamedTuple):
    """One ECG: ``signal`` float32 ``(leads, samples)`` in mV, ``fs`` in Hz, the lead names in
    the signal's order (standard names where recognised), ``mask`` (False for leads that were
    asked for but missing, whose rows are zeros), the header's comment lines and the record
    name."""

    signal: np.ndarray
    fs: float
    leads: tuple
    mask: np.ndarray
    comments: tuple
    name: str


def standard_lead(name: str) -> str:
    """The standard name of a lead (``"MLII"`` -> ``"II"``, ``"avr"`` -> ``"aVR"``); other names
    are returned stripped, as they are."""
    key = name.strip().lower().replace(" ", "")
    return _ALIASES.get(key, name.strip())


def read_record(path: str | os.PathLike, fs: float | None = None,
                leads: Sequence[str] | None = None) -> Record:
    """Reads a WFDB record (``path`` with or without ``.hea``).

    Args:
        path: the record, e.g. ``"ptbxl/records500/00000/00001_hr"``.
        fs: resample to this rate (Hz) with a polyphase filter (``scipy.signal.resample_poly``,
            the rate ratio as a fraction with denominator at most 1000), after filling gaps of
            NaN samples (invalid ADC values) of up to 1 s linearly; None keeps the record's rate
            and its samples as they are.
        leads: names to select and order (case-insensitive; ``MLII`` counts as ``II``; a
            string is one lead); leads the record lacks come back as rows of zeros with
            ``mask`` False.  None keeps every lead in the record's order.

    Raises:
        FileNotFoundError: the header or a signal file is missing (the message names it).
        ValueError: the header is empty or cannot be parsed, its sampling rate is not
            positive, the data are truncated or unreadable, `fs` is not a positive number, or
            a requested lead name is repeated.
    """
    if fs is not None and (isinstance(fs, bool) or not isinstance(fs, (int, float, np.number))
                           or not np.isfinite(fs) or fs <= 0):
        raise ValueError(f"fs must be a positive number of Hz, got {fs!r}")
    base = Path(path)
    if base.suffix in (".hea", ".dat"):
        base = base.with_suffix("")
    header_file = base.with_name(base.name + ".hea")
    if not header_file.is_file():
        raise FileNotFoundError(f"WFDB header not found: {header_file}")
    if not header_file.read_text(errors="replace").strip():
        raise ValueError(f"WFDB header {header_file} is empty")
    read = read_plain(base, header_file)
    if read is None:  # anything but a plain single-segment format 16/212 record
        read = _read_with_wfdb(base, header_file)
    signal, source_fs, raw_names, comments = read
    if not (np.isfinite(source_fs) and source_fs > 0):
        raise ValueError(f"WFDB header {header_file} gives a sampling rate of {source_fs:g} Hz; "
                         f"it must be positive")
    names = tuple(standard_lead(n) for n in raw_names)
    if isinstance(leads, str):
        leads = [leads]
    if leads is None:
        mask = np.ones(len(names), dtype=bool)
        chosen = names
    else:
        signal, mask = select_leads(signal, names, leads)
        chosen = tuple(standard_lead(n) for n in leads)
    if fs is not None and fs != source_fs:
        # a resampling filter would smear a NaN sample over its neighbours: fill short gaps
        signal = handle_nonfinite(signal, source_fs, "interpolate", name=f"record {base}")
        signal = resample(signal, source_fs, float(fs))
        source_fs = float(fs)
    return Record(signal.astype(np.float32), source_fs, chosen, mask, comments, base.name)


def select_leads(signal: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> tuple:
    """The rows of `signal` (``(..., leads, samples)``, leads named `names`) in the order of
    `wanted`, both matched through :func:`standard_lead`.  Returns ``(selected, mask)``: leads
    that `names` lacks come back as rows of zeros with ``mask`` False.

    Raises ValueError when `wanted` repeats a lead."""
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = [standard_lead(n) for n in wanted]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"leads repeat a name: {list(wanted)}")
    index = {standard_lead(n): i for i, n in enumerate(names)}
    mask = np.array([n in index for n in wanted], dtype=bool)
    picked = np.zeros(signal.shape[:-2] + (len(wanted), signal.shape[-1]), dtype=signal.dtype)
    for k, n in enumerate(wanted):
        if n in index:
            picked[..., k, :] = signal[..., index[n], :]
    return picked, mask


def _read_with_wfdb(base: Path, header_file: Path) -> tuple:
    """Any record wfdb reads: (signal (leads, samples) float64, fs, names, comments)."""
    import wfdb  # imported here: `import mets_fast.data` stays light

    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:
        raise ValueError(f"cannot parse WFDB header {header_file}: {exc}") from exc
    if not header.n_sig:
        raise ValueError(f"WFDB header {header_file} declares no signals")
    for file_name in dict.fromkeys(header.file_name or []):
        require_file(base.parent / file_name, header_file)
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except Exception as exc:
        raise ValueError(f"cannot read WFDB record {base}: {exc}") from exc
    signal = record.p_signal
    # a header need not give the sample count (valid WFDB: the file's length says it)
    if signal is None or (header.sig_len is not None and signal.shape[0] != header.sig_len):
        got = 0 if signal is None else signal.shape[0]
        raise ValueError(f"WFDB record {base} is truncated: the header declares "
                         f"{header.sig_len} samples, the data hold {got}")
    return (np.asarray(signal, dtype=np.float64).T, float(record.fs), tuple(record.sig_name),
            tuple(record.comments or ()))
