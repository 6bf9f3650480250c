"""Reading any WFDB record: standard lead names, lead selection, resampling."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from ..errors import UsageError
from ..signal import handle_nonfinite, resample
from .wfdb_fast import read_plain, require_file
from .wfdb_mat import read_mat

MIN_SECONDS = 2.0  # a shorter recording holds under two heartbeats: nothing to score or learn

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
            and its samples as they are (invalid ones NaN).  With `fs`, leads that cannot be
            used (:func:`lead_faults`: no valid sample, an invalid run over 1 s, flat) become
            zeros with ``mask`` False, as missing leads are; a record with no usable lead is
            refused.
        leads: names to select and order (case-insensitive; ``MLII`` counts as ``II``; a
            string is one lead); leads the record lacks come back as rows of zeros with
            ``mask`` False.  None keeps every lead in the record's order.

    Raises:
        FileNotFoundError: the header or a signal file is missing (the message names it).
        ValueError: the header is empty or cannot be parsed, its sampling rate is not
            positive, the data are truncated or unreadable, `fs` is not a positive number, a
            requested lead name is repeated or names two of the record's leads, or (with `fs`)
            no lead is usable.
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
    # a plain single-segment format 16/212 record; the Challenges' .mat; anything else
    read = read_plain(base, header_file) or read_mat(base, header_file) or \
        _read_with_wfdb(base, header_file)
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
        signal, mask = select_leads(signal, names, leads, what=f"record {base}")
        chosen = tuple(standard_lead(n) for n in leads)
    if fs is not None:
        signal, mask = drop_unusable(signal, source_fs, mask, chosen, what=f"record {base}",
                                     own=names)
        if fs != source_fs:
            signal = resample(signal, source_fs, float(fs))
        source_fs = float(fs)
    return Record(signal.astype(np.float32), source_fs, chosen, mask, comments, base.name)


def parse_leads(text: str) -> tuple:
    """``--leads``: comma-separated names, each given its standard spelling (``ii`` -> ``II``,
    ``MLII`` -> ``II``); empty names and repeats are usage errors (the commands' exit 2)."""
    names = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise UsageError(f"--leads must be comma-separated lead names, got {text!r}")
    leads = tuple(standard_lead(n) for n in names)
    repeated = sorted({n for n in leads if leads.count(n) > 1})
    if repeated:
        raise UsageError(f"--leads names a lead twice: {repeated}")
    return leads


def parse_lead_names(text: str) -> dict:
    """``--lead-names``: comma-separated ``OWN=STANDARD`` pairs (``ECG=I``, ``CM5=V5``) that
    map a database's own lead names to standard ones; a usage error (exit 2) where a pair is
    malformed, a target is not one of the 12 standard leads, or a name is mapped twice."""
    mapping: dict = {}
    for pair in (p.strip() for p in text.split(",")):
        own, sep, standard = (x.strip() for x in pair.partition("="))
        if not sep or not own or not standard:
            raise UsageError(f"--lead-names takes OWN=STANDARD pairs, comma-separated "
                             f"(ECG=I), got {pair!r}")
        if standard_lead(standard) not in STANDARD_LEADS:
            raise UsageError(f"--lead-names {pair}: {standard!r} is not one of the standard "
                             f"leads {', '.join(STANDARD_LEADS)}")
        if standard_lead(own).lower() in {k.lower() for k in mapping}:
            raise UsageError(f"--lead-names maps {own!r} twice (names are case-insensitive)")
        mapping[standard_lead(own)] = standard_lead(standard)
    return mapping


def rename_leads(names: Sequence[str], mapping: dict | None = None) -> tuple:
    """A record's lead names in their standard spelling (:func:`standard_lead`), those that
    `mapping` names (own name -> standard lead, as :func:`parse_lead_names` makes it; names
    compared case-insensitively) renamed first."""
    mapping = {standard_lead(k).lower(): v for k, v in (mapping or {}).items()}
    return tuple(standard_lead(mapping.get(standard_lead(n).lower(), n)) for n in names)


def select_leads(signal: np.ndarray, names: Sequence[str], wanted: Sequence[str],
                 what: str = "the recording") -> tuple:
    """The rows of `signal` (``(..., leads, samples)``, leads named `names`) in the order of
    `wanted`, both matched through :func:`standard_lead`.  Returns ``(selected, mask)``: leads
    that `names` lacks come back as rows of zeros with ``mask`` False.

    Raises ValueError (naming `what`) when `wanted` repeats a lead, or when a wanted lead is
    named twice in `names` (which of the two rows is that lead cannot be known)."""
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = [standard_lead(n) for n in wanted]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"leads repeat a name: {list(wanted)}")
    names = [standard_lead(n) for n in names]
    twice = sorted({n for n in names if n in wanted and names.count(n) > 1})
    if twice:
        rows = {n: [i for i, m in enumerate(names) if m == n] for n in twice}
        raise ValueError(f"{what} names the lead(s) {', '.join(twice)} more than once "
                         f"(rows {rows}; its leads: {names}): each lead must appear once")
    index = {n: i for i, n in enumerate(names)}
    mask = np.array([n in index for n in wanted], dtype=bool)
    picked = np.zeros(signal.shape[:-2] + (len(wanted), signal.shape[-1]), dtype=signal.dtype)
    for k, n in enumerate(wanted):
        if n in index:
            picked[..., k, :] = signal[..., index[n], :]
    return picked, mask


def lead_faults(signal: np.ndarray, fs: float, max_gap: float = 1.0) -> np.ndarray:
    """Why each lead of `signal` (``(..., leads, samples)``, any rate `fs` in Hz) cannot be used,
    ``""`` where it can: ``"no valid sample"`` (all NaN or inf: the lead was off),
    ``"invalid for X s"`` (a run of non-finite samples longer than `max_gap` seconds, too long
    to interpolate), or ``"flat"`` (every valid sample equal: disconnected, or a zero row).
    Returns a string array of shape ``signal.shape[:-1]``."""
    x = np.asarray(signal, dtype=np.float64)
    finite = np.isfinite(x)
    faults = np.full(x.shape[:-1], "", dtype=object)
    valid = np.where(finite, x, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
        spread = np.nanmax(valid, axis=-1) - np.nanmin(valid, axis=-1)
    faults[spread == 0] = "flat"
    limit = max_gap * float(fs)
    for idx in zip(*np.nonzero(~finite.all(-1))):
        bad = ~finite[idx]
        if bad.all():
            faults[idx] = "no valid sample"
            continue
        edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
        longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
        if longest > limit:
            faults[idx] = f"invalid for {longest / float(fs):.3g} s"
    return faults


def drop_unusable(signal: np.ndarray, fs: float, mask: np.ndarray, names: Sequence[str],
                  what: str, own: Sequence[str] = ()) -> tuple:
    """A record's leads (``(leads, samples)`` at `fs` Hz, named `names`, ``mask`` True where
    present) made ready to resample: the present leads that cannot be used
    (:func:`lead_faults`) become zeros with ``mask`` False, as missing leads are, and short
    runs of invalid samples are filled (a resampling filter would smear a NaN over its
    neighbours).  Returns ``(signal, mask)``; a ValueError naming `what` when the recording is
    shorter than :data:`MIN_SECONDS`, no lead is present (the message names the record's `own`
    leads) or none present is usable."""
    seconds = signal.shape[-1] / float(fs)
    if seconds < MIN_SECONDS:
        raise ValueError(f"{what} lasts {seconds:.3g} s: too short to use (at least "
                         f"{MIN_SECONDS:g} s, two heartbeats, as inference asks)")
    if not mask.any():
        raise ValueError(f"{what} has none of the leads asked for ({', '.join(names)}): its "
                         f"leads are {', '.join(own) or 'unnamed'}; map them to standard "
                         f"leads with --lead-names (e.g. ECG=I)")
    faults = np.where(mask, lead_faults(signal, fs), "")
    if (faults[mask] != "").all():
        raise ValueError(f"{what} has no usable lead: {describe_faults(faults, names)}")
    signal = np.where(faults[:, None] != "", 0.0, signal)
    return (handle_nonfinite(signal, fs, "interpolate", name=what), mask & (faults == ""))


def describe_faults(faults: np.ndarray, names: Sequence[str]) -> str:
    """``"V3: no valid sample; aVL: flat"`` for the faulty leads of one recording (`faults` as
    :func:`lead_faults` gives them, ``(leads,)``)."""
    return "; ".join(f"{n}: {f}" for n, f in zip(names, faults) if f)


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
