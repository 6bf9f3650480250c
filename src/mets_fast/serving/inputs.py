"""An ECG as a request carries it, read without trusting it: a JSON object, a NumPy ``.npy``
body, or the uploaded files of a WFDB or PhysioNet/CinC Challenge record.  Every function
returns a :class:`Recording` (the samples at their own rate, in mV, with their lead names) or
raises ValueError with a message meant for the client; nothing is unpickled, and an upload's
file names are never used as paths."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ..data.records import read_record

# More rows than any ECG device records (the 12 leads, Frank's XYZ, body-surface maps of 64)
MAX_LEADS = 64
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class Recording(NamedTuple):
    """``signal`` ``(leads, samples)`` float64 in mV, ``fs`` in Hz, ``leads`` the names of its
    rows."""

    signal: np.ndarray
    fs: float
    leads: list


def parse_fs(value) -> float:
    """A sampling rate from JSON, a query or a form: a finite number > 0 (text is parsed)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"fs must be a number of Hz, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not np.isfinite(value) or value <= 0:
        raise ValueError(f"fs must be a positive number of Hz, got {value!r}")
    return float(value)


def parse_leads(value) -> list:
    """Lead names: a JSON list of strings or comma-separated text (``I,II,V1``); 1 to
    :data:`MAX_LEADS` of them, none empty or repeated."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError("leads must be a list of lead names (or comma-separated text)")
    if not value:
        raise ValueError("leads is empty: name the leads of the signal's rows")
    if len(value) > MAX_LEADS:
        raise ValueError(f"{len(value)} leads given; at most {MAX_LEADS} are accepted")
    if any(not n.strip() for n in value):
        raise ValueError("a lead name is empty")
    twice = sorted({n for n in value if value.count(n) > 1})
    if twice:
        raise ValueError(f"lead {twice[0]!r} is named twice")
    return [n.strip() for n in value]


def from_json(ecg) -> Recording:
    """``{"signal": leads x samples, "fs": Hz, "leads": [names]}``."""
    if not isinstance(ecg, dict):
        raise ValueError("an ECG is an object {\"signal\": leads x samples, \"fs\": Hz, "
                         "\"leads\": [names]}")
    missing = [k for k in ("signal", "fs", "leads") if k not in ecg]
    if missing:
        raise ValueError(f"the ECG lacks {missing}: give signal (leads x samples), fs and leads")
    leads = parse_leads(ecg["leads"])
    fs = parse_fs(ecg["fs"])
    rows = ecg["signal"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise ValueError("signal must be a non-empty list of leads, each a list of samples")
    if len(rows) != len(leads):
        raise ValueError(f"signal has {len(rows)} leads but {len(leads)} lead names were given")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"the leads of signal have different lengths: {sorted(lengths)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in rows for v in r):
        raise ValueError("signal must hold numbers only")
    return _checked(np.asarray(rows, dtype=np.float64), fs, leads)


def from_npy(body: bytes, fs, leads) -> Recording:
    """A ``.npy`` file's bytes ``(leads, samples)`` of a numeric type, with `fs` and `leads`
    given beside it.  The header is parsed as NumPy defines it (format 1.0, 2.0 or 3.0); an
    object type is refused before anything else is read, and the data are read by their
    declared size, so a truncated body is an error, never a partial array."""
    leads, fs = parse_leads(leads), parse_fs(fs)
    buffer = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(buffer)
        reader = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = reader(buffer)
    except Exception as exc:  # NumPy raises ValueError or others on a malformed header
        raise ValueError(f"the body is not a valid .npy file ({exc})") from None
    if dtype.hasobject or dtype.kind not in "iuf":
        raise ValueError(f"the .npy array must be of integers or floats, not {dtype}")
    if len(shape) != 2:
        raise ValueError(f"the .npy array must be (leads, samples), got shape {shape}")
    size = int(np.prod(shape)) * dtype.itemsize
    offset = buffer.tell()
    if len(body) - offset < size:
        raise ValueError(f"the .npy body is truncated: its header says {shape} {dtype} "
                         f"({size} bytes) but {len(body) - offset} bytes follow it")
    array = np.frombuffer(body, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    array = array.reshape(shape, order="F" if fortran else "C")
    if shape[0] != len(leads):
        raise ValueError(f"the .npy array has {shape[0]} leads but {len(leads)} lead names "
                         f"were given")
    return _checked(array.astype(np.float64), fs, leads)


def from_upload(files: Sequence[tuple[str, bytes]]) -> Recording:
    """A record uploaded as its files (``(file name, bytes)``): one ``.hea`` header and the
    signal files it names (WFDB ``.dat``, or the Challenge's MATLAB v4 ``.mat``).

    The files are written into a new temporary folder (removed before returning) under names
    of our own, the header's references rewritten to them: a file name is only compared with
    the names the header gives, never joined to a path."""
    if not files:
        raise ValueError("no files uploaded: send the record's .hea and its signal files in "
                         "the field 'files'")
    headers = [(n, b) for n, b in files if str(n).lower().endswith(".hea")]
    if len(headers) != 1:
        raise ValueError(f"upload exactly one .hea header with its signal files; got "
                         f"{len(headers)} headers among {len(files)} files")
    try:
        header = headers[0][1].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("the .hea header is not ASCII text") from None
    by_name = {_base(n): b for n, b in files}
    text, wanted = _rename(header)
    with tempfile.TemporaryDirectory(prefix="mets-fast-upload-") as folder:
        for original, ours in wanted.items():
            if original not in by_name:
                raise ValueError(f"the header names the signal file {original!r}, which was "
                                 f"not uploaded")
            (Path(folder) / ours).write_bytes(by_name[original])
        (Path(folder) / "record.hea").write_text(text)
        try:
            record = read_record(Path(folder) / "record")
        except FileNotFoundError as exc:
            raise ValueError(f"the record is incomplete: {exc}") from None
    # invalid ADC samples are NaN here, as for a record read from disk (preprocessing fills
    # short gaps and zeroes unusable leads), so they are not refused as a JSON NaN is
    return Recording(np.asarray(record.signal, dtype=np.float64), float(record.fs),
                     list(record.leads))


def _base(name: str) -> str:
    """The last part of an uploaded file's name as the client's system wrote it (``/`` or
    ``\\``), for comparing with a header's reference only."""
    return re.split(r"[\\/]", str(name))[-1]


def _rename(header: str) -> tuple:
    """The header with its record name made ``record`` and each signal file ``signalK.ext``,
    and ``{referenced name: our name}``."""
    lines = header.splitlines()
    body = [k for k, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        raise ValueError("the .hea header is empty")
    first = lines[body[0]].split()
    if "/" in first[0]:
        raise ValueError("multi-segment records are not accepted: upload a single-segment "
                         "record")
    try:
        count = int(first[1]) if len(first) > 1 else 0
    except ValueError:
        raise ValueError(f"the .hea header's first line is not a WFDB record line: "
                         f"{lines[body[0]][:80]!r}") from None
    if not 0 < count <= MAX_LEADS or len(body) < count + 1:
        raise ValueError(f"the .hea header must describe 1 to {MAX_LEADS} signals, one line "
                         f"each; it declares {count} and has {len(body) - 1} signal lines")
    lines[body[0]] = " ".join(["record"] + first[1:])
    ours: dict = {}
    for k in body[1:count + 1]:
        parts = lines[k].split()
        original = parts[0]
        if original not in ours:
            suffix = Path(original).suffix.lower() or ".dat"
            if not _SAFE_SUFFIX.match(suffix):
                raise ValueError(f"the header names a signal file with an odd extension: "
                                 f"{original[:80]!r}")
            ours[original] = f"signal{len(ours)}{suffix}"
        lines[k] = " ".join([ours[original]] + parts[1:])
    return "\n".join(lines) + "\n", ours


def _checked(signal: np.ndarray, fs: float, leads: list) -> Recording:
    if not np.isfinite(signal).all():
        raise ValueError("the signal holds NaN or infinite samples")
    if signal.shape[1] == 0:
        raise ValueError("the signal has no samples")
    return Recording(signal, float(fs), list(leads))
