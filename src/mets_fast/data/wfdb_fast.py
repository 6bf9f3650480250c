"""The fast path of :func:`~mets_fast.data.read_record` for the common case, PTB-XL's and
MIT-BIH's records: the header parsed here and format 16/212 samples decoded with NumPy (an order
of magnitude faster than wfdb's general reader on short records); anything else is left to
wfdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def require_file(data_file: Path, header_file: Path) -> None:
    if not data_file.is_file():
        raise FileNotFoundError(f"WFDB signal file not found: {data_file} "
                                f"(named in {header_file})")


# Invalid-sample codes of the two formats the fast path decodes (wfdb reads them as NaN).
_INVALID = {"16": -32768, "212": -2048}


def record_line(fields: list) -> tuple:
    """A WFDB header's record line, split, as ``(signals, fs in Hz, samples or None)`` (the
    rate may carry a counter frequency, ``500/1000``, or a base, ``500(0)``; the sample count
    may be absent).  ValueError when a number does not parse or a field is missing."""
    if len(fields) < 3:
        raise ValueError(f"a record line needs a name, a signal count and a rate, got {fields}")
    length = int(fields[3]) if len(fields) > 3 else None
    return int(fields[1]), float(fields[2].split("/")[0].split("(")[0]), length


def signal_gain(field: str, adc_zero: str) -> tuple:
    """A WFDB signal line's gain field (``1000.0(0)/mV``, ``4880/mV``, ``200``) and its ADC
    zero as ``(ADC units per physical unit, baseline, units)``: the baseline is the one in
    parentheses, else the ADC zero; a gain of 0 means WFDB's default, 200.  ValueError when a
    number does not parse."""
    spec, _, units = field.partition("/")
    if "(" in spec:
        gain_text, baseline = spec.rstrip(")").split("(", 1)
        gain, baseline = float(gain_text), int(baseline)
    else:
        gain, baseline = float(spec), int(adc_zero)
    return gain or 200.0, baseline, units


def read_plain(base: Path, header_file: Path) -> tuple | None:
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
        n_sig, fs, sig_len = record_line(fields[0])
    except ValueError:
        return None
    if n_sig < 1 or len(fields) != n_sig + 1:
        return None
    files: dict = {}
    names, scale = [], []
    for k, f in enumerate(fields[1:]):
        if len(f) < 9 or f[1] not in _INVALID:
            return None
        try:
            gain, baseline, _ = signal_gain(f[2], f[4])
        except ValueError:
            return None
        files.setdefault((f[0], f[1]), []).append(k)
        names.append(" ".join(f[8:]))
        scale.append((gain, baseline))
    decoded = {}
    for (file_name, fmt), channels in files.items():
        data_file = base.parent / file_name
        require_file(data_file, header_file)
        # decoded before anything is allocated: a header's sample count is only as good as
        # the file that bears it out
        decoded[file_name, fmt] = _decode(data_file, fmt, len(channels), sig_len, base)
    signal = np.empty((n_sig, sig_len))
    for (file_name, fmt), channels in files.items():
        digital = decoded[file_name, fmt]
        for column, k in enumerate(channels):
            gain, baseline = scale[k]
            row = (digital[:, column] - baseline) / gain
            row[digital[:, column] == _INVALID[fmt]] = np.nan
            signal[k] = row
    return signal, fs, tuple(names), comments


def _bytes_needed(fmt: str, channels: int, sig_len: int) -> int:
    total = channels * sig_len
    return 2 * total if fmt == "16" else (total * 3 + 1) // 2


def _decode(data_file: Path, fmt: str, channels: int, sig_len: int, base: Path) -> np.ndarray:
    raw = np.fromfile(data_file, dtype=np.uint8)
    need = _bytes_needed(fmt, channels, sig_len)
    if raw.size < need:
        raise ValueError(f"WFDB record {base} is truncated: {data_file} holds {raw.size} "
                         f"bytes, the header needs {need}")
    # a file that holds exactly the samples of another signal count, for the header's length,
    # is one the header misdescribes: read as declared, its samples would interleave wrongly
    bits = 16 if fmt == "16" else 12
    held = raw.size * 8 // (bits * max(sig_len, 1))
    if held > channels and raw.size == _bytes_needed(fmt, held, sig_len):
        raise ValueError(f"WFDB record {base}: {data_file} holds the samples of {held} signals "
                         f"of {sig_len}, but the header declares {channels} in it: the header "
                         f"does not describe this file")
    if fmt == "16":
        return raw[:need].view("<i2").reshape(sig_len, channels).astype(np.int32)
    # format 212: two 12-bit samples in three bytes, interleaved over the channels
    total = channels * sig_len
    # an odd count may end in two bytes rather than a whole triple: pad it to one
    pairs = np.zeros((total + 1) // 2 * 3, dtype=np.int32)
    pairs[:need] = raw[:need]
    pairs = pairs.reshape(-1, 3)
    out = np.empty(pairs.shape[0] * 2, dtype=np.int32)
    out[0::2] = pairs[:, 0] | ((pairs[:, 1] & 0x0F) << 8)
    out[1::2] = pairs[:, 2] | ((pairs[:, 1] & 0xF0) << 4)
    out[out >= 2048] -= 4096
    return out[:total].reshape(sig_len, channels)
