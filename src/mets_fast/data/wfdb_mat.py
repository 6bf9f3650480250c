"""Records whose samples are a MATLAB v4 ``.mat`` file beside a WFDB header, as the
PhysioNet/CinC Challenges (2017, 2020, 2021) publish them: ``val``, int16 ``(signals, samples)``.

The header is parsed here rather than by ``wfdb.rdheader``, which refuses the 2020 Georgia
release's record lines (``E00009.mat 12 500 5000 05-May-2020 14:50:55``: a file name as the
record name, a date in another format), and the matrix is checked against it: a header that
declares 6 signals over a matrix of 12 rows (or another sample count) is refused, never read
with its leads interleaved.  The one reader of such records, for :func:`~mets_fast.data.
read_record` (inference, uploads) and the Challenge source alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .wfdb_fast import record_line, signal_gain


def mat_file(fields: list) -> str | None:
    """The ``.mat`` file a header's signal lines (split) all name, or None where they name
    something else (a ``.dat``, several files)."""
    files = {f[0] for f in fields[1:] if f}
    if len(files) == 1 and next(iter(files)).lower().endswith(".mat"):
        return next(iter(files))
    return None


def read_mat(base: Path, header_file: Path) -> tuple | None:
    """``(signal (leads, samples) float64 in mV, fs in Hz, lead names as written, comment
    lines)`` of a record whose signals are one ``.mat`` file; None when the header names
    another kind of signal file (the caller reads it another way).  Gains with or without a
    baseline (``1000.0(0)/mV``, ``4880/mV``) and µV units are read.

    Raises FileNotFoundError when the ``.mat`` is missing, ValueError naming the file when the
    header cannot be parsed or disagrees with the matrix (signal count, sample count)."""
    lines = [line.strip() for line in header_file.read_text(errors="replace").splitlines()]
    comments = tuple(line[1:].strip() for line in lines if line.startswith("#"))
    fields = [line.split() for line in lines if line and not line.startswith("#")]
    if not fields or mat_file(fields) is None:
        return None
    try:
        n_sig, fs, length = record_line(fields[0])
    except ValueError:
        raise ValueError(f"{header_file}: cannot read the record line "
                         f"{' '.join(fields[0])!r}") from None
    if n_sig < 1 or len(fields) < n_sig + 1 or not fs > 0:
        raise ValueError(f"{header_file}: the record line declares {n_sig} signal(s) at {fs:g} "
                         f"Hz with {len(fields) - 1} signal line(s)")
    scale, names = [], []
    for f in fields[1:n_sig + 1]:
        if len(f) < 5:
            raise ValueError(f"{header_file}: a signal line has {len(f)} fields: "
                             f"{' '.join(f)!r}")
        scale.append(_gain(f, header_file))
        names.append(" ".join(f[8:]) if len(f) > 8 else f"lead{len(names)}")
    mat = header_file.parent / mat_file(fields)
    if not mat.is_file():
        raise FileNotFoundError(f"signal file not found: {mat} (named in {header_file})")
    import scipy.io  # here: `import mets_fast.data` stays light

    try:
        val = scipy.io.loadmat(str(mat))["val"]
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ValueError(f"{mat} cannot be read as a MATLAB file holding 'val': {exc}") \
            from None
    if val.ndim != 2 or val.shape[0] != n_sig or (length is not None and val.shape[1] != length):
        raise ValueError(f"{mat} holds a matrix of {val.shape}, but {header_file.name} declares "
                         f"{n_sig} signals of {length} samples: the header does not describe "
                         f"this file")
    gains = np.array([g for g, _ in scale])[:, None]
    baselines = np.array([b for _, b in scale])[:, None]
    return (val.astype(np.float64) - baselines) / gains, fs, tuple(names), comments


def _gain(f: list, header_file: Path) -> tuple:
    """(ADC units per mV, baseline) of a signal line (µV units read as such)."""
    try:
        gain, baseline, units = signal_gain(f[2], f[4])
    except ValueError:
        raise ValueError(f"{header_file}: cannot read the gain {f[2]!r}") from None
    if units.lower() in ("uv", "µv"):
        gain *= 1000.0
    return gain, baseline
