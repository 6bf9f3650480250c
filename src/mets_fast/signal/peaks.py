"""R-peak detection."""

from __future__ import annotations

import numba
import numpy as np

from . import iir
from ._checks import as_signal, check_fs, handle_nonfinite
from .resample import to_samples

# The detector's constants, all in seconds or relative units (fs-independent).
QRS_BAND = (8.0, 20.0)  # Hz: where QRS energy dominates P and T waves
QRS_WINDOW = 0.097      # s: moving average spanning one QRS complex
BEAT_WINDOW = 0.611     # s: moving average spanning about one beat
LEVEL_WINDOW = 10.0     # s: window of the local mean energy that sets the offset
OFFSET = 0.08           # offset of the QRS threshold, in units of the local mean energy
REFRACTORY = 0.2        # s: no two beats closer than this
SEARCH = 0.06           # s: R peak searched this far either side of the energy peak
BASELINE_LAG = 0.1      # s: where the local baseline of the R peak search is read


def detect_rpeaks(x: np.ndarray, fs: float, *, nan_policy: str = "raise") -> np.ndarray:
    """Sample indices of the R peaks of an ECG.

    The detector follows Elgendi's "two moving averages" (Elgendi 2013, PLoS ONE 8(9): e73557):
    the ECG is band-passed to 8–20 Hz (zero-phase Butterworth) and squared; a 97 ms moving
    average of that energy outlines each QRS complex and a 611 ms one follows the beat-to-beat
    level; a QRS is a run, at least one QRS window long, where the first exceeds the second by
    an offset, and its beat is the energy peak of the run.  Departures from the paper:

    - the offset is 0.08 times the *local* mean energy (a 10 s window) rather than the mean of
      the whole recording, so amplitude changes over long recordings do not shift it;
    - the band-pass has order 2 rather than 3 (as accurate, a third cheaper);
    - the beat is then placed on the R peak: the sample within 60 ms of the energy peak that
      departs most from the local baseline (the mean of the raw signal 100 ms either side),
      whatever the QRS polarity; beats closer than 200 ms keep the stronger;
    - several leads are combined before detection (below).

    On the 22 MIT-BIH DS1 records (lead MLII, 150 ms matching, ventricular flutter episodes
    excluded as ANSI/AAMI EC57 does) it finds 99.9 % of the beats with 99.8 % positive
    predictivity; ``benchmarks/bench_signal.py`` measures it against other detectors.

    Args:
        x: one lead ``(samples,)`` or several ``(leads, samples)``, float32 or float64, any
            amplitude unit.  With several leads, their QRS-band energies are summed in the
            signal's own unit (the spatial QRS magnitude, so the leads that carry the QRS
            dominate and a noisy low-amplitude lead does not) and detection runs on the sum;
            each R peak is then placed on the lead with the most QRS-band energy at that beat.
        fs: sampling rate in Hz (at least 50).
        nan_policy: ``"raise"`` on NaN/inf samples, or ``"interpolate"`` to fill gaps of up to
            1 s linearly first.

    Returns:
        int64 sample indices, increasing.  A signal shorter than two seconds, or a flat one,
        yields no peaks.
    """
    x = as_signal(x)
    fs = check_fs(fs)
    if x.ndim > 2:
        raise ValueError(f"x must be (samples,) or (leads, samples), got shape {x.shape}")
    x = handle_nonfinite(x, fs, nan_policy)
    leads = x.reshape(-1, x.shape[-1])
    n = leads.shape[1]
    if n < 2 * fs:
        return np.empty(0, dtype=np.int64)
    live = _non_constant_rows(leads)
    if not live.any():
        return np.empty(0, dtype=np.int64)
    if not live.all():
        leads = leads[live]
    band = iir.filtfilt(leads, iir.butter(2, QRS_BAND[0], QRS_BAND[1], fs))

    def samples(seconds):
        return max(1, to_samples(seconds, fs))

    return _detect(leads, band, samples(QRS_WINDOW), samples(BEAT_WINDOW),
                   samples(LEVEL_WINDOW), OFFSET, samples(SEARCH), samples(BASELINE_LAG),
                   samples(REFRACTORY))


@numba.njit(cache=True)
def _non_constant_rows(x):
    live = np.zeros(x.shape[0], dtype=np.bool_)
    for r in range(x.shape[0]):
        for t in range(1, x.shape[1]):
            if x[r, t] != x[r, 0]:
                live[r] = True
                break
    return live


@numba.njit(cache=True)
def _detect(leads, band, w_qrs, w_beat, w_level, offset, search, lag, refractory):
    """Energy (summed over leads), its prefix sums, the QRS runs and the R peaks placed on the
    raw leads."""
    n_leads, n = band.shape
    cum = np.empty(n + 1)
    cum[0] = 0.0
    for t in range(n):
        e = 0.0
        for l in range(n_leads):
            e += band[l, t] * band[l, t]
        cum[t + 1] = cum[t] + e
    candidates = _qrs_runs(cum, w_qrs, w_beat, w_level, offset)
    return _place_r_peaks(leads, band, cum, candidates, search, lag, refractory)


@numba.njit(cache=True)
def _qrs_runs(cum, w_qrs, w_beat, w_level, offset):
    """Energy peaks of the runs where the QRS-window mean exceeds the beat-window mean plus
    offset times the level-window mean, for runs at least one QRS window long.  `cum` holds
    the prefix sums of the energy."""
    n = cum.shape[0] - 1
    peaks = np.empty(n // w_qrs + 1, dtype=np.int64)
    count = 0
    start = -1
    inv_qrs, inv_beat, inv_level = 1.0 / w_qrs, 1.0 / w_beat, offset / w_level
    for t in range(n + 1):
        above = False
        if t < n:
            above = _centred_sum(cum, t, w_qrs, n, inv_qrs) > (
                _centred_sum(cum, t, w_beat, n, inv_beat)
                + _centred_sum(cum, t, w_level, n, inv_level))
        if above and start < 0:
            start = t
        elif not above and start >= 0:
            if t - start >= w_qrs:
                best = start
                for k in range(start + 1, t):
                    if cum[k + 1] - cum[k] > cum[best + 1] - cum[best]:
                        best = k
                peaks[count] = best
                count += 1
            start = -1
    return peaks[:count]


@numba.njit(cache=True, inline="always")
def _centred_sum(cum, t, w, n, weight):
    """weight times the sum of the w values centred on t; near the edges, where the window is
    cut, the mean of what remains times weight * w."""
    lo = t - w // 2
    hi = lo + w
    if lo >= 0 and hi <= n:
        return (cum[hi] - cum[lo]) * weight
    lo = max(lo, 0)
    hi = min(hi, n)
    return (cum[hi] - cum[lo]) * weight * w / (hi - lo)


@numba.njit(cache=True)
def _place_r_peaks(leads, band, cum, candidates, search, lag, refractory):
    n = leads.shape[1]
    out = np.empty(candidates.shape[0], dtype=np.int64)
    strength = np.empty(candidates.shape[0])
    count = 0
    for p in candidates:
        lead = 0
        for l in range(1, leads.shape[0]):
            if abs(band[l, p]) > abs(band[lead, p]):
                lead = l
        base = 0.5 * (leads[lead, max(0, p - lag)] + leads[lead, min(n - 1, p + lag)])
        best, best_dev = p, -1.0
        for k in range(max(0, p - search), min(n, p + search + 1)):
            dev = abs(leads[lead, k] - base)
            if dev > best_dev:
                best, best_dev = k, dev
        energy = cum[p + 1] - cum[p]
        if count and best - out[count - 1] < refractory:
            if energy > strength[count - 1]:
                out[count - 1], strength[count - 1] = best, energy
            continue
        out[count], strength[count] = best, energy
        count += 1
    return out[:count]
