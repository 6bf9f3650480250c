"""Shared fixtures: where the shared real data lives, and a small synthetic ECG generator."""

import os
from pathlib import Path

import numpy as np
import pytest

# No network in tests: the Hugging Face libraries read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared_data_root():
    """The shared data folder (METS_FAST_DATA or ../shared/data beside the checkout), or None."""
    env = os.environ.get("METS_FAST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data():
    root = shared_data_root()
    if root is None:
        pytest.skip("shared data not found (set METS_FAST_DATA or place it in ../shared/data)")
    return root


def synthetic_ecg(fs, seconds=20.0, seed=0, noise=0.05, wander=0.3, powerline=0.05,
                  rate=70.0):
    """A single-lead ECG built from Gaussian P, Q, R, S and T waves (mV) with heart-rate
    variability, baseline wander, 50 Hz interference and white noise.  `noise` is the noise's
    standard deviation at 500 Hz; at other rates it scales with sqrt(fs / 500), so that the
    noise power per Hz, and so what falls in the QRS band, is the same at every rate.  Returns
    (signal, R-peak sample indices)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    x = np.zeros(n)
    beats = []
    time = 0.4
    while time < seconds - 0.4:
        beats.append(time)
        time += 60.0 / rate * (1 + 0.08 * rng.standard_normal())
    waves = [(-0.2, 0.025, 0.15), (-0.03, 0.01, -0.1), (0.0, 0.012, 1.2), (0.03, 0.01, -0.25),
             (0.28, 0.05, 0.3)]  # (offset s, width s, amplitude mV)
    for b in beats:
        for offset, width, amp in waves:
            x += amp * np.exp(-0.5 * ((t - b - offset) / width) ** 2)
    x += wander * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6))
    x += powerline * np.sin(2 * np.pi * 50 * t)
    x += noise * np.sqrt(fs / 500.0) * rng.standard_normal(n)
    return x, np.round(np.array(beats) * fs).astype(np.int64)


@pytest.fixture(scope="session")
def make_ecg():
    return synthetic_ecg


@pytest.fixture(scope="session")
def mitdb(shared_data):
    """The shared MIT-BIH DS1 records: {name: (MLII signal, fs, reference beats, ventricular
    flutter intervals)}; lead MLII chosen by name (record 114 stores it second)."""
    from mets_fast.data.mitbih import qrs_reference, read_mitbih

    root = shared_data / "mitdb-ds1"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    records = {}
    for header in sorted(root.glob("*.hea")):
        rec = read_mitbih(header.with_suffix(""))
        signal, beats, flutter = qrs_reference(rec)
        records[header.stem] = (signal, rec.record.fs, beats, flutter)
    return records


@pytest.fixture(scope="session")
def shared_root():
    """The shared data folder, or None where it is absent (for tests that use it if present)."""
    return shared_data_root()
