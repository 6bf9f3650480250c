"""Shared fixtures: where the shared real data lives, and a small synthetic ECG generator."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

# No network in tests: the Hugging Face libraries read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared_data_root():
    """The shared data folder (METS_FAST_DATA or ../shared/data beside the checkout), or None."""
    from mets_fast.data.shared import shared_data

    return shared_data(anchor=__file__)


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
    from mets_fast.data.sources.mitbih import qrs_reference, read_mitbih

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


def _write_record(directory, name, signal, fs, names, comments=()):
    """Writes (leads, samples) millivolts as a WFDB record (format 16)."""
    import wfdb

    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(names), sig_name=list(names),
                p_signal=np.ascontiguousarray(signal.T, dtype=np.float64), fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                comments=list(comments), write_dir=str(directory))
    return directory / name


@pytest.fixture(scope="session")
def write_record():
    """write_record(directory, name, signal (leads, samples) mV, fs, lead names, comments)."""
    return _write_record


def _write_challenge(folder, name, signal, fs, codes, *, gain=1000.0, georgia_2020=False,
                    dx_key="# Dx:", age="63", sex="Female"):
    """A Challenge record: ``<name>.mat`` (MATLAB v4, ``val`` int16 leads x samples) and its
    header, as the 2021 release writes them (or with the 2020 Georgia record line)."""
    import scipy.io

    from mets_fast.data.records import STANDARD_LEADS

    folder.mkdir(parents=True, exist_ok=True)
    val = np.round(np.asarray(signal) * gain).astype(np.int16)
    scipy.io.savemat(str(folder / f"{name}.mat"), {"val": val}, format="4")
    n_sig, n = val.shape
    first = (f"{name}.mat {n_sig} {fs:g} {n} 05-May-2020 14:50:55" if georgia_2020
             else f"{name} {n_sig} {fs:g} {n}")
    gain_text = f"{gain:g}/mV" if georgia_2020 else f"{gain:g}(0)/mV"
    lines = [first] + [f"{name}.mat 16x1+24 {gain_text} 16 0 {int(val[k, 0])} 0 0 {lead}"
                       for k, lead in enumerate(STANDARD_LEADS[:n_sig])]
    lines += [f"# Age: {age}", f"# Sex: {sex}", f"{dx_key} {','.join(codes)}", "# Rx: Unknown"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / name


@pytest.fixture(scope="session")
def write_challenge():
    """write_challenge(folder, name, signal mV, fs, codes, ...): a Challenge record."""
    return _write_challenge


@pytest.fixture
def twelve_lead(tmp_path, make_ecg):
    """A 10 s, 500 Hz, 12-lead WFDB record written by the test: (path, signal)."""
    from mets_fast.data import STANDARD_LEADS

    x, beats = make_ecg(500, seconds=10, seed=1)
    signal = np.stack([x * (1 + 0.1 * k) for k in range(12)])
    path = _write_record(tmp_path, "rec", signal, 500, STANDARD_LEADS, ["age: 60", "sex: male"])
    return path, signal


def write_mitbih(directory, make_ecg, name="900", seed=7, seconds=60):
    """A MIT-BIH-format record (360 Hz, MLII and V1) with annotations: the first third sinus
    rhythm, then atrial fibrillation with left bundle branch block beats, and two PVCs.
    Returns (path, beat samples)."""
    import wfdb

    fs = 360
    x, beats = make_ecg(fs, seconds=seconds, seed=seed)
    path = _write_record(directory, name, np.stack([x, 0.5 * x]), fs, ["MLII", "V1"])
    symbols = ["N" if b < seconds / 3 * fs else "L" for b in beats]
    symbols[40], symbols[45] = "V", "V"
    samples = [int(beats[0]) - 5] + [int(b) for b in beats]
    notes = ["(N"] + [""] * len(beats)
    afib = int(np.searchsorted(beats, seconds / 3 * fs))
    syms = ["+"] + symbols
    samples.insert(afib + 1, int(beats[afib]) - 3)
    syms.insert(afib + 1, "+")
    notes.insert(afib + 1, "(AFIB")
    wfdb.wrann(name, "atr", np.array(samples), symbol=syms, aux_note=notes, fs=fs,
               write_dir=str(directory))
    return path, beats


@pytest.fixture
def tiny_mitbih(tmp_path, make_ecg):
    """60 s at 360 Hz, two leads, with annotations: 20 s sinus rhythm, then atrial fibrillation
    with left bundle branch block beats and two PVCs."""
    return write_mitbih(tmp_path / "mit", make_ecg)


@pytest.fixture(scope="session")
def mitbih_writer(make_ecg):
    """mitbih_writer(directory, name, seed): writes a MIT-BIH-format record (see write_mitbih)."""
    return lambda directory, name="900", seed=7, seconds=60: write_mitbih(
        directory, make_ecg, name, seed, seconds)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Prepared stores and embedding caches of the tests go to a fresh directory, never the
    user's ~/.cache/mets_fast."""
    path = tmp_path_factory.mktemp("mets_fast_cache")
    previous = os.environ.get("METS_FAST_CACHE")
    os.environ["METS_FAST_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("METS_FAST_CACHE", None)
    else:
        os.environ["METS_FAST_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A tiny random BERT (2 layers, 32 wide) written once per session: a language model for
    tests with no download."""
    return tiny_test_model(tmp_path_factory.mktemp("tiny_lm") / "bert")


@pytest.fixture(scope="session")
def trained(tiny_lm, tmp_path_factory):
    """A run of the smoke preset on 200 synthetic ECGs with the tiny language model (a module
    may define its own ``trained``)."""
    from mets_fast.train import main

    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["--preset", "smoke", "--corpus-size", "200", "--batch-size", "32",
                 "--lm", str(tiny_lm), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def make_tiny_lm():
    """make_tiny_lm(path, seed=0, hidden=32): writes another tiny BERT (see tiny_test_model)."""
    return tiny_test_model


def tiny_test_model(path, seed=0, hidden=32):
    """Writes a tiny random BERT (2 layers, `hidden` wide) with a WordPiece tokenizer covering
    ECG-report words into `path`, loadable with ``FrozenTextEncoder(model=path)``: for fast
    tests with no download.  The tokenizer is saved as ``tokenizer.json`` (transformers 5 ignores
    a bare vocabulary file passed to ``BertTokenizerFast``)."""
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = ("sinus rhythm normal ecg atrial fibrillation flutter left right bundle branch block "
             "axis deviation the report of is that premature ventricular contraction inferior "
             "anterior infarction hypertrophy low voltage st t wave changes non specific a b c d "
             "e f g h i j k l m n o p q r s u v w x y z 0 1 2 3 4 5 6 7 8 9 . , - ( ) :").split()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: k for k, tok in enumerate(specials + sorted(set(words))
                                            + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"])}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                 ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", model_max_length=128)
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    (path / "mets_fast_test_model.json").write_text(json.dumps({"seed": seed}))
    return path

