"""Beats around R peaks: fixed windows, RR intervals, heart rate."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from ._checks import as_signal, check_fs, handle_nonfinite
from .peaks import detect_rpeaks
from .resample import to_samples


class Beats(NamedTuple):
    beats: np.ndarray   # (n_beats, leads, window), the input's dtype
    rpeaks: np.ndarray  # (n_beats,) int64: the R peak of each window


def segment_beats(x: np.ndarray, fs: float, rpeaks: np.ndarray | None = None,
                  before: float = 0.25, after: float = 0.45, *,
                  nan_policy: str = "raise") -> Beats:
    """Cuts a fixed window around every R peak.

    Args:
        x: ``(samples,)`` or ``(leads, samples)``.
        fs: sampling rate in Hz.
        rpeaks: sample indices of the R peaks; detected with :func:`detect_rpeaks` (all leads
            combined) when None.
        before, after: seconds kept before and after each R peak: the window spans
            ``round(before fs) + round(after fs)`` samples, the R peak at index
            ``round(before fs)``.
        nan_policy: as in :func:`detect_rpeaks`.

    Returns:
        ``Beats(beats, rpeaks)``: ``beats`` shaped ``(n_beats, leads, window)`` (one lead for a
        1-D input) and the R peaks of the windows kept: beats too near either edge for a whole
        window are dropped, and ``rpeaks`` drops them too.
    """
    x = as_signal(x)
    fs = check_fs(fs)
    if x.ndim > 2:
        raise ValueError(f"x must be (samples,) or (leads, samples), got shape {x.shape}")
    if before < 0 or after < 0 or before + after <= 0:
        raise ValueError(f"before and after must be >= 0 seconds with a positive sum, got "
                         f"{before!r} and {after!r}")
    x = handle_nonfinite(x, fs, nan_policy)
    leads = x.reshape(-1, x.shape[-1])
    n = leads.shape[1]
    if rpeaks is None:
        rpeaks = detect_rpeaks(leads, fs)
    rpeaks = _check_indices(rpeaks, n)
    lo, hi = to_samples(before, fs), to_samples(after, fs)
    keep = rpeaks[(rpeaks - lo >= 0) & (rpeaks + hi <= n)]
    out = np.empty((keep.shape[0], leads.shape[0], lo + hi), dtype=leads.dtype)
    _cut(np.ascontiguousarray(leads), keep, lo, out)
    return Beats(out, keep)


def rr_intervals(rpeaks: np.ndarray, fs: float) -> np.ndarray:
    """Seconds between consecutive R peaks, shaped ``(len(rpeaks) - 1,)``."""
    fs = check_fs(fs)
    rpeaks = _check_indices(rpeaks, None)
    return np.diff(rpeaks) / fs


def heart_rate(rpeaks: np.ndarray, fs: float) -> np.ndarray:
    """Instantaneous heart rate in beats per minute, one value per RR interval
    (``60 / rr_intervals``); take its median for a robust rate of the recording."""
    rr = rr_intervals(rpeaks, fs)
    if np.any(rr <= 0):
        raise ValueError("R peaks must be strictly increasing")
    return 60.0 / rr


def _check_indices(rpeaks, n: int | None) -> np.ndarray:
    rpeaks = np.asarray(rpeaks)
    if rpeaks.ndim != 1:
        raise ValueError(f"rpeaks must be 1-d, got shape {rpeaks.shape}")
    if rpeaks.size and rpeaks.dtype.kind not in "iu":
        raise TypeError(f"rpeaks must hold integer sample indices, got dtype {rpeaks.dtype}")
    rpeaks = rpeaks.astype(np.int64)
    if n is not None and rpeaks.size and (rpeaks.min() < 0 or rpeaks.max() >= n):
        raise ValueError(f"rpeaks must lie in [0, {n}) (the signal's samples), got "
                         f"[{rpeaks.min()}, {rpeaks.max()}]")
    return rpeaks


@numba.njit(cache=True, parallel=True)
def _cut(leads, rpeaks, lo, out):
    window = out.shape[2]
    for i in numba.prange(rpeaks.shape[0]):
        start = rpeaks[i] - lo
        for l in range(leads.shape[0]):
            for k in range(window):
                out[i, l, k] = leads[l, start + k]
