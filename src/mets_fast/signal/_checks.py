"""Input validation shared by the signal functions: arrays, sampling rates, non-finite samples."""

from __future__ import annotations

from numbers import Real

import numpy as np

from .resample import to_samples

MIN_FS = 50.0  # Hz; below this a QRS complex is a sample or two wide

NAN_POLICIES = ("raise", "interpolate")


def as_signal(x, name: str = "x") -> np.ndarray:
    """`x` as a float32 or float64 array (integers become float64); raises on anything else."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    elif x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}")
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); expected samples along the last axis")
    return x


def check_fs(fs) -> float:
    if isinstance(fs, bool) or not isinstance(fs, Real) or not np.isfinite(fs):
        raise TypeError(f"fs must be a finite number of Hz, got {fs!r}")
    if fs < MIN_FS:
        raise ValueError(f"fs must be at least {MIN_FS:g} Hz, got {fs:g} Hz")
    return float(fs)


def check_cutoff(value, fs: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite number of Hz, got {value!r}")
    if not 0 < value < fs / 2:
        raise ValueError(
            f"{name} = {value:g} Hz must lie between 0 and the Nyquist frequency "
            f"({fs / 2:g} Hz at fs = {fs:g} Hz)"
        )
    return float(value)


def handle_nonfinite(x: np.ndarray, fs: float, nan_policy: str, max_gap: float = 1.0,
                     name: str = "x") -> np.ndarray:
    """Returns `x` untouched when all samples are finite.  Otherwise raises (``"raise"``) or, with
    ``"interpolate"``, returns a copy whose NaN/inf runs of at most `max_gap` seconds are filled
    linearly along the last axis (runs at an edge take the nearest finite value)."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    # A float64 sum is NaN or inf exactly when a sample is (float32 inputs cannot overflow it);
    # only then is the mask built.
    if np.isfinite(np.add.reduce(x, axis=None, dtype=np.float64)):
        return x
    bad = ~np.isfinite(x)
    count = int(np.count_nonzero(bad))
    if not count:
        return x
    if nan_policy == "raise":
        first = np.unravel_index(int(np.argmax(bad)), x.shape)
        raise ValueError(
            f"{name} holds {count} NaN or inf sample(s) (the first at index {tuple(map(int, first))}); "
            f"pass nan_policy='interpolate' to fill gaps of up to {max_gap:g} s linearly"
        )
    out = np.array(x, copy=True)
    rows = out.reshape(-1, out.shape[-1])
    limit = to_samples(max_gap, fs)
    for r, row_bad in enumerate(bad.reshape(-1, out.shape[-1])):
        if not row_bad.any():
            continue
        if row_bad.all():
            raise ValueError(f"{name} has a row with no finite sample at all (row {r})")
        edges = np.diff(np.r_[0, row_bad.astype(np.int8), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int((stops - starts).max())
        if longest > limit:
            raise ValueError(
                f"{name} row {r} has a run of {longest} non-finite samples "
                f"({longest / fs:.3g} s), longer than max_gap = {max_gap:g} s"
            )
        good = np.flatnonzero(~row_bad)
        rows[r, row_bad] = np.interp(np.flatnonzero(row_bad), good, rows[r, good])
    return out
