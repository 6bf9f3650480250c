"""The preprocessing contract: what a store records about how its ECGs were made, and the one
function that makes them (both ``prepare`` and inference call it, so a model sees at inference
exactly what it saw in training)."""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np

from ..signal import handle_nonfinite, resample, to_samples
from .records import STANDARD_LEADS, select_leads, standard_lead

NORMALIZATIONS = ("lead", "record", "none")
RESAMPLE_MARGIN = 1.0  # seconds kept past the crop for the resampling filter's reach


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
        fields["leads"] = tuple(fields["leads"])
        return cls(**fields)


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
                      settings: Settings, *, windows: bool = False) -> np.ndarray:
    """Any recording as a model trained on `settings` expects it, the steps in the order the
    store's ECGs were made: resample to ``settings.fs`` (short NaN gaps filled first), put the
    leads in ``settings.leads`` order (names matched through
    :func:`~mets_fast.data.records.standard_lead`; leads the recording lacks are zeros, named in
    one warning), crop or zero-pad to ``settings.samples``, clean and normalise
    (:func:`preprocess`).  With ``windows=True`` a 2-d recording is instead cut into consecutive
    windows of ``settings.samples`` (a last, partial window is dropped unless it is the only
    one, which is padded), each preprocessed as a stored ECG: for scoring a long recording
    window by window.

    Args:
        signal: ``(leads, samples)`` or a batch ``(n, leads, samples)``, in mV.
        fs: its sampling rate in Hz.
        leads: the names of its leads, in row order.

    Returns:
        float32 ``(len(settings.leads), settings.samples)``, or ``(n, ...)`` for a batch or
        for the windows of one recording.

    Raises:
        ValueError: the shapes and lead names disagree, or no lead is shared with the settings.
    """
    x = np.asarray(signal)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"signal must be a numeric array, got dtype {x.dtype}")
    if x.ndim not in (2, 3) or x.shape[-1] == 0:
        raise ValueError(f"signal must be (leads, samples) or (n, leads, samples), got shape "
                         f"{x.shape}")
    if isinstance(leads, str):
        leads = [leads]
    leads = [standard_lead(str(n)) for n in leads]
    if len(leads) != x.shape[-2]:
        raise ValueError(f"signal has {x.shape[-2]} leads but {len(leads)} lead names were "
                         f"given: {leads}")
    missing = [n for n in settings.leads if n not in leads]
    if len(missing) == len(settings.leads):
        raise ValueError(f"the recording's leads {leads} share none with the model's "
                         f"{list(settings.leads)}")
    if missing:
        warnings.warn(f"the recording lacks the lead(s) {missing}; they are zeros",
                      stacklevel=2)
    x = x.astype(np.float64)
    if not windows:
        # only the first settings.seconds are kept: resampling the rest is wasted work.  The
        # resampling filter reaches well under a second, so the samples kept are those a
        # whole-record resampling (what the store's reader does) gives.
        x = x[..., :int(np.ceil((settings.seconds + RESAMPLE_MARGIN) * float(fs)))]
    if float(fs) != settings.fs:
        x = handle_nonfinite(x, float(fs), "interpolate", name="signal")
        x = resample(x, float(fs), settings.fs)
    x, _ = select_leads(x, leads, settings.leads)
    if windows:
        if x.ndim != 2:
            raise ValueError("windows=True takes one recording (leads, samples), not a batch")
        count = max(1, x.shape[-1] // settings.samples)
        x = np.stack([x[:, k * settings.samples:(k + 1) * settings.samples]
                      for k in range(count)])
    real = np.full(x.shape[:-2], min(x.shape[-1], settings.samples))
    return preprocess(fit_length(x, settings.samples), settings, lengths=real)
