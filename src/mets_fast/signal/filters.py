"""ECG filters: band-pass, power-line notch, baseline-wander removal and the default chain.

All take arrays of any shape with samples along the last axis (float32 or float64; the result
has the input's shape and dtype) and run the rows in parallel with Numba.
"""

from __future__ import annotations

import math
from numbers import Integral

import numba
import numpy as np

from . import iir
from .iir import filtfilt_lanes, from_lanes, to_lanes
from .simd import LANES
from ._checks import as_signal, check_cutoff, check_fs, handle_nonfinite
from .resample import to_samples


def bandpass(x: np.ndarray, fs: float, low: float = 0.5, high: float = 40.0, order: int = 4,
             *, nan_policy: str = "raise") -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis.

    Args:
        x: signals, ``(..., samples)``, float32 or float64.
        fs: sampling rate in Hz (at least 50).
        low, high: cut-offs in Hz, ``0 < low < high < fs / 2``.
        order: Butterworth order (the forward-backward pass doubles it).
        nan_policy: ``"raise"`` on NaN/inf samples, or ``"interpolate"`` to fill gaps of up to
            1 s linearly first.

    Returns:
        The filtered signals, equal to ``scipy.signal.sosfiltfilt(scipy.signal.butter(order,
        [low, high], "bandpass", fs=fs, output="sos"), x)`` (scipy's default odd padding) to
        about 1e-12 of the signal's peak; same shape and dtype as `x`.
    """
    x = as_signal(x)
    fs = check_fs(fs)
    low, high = check_cutoff(low, fs, "low"), check_cutoff(high, fs, "high")
    if low >= high:
        raise ValueError(f"low ({low:g} Hz) must be below high ({high:g} Hz)")
    if isinstance(order, bool) or not isinstance(order, Integral) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    return iir.filtfilt(handle_nonfinite(x, fs, nan_policy), iir.butter(int(order), low, high, fs))


def notch(x: np.ndarray, fs: float, freq: float = 50.0, quality: float = 30.0,
          *, nan_policy: str = "raise") -> np.ndarray:
    """Zero-phase power-line notch: ``scipy.signal.filtfilt(*scipy.signal.iirnotch(freq,
    quality, fs), x)`` along the last axis (use ``freq=60`` in the Americas).  The -3 dB width
    is ``freq / quality`` Hz."""
    x = as_signal(x)
    fs = check_fs(fs)
    freq = check_cutoff(freq, fs, "freq")
    if not (isinstance(quality, (int, float)) and quality > 0):
        raise ValueError(f"quality must be a positive number, got {quality!r}")
    x = handle_nonfinite(x, fs, nan_policy)
    return iir.filtfilt(x, iir.iirnotch(freq, float(quality), fs))


def remove_baseline(x: np.ndarray, fs: float, *, qrs_window: float = 0.2,
                    wave_window: float = 0.6, rate: float = 25.0,
                    nan_policy: str = "raise") -> np.ndarray:
    """Removes baseline wander with the two-stage median filter of de Chazal et al. (2004): a
    200 ms median drops the QRS complexes, a 600 ms median of that drops the P and T waves,
    what remains is the baseline, subtracted along the last axis.  Unlike a high-pass filter it
    does not tilt the ST segment, and it keeps short ST deviations; an ST deviation that merges
    into the T wave for a large part of the 600 ms window is partly absorbed into the baseline
    (as with the classic filter).

    Departs from the classic filter in one way: the medians run on means of blocks of
    ``q = max(1, fs // rate)`` samples (about 25 Hz) and the baseline is interpolated linearly
    back to every sample.  The baseline lies below 1 Hz, so nothing is lost (the tests compare
    it with the full-rate filter), and the medians cost q times fewer samples and q times
    shorter windows.  Windows are rounded to an odd
    number of blocks; edges are handled as ``scipy.ndimage.median_filter``'s ``"reflect"`` mode.

    Args:
        x: signals ``(..., samples)``; fs: Hz; qrs_window, wave_window: the two median windows
        in seconds; rate: the block rate in Hz; nan_policy: as in :func:`bandpass`.
    """
    x = as_signal(x)
    fs = check_fs(fs)
    for name, value in (("qrs_window", qrs_window), ("wave_window", wave_window),
                        ("rate", rate)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    x = handle_nonfinite(x, fs, nan_policy)
    n = x.shape[-1]
    rows = np.ascontiguousarray(x.reshape(-1, n))
    out = np.empty_like(rows)
    _remove_baseline_rows(rows, *baseline_plan(fs, qrs_window, wave_window, rate), out)
    return out.reshape(x.shape)


def baseline_plan(fs: float, qrs_window: float = 0.2, wave_window: float = 0.6,
                  rate: float = 25.0) -> tuple:
    """(block length q, first window, second window) in blocks, both windows odd."""
    q = max(1, int(fs // rate))

    def odd(seconds):
        return max(1, 2 * (to_samples(seconds, fs / q) // 2) + 1)

    return q, odd(qrs_window), odd(wave_window)


def clean(x: np.ndarray, fs: float, *, low: float = 0.5, high: float = 40.0,
          powerline: float | None = 50.0, nan_policy: str = "raise") -> np.ndarray:
    """The default cleaning chain of the data layer, along the last axis: baseline removal
    (:func:`remove_baseline`), band-pass ``low``–``high`` Hz (:func:`bandpass`, order 4) and a
    ``powerline`` notch (:func:`notch`; ``None`` skips it).

    For low sampling rates the chain adapts instead of failing: ``high`` is lowered to
    0.45 fs when fs cannot carry it (for example 22.5 Hz at 50 Hz), and the notch is skipped
    when the power-line frequency is not below the Nyquist frequency (for example 50 Hz at
    100 Hz, PTB-XL's low rate).
    """
    x = as_signal(x)
    fs = check_fs(fs)
    high = min(high, 0.45 * fs)
    low, high = check_cutoff(low, fs, "low"), check_cutoff(high, fs, "high")
    x = handle_nonfinite(x, fs, nan_policy)
    band = iir.butter(4, low, high, fs)
    if powerline is not None and powerline < fs / 2:
        notch_filter = iir.iirnotch(check_cutoff(powerline, fs, "powerline"), 30.0, fs)
    else:
        notch_filter = iir.from_sos(np.empty((0, 6)))
    n = x.shape[-1]
    iir.check_length(n, max(band.padlen, notch_filter.padlen))
    rows = np.ascontiguousarray(x.reshape(-1, n))
    out = np.empty_like(rows)
    _clean_rows(rows, *baseline_plan(fs), kernel_args(band), kernel_args(notch_filter), out)
    return out.reshape(x.shape)


@numba.njit(cache=True, parallel=True)
def _remove_baseline_rows(x, q, w1, w2, out):
    for r in numba.prange(x.shape[0]):
        baseline_row(x[r], q, w1, w2, out[r])


def kernel_args(f: iir.SOSFilter) -> tuple:
    """What the kernels take of a filter: (coeffs, gains, padlen)."""
    return f.coeffs, f.gains, f.padlen


@numba.njit(cache=True, parallel=True)
def _clean_rows(x, q, w1, w2, band, notch, out):
    """The whole chain, eight rows at a time (the filters' SIMD lanes), each block staying in
    cache: baseline removal, then each filter (a tuple of coeffs, gains, padlen; a notch with
    no sections is skipped) forward and backward on the result of the step before, padded as
    scipy pads it."""
    rows, n = x.shape
    pad = max(band[2], notch[2])
    for block in numba.prange((rows + LANES - 1) // LANES):
        r0 = block * LANES
        r1 = min(rows, r0 + LANES)
        y = np.empty((r1 - r0, n))
        for r in range(r0, r1):
            baseline_row(x[r], q, w1, w2, y[r - r0])
        buf = to_lanes(y, pad)
        filtfilt_lanes(buf, pad, n, band[0], band[1], band[2])
        if notch[0].shape[0]:
            filtfilt_lanes(buf, pad, n, notch[0], notch[1], notch[2])
        from_lanes(buf, pad, out[r0:r1])


@numba.njit(cache=True)
def baseline_row(row, q, w1, w2, out):
    """`row` minus its two-stage median baseline (see remove_baseline) into `out`."""
    n = row.shape[0]
    blocks = (n + q - 1) // q
    means = np.empty(blocks)
    for b in range(blocks):
        lo, hi = b * q, min(n, (b + 1) * q)
        s = 0.0
        for t in range(lo, hi):
            s += row[t]
        means[b] = s / (hi - lo)
    base = running_median(running_median(means, w1), w2)
    # linear interpolation between block centres, constant beyond the first and last;
    # samples (c0, c1] of each gap in one counted loop, which vectorises
    first = min(n, int(_centre(0, q, n)) + 1)
    for t in range(first):
        out[t] = row[t] - base[0]
    for b in range(blocks - 1):
        c0, c1 = _centre(b, q, n), _centre(b + 1, q, n)
        slope = (base[b + 1] - base[b]) / (c1 - c0)
        offset = base[b] - c0 * slope
        for t in range(int(c0) + 1, int(c1) + 1):
            out[t] = row[t] - (offset + t * slope)
    for t in range(int(_centre(blocks - 1, q, n)) + 1, n):
        out[t] = row[t] - base[blocks - 1]


@numba.njit(cache=True, inline="always")
def _centre(b, q, n):
    return b * q + (min(q, n - b * q) - 1) / 2.0


@numba.njit(cache=True)
def running_median(v, w):
    """Median of each odd window of `w` values centred on each element, with the edges
    reflected as scipy.ndimage's "reflect" mode (d c b a | a b c d | d c b a).  The window is
    kept sorted: each step finds the leaving value, slides the values between it and the
    entering one's place by one and drops the entering value in, O(w) per element with plain
    scans, which beat heaps and binary searches for the short windows used here."""
    n = v.shape[0]
    half = w // 2
    ext = np.empty(n + 2 * half)
    for k in range(n + 2 * half):
        ext[k] = v[_reflect(k - half, n)]
    window = np.sort(ext[:w])
    out = np.empty(n)
    out[0] = window[half]
    for i in range(1, n):
        leaving, entering = ext[i - 1], ext[i - 1 + w]
        k = 0
        while window[k] != leaving:
            k += 1
        if entering > leaving:
            while k + 1 < w and window[k + 1] < entering:
                window[k] = window[k + 1]
                k += 1
        else:
            while k > 0 and window[k - 1] > entering:
                window[k] = window[k - 1]
                k -= 1
        window[k] = entering
        out[i] = window[half]
    return out


@numba.njit(cache=True, inline="always")
def _reflect(i, n):
    if 0 <= i < n:
        return i
    if -n <= i < 0:
        return -i - 1
    if n <= i < 2 * n:
        return 2 * n - 1 - i
    period = 2 * n  # windows longer than the signal reflect more than once
    i %= period
    if i < 0:
        i += period
    return i if i < n else period - 1 - i
