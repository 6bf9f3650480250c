"""Zero-phase IIR filtering (scipy's ``sosfiltfilt``) as a Numba kernel.

A recursive filter is sequential in time: its speed is set by the chain of dependent operations
from one sample to the next and by how many independent chains run side by side.  Here eight
signals advance together, one per lane of a SIMD register (:mod:`mets_fast.signal.simd`), and
the sections run in direct form I, where the previous output enters through a single
multiply-add and the rest of each update is off the chain; up to four sections advance in one
loop with their states in registers.  Rows (leads, records) fill the lanes eight at a time; a
single long signal is cut into eight overlapping chunks that fill them (:func:`filtfilt`).

Results equal ``scipy.signal.sosfiltfilt(sos, x, axis=-1)`` with its default odd padding and
steady-state initial conditions, to rounding (about 1e-12 relative): the forward and backward
passes start from the state a constant input at the first sample's level would have reached,
which is what scipy's ``sosfilt_zi`` scaled by that sample gives.  Computed in float64, returned
in the input's dtype.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np
import scipy.signal

from .simd import LANES, fma, load, scale, store

SECTIONS_PER_PASS = 4  # sections whose states fit in registers together


class SOSFilter(NamedTuple):
    """Second-order sections as the kernel takes them: ``coeffs`` rows (b0, b1, b2, a1, a2),
    ``gains`` the DC gain of each section (for the steady-state start), scipy's default pad
    length for filtfilt, and ``settle``, the samples after which the impulse response has
    decayed below 1e-12 of its start."""

    sos: np.ndarray
    coeffs: np.ndarray
    gains: np.ndarray
    padlen: int
    settle: int


@lru_cache(maxsize=64)
def butter(order: int, low: float | None, high: float | None, fs: float) -> SOSFilter:
    """Butterworth band-pass (both edges), high-pass (``high=None``) or low-pass (``low=None``)."""
    if low is not None and high is not None:
        sos = scipy.signal.butter(order, [low, high], "bandpass", fs=fs, output="sos")
    elif low is not None:
        sos = scipy.signal.butter(order, low, "highpass", fs=fs, output="sos")
    else:
        sos = scipy.signal.butter(order, high, "lowpass", fs=fs, output="sos")
    return from_sos(sos)


@lru_cache(maxsize=64)
def iirnotch(freq: float, quality: float, fs: float) -> SOSFilter:
    """scipy's ``iirnotch`` as one section (``filtfilt(b, a)`` and this agree: same pad, same
    steady-state start)."""
    b, a = scipy.signal.iirnotch(freq, quality, fs=fs)
    return from_sos(scipy.signal.tf2sos(b, a))


def from_sos(sos: np.ndarray) -> SOSFilter:
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    sos = sos / sos[:, 3:4]  # a0 = 1
    coeffs = np.ascontiguousarray(sos[:, [0, 1, 2, 4, 5]])
    gains = sos[:, :3].sum(axis=1) / sos[:, 3:].sum(axis=1)
    # scipy.signal.sosfiltfilt's default: three times the number of taps, less trailing zeros
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    radius = float(np.abs(scipy.signal.sos2zpk(sos)[1]).max()) if len(sos) else 0.0
    settle = int(np.ceil(np.log(1e-12) / np.log(radius))) if 0 < radius < 1 else 0
    return SOSFilter(sos, coeffs, np.ascontiguousarray(gains), 3 * ntaps, settle)


def filtfilt(x: np.ndarray, filt: SOSFilter) -> np.ndarray:
    """``sosfiltfilt`` along the last axis of `x` (any shape, float32/float64, finite), eight
    rows at a time, blocks of rows in parallel.

    A single row long enough is cut into eight chunks that overlap by the filter's settling
    length plus its pad, filtered side by side; each keeps its middle, where the start-up
    transient of the chunk's own edges has decayed below 1e-12 (the signal's true edges are
    padded exactly as scipy pads them).  Raises ValueError when the last axis is not longer
    than the pad length."""
    n = x.shape[-1]
    check_length(n, filt.padlen)
    rows = np.ascontiguousarray(x.reshape(-1, n))
    out = np.empty_like(rows)
    overlap = filt.settle + filt.padlen
    keep = -(-n // LANES)
    if rows.shape[0] == 1 and keep >= 2 * overlap:
        _filtfilt_chunks(rows[0], keep, overlap, filt.coeffs, filt.gains, filt.padlen, out[0])
    else:
        _filtfilt_rows(rows, filt.coeffs, filt.gains, filt.padlen, out)
    return out.reshape(x.shape)


def check_length(n: int, padlen: int) -> None:
    """Raises ValueError unless a signal of `n` samples is longer than the edge padding."""
    if n <= padlen:
        raise ValueError(
            f"the signal has {n} samples along its last axis; this filter needs more than "
            f"{padlen} (its edge padding)"
        )


@numba.njit(cache=True, parallel=True)
def _filtfilt_rows(x, coeffs, gains, padlen, out):
    rows, n = x.shape
    for block in numba.prange((rows + LANES - 1) // LANES):
        r0 = block * LANES
        r1 = min(rows, r0 + LANES)
        buf = to_lanes(x[r0:r1], padlen)
        filtfilt_lanes(buf, padlen, n, coeffs, gains, padlen)
        from_lanes(buf, padlen, out[r0:r1])


@numba.njit(cache=True)
def _filtfilt_chunks(x, keep, overlap, coeffs, gains, padlen, out):
    """One long row as eight chunks of keep + 2 overlap samples, chunk k keeping samples
    [k keep, (k + 1) keep) of the output."""
    n = x.shape[0]
    width = keep + 2 * overlap
    starts = np.empty(LANES, np.int64)
    for k in range(LANES):
        starts[k] = min(max(k * keep - overlap, 0), n - width)
    buf = np.empty((width + 2 * padlen, LANES))
    for t in range(width):
        for k in range(LANES):
            buf[padlen + t, k] = x[starts[k] + t]
    filtfilt_lanes(buf, padlen, width, coeffs, gains, padlen)
    for t in range(keep):
        for k in range(LANES):
            if k * keep + t < n:
                out[k * keep + t] = buf[padlen + k * keep + t - starts[k], k]


# The lane buffer: a time-major (pad + n + pad, 8) array, one signal per lane.  Every loop over
# it walks time outermost, so each cache line is written once (lane-major walks would write each
# line eight times, far apart).


@numba.njit(cache=True)
def to_lanes(rows, pad):
    """Up to eight rows (r, n) into a new lane buffer with `pad` free samples at each end;
    unused lanes are zero."""
    lanes, n = rows.shape
    buf = np.zeros((n + 2 * pad, LANES)) if lanes < LANES else np.empty((n + 2 * pad, LANES))
    for t in range(n):
        for lane in range(lanes):
            buf[pad + t, lane] = rows[lane, t]
    return buf


@numba.njit(cache=True)
def from_lanes(buf, pad, out):
    """The signals of a lane buffer back into the rows of `out` (r, n)."""
    lanes, n = out.shape
    for t in range(n):
        for lane in range(lanes):
            out[lane, t] = buf[pad + t, lane]


@numba.njit(cache=True)
def filtfilt_lanes(buf, pad, n, coeffs, gains, padlen):
    """The eight signals buf[pad : pad + n] forward and backward through the filter, in place,
    each extended by `padlen` <= `pad` samples at both ends as scipy extends it (odd)."""
    lo, hi = pad - padlen, pad + n + padlen
    for t in range(padlen):
        for lane in range(LANES):
            buf[pad - 1 - t, lane] = 2.0 * buf[pad, lane] - buf[pad + 1 + t, lane]
            buf[pad + n + t, lane] = 2.0 * buf[pad + n - 1, lane] - buf[pad + n - 2 - t, lane]
    cascade(buf, lo, hi, 1, coeffs, gains)
    cascade(buf, hi - 1, lo - 1, -1, coeffs, gains)


@numba.njit(cache=True)
def cascade(buf, start, stop, step, coeffs, gains):
    """All sections over the rows buf[start:stop:step] of a (m, 8) array in place, each lane
    from the steady state of a constant input at the level of its value at `start`."""
    level = load(buf, start)
    sections = coeffs.shape[0]
    for first in range(0, sections, SECTIONS_PER_PASS):
        count = min(SECTIONS_PER_PASS, sections - first)
        _four_sections(buf, start, stop, step, coeffs, first, count, level, gains)
        for s in range(first, first + count):
            level = scale(level, gains[s])


@numba.njit(cache=True)
def _four_sections(buf, start, stop, step, c, first, count, level, gains):
    """Up to four sections in direct form I, fused in one pass; their states (last two inputs
    and outputs of each, as tuples) live in vector registers.  Sections past `count` are
    skipped."""
    # the coefficients as tuples of scalars, hoisted out of the loop into registers
    c0 = _coefficients(c, first, 1)
    c1 = _coefficients(c, first + 1, count > 1)
    c2 = _coefficients(c, first + 2, count > 2)
    c3 = _coefficients(c, first + 3, count > 3)
    # steady state: every section's past inputs at its input level, past outputs at gain * it
    u0 = level
    u1 = scale(u0, gains[first])
    u2 = scale(u1, gains[first + 1] if count > 1 else 1.0)
    u3 = scale(u2, gains[first + 2] if count > 2 else 1.0)
    o3 = scale(u3, gains[first + 3] if count > 3 else 1.0)
    s0 = (u0, u0, u1, u1)
    s1 = (u1, u1, u2, u2)
    s2 = (u2, u2, u3, u3)
    s3 = (u3, u3, o3, o3)
    for t in range(start, stop, step):
        y, s0 = _advance(load(buf, t), s0, c0)
        if count > 1:
            y, s1 = _advance(y, s1, c1)
            if count > 2:
                y, s2 = _advance(y, s2, c2)
                if count > 3:
                    y, s3 = _advance(y, s3, c3)
        store(buf, t, y)


@numba.njit(cache=True, inline="always")
def _coefficients(c, k, present):
    """Row k of the coefficient table as a tuple (zeros for a section that is not there)."""
    if not present:
        return (0.0, 0.0, 0.0, 0.0, 0.0)
    return (c[k, 0], c[k, 1], c[k, 2], c[k, 3], c[k, 4])


@numba.njit(cache=True, inline="always")
def _advance(v, state, c):
    """One direct-form-I step of a section whose state is (last two inputs, last two outputs):
    b0 v + b1 i1 + b2 i2 - a2 o2 - a1 o1, the previous output last so that the chain from one
    sample to the next is a single multiply-add.  Returns the output and the new state."""
    i1, i2, o1, o2 = state
    y = fma(o1, -c[3], fma(o2, -c[4], fma(i2, c[2], fma(i1, c[1], scale(v, c[0])))))
    return y, (v, i1, y, o1)
