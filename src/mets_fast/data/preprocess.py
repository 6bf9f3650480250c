"""The preprocessing contract: what a store records about how its ECGs were made, and the one
function that makes them (both ``prepare`` and inference call it, so a model sees at inference
exactly what it saw in training)."""

from __future__ import annotations

import warnings
from numbers import Real
from typing import NamedTuple, Sequence

import numpy as np

from ..signal import MIN_FS, handle_nonfinite, resample, to_samples
from .records import (MIN_SECONDS, STANDARD_LEADS, describe_faults, lead_faults, select_leads,
                      standard_lead)

NORMALIZATIONS = ("lead", "record", "none")
RESAMPLE_MARGIN = 1.0  # seconds kept past the crop for the resampling filter's reach
MAX_MV = 1e6  # a sample beyond a kilovolt is a wrong gain, not an ECG


class Settings(NamedTuple):
    """The preprocessing a store records (and inference repeats): sampling rate ``fs`` in Hz,
    ``seconds`` per ECG, the ``leads`` in order, whether to ``clean``, the ``powerline``
    frequency of the notch (None: no notch), the ``normalize`` mode and the store ``dtype``."""

    fs: float
    seconds: float
    leads: tuple
    clean: bool
    powerline: float | None
    normalize: str  # "lead", "record" or "none"
    dtype: str

    @property
    def samples(self) -> int:
        """Samples per lead of every stored ECG."""
        return to_samples(self.seconds, self.fs)

    def as_dict(self) -> dict:
        return {**self._asdict(), "leads": list(self.leads)}

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        """The settings a store's manifest or a checkpoint's config recorded (extra keys, such
        as the source a store was made from, are ignored)."""
        missing = [f for f in cls._fields if f not in values]
        if missing:
            raise ValueError(f"preprocessing settings lack {missing}")
        fields = {f: values[f] for f in cls._fields}
        for key in ("fs", "seconds"):
            if not _positive(fields[key]):
                raise ValueError(f"preprocessing {key} must be a positive number, got "
                                 f"{fields[key]!r}")
        if fields["powerline"] is not None and not _positive(fields["powerline"]):
            raise ValueError(f"preprocessing powerline must be a positive number or null, got "
                             f"{fields['powerline']!r}")
        leads = fields["leads"]
        if not isinstance(leads, (list, tuple)) or not leads or \
                not all(isinstance(n, str) and n for n in leads) or len(set(leads)) != len(leads):
            raise ValueError(f"preprocessing leads must be a list of distinct lead names, got "
                             f"{leads!r}")
        if fields["normalize"] not in NORMALIZATIONS:
            raise ValueError(f"preprocessing normalize must be one of {NORMALIZATIONS}, got "
                             f"{fields['normalize']!r}")
        if not isinstance(fields["clean"], bool):
            raise ValueError(f"preprocessing clean must be true or false, got "
                             f"{fields['clean']!r}")
        fields["leads"] = tuple(leads)
        return cls(**fields)


def _positive(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and 0 < value < float("inf")


# The package's preprocessing unless a source or a flag says otherwise (each source declares its
# own in data/sources/<name>.py as this or a variation of it).
DEFAULT_SETTINGS = Settings(fs=100.0, seconds=10.0, leads=STANDARD_LEADS, clean=True,
                            powerline=50.0, normalize="lead", dtype="float16")


def store_settings(store) -> Settings:
    """The preprocessing an :class:`~mets_fast.data.ECGStore`'s ECGs were made with (a store
    written with ``StoreWriter`` directly may not say: then as stored, uncleaned and
    unnormalised)."""
    return Settings.from_dict({
        "clean": False, "powerline": None, "normalize": "none", **store.preprocessing,
        "seconds": store.manifest["samples"] / store.fs, "leads": list(store.leads),
        "fs": store.fs, "dtype": store.manifest["dtype"]})


def check_compatible(store, settings: Settings) -> None:
    """Raises ValueError unless the store's ECGs are shaped as the model takes them."""
    mine = store_settings(store)
    if (mine.leads, mine.fs, mine.samples) != (settings.leads, settings.fs, settings.samples):
        raise ValueError(
            f"the store {store.path} holds {len(mine.leads)}-lead ECGs of {mine.samples} samples "
            f"at {mine.fs:g} Hz, the model takes {len(settings.leads)} leads "
            f"{list(settings.leads)} of {settings.samples} samples at {settings.fs:g} Hz: prepare "
            f"the data again with the model's settings (or pass ptbxl:/mitbih:/synthetic, which "
            f"are prepared for the model)")


def preprocess(signals: np.ndarray, settings: Settings,
               lengths: np.ndarray | None = None) -> np.ndarray:
    """Cleaning and normalisation of a batch ``(n, leads, samples)`` at ``settings.fs``; the
    one function both prepare and inference call.  Normalisation: ``"lead"`` divides each lead
    by its standard deviation after removing its mean (leads that are all zeros, missing ones,
    stay zeros), ``"record"`` divides all leads of an ECG by one standard deviation (keeping
    their relative amplitudes), ``"none"`` keeps millivolts.

    `lengths` (``(n,)``, optional): how many samples of each ECG are real, the rest being zero
    padding (a recording shorter than the window); the statistics are taken over the real
    samples only, and the padding stays zero."""
    from ..signal import clean

    x = np.asarray(signals, dtype=np.float32)
    if settings.normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {settings.normalize!r}")
    if settings.clean:
        x = clean(x, settings.fs, powerline=settings.powerline, nan_policy="interpolate")
    if settings.normalize == "none":
        return x.astype(np.float32)
    n = x.shape[-1]
    real = None
    if lengths is not None:
        lengths = np.asarray(lengths).reshape(x.shape[:-2] + (1, 1))
        if (lengths < n).any():
            real = np.arange(n) < lengths
    axes = -1 if settings.normalize == "lead" else (-2, -1)
    if real is None:
        x = x - x.mean(axis=-1, keepdims=True)
        return (x / np.maximum(x.std(axis=axes, keepdims=True), 1e-6)).astype(np.float32)
    count = np.maximum(lengths, 1)
    x = np.where(real, x, 0)
    x = np.where(real, x - x.sum(-1, keepdims=True) / count, 0)
    leads = 1 if settings.normalize == "lead" else x.shape[-2]
    var = (x * x).sum(axis=axes, keepdims=True) / (count * leads)
    return (x / np.maximum(np.sqrt(var), 1e-6)).astype(np.float32)


def fit_length(x: np.ndarray, samples: int) -> np.ndarray:
    """Crops to the first `samples` samples or pads with zeros at the end."""
    if x.shape[-1] >= samples:
        return x[..., :samples]
    return np.concatenate([x, np.zeros(x.shape[:-1] + (samples - x.shape[-1],), x.dtype)], -1)


def prepare_recording(signal: np.ndarray, fs: float, leads: Sequence[str],
                      settings: Settings, *, windows: bool = False,
                      name: str = "the recording") -> np.ndarray:
    """Any recording as a model trained on `settings` expects it, the steps in the order the
    store's ECGs were made: resample to ``settings.fs`` (short NaN gaps filled first), put the
    leads in ``settings.leads`` order (names matched through
    :func:`~mets_fast.data.records.standard_lead`), crop or zero-pad to ``settings.samples``,
    clean and normalise (:func:`preprocess`).  With ``windows=True`` a 2-d recording is instead
    cut into consecutive windows of ``settings.samples`` (a last, partial window is dropped
    unless it is the only one, which is padded), each preprocessed as a stored ECG: for scoring
    a long recording window by window.

    Leads the recording lacks, and leads it has but that cannot be used
    (:func:`~mets_fast.data.records.lead_faults`: no valid sample, an invalid run over 1 s, or
    flat), are zeros, as the model saw missing leads in training; one warning names them.  A
    recording shorter than the window is zero-padded with a warning (its scores rest on less
    signal than the model was trained on).

    Args:
        signal: ``(leads, samples)`` or a batch ``(n, leads, samples)``, in mV.
        fs: its sampling rate in Hz.
        leads: the names of its leads, in row order.
        name: what the messages call the recording (``"record data/rec1"``).

    Returns:
        float32 ``(len(settings.leads), settings.samples)``, or ``(n, ...)`` for a batch or
        for the windows of one recording.

    Raises:
        ValueError: the shapes and lead names disagree, a lead is named twice, no lead is
            shared with the settings or none of the shared ones is usable, or the recording
            is shorter than :data:`MIN_SECONDS`.
    """
    x = np.asarray(signal)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name}: signal must be a numeric array, got dtype {x.dtype}")
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise ValueError(f"{name}: signal must be (leads, samples) or (n, leads, samples), "
                         f"none of them 0, got shape {x.shape}")
    if not _positive(fs):
        raise ValueError(f"{name}: fs must be a positive number of Hz, got {fs!r}")
    fs = float(fs)
    if fs < MIN_FS:
        raise ValueError(f"{name} is sampled at {fs:g} Hz; at least {MIN_FS:g} Hz is needed (a "
                         f"QRS complex is a sample or two wide below it)")
    if isinstance(leads, str):
        leads = [leads]
    leads = [standard_lead(str(n)) for n in leads]
    if len(leads) != x.shape[-2]:
        raise ValueError(f"{name}: signal has {x.shape[-2]} leads but {len(leads)} lead names "
                         f"were given: {leads}")
    shared = [n in settings.leads for n in leads]
    if not any(shared):
        raise ValueError(f"{name}: its leads {leads} share none with the model's "
                         f"{list(settings.leads)}")
    seconds = x.shape[-1] / fs
    if seconds < MIN_SECONDS:
        raise ValueError(f"{name} lasts {seconds:.3g} s ({x.shape[-1]} samples at {fs:g} Hz): "
                         f"too short to score (at least {MIN_SECONDS:g} s, two heartbeats)")
    x = x.astype(np.float64)
    if not windows:
        # only the first settings.seconds are kept: resampling the rest is wasted work.  The
        # resampling filter reaches well under a second, so the samples kept are those a
        # whole-record resampling (what the store's reader does) gives.
        x = x[..., :int(np.ceil((settings.seconds + RESAMPLE_MARGIN) * fs))]
    faults = np.where(shared, lead_faults(x, fs), "")
    dead = (faults != "").sum(-1) == sum(shared)
    if dead.any():
        which = "" if x.ndim == 2 else f" (ECG {int(np.argmax(dead))} of the batch)"
        first = faults if x.ndim == 2 else faults[int(np.argmax(dead))]
        raise ValueError(f"{name} has no usable lead{which}: {describe_faults(first, leads)}")
    x = np.where((faults != "")[..., None], 0.0, x)
    peak = float(np.nanmax(np.abs(np.where(np.isfinite(x), x, 0.0))))
    if peak > MAX_MV:  # squared in float32 by the normalisation, it would overflow
        raise ValueError(f"{name} holds samples of up to {peak:.3g} mV, which no ECG has (is its "
                         f"gain, units per mV, right?)")
    _warn_unused(name, [n for n in settings.leads if n not in leads], faults, leads,
                 [n for n in leads if n not in settings.leads])
    if seconds < settings.seconds:
        warnings.warn(f"{name} lasts {seconds:.3g} s, less than the model's {settings.seconds:g} "
                      f"s window: the rest is zeros, and its scores rest on less signal than the "
                      f"model was trained on", stacklevel=2)
    # a resampling filter would smear a NaN sample over its neighbours: fill short gaps
    x = handle_nonfinite(x, fs, "interpolate", name=name)
    if fs != settings.fs:
        x = resample(x, fs, settings.fs)
    x, _ = select_leads(x, leads, settings.leads, what=name)
    if windows:
        if x.ndim != 2:
            raise ValueError("windows=True takes one recording (leads, samples), not a batch")
        x, length = cut_windows(x, settings.samples)
    else:
        x, length = fit_length(x, settings.samples), min(x.shape[-1], settings.samples)
    return preprocess(x, settings, lengths=np.full(x.shape[:-2], length))


def cut_windows(x: np.ndarray, samples: int) -> tuple:
    """One recording ``(leads, n)`` as consecutive windows ``(count, leads, samples)``: a last,
    partial window is dropped unless it is the only one, which is zero-padded.  Returns
    ``(windows, real samples per window)``."""
    count = max(1, x.shape[-1] // samples)
    windows = np.stack([x[:, k * samples:(k + 1) * samples] for k in range(count)])
    return fit_length(windows, samples), min(x.shape[-1], samples)


def _warn_unused(name: str, missing: list, faults: np.ndarray, leads: list,
                 ignored: list = ()) -> None:
    """One warning naming the model's leads that are zeros (missing, or unusable in some ECG
    of a batch) and the recording's leads the model does not take (`ignored`)."""
    parts = [f"has the lead(s) {list(ignored)}, which the model does not take (ignored)"] \
        if ignored else []
    parts += [f"lacks the lead(s) {missing}"] if missing else []
    bad = faults.reshape(-1, len(leads))
    unusable = [f"{lead} ({sorted(set(bad[:, k]) - {''})[0]})" for k, lead in enumerate(leads)
                if (bad[:, k] != "").any()]
    if unusable:
        parts.append(f"cannot use the lead(s) {', '.join(unusable)}")
    if parts:
        zeros = "" if parts[-1].startswith("has the lead") else \
            ": the model's leads it lacks are zeros, as missing leads were in training"
        warnings.warn(f"{name} {' and '.join(parts)}{zeros}", stacklevel=3)
