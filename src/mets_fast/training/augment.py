"""Augmentations of a training batch: what differs between the ECGs a model trains on and those
it meets later (the device's gain, its noise and power-line pick-up, baseline wander, where the
window starts), drawn anew for every batch.

They run in the loader's thread on the batch as NumPy arrays, vectorised over the batch, with a
generator seeded by (seed, epoch, step, rank), so a resumed run draws the same ones.  None of
them changes what a report says of the ECG: no time stretching (it would change the heart rate),
no polarity flip (it would change the axis), no change of a lead's shape.  A lead the store marks
missing stays zeros (noise on it would make it look present).

Amplitudes are in the store's units: with the default per-lead normalisation, one is a lead's
standard deviation.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .presets import PRESETS, Preset


# the strengths are the presets' aug_* settings, which say what each means
_NAMES = tuple(f.removeprefix("aug_") for f in Preset._fields if f.startswith("aug_"))


class Augment(namedtuple("Strengths", _NAMES, defaults=(0.0,) * len(_NAMES))):
    """The strengths of the augmentations, each 0 for off (see
    :class:`~mets_fast.training.presets.Preset`'s ``aug_*``): ``Augment(noise=0.05)``."""

    __slots__ = ()

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self)

    def check(self, seconds: float | None = None) -> "Augment":
        """Itself, or a ValueError naming a strength that is negative, not finite or beyond
        what still leaves an ECG to learn from: a gain spread over 5 (e^5 and more: float32
        overflows), an amplitude (noise, power line, wander) over :data:`MAX_AMPLITUDE` lead
        standard deviations (the ECG drowned: a run diverges after a whole epoch), a shift
        of the whole window (`seconds`, where known) or more, a probability over 1."""
        for name, value in self._asdict().items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"--aug-{name} must be a finite number >= 0, got {value!r}")
        if self.leads > 1:
            raise ValueError(f"--aug-leads is a probability, at most 1; got {self.leads}")
        if self.scale > 5:
            raise ValueError(f"--aug-scale is the spread of a log gain: {self.scale} would "
                             f"scale leads by e^{self.scale:g} and more; use at most 5")
        for name in ("noise", "powerline", "wander"):
            if getattr(self, name) > MAX_AMPLITUDE:
                raise ValueError(f"--aug-{name} {getattr(self, name):g} is in lead standard "
                                 f"deviations: above {MAX_AMPLITUDE:g} the ECG drowns in it "
                                 f"(the recipe uses {getattr(RECIPE, name):g})")
        if seconds is not None and self.shift >= seconds:
            raise ValueError(f"--aug-shift {self.shift:g} s would shift the whole {seconds:g} s "
                             f"window out; give less than {seconds:g} (the recipe: "
                             f"{RECIPE.shift:g})")
        return self


MAX_AMPLITUDE = 10.0  # lead standard deviations of added noise, power line or wander
OFF = Augment()
# The real-data recipe's strengths (--augment): those of --preset real
RECIPE = Augment(**{name: getattr(PRESETS["real"], f"aug_{name}") for name in _NAMES})


def augment(x: np.ndarray, mask: np.ndarray | None, fs: float, strengths: Augment,
            rng: np.random.Generator) -> np.ndarray:
    """`x` ``(batch, leads, samples)`` float32 augmented (a new array; `x` is left alone).

    `mask` ``(batch, leads)`` bool: the leads each ECG really has (None: all); the others stay
    zeros, as do those the lead subsets drop (an encoder built with ``lead_indicator`` sees
    them as missing).  `fs`: the signals' rate in Hz.  The draws are made in a fixed order,
    each for the whole batch, so the same `rng` state gives the same result.  A sinusoid of
    one frequency per ECG and a phase per lead is built from the ECG's sine and cosine
    (``sin(wt + p) = sin(wt) cos p + cos(wt) sin p``): two waves an ECG, not one a lead."""
    x = np.array(x, dtype=np.float32)
    n, leads, samples = x.shape
    present = np.ones((n, leads), bool) if mask is None else np.array(mask, bool)
    t = np.arange(samples) / fs
    if strengths.leads > 0:
        present &= _lead_subsets(present, strengths.leads, rng)
    if strengths.shift > 0:
        most = min(samples - 1, int(round(strengths.shift * fs)))
        x = _shift(x, rng.integers(-most, most + 1, size=n))
    if strengths.scale > 0:
        x *= np.exp(rng.normal(0.0, strengths.scale, size=(n, leads, 1))).astype(np.float32)
    if strengths.noise > 0:
        x += strengths.noise * rng.standard_normal(x.shape, dtype=np.float32)
    if strengths.powerline > 0:
        mains = np.where(rng.random(n) < 0.5, 50.0, 60.0)
        seen = np.abs(mains - fs * np.round(mains / fs))  # the alias a device at fs records
        phase = rng.uniform(0, 2 * np.pi, size=(n, leads))
        amplitude = rng.uniform(0, strengths.powerline, size=(n, 1))
        x += _sinusoids(seen, phase, amplitude, t)
    if strengths.wander > 0:
        freq = rng.uniform(0.05, 0.5, size=n)
        phase = rng.uniform(0, 2 * np.pi, size=(n, leads))
        amplitude = rng.uniform(0, strengths.wander, size=(n, leads))
        x += _sinusoids(freq, phase, amplitude, t)
    x[~present] = 0.0
    return x


def _sinusoids(freq: np.ndarray, phase: np.ndarray, amplitude: np.ndarray,
               t: np.ndarray) -> np.ndarray:
    """``amplitude * sin(2 pi freq t + phase)`` as float32 ``(n, leads, samples)``: `freq`
    ``(n,)`` Hz, `phase` ``(n, leads)``, `amplitude` broadcasting to ``(n, leads)``."""
    wt = 2 * np.pi * freq[:, None] * t
    sin, cos = np.sin(wt).astype(np.float32), np.cos(wt).astype(np.float32)
    a = np.broadcast_to(amplitude, phase.shape)
    return ((a * np.cos(phase)).astype(np.float32)[:, :, None] * sin[:, None, :]
            + (a * np.sin(phase)).astype(np.float32)[:, :, None] * cos[:, None, :])


def _lead_subsets(present: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Which leads each ECG keeps ``(n, leads)``: with probability `p`, a random non-empty
    subset of those it has (its size uniform from one to all of them), else all."""
    n, leads = present.shape
    have = present.sum(1)
    size = np.floor(rng.random(n) * have).astype(np.int64) + 1  # 1 ... have
    rank = np.argsort(np.where(present, rng.random((n, leads)), np.inf), axis=1).argsort(1)
    keep = rank < size[:, None]
    chosen = rng.random(n) < p
    return np.where(chosen[:, None] & (have[:, None] > 0), keep, True)


def _shift(x: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Each ECG of `x` moved `by` samples later (earlier where negative), zeros shifted in."""
    out = np.zeros_like(x)
    samples = x.shape[-1]
    for i, k in enumerate(np.clip(by, -samples, samples)):
        if k >= 0:
            out[i, :, k:] = x[i, :, :samples - k]
        else:
            out[i, :, :k] = x[i, :, -k:]
    return out
