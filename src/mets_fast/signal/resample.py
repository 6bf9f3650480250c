"""Time in samples, and changing a signal's sampling rate: the conversions every layer above
shares (one rounding rule, one resampler, one formula for the length it gives)."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import scipy.signal


def to_samples(seconds: float, fs: float) -> int:
    """`seconds` at `fs` Hz as a whole number of samples: ``round(seconds * fs)`` (Python's
    rounding, half to even), the one rule of the package."""
    return int(round(seconds * fs))


def _ratio(fs: float, target: float) -> Fraction:
    if not (np.isfinite(fs) and np.isfinite(target)) or fs <= 0 or target <= 0:
        raise ValueError(f"sampling rates must be positive finite numbers of Hz, got {fs!r} and "
                         f"{target!r}")
    return Fraction(target / fs).limit_denominator(1000)


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """Polyphase resampling along the last axis from `fs` to `target` Hz
    (``scipy.signal.resample_poly``, the rate ratio as a fraction with denominator at most
    1000).  The input must be free of NaN (fill gaps first: :func:`handle_nonfinite`)."""
    ratio = _ratio(fs, target)
    if ratio == 1:
        return x
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1,
                                      window=_lowpass(ratio.numerator, ratio.denominator,
                                                      dtype.str))


@lru_cache(maxsize=32)
def _lowpass(up: int, down: int, dtype: str) -> np.ndarray:
    """The anti-aliasing filter ``resample_poly`` designs by default (Kaiser window, beta 5,
    cut-off at the lower Nyquist rate, 20 taps per unit of the larger factor), in the signal's
    dtype as it casts it: designed once per ratio, not on every call, where it took a tenth of
    the time of reading a 12-lead record."""
    rate = max(up, down)
    h = scipy.signal.firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
    h = h.astype(dtype)
    h.flags.writeable = False
    return h


def resampled_length(n: int, fs: float, target: float) -> int:
    """The number of samples :func:`resample` makes of `n` (``ceil(n * up / down)``)."""
    ratio = _ratio(fs, target)
    return -(-n * ratio.numerator // ratio.denominator)
