"""A synthetic 12-lead ECG-report corpus: the package's embedded default data set.

Every beat is a sum of Gaussian waves (P, septal Q, R, S, T, and the extra waves conditions add:
R' of a right bundle branch block, pathological Q waves, ST shifts), each with a direction in
three dimensions that the twelve leads see through fixed lead vectors, as a dipole seen from the
limb leads (frontal plane) and the chest leads (horizontal plane).  Rhythms set the beat times
(heart-rate variability, respiratory sinus arrhythmia, irregular atrial fibrillation, flutter
with 2:1 to 4:1 conduction), atrial fibrillation and flutter add their atrial waves, and every
recording gets baseline wander, muscle noise and, where the rate carries it, power-line
interference.  Each ECG comes with a machine-style report (several phrasings per statement, as
different carts word them) and PTB-XL's label codes, so that it trains, and is scored, exactly
like PTB-XL.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pandas as pd

from ...signal import to_samples
from ..preprocess import DEFAULT_SETTINGS, Settings
from ..records import STANDARD_LEADS
from ..splits import split_groups
from ..store import REQUIRED_COLUMNS, store_row
from .items import Item, Source

SETTINGS = DEFAULT_SETTINGS  # 100 Hz, 10 s, the 12 leads, 50 Hz notch (the rendered mains)
CORPUS_SIZE = 10000  # ECGs of the corpus unless told otherwise (the default run's)

# Lead vectors in (left, inferior, anterior) coordinates: limb leads in the frontal plane at their
# hexaxial angles, chest leads around the horizontal plane from V1 (right, anterior) to V6 (left).
_LIMB_ANGLES = {"I": 0, "II": 60, "III": 120, "aVR": -150, "aVL": -30, "aVF": 90}
_CHEST = {"V1": (-0.45, 0.1, 0.9), "V2": (-0.05, 0.1, 1.0), "V3": (0.4, 0.1, 0.9),
          "V4": (0.75, 0.1, 0.65), "V5": (0.95, 0.05, 0.35), "V6": (1.0, 0.0, 0.0)}
LEAD_VECTORS = np.array(
    [(np.cos(np.radians(_LIMB_ANGLES[n])), np.sin(np.radians(_LIMB_ANGLES[n])), 0.0)
     if n in _LIMB_ANGLES else np.array(_CHEST[n]) / np.linalg.norm(_CHEST[n]) * 1.4
     for n in STANDARD_LEADS])


class Condition(NamedTuple):
    name: str          # what a clinician calls it (the `conditions` column)
    rhythm: str        # PTB-XL rhythm code, or ""
    diagnostic: str    # PTB-XL diagnostic code, or ""
    superclass: str
    subclass: str
    form: tuple        # PTB-XL form codes
    phrasings: tuple   # report statements, one chosen per ECG


CONDITIONS = {c.name: c for c in (
    Condition("normal sinus rhythm", "SR", "", "", "", (),
              ("sinus rhythm", "normal sinus rhythm", "sinus rhythm, normal rate")),
    Condition("sinus tachycardia", "STACH", "", "", "", (),
              ("sinus tachycardia", "sinus tachycardia, rapid rate")),
    Condition("sinus bradycardia", "SBRAD", "", "", "", (),
              ("sinus bradycardia", "marked sinus bradycardia", "sinus bradycardia, slow rate")),
    Condition("sinus arrhythmia", "SARRH", "", "", "", (),
              ("sinus arrhythmia", "sinus rhythm with marked sinus arrhythmia")),
    Condition("atrial fibrillation", "AFIB", "", "", "", (),
              ("atrial fibrillation", "atrial fibrillation with irregular ventricular response",
               "atrial fibrillation, no p waves seen")),
    Condition("atrial flutter", "AFLT", "", "", "", (),
              ("atrial flutter", "atrial flutter with variable block",
               "atrial flutter, sawtooth flutter waves")),
    Condition("first-degree AV block", "", "1AVB", "CD", "_AVB", (),
              ("first degree av block", "prolonged pr interval", "1st degree a-v block")),
    Condition("left bundle branch block", "", "CLBBB", "CD", "CLBBB", (),
              ("left bundle branch block", "complete left bundle branch block")),
    Condition("right bundle branch block", "", "CRBBB", "CD", "CRBBB", (),
              ("right bundle branch block", "complete right bundle branch block",
               "rsr' in v1 consistent with right bundle branch block")),
    Condition("premature ventricular contractions", "", "", "", "", ("PVC",),
              ("premature ventricular contraction(s)", "ventricular premature complexes",
               "occasional ventricular extrasystoles")),
    Condition("anterior myocardial infarction", "", "AMI", "MI", "AMI", ("QWAVE",),
              ("anterior myocardial infarction", "q waves in v1-4 consistent with anterior "
               "infarction", "anteroseptal infarct, age undetermined")),
    Condition("inferior myocardial infarction", "", "IMI", "MI", "IMI", ("QWAVE",),
              ("inferior myocardial infarction", "q waves in ii, iii, avf consistent with "
               "inferior infarction", "inferior infarct, probably old")),
    Condition("left ventricular hypertrophy", "", "LVH", "HYP", "LVH", ("VCLVH",),
              ("left ventricular hypertrophy", "voltage criteria for left ventricular "
               "hypertrophy", "lvh with repolarisation abnormality")),
    Condition("low voltage", "", "", "", "", ("LVOLT",),
              ("low voltage", "low qrs voltages in limb leads", "low limb lead voltage")),
    Condition("non-specific ST-T changes", "", "NST_", "STTC", "NST_", ("NST_",),
              ("non-specific st-t wave changes", "nonspecific st and t wave abnormality",
               "minor non-specific st-t changes")),
)}
RHYTHM_CONDITIONS = ("normal sinus rhythm", "sinus tachycardia", "sinus bradycardia",
                     "sinus arrhythmia", "atrial fibrillation", "atrial flutter")
_RHYTHM_WEIGHTS = np.array([0.40, 0.12, 0.12, 0.12, 0.14, 0.10])
EXTRA_CONDITIONS = ("first-degree AV block", "left bundle branch block",
                    "right bundle branch block", "premature ventricular contractions",
                    "anterior myocardial infarction", "inferior myocardial infarction",
                    "left ventricular hypertrophy", "low voltage", "non-specific ST-T changes")
# how often each is drawn, relative to the others (ST-T changes and hypertrophy, which other
# conditions exclude most often, are drawn more so that each superclass stays well represented)
_EXTRA_WEIGHTS = dict(zip(EXTRA_CONDITIONS, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 0.8, 1.8)))
# pairs that do not go together (a block hides the other's signs, or contradicts it)
_EXCLUSIVE = {frozenset(p) for p in (
    ("left bundle branch block", "right bundle branch block"),
    ("left bundle branch block", "anterior myocardial infarction"),
    ("left bundle branch block", "non-specific ST-T changes"),
    ("right bundle branch block", "non-specific ST-T changes"),
    ("low voltage", "left ventricular hypertrophy"),
    ("anterior myocardial infarction", "inferior myocardial infarction"),
)}
_SINUS = {"normal sinus rhythm", "sinus tachycardia", "sinus bradycardia", "sinus arrhythmia"}

# The classes the corpus is scored on (the zero-shot task registry, evaluation/tasks.py, makes
# its tasks of them): rhythms by their PTB-XL descriptions; superclasses (which
# scp_statements.csv does not describe) by the names PTB-XL's paper gives them and, as a prompt
# ensemble, by the subclasses PTB-XL files under each.
SUPERCLASS_DESCRIPTIONS = {
    "NORM": ("normal ECG",),
    "CD": ("conduction disturbance", "bundle branch block", "atrioventricular block"),
    "MI": ("myocardial infarction", "anterior myocardial infarction",
           "inferior myocardial infarction"),
    "HYP": ("hypertrophy", "left ventricular hypertrophy", "right ventricular hypertrophy"),
    "STTC": ("ST/T change", "non-specific ST changes", "ischemic ST-T changes"),
}
RHYTHM_DESCRIPTIONS = {
    "SR": ("sinus rhythm",), "AFIB": ("atrial fibrillation",), "AFLT": ("atrial flutter",),
    "STACH": ("sinus tachycardia",), "SBRAD": ("sinus bradycardia",),
    "SARRH": ("sinus arrhythmia",)}


class Corpus(NamedTuple):
    signals: np.ndarray  # (n, 12, samples) float32, mV
    meta: pd.DataFrame


def synthetic_corpus(n: int, seed: int = 0, fs: float = 100.0, seconds: float = 10.0,
                     split: tuple = (0.8, 0.1, 0.1)) -> Corpus:
    """`n` synthetic 12-lead ECGs with reports and labels.

    Args:
        n: number of ECGs; seed: the same seed gives the same corpus (ECG ``i`` depends only on
        ``(seed, i)``, not on `n`); fs: sampling rate in Hz (at least 50); seconds: duration;
        split: train/val/test fractions.

    Returns:
        ``(signals, meta)``: float32 ``(n, 12, round(fs * seconds))`` in mV, leads in
        :data:`~mets_fast.data.records.STANDARD_LEADS` order, and a DataFrame with the store's
        columns (``id``, ``report``, ``report_clean``, ``split``, ``source``, ``superclass``,
        ``subclass``, ``form``, ``rhythm``) and ``conditions`` (the condition names).
    """
    _check_corpus_args(n, fs, seconds)
    splits = split_groups(np.arange(n), split, seed=[seed, 2**31])  # each ECG its own patient
    return _render_range(0, n, splits, seed, fs, seconds)


def synthetic_batches(n: int, seed: int = 0, fs: float = 100.0, seconds: float = 10.0,
                      split: tuple = (0.8, 0.1, 0.1), batch: int = 1000):
    """:func:`synthetic_corpus` in pieces of `batch` ECGs (the same ECGs, splits and order),
    so that a corpus of any size is made in constant memory."""
    _check_corpus_args(n, fs, seconds)
    splits = split_groups(np.arange(n), split, seed=[seed, 2**31])
    for start in range(0, n, batch):
        yield _render_range(start, min(n, start + batch), splits, seed, fs, seconds)


def source(settings: Settings, n: int = CORPUS_SIZE, *, seed: int = 0) -> Source:
    """`n` ECGs of the corpus rendered at the settings' rate and length, in the settings'
    leads (which must be among the 12 standard ones)."""
    unknown = [x for x in settings.leads if x not in STANDARD_LEADS]
    if unknown:
        raise ValueError(f"the synthetic corpus has the 12 standard leads "
                         f"{list(STANDARD_LEADS)}; {unknown} are not among them")
    index = [STANDARD_LEADS.index(x) for x in settings.leads]

    def items():
        for part in synthetic_batches(n, seed=seed, fs=settings.fs, seconds=settings.seconds):
            for k, row in enumerate(part.meta.to_dict("records")):
                yield Item(part.signals[k, index], row)

    return Source(items(), n, {"source": "synthetic", "seed": seed})


def _check_corpus_args(n, fs, seconds) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not fs >= 50:
        raise ValueError(f"fs must be at least 50 Hz, got {fs!r}")
    if not seconds > 1:
        raise ValueError(f"seconds must exceed 1, got {seconds!r}")


def _render_range(start: int, stop: int, splits: np.ndarray, seed: int, fs: float,
                  seconds: float) -> Corpus:
    """ECGs start..stop-1 of the corpus of `seed` (ECG i depends on (seed, i) alone)."""
    samples = to_samples(seconds, fs)
    n = stop - start
    waves, offsets, atrial, noise, rows = [], [0], [], [], []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        conditions = _draw_conditions(rng)
        ecg_waves, ecg_atrial = _ecg_waves(rng, conditions, seconds)
        waves.append(ecg_waves)
        offsets.append(offsets[-1] + len(ecg_waves))
        atrial.append(ecg_atrial)
        noise.append(_noise_params(rng, fs))
        rows.append(_annotate(rng, conditions, i, seed))
    signals = np.zeros((n, len(STANDARD_LEADS), samples), dtype=np.float32)
    if n:
        _render(np.concatenate(waves), np.asarray(offsets), np.stack(atrial), np.stack(noise),
                float(fs), np.int64(seed), signals)
    meta = pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS) + ["conditions"])
    meta["split"] = splits[start:stop]
    return Corpus(signals, meta)


def _draw_conditions(rng) -> list:
    rhythm = RHYTHM_CONDITIONS[rng.choice(len(RHYTHM_CONDITIONS), p=_RHYTHM_WEIGHTS)]
    extra_count = rng.choice(3, p=[0.45, 0.37, 0.18])
    chosen = [rhythm]
    candidates = [c for c in EXTRA_CONDITIONS
                  if not (c == "first-degree AV block" and rhythm not in _SINUS)]
    weights = np.array([_EXTRA_WEIGHTS[c] for c in candidates])
    for c in rng.choice(candidates, size=len(candidates), replace=False,
                        p=weights / weights.sum()):
        if len(chosen) > extra_count:
            break
        if all(frozenset((c, other)) not in _EXCLUSIVE for other in chosen):
            chosen.append(str(c))
    return chosen


def _annotate(rng, conditions: list, i: int, seed: int) -> dict:
    found = [CONDITIONS[c] for c in conditions]
    diagnostic = [c for c in found if c.diagnostic]
    superclass = sorted({c.superclass for c in diagnostic})
    subclass = sorted({c.subclass for c in diagnostic})
    if not diagnostic and conditions[0] in _SINUS:
        superclass, subclass = ["NORM"], ["NORM"]
    statements = [str(rng.choice(c.phrasings)) for c in found]
    if superclass == ["NORM"]:
        statements.append("normal ecg" if conditions[0] == "normal sinus rhythm" and
                          len(conditions) == 1 else "otherwise normal ecg")
    elif diagnostic and rng.random() < 0.5:
        statements.append("abnormal ecg")
    report = ". ".join(statements) + "."
    return store_row(f"synthetic-{seed}-{i}", report, None, "synthetic", superclass=superclass,
                     subclass=subclass, form=sorted({f for c in found for f in c.form}),
                     rhythm=[c.rhythm for c in found if c.rhythm], conditions=conditions)


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _rotate(rng, v, degrees):
    """v turned by a small random rotation (up to `degrees` about a random axis)."""
    axis = _unit(rng.standard_normal(3))
    angle = np.radians(rng.uniform(-degrees, degrees))
    v = np.asarray(v, dtype=float)
    return (v * np.cos(angle) + np.cross(axis, v) * np.sin(angle)
            + axis * np.dot(axis, v) * (1 - np.cos(angle)))


def _beat_times(rng, rhythm: str, seconds: float, flutter: float):
    """R-peak times in seconds over the recording (a beat may start before 0 or end after it);
    `flutter` is the atrial flutter rate in Hz (used for that rhythm only)."""
    if rhythm == "atrial flutter":
        ratios = rng.choice([2, 4], size=64, p=[0.7, 0.3]) if rng.random() < 0.3 else \
            np.full(64, rng.choice([2, 3, 4], p=[0.6, 0.1, 0.3]))
        rr = ratios / flutter
    elif rhythm == "atrial fibrillation":
        mean = rng.uniform(0.45, 0.95)
        rr = np.clip(rng.gamma(8.0, mean / 8.0, size=64), 0.3, 1.8)
    else:
        rate = {"normal sinus rhythm": (60, 95), "sinus tachycardia": (105, 150),
                "sinus bradycardia": (38, 56), "sinus arrhythmia": (58, 90)}[rhythm]
        base = 60.0 / rng.uniform(*rate)
        rr = base * (1 + 0.025 * rng.standard_normal(64))
        if rhythm == "sinus arrhythmia":
            t = np.cumsum(np.full(64, base))
            period, depth = rng.uniform(3.0, 6.0), rng.uniform(0.12, 0.22)
            rr *= 1 + depth * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    start = -rng.uniform(0, rr[0])
    times = start + np.concatenate([[0], np.cumsum(rr)])
    return times[times < seconds + 1.0]


def _ecg_waves(rng, conditions: list, seconds: float):
    """Every wave of the recording as rows (centre s, width s, 12 lead amplitudes mV), and the
    atrial activity parameters (kind, frequency Hz, phase, 12 lead amplitudes)."""
    rhythm, extras = conditions[0], set(conditions[1:])
    gain = rng.uniform(0.8, 1.25)
    turn = 20.0
    # normal activation: direction (left, inferior, anterior) and size in mV
    p_vec = _rotate(rng, _unit([0.6, 0.8, 0.15]), turn) * 0.13 * gain
    q_vec = _rotate(rng, _unit([-0.6, 0.2, 0.8]), turn) * 0.14 * gain
    r_vec = _rotate(rng, _unit([0.7, 0.65, -0.25]), turn) * 1.15 * gain
    s_vec = _rotate(rng, _unit([-0.25, -0.35, -0.9]), turn) * 0.4 * gain
    t_vec = _rotate(rng, _unit([0.6, 0.55, 0.4]), turn) * 0.3 * gain
    qrs_width, extra = rng.uniform(0.009, 0.013), []
    pr = rng.uniform(0.13, 0.19)
    if "first-degree AV block" in extras:
        pr = rng.uniform(0.24, 0.34)
    if "left ventricular hypertrophy" in extras:
        r_vec = _unit(r_vec + np.array([0.3, -0.2, -0.4])) * np.linalg.norm(r_vec) * 1.9
        s_vec = s_vec * 1.9
        if rng.random() < 0.5:  # strain: lateral ST depression and T inversion
            t_vec = _unit([-0.6, -0.2, 0.3]) * 0.22 * gain
            extra.append((0.12, 0.05, _unit([-0.8, -0.3, 0.2]) * 0.1 * gain))
    if "left bundle branch block" in extras:
        lb = _rotate(rng, _unit([0.85, 0.15, -0.5]), turn) * 0.85 * gain
        q_vec, s_vec, qrs_width = q_vec * 0, s_vec * 0.2, rng.uniform(0.016, 0.02)
        r_vec = lb  # a broad, notched R: two overlapping waves 40 ms apart (QRS ~140 ms)
        extra.append((0.04, qrs_width, lb * 0.9))
        t_vec = -0.45 * lb
    if "right bundle branch block" in extras:
        extra.append((0.075, 0.02, _rotate(rng, _unit([-0.6, -0.1, 0.8]), turn) * 0.6 * gain))
        t_vec = t_vec + _unit([0.3, 0.0, -0.6]) * 0.1
    if "anterior myocardial infarction" in extras:
        extra.append((-0.004, 0.016, np.array([0.0, 0.0, -1.0]) * 0.5 * gain))
        r_vec = r_vec + np.array([0.0, 0.0, -0.3])
        if rng.random() < 0.5:  # acute: ST elevation; old: T inversion
            extra.append((0.11, 0.05, _unit([0.1, -0.05, 0.9]) * 0.2 * gain))
        else:
            t_vec = t_vec + np.array([0.0, 0.0, -0.45]) * gain
    if "inferior myocardial infarction" in extras:
        extra.append((-0.008, 0.015, np.array([0.0, -1.0, 0.0]) * 0.4 * gain))
        if rng.random() < 0.5:
            extra.append((0.11, 0.05, _unit([0.0, 0.9, -0.1]) * 0.14 * gain))
        else:
            t_vec = t_vec + np.array([0.0, -0.4, 0.0]) * gain
    if "non-specific ST-T changes" in extras:
        t_vec = t_vec * rng.uniform(-0.25, 0.3)
        extra.append((0.12, 0.05, -_unit(r_vec) * 0.05 * gain))
    atrial_kind, atrial_freq = 0, 0.0
    if rhythm == "atrial fibrillation":
        atrial_kind, atrial_freq, p_vec = 1, rng.uniform(5.0, 7.5), p_vec * 0
    elif rhythm == "atrial flutter":  # about 260-320 flutter waves per minute
        atrial_kind, atrial_freq, p_vec = 2, rng.uniform(4.3, 5.3), p_vec * 0
    lead_scale = np.ones(len(STANDARD_LEADS))
    if "low voltage" in extras:
        lead_scale[:6] = rng.uniform(0.25, 0.4)
        lead_scale[6:] = rng.uniform(0.5, 0.7)

    times = _beat_times(rng, rhythm, seconds, atrial_freq)
    pvc = np.zeros(len(times), dtype=bool)
    if "premature ventricular contractions" in extras and len(times) > 4:
        k = rng.choice(np.arange(2, len(times) - 1), size=min(len(times) - 3,
                                                               rng.integers(1, 4)), replace=False)
        pvc[k] = True
    pvc_vec = _rotate(rng, _unit([-0.5, -0.6, 0.6]), 40) * 1.5 * gain

    beat_waves = [(-pr, 0.022, p_vec), (-0.022, 0.009, q_vec), (0.0, qrs_width, r_vec),
                  (0.028 + qrs_width, 0.011, s_vec)] + extra
    rows = []
    for b, t in enumerate(times):
        rr = times[b] - times[b - 1] if b else (times[1] - times[0] if len(times) > 1 else 0.8)
        if pvc[b]:
            # premature (coupling 0.55-0.7 of the RR), wide and bizarre, discordant T, no P
            t = times[b - 1] + rng.uniform(0.55, 0.7) * rr
            rows += [(t, 0.035, pvc_vec), (t + 0.06, 0.03, -0.3 * pvc_vec),
                     (t + 0.34, 0.07, -0.35 * pvc_vec)]
            continue
        for offset, width, vec in beat_waves:
            rows.append((t + offset, width, vec))
        rows.append((t + 0.2 + 0.12 * min(rr, 1.5), 0.045, t_vec))
    centres = np.array([r[0] for r in rows])
    widths = np.array([r[1] for r in rows])
    vectors = np.array([r[2] for r in rows])
    amplitudes = (vectors @ LEAD_VECTORS.T) * lead_scale
    table = np.column_stack([centres, widths, amplitudes])
    atrial_amp = (_unit([0.3, 0.8, 0.5]) @ LEAD_VECTORS.T) * lead_scale * \
        (rng.uniform(0.04, 0.08) if atrial_kind == 1 else rng.uniform(0.12, 0.2))
    if atrial_kind == 2:
        atrial_amp = -atrial_amp  # inferior leads see negative sawtooth waves
    atrial = np.concatenate([[atrial_kind, atrial_freq, rng.uniform(0, 1)], atrial_amp])
    return table, atrial


def _noise_params(rng, fs: float) -> np.ndarray:
    """(wander amplitude mV, wander frequencies x3 Hz, phases x3, muscle noise sd mV,
    power-line amplitude mV, power-line Hz, noise seed)."""
    powerline = rng.choice([50.0, 60.0])
    line_amp = rng.uniform(0.0, 0.04) if powerline < fs / 2 else 0.0
    return np.array([rng.uniform(0.05, 0.35), *rng.uniform(0.05, 0.45, 3),
                     *rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.005, 0.03), line_amp,
                     powerline, rng.integers(0, 2**31)])


@numba.njit(cache=True, parallel=True)
def _render(waves, offsets, atrial, noise, fs, seed, out):
    n, leads, samples = out.shape
    for e in numba.prange(n):
        sig = np.zeros((leads, samples))
        for w in range(offsets[e], offsets[e + 1]):
            centre, width = waves[w, 0] * fs, waves[w, 1] * fs
            lo = max(0, int(centre - 4 * width))
            hi = min(samples, int(centre + 4 * width) + 1)
            for t in range(lo, hi):
                g = np.exp(-0.5 * ((t - centre) / width) ** 2)
                for l in range(leads):
                    sig[l, t] += waves[w, 2 + l] * g
        kind, freq, phase = atrial[e, 0], atrial[e, 1], atrial[e, 2]
        if kind > 0:
            for t in range(samples):
                x = t / fs
                if kind == 1:  # fibrillatory waves: three drifting oscillations
                    a = (np.sin(2 * np.pi * (freq * x + phase))
                         + 0.6 * np.sin(2 * np.pi * (1.37 * freq * x + 2 * phase))
                         + 0.4 * np.sin(2 * np.pi * (0.71 * freq * x + 3 * phase)))
                else:  # flutter: sawtooth, slow descent then quick return
                    u = (freq * x + phase) % 1.0
                    a = 1.0 - 2.0 * u / 0.8 if u < 0.8 else -1.0 + 2.0 * (u - 0.8) / 0.2
                for l in range(leads):
                    sig[l, t] += atrial[e, 3 + l] * a
        np.random.seed((np.int64(noise[e, 10]) + seed) % 4294967296)
        wander, muscle, line, line_hz = noise[e, 0], noise[e, 7], noise[e, 8], noise[e, 9]
        for l in range(leads):
            share = 0.6 + 0.4 * np.random.random()  # the wander is mostly common to all leads
            for t in range(samples):
                x = t / fs
                drift = 0.0
                for k in range(3):
                    drift += np.sin(2 * np.pi * noise[e, 1 + k] * x + noise[e, 4 + k] + l * 0.3 * k)
                value = sig[l, t] + wander * share * drift / 3.0
                value += muscle * np.random.standard_normal()
                if line > 0:
                    value += line * np.sin(2 * np.pi * line_hz * x)
                out[e, l, t] = value
