"""ECG signal processing with Numba: filters, R-peak detection and beat segmentation.

Signals are NumPy arrays with samples along the last axis (``(leads, samples)`` by convention),
float32 or float64, with their sampling rate ``fs`` in Hz beside them.  Kernels are compiled on
first use and cached on disk, and run rows in parallel on Numba's threads
(``numba.set_num_threads``).  This package does not import torch.
"""

from .beats import Beats, heart_rate, rr_intervals, segment_beats
from .filters import bandpass, clean, notch, remove_baseline
from ._checks import MIN_FS, handle_nonfinite
from .peaks import detect_rpeaks
from .resample import resample, resampled_length, to_samples
from .scoring import BeatMatch, match_beats

__all__ = [
    "bandpass",
    "notch",
    "remove_baseline",
    "clean",
    "detect_rpeaks",
    "segment_beats",
    "Beats",
    "rr_intervals",
    "heart_rate",
    "match_beats",
    "BeatMatch",
    "resample",
    "resampled_length",
    "to_samples",
    "handle_nonfinite",
    "MIN_FS",
]
