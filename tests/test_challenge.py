"""PhysioNet/CinC Challenge 2020/2021 trees: the reader against what the test wrote, the label
tables, the 2020 Georgia header wfdb refuses, long records cut into windows, damaged records
skipped and counted, and the shared sample of 50 real records."""

import numpy as np
import pytest
import scipy.io

from mets_fast.data import ECGStore
from mets_fast.data.records import STANDARD_LEADS
from mets_fast.data.sources.challenge import (challenge_labels, database_of, read_challenge,
                                              report_of)
from mets_fast.prepare import main as prepare_main


def write_challenge(folder, name, signal, fs, codes, *, gain=1000.0, georgia_2020=False,
                    dx_key="# Dx:", age="63", sex="Female"):
    """A Challenge record: ``<name>.mat`` (MATLAB v4, ``val`` int16 leads x samples) and its
    header, as the 2021 release writes them (or with the 2020 Georgia record line)."""
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


@pytest.fixture
def tree(tmp_path, make_ecg):
    """A small mixed tree: CPSC2018 (15 s), a 2020 Georgia header (gain 4880/mV, #Dx:), an
    INCART-like record (257 Hz, 60 s), a record with an unknown code and merged equivalents,
    and a header whose .mat is missing."""
    def twelve(fs, seconds, seed):
        x, _ = make_ecg(fs, seconds=seconds, seed=seed)
        return np.stack([x * (1 + 0.05 * k) for k in range(12)])

    root = tmp_path / "training"
    write_challenge(root / "cpsc_2018" / "g1", "A0001", twelve(500, 15, 1), 500,
                    ["164889003"])
    write_challenge(root / "georgia" / "g1", "E00009", twelve(500, 10, 2), 500,
                    ["426177001", "164934002"], gain=4880.0, georgia_2020=True, dx_key="#Dx:")
    write_challenge(root / "st_petersburg_incart", "I0001", twelve(257, 60, 3), 257,
                    ["427172004", "426783006"])
    write_challenge(root / "ningbo", "JS00001", twelve(500, 10, 4), 500,
                    ["59118001", "999999999"], age="NaN", sex="Unknown")
    missing = write_challenge(root / "ptb", "S0001", twelve(1000, 10, 5), 1000, ["426783006"])
    missing.with_suffix(".mat").unlink()
    return root


def test_the_reader_gives_back_what_was_written(tree, make_ecg):
    rec = read_challenge(tree / "georgia" / "g1" / "E00009.hea")
    x, _ = make_ecg(500, seconds=10, seed=2)
    np.testing.assert_allclose(rec.signal[1], x * 1.05, atol=0.5 / 4880)
    assert rec.fs == 500 and rec.leads == STANDARD_LEADS and rec.name == "E00009"
    assert rec.codes == ("426177001", "164934002") and rec.age == 63 and rec.sex == "F"
    rec = read_challenge(tree / "st_petersburg_incart" / "I0001")
    assert rec.fs == 257 and rec.signal.shape == (12, 257 * 60)
    assert read_challenge(tree / "ningbo" / "JS00001").age is None


def test_labels_merge_the_challenge_equivalents_and_name_codes():
    labels = challenge_labels()
    assert len(labels.scored) == 26 and labels.weights.shape == (26, 26)
    assert labels.merged(["59118001", "713427006", "17338001"]) == ["713427006", "427172004"]
    assert labels.names["164889003"] == "atrial fibrillation"
    assert report_of(["427084000", "284470004", "164934002"]) == \
        "sinus tachycardia. premature atrial contraction. t wave abnormal."
    assert [database_of(n) for n in ("A0001", "Q0001", "I0001", "S0001", "HR00001", "E00001",
                                     "JS00001", "X1")] == \
        ["CPSC2018", "CPSC-Extra", "INCART", "PTB", "PTB-XL", "Georgia",
         "Chapman-Shaoxing/Ningbo", "unknown"]


def test_prepare_challenge_mixes_databases_windows_and_skips(tree, tmp_path, capsys):
    out = tmp_path / "store"
    assert prepare_main(["challenge", str(tree), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    store = ECGStore.open(out)
    meta = store.meta.set_index("id")
    # 15 s: one 10 s window; INCART's 60 s at 257 Hz: six
    assert "challenge-A0001" in meta.index and "challenge-E00009" in meta.index
    incart = meta[meta["record"] == "I0001"]
    assert len(incart) == 6 and incart["split"].nunique() == 1
    assert set(incart["database"]) == {"INCART"}
    assert incart["dx"].iloc[0] == ["427172004", "426783006"]
    js = meta.loc["challenge-JS00001"]
    assert js["dx"] == ["713427006"] and js["dx_unknown"] == ["999999999"]
    assert js["report"] == "complete right bundle branch block."
    assert meta.loc["challenge-E00009", "report"] == "sinus bradycardia. t wave abnormal."
    assert len(store) == 1 + 1 + 6 + 1
    assert "skipped 1 record(s)" in printed and "S0001.mat" in printed
    assert store.signals.shape[1:] == (12, 1000) and np.isfinite(store.signals[:]).all()


def test_damaged_challenge_records_are_skipped_with_their_reason(tmp_path, make_ecg, capsys):
    x, _ = make_ecg(500, seconds=10, seed=1)
    good = write_challenge(tmp_path / "t", "A0002", np.stack([x] * 12), 500, ["164889003"])
    short = write_challenge(tmp_path / "t", "A0003", np.stack([x] * 12), 500, ["164889003"])
    header = short.with_suffix(".hea")
    header.write_text(header.read_text().replace(" 5000\n", " 6000\n", 1))
    (tmp_path / "t" / "A0004.hea").write_text("A0004 12 500 5000\nA0004.mat 16 1000/mV\n")
    (tmp_path / "t" / "A0004.mat").write_bytes(b"not a mat file")
    assert good.with_suffix(".hea").is_file()
    assert prepare_main(["challenge", str(tmp_path / "t"), "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert len(ECGStore.open(tmp_path / "s")) == 1
    assert "skipped 2 record(s)" in printed and "header declares 12 signals of 6000" in printed
    (tmp_path / "empty").mkdir()
    assert prepare_main(["challenge", str(tmp_path / "empty"), "--out", str(tmp_path / "e")]) == 1
    assert "holds no Challenge records (no .hea file below it)" in capsys.readouterr().err


def test_the_shared_sample_is_stored_whole_with_its_labels(shared_data, tmp_path):
    sample = shared_data / "cinc2021-sample"
    if not sample.is_dir():
        pytest.skip(f"{sample} not found")
    assert prepare_main(["challenge", str(sample), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    store = ECGStore.open(tmp_path / "s")
    assert len(store) == 50
    labels = challenge_labels()
    for _, row in store.meta.iterrows():
        codes = read_challenge(sample / f"{row['record']}.hea").codes
        merged = labels.merged(codes)
        assert row["dx"] + row["dx_unknown"] == merged
        assert row["report"] == " ".join(f"{labels.names[c]}." for c in row["dx"])
    assert set(store.meta["database"]) == {"Georgia", "PTB-XL", "Chapman-Shaoxing/Ningbo"}
