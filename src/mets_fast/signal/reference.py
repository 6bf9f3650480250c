"""The cleaning chain written with scipy and numpy alone: the plain reference that tests compare
:func:`mets_fast.signal.clean` against and benchmarks time it against.  Same algorithm, same
parameters, no Numba."""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal

from .filters import baseline_plan


def remove_baseline_scipy(x: np.ndarray, fs: float) -> np.ndarray:
    """:func:`mets_fast.signal.remove_baseline`: block means, two ``ndimage.median_filter``
    passes (``"reflect"``), linear interpolation back to every sample."""
    q, w1, w2 = baseline_plan(fs)
    n = x.shape[-1]
    starts = np.arange(0, n, q)
    lengths = np.diff(np.r_[starts, n])
    means = np.add.reduceat(x.astype(np.float64), starts, axis=-1) / lengths
    size = (1,) * (x.ndim - 1)
    base = scipy.ndimage.median_filter(means, size=size + (w1,), mode="reflect")
    base = scipy.ndimage.median_filter(base, size=size + (w2,), mode="reflect")
    centres = starts + (lengths - 1) / 2
    grid = np.arange(n)
    flat = base.reshape(-1, base.shape[-1])
    full = np.stack([np.interp(grid, centres, row) for row in flat]).reshape(x.shape[:-1] + (n,))
    return x - full


def clean_scipy(x: np.ndarray, fs: float, low: float = 0.5, high: float = 40.0,
                powerline: float | None = 50.0) -> np.ndarray:
    """:func:`mets_fast.signal.clean` with ``sosfiltfilt`` and ``iirnotch`` + ``filtfilt``."""
    y = remove_baseline_scipy(x, fs)
    sos = scipy.signal.butter(4, [low, min(high, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    y = scipy.signal.sosfiltfilt(sos, y, axis=-1)
    if powerline is not None and powerline < fs / 2:
        b, a = scipy.signal.iirnotch(powerline, 30.0, fs)
        y = scipy.signal.filtfilt(b, a, y, axis=-1)
    return y.astype(x.dtype, copy=False)
