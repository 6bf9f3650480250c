"""An ECG as a request carries it, read without trusting it: a JSON object, a NumPy ``.npy``
body, or the uploaded files of a WFDB or PhysioNet/CinC Challenge record.  Every function
returns a :class:`Recording` (the samples at their own rate, in mV, with their lead names) or
raises ValueError with a message meant for the client; nothing is unpickled, and an upload's
file names are never used as paths."""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ..data.records import read_record
from ..data.wfdb_fast import record_line
from .limits import LimitExceeded, Limits, check_recording

# More rows than any ECG device records (the 12 leads, Frank's XYZ, body-surface maps of 64)
MAX_LEADS = 64
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")  # ASCII digits only: int() also takes "٣"


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


class Request(NamedTuple):
    """A request as read: its ``fields`` (``classes`` decoded), its ``ecgs`` (None when it
    gives none) and whether it asked for a list (``many``: ``ecgs`` rather than ``ecg``)."""

    fields: dict
    ecgs: list | None
    many: bool


def read_json_body(body: bytes, max_batch: int, limits: Limits) -> Request:
    """A JSON request body: an object with ``ecg`` or ``ecgs`` (1 to `max_batch`; an entry's
    error names it, ``ecgs[3]: ...``) and the other fields."""
    try:
        fields = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise ValueError("the JSON body must be an object")
    if "ecg" in fields and "ecgs" in fields:
        raise ValueError("give ecg or ecgs, not both")
    if "ecgs" in fields:
        ecgs = fields["ecgs"]
        if not isinstance(ecgs, list) or not 1 <= len(ecgs) <= max_batch:
            raise ValueError(f"ecgs must be a list of 1 to {max_batch} ECGs (--max-batch)")
        return Request(fields, [entry(f"ecgs[{k}]", from_json, e, limits)
                                for k, e in enumerate(ecgs)], True)
    ecgs = [from_json(fields["ecg"], limits)] if "ecg" in fields else None
    return Request(fields, ecgs, False)


def _no_constant(name: str):
    """JSON has no NaN or Infinity (Python's parser takes them): refused, naming null."""
    raise ValueError(f"the JSON body holds {name}: JSON has no NaN or infinite samples; send "
                     f"null for an invalid sample")


def read_npy_body(params: dict, body: bytes, limits: Limits) -> Request:
    """A ``.npy`` body with its fields as query parameters (``fs``, ``leads`` and the
    request's own)."""
    fields = decode_fields(dict(params))
    if "fs" not in fields or "leads" not in fields:
        raise ValueError("a .npy body needs the query parameters fs and leads "
                         "(comma-separated), e.g. ?fs=500&leads=I,II")
    return Request(fields, [from_npy(body, fields["fs"], fields["leads"], limits)], False)


def read_form(fields: dict, files: list, limits: Limits) -> Request:
    """A ``multipart/form-data`` request: the record's files and the other fields."""
    fields = decode_fields(fields)
    return Request(fields, [from_upload(files, limits)] if files else None, False)


def entry(label: str, read, *args):
    """``read(*args)``, its ValueError prefixed with `label` (which entry of a list failed)."""
    try:
        return read(*args)
    except ValueError as exc:
        raise labelled(exc, label) from None


def labelled(exc: ValueError, label: str) -> ValueError:
    """`exc` with its message prefixed by `label` (``ecgs[2]: ...``), of the same kind (a
    :class:`LimitExceeded` keeps its status)."""
    if isinstance(exc, LimitExceeded):
        return LimitExceeded(f"{label}: {exc}", exc.status)
    return ValueError(f"{label}: {exc}")


def decode_fields(fields: dict) -> dict:
    """Query and form fields are text: ``classes`` is JSON (a list, or name ->
    descriptions)."""
    if "classes" in fields:
        try:
            fields["classes"] = json.loads(fields["classes"])
        except (ValueError, RecursionError):
            raise ValueError("classes must be a JSON list of names or object of name -> "
                             "descriptions, e.g. [\"sinus rhythm\", \"atrial fibrillation\"]"
                             ) from None
    return fields


def parse_int(value, name: str) -> int:
    """An integer from JSON, a query or a form (text of ASCII digits, a sign allowed)."""
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def from_json(ecg, limits: Limits | None = None) -> Recording:
    """``{"signal": leads x samples, "fs": Hz, "leads": [names]}``; a ``null`` (or NaN) sample
    is an invalid one (as a record's invalid ADC value: preprocessing fills short gaps and
    zeroes a lead that is mostly invalid); an infinite one is refused.  `limits`: the
    recording's size is checked before its samples are converted."""
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
    if limits is not None:
        check_recording(limits, lengths.pop(), len(rows), fs)
    if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
               for r in rows for v in r):
        raise ValueError("signal must hold numbers only (null for an invalid sample)")
    try:
        signal = np.array(rows, dtype=np.float64)  # null -> NaN
    except OverflowError:
        raise ValueError("signal holds a number beyond float64's range (about 1.8e308)") \
            from None
    if np.isinf(signal).any():
        raise ValueError("signal holds infinite samples: send null for an invalid sample")
    return _checked(signal, fs, leads, invalid_ok=True)


def from_npy(body: bytes, fs, leads, limits: Limits | None = None) -> Recording:
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
    if len(shape) != 2 or any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"the .npy array must be (leads, samples), got shape {shape}")
    if limits is not None:
        check_recording(limits, shape[1], shape[0], fs)
    size = int(np.prod(shape)) * dtype.itemsize
    offset = buffer.tell()
    if len(body) - offset != size:
        state = "truncated" if len(body) - offset < size else "longer than its array"
        raise ValueError(f"the .npy body is {state}: its header says {shape} {dtype} "
                         f"({size} bytes) but {len(body) - offset} bytes follow it")
    array = np.frombuffer(body, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    array = array.reshape(shape, order="F" if fortran else "C")
    if shape[0] != len(leads):
        raise ValueError(f"the .npy array has {shape[0]} leads but {len(leads)} lead names "
                         f"were given")
    return _checked(array.astype(np.float64), fs, leads)


def from_upload(files: Sequence[tuple[str, bytes]], limits: Limits | None = None) -> Recording:
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
    text, wanted, declared = _rename(header)
    if limits is not None and declared is not None:
        check_recording(limits, declared[2], declared[0], declared[1])
    with tempfile.TemporaryDirectory(prefix="mets-fast-upload-") as folder:
        for original, ours in wanted.items():
            if original not in by_name:
                raise ValueError(f"the header names the signal file {original!r}, which was "
                                 f"not uploaded")
            (Path(folder) / ours).write_bytes(by_name[original])
        (Path(folder) / "record.hea").write_text(text)
        try:
            record = read_record(Path(folder) / "record")
        except (OSError, ValueError) as exc:
            # the client knows its files by their own names, not by this server's folder
            message = str(exc).replace(f"{folder}/record", headers[0][0].removesuffix(".hea"))
            for original, ours in wanted.items():
                message = message.replace(f"{folder}/{ours}", original)
            message = message.replace(folder, "the upload")
            raise ValueError(f"the uploaded record cannot be read: {message}") from None
    if limits is not None:
        check_recording(limits, record.signal.shape[1], record.signal.shape[0], record.fs)
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
    ``{referenced name: our name}`` and what the record line declares ``(signals, fs,
    samples)`` (None where it does not give them all)."""
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
    try:
        declared = record_line(first)
        declared = declared if declared[2] is not None and declared[1] > 0 else None
    except ValueError:
        declared = None
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
    return "\n".join(lines) + "\n", ours, declared


def _checked(signal: np.ndarray, fs: float, leads: list,
             invalid_ok: bool = False) -> Recording:
    """`signal` as a Recording; NaN (invalid samples) allowed only with `invalid_ok`."""
    if not (invalid_ok or np.isfinite(signal).all()):
        raise ValueError("the signal holds NaN or infinite samples")
    if signal.shape[1] == 0:
        raise ValueError("the signal has no samples")
    return Recording(signal, float(fs), list(leads))
