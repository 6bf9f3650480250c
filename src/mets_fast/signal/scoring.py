"""Scoring beat detections against reference annotations (the MIT-BIH protocol)."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from ._checks import check_fs
from .resample import to_samples


class BeatMatch(NamedTuple):
    """True positives, false positives and false negatives of a detection."""

    tp: int
    fp: int
    fn: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def __add__(self, other: "BeatMatch") -> "BeatMatch":
        return BeatMatch(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def match_beats(detected: np.ndarray, reference: np.ndarray, fs: float,
                tolerance: float = 0.15, exclude: np.ndarray | None = None) -> BeatMatch:
    """Matches detections to reference beats: a detection within `tolerance` seconds of a
    reference beat is a true positive, each detection and each reference beat used at most
    once (every reference beat takes the nearest unused detection, in time order).

    `exclude` holds ``(start, stop)`` sample intervals left out of the scoring on both sides,
    as ANSI/AAMI EC57 leaves out ventricular flutter and fibrillation, where there are no QRS
    complexes to detect.
    """
    fs = check_fs(fs)
    detected = np.sort(np.asarray(detected, dtype=np.int64))
    reference = np.sort(np.asarray(reference, dtype=np.int64))
    if exclude is not None and len(exclude):
        intervals = np.asarray(exclude, dtype=np.int64).reshape(-1, 2)
        detected = detected[~_inside(detected, intervals)]
        reference = reference[~_inside(reference, intervals)]
    tp = _greedy_match(detected, reference, to_samples(tolerance, fs))
    return BeatMatch(tp, len(detected) - tp, len(reference) - tp)


def _inside(points: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    mask = np.zeros(points.shape, dtype=bool)
    for start, stop in intervals:
        mask |= (points >= start) & (points <= stop)
    return mask


@numba.njit(cache=True)
def _greedy_match(detected, reference, tol):
    used = np.zeros(detected.shape[0], dtype=np.bool_)
    tp = 0
    j = 0
    for r in reference:
        while j < detected.shape[0] and detected[j] < r - tol:
            j += 1
        best, best_dist = -1, tol + 1
        k = j
        while k < detected.shape[0] and detected[k] <= r + tol:
            if not used[k] and abs(detected[k] - r) < best_dist:
                best, best_dist = k, abs(detected[k] - r)
            k += 1
        if best >= 0:
            used[best] = True
            tp += 1
    return tp
