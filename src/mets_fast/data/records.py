"""Reading any WFDB record: standard lead names, lead selection, resampling."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import scipy.signal

from ..signal._checks import handle_nonfinite

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
        leads: names to select and order (case-insensitive; ``MLII`` counts as ``II``); leads
            the record lacks come back as rows of zeros with ``mask`` False.  None keeps every
            lead in the record's order.

    Raises:
        FileNotFoundError: the header or a signal file is missing (the message names it).
        ValueError: the header cannot be parsed, the data are truncated or unreadable, or a
            requested lead name is repeated.
    """
    base = Path(path)
    if base.suffix in (".hea", ".dat"):
        base = base.with_suffix("")
    header_file = base.with_name(base.name + ".hea")
    if not header_file.is_file():
        raise FileNotFoundError(f"WFDB header not found: {header_file}")
    read = _read_plain(base, header_file)
    if read is None:  # anything but a plain single-segment format 16/212 record
        read = _read_with_wfdb(base, header_file)
    signal, source_fs, raw_names, comments = read
    names = tuple(standard_lead(n) for n in raw_names)
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
        _require(base.parent / file_name, header_file)
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except Exception as exc:
        raise ValueError(f"cannot read WFDB record {base}: {exc}") from exc
    signal = record.p_signal
    if signal is None or signal.shape[0] != header.sig_len:
        got = 0 if signal is None else signal.shape[0]
        raise ValueError(f"WFDB record {base} is truncated: the header declares "
                         f"{header.sig_len} samples, the data hold {got}")
    return (np.asarray(signal, dtype=np.float64).T, float(record.fs), tuple(record.sig_name),
            tuple(record.comments or ()))


def _require(data_file: Path, header_file: Path) -> None:
    if not data_file.is_file():
        raise FileNotFoundError(f"WFDB signal file not found: {data_file} "
                                f"(named in {header_file})")


# Invalid-sample codes of the two formats the fast path decodes (wfdb reads them as NaN).
_INVALID = {"16": -32768, "212": -2048}


def _read_plain(base: Path, header_file: Path) -> tuple | None:
    """The fast path for the common case, PTB-XL's and MIT-BIH's: a single-segment record whose
    signals are stored in format 16 or 212 without skew or byte offsets.  The header is parsed
    here and the samples decoded with NumPy, an order of magnitude faster than wfdb's general
    reader (whose header parsing dominates on short records); anything else returns None and
    goes to wfdb.  tests/test_data.py checks that both paths agree."""
    try:
        lines = header_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    comments = tuple(line[1:].strip() for line in lines if line.startswith("#"))
    fields = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    if not fields or len(fields[0]) < 4 or "/" in fields[0][0]:
        return None
    try:
        n_sig, sig_len = int(fields[0][1]), int(fields[0][3])
        fs = float(fields[0][2].split("/")[0].split("(")[0])
    except ValueError:
        return None
    if n_sig < 1 or len(fields) != n_sig + 1:
        return None
    files: dict = {}
    names, scale = [], []
    for k, f in enumerate(fields[1:]):
        if len(f) < 9 or f[1] not in _INVALID:
            return None
        gain_text = f[2].split("/")[0]
        try:
            adc_zero = int(f[4])
            if "(" in gain_text:
                gain, baseline = gain_text.rstrip(")").split("(")
                gain, baseline = float(gain), int(baseline)
            else:
                gain, baseline = float(gain_text), adc_zero
        except ValueError:
            return None
        files.setdefault((f[0], f[1]), []).append(k)
        names.append(" ".join(f[8:]))
        scale.append((gain or 200.0, baseline))  # a gain of 0 means WFDB's default, 200
    signal = np.empty((n_sig, sig_len))
    for (file_name, fmt), channels in files.items():
        data_file = base.parent / file_name
        _require(data_file, header_file)
        digital = _decode(data_file, fmt, len(channels), sig_len, base)
        for column, k in enumerate(channels):
            gain, baseline = scale[k]
            row = (digital[:, column] - baseline) / gain
            row[digital[:, column] == _INVALID[fmt]] = np.nan
            signal[k] = row
    return signal, fs, tuple(names), comments


def _decode(data_file: Path, fmt: str, channels: int, sig_len: int, base: Path) -> np.ndarray:
    raw = np.fromfile(data_file, dtype=np.uint8)
    if fmt == "16":
        need = 2 * channels * sig_len
        if raw.size < need:
            raise ValueError(f"WFDB record {base} is truncated: {data_file} holds {raw.size} "
                             f"bytes, the header needs {need}")
        return raw[:need].view("<i2").reshape(sig_len, channels).astype(np.int32)
    # format 212: two 12-bit samples in three bytes, interleaved over the channels
    total = channels * sig_len
    need = (total * 3 + 1) // 2
    if raw.size < need:
        raise ValueError(f"WFDB record {base} is truncated: {data_file} holds {raw.size} "
                         f"bytes, the header needs {need}")
    # an odd count may end in two bytes rather than a whole triple: pad it to one
    pairs = np.zeros((total + 1) // 2 * 3, dtype=np.int32)
    pairs[:need] = raw[:need]
    pairs = pairs.reshape(-1, 3)
    out = np.empty(pairs.shape[0] * 2, dtype=np.int32)
    out[0::2] = pairs[:, 0] | ((pairs[:, 1] & 0x0F) << 8)
    out[1::2] = pairs[:, 2] | ((pairs[:, 1] & 0xF0) << 4)
    out[out >= 2048] -= 4096
    return out[:total].reshape(sig_len, channels)


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """Polyphase resampling along the last axis from `fs` to `target` Hz (NaN-free input)."""
    if fs <= 0 or target <= 0:
        raise ValueError(f"sampling rates must be positive, got {fs} and {target}")
    ratio = Fraction(target / fs).limit_denominator(1000)
    if ratio == 1:
        return x
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
