"""PhysioNet/CinC Challenge 2020/2021 trees: the reader against what the test wrote, the label
tables, the 2020 Georgia header wfdb refuses, long records cut into windows, damaged records
skipped and counted, and the shared sample of 50 real records."""

import numpy as np
import pytest

from mets_fast.data import ECGStore
from mets_fast.data.records import STANDARD_LEADS
from mets_fast.data.sources.challenge import (challenge_labels, database_of, read_challenge,
                                              report_of)
from mets_fast.prepare import main as prepare_main


@pytest.fixture
def tree(tmp_path, make_ecg, write_challenge):
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


def test_damaged_challenge_records_are_skipped_with_their_reason(tmp_path, make_ecg, capsys,
                                                                 write_challenge):
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
    assert "skipped 2 record(s)" in printed and "declares 12 signals of 6000 samples" in printed
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


def _challenge_metric_by_the_definition(weights, labels, outputs, normal):
    """The Challenge's definition written out loop by loop (its evaluate_model.py's
    structure), as the reference for the vectorised metric."""
    def confusion(out):
        n, c = labels.shape
        a = np.zeros((c, c))
        for i in range(n):
            norm = float(max(np.sum(labels[i] | out[i]), 1))
            for j in range(c):
                if labels[i, j]:
                    for k in range(c):
                        if out[i, k]:
                            a[j, k] += 1.0 / norm
        return a

    observed = np.nansum(weights * confusion(outputs))
    correct = np.nansum(weights * confusion(labels))
    inactive = np.zeros_like(labels)
    inactive[:, normal] = True
    idle = np.nansum(weights * confusion(inactive))
    return 0.0 if correct == idle else (observed - idle) / (correct - idle)


def test_the_challenge_metric_follows_its_definition():
    from mets_fast.evaluation.metrics import challenge_score

    w = challenge_labels().weights
    normal = challenge_labels().scored.index("426783006")
    c = w.shape[0]
    # hand-made: perfect, only normal, everything, nothing, a partial-credit neighbour
    labels = np.zeros((4, c), bool)
    labels[0, 0] = labels[1, [1, 5]] = labels[2, normal] = labels[3, 3] = True
    assert challenge_score(labels, labels, w, normal) == pytest.approx(1.0)
    only_normal = np.zeros_like(labels)
    only_normal[:, normal] = True
    assert challenge_score(labels, only_normal, w, normal) == pytest.approx(0.0)
    neighbour = labels.copy()
    neighbour[0] = False
    neighbour[0, 1] = True  # AF called atrial flutter: 0.5 credit in weights.csv
    expected = _challenge_metric_by_the_definition(w, labels, neighbour, normal)
    assert challenge_score(labels, neighbour, w, normal) == pytest.approx(expected)
    assert 0 < expected < 1
    for seed in range(5):
        rng = np.random.default_rng(seed)
        labels = rng.random((60, c)) < 0.08
        outputs = rng.random((60, c)) < rng.uniform(0.01, 0.5)
        labels[:3] = False  # recordings with no scored label
        for out in (outputs, np.ones_like(outputs), np.zeros_like(outputs)):
            assert challenge_score(labels, out, w, normal) == pytest.approx(
                _challenge_metric_by_the_definition(w, labels, out, normal), abs=1e-12)
    same = np.zeros((2, c), bool)
    same[:, normal] = True  # every recording normal: correct == inactive -> 0
    assert challenge_score(same, same, w, normal) == 0.0
    with pytest.raises(ValueError, match="must be"):
        challenge_score(labels, outputs[:, :3], w, normal)


def test_zeroshot_on_a_challenge_tree_reports_aurocs_and_the_challenge_score(
        trained, tree, tmp_path, capsys):
    from mets_fast.zeroshot import main as zeroshot_main

    assert zeroshot_main(["--model", str(trained), "--data", f"challenge:{tree}", "--split",
                          "all", "--out", str(tmp_path / "z")]) == 0
    printed = capsys.readouterr().out
    assert "| challenge |" in printed and "| Challenge score (challenge) |" in printed
    import json

    r = json.loads((tmp_path / "z" / "zeroshot.json").read_text())["challenge"]
    assert r["n"] == 4 and r["split"] == "all"  # four readable records (INCART's six windows: one)
    assert -10 < r["challenge_score"] <= 1 and 0 <= r["auroc"] <= 1
    assert set(r["per_class"]) <= set(challenge_labels().abbreviations.values())


def test_the_probe_on_a_challenge_tree_scores_the_challenge_metric(trained, tmp_path, make_ecg,
                                                                   write_challenge, capsys):
    from mets_fast.linear_probe import main as probe_main

    codes = ("164889003", "426783006", "427084000")  # AF, sinus rhythm, sinus tachycardia
    for k in range(40):
        x, _ = make_ecg(500, seconds=10, seed=k, rate=(70, 70, 110)[k % 3])
        write_challenge(tmp_path / "tree", f"A{k:04d}", np.stack([x] * 12), 500,
                        [codes[k % 3]])
    out = tmp_path / "p"
    assert probe_main(["--model", str(trained), "--data", f"challenge:{tmp_path / 'tree'}",
                       "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| challenge | challenge_score | pretrained |" in printed
    import json

    result = json.loads((out / "linear_probe.json").read_text())["challenge"]
    assert result["multilabel"] and "NSR" in result["classes"]
    for encoder in ("pretrained", "random"):
        for fraction in ("1%", "10%", "100%"):
            assert result[encoder][fraction]["challenge_score"] <= 1


def test_a_single_lead_tree_is_refused_or_mapped_as_the_user_says(tmp_path, make_ecg, capsys,
                                                                  write_challenge):
    """The 2017 Challenge's records (one lead named ECG, 300 Hz, no Dx): each is skipped
    naming its leads, so the run stores nothing and fails; with --lead-names ECG=I they are
    lead I.  Their A00001 names are not CPSC2018's A0001."""
    root = tmp_path / "cinc2017"
    for k in range(3):
        x, _ = make_ecg(300, seconds=12, seed=k)
        rec = write_challenge(root, f"A0000{k + 1}", x[None], 300, [])
        header = rec.with_suffix(".hea")
        header.write_text(header.read_text().replace(" I\n", " ECG\n"))
    out = tmp_path / "s"
    assert prepare_main(["challenge", str(root), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no ECG could be prepared" in err and "its leads are ECG" in err
    assert "--lead-names" in err and not out.exists()
    assert prepare_main(["challenge", str(root), "--out", str(out), "--quiet",
                         "--lead-names", "ECG=I"]) == 0
    store = ECGStore.open(out)
    assert len(store) == 3 and store.lead_mask[:, 0].all() and not store.lead_mask[:, 1:].any()
    assert set(store.meta["database"]) == {"unknown"}
    for bad in ("ECG", "ECG=Q7", "ECG=I,ecg=II"):
        assert prepare_main(["challenge", str(root), "--out", str(tmp_path / "t"),
                             "--lead-names", bad]) == 2
        assert "--lead-names" in capsys.readouterr().err


def test_databases_are_recognised_by_the_whole_name_and_the_rate():
    assert database_of("A0001", 500) == "CPSC2018" and database_of("A00001", 300) == "unknown"
    assert database_of("A0001", 300) == "unknown" and database_of("I0001", 257) == "INCART"
    assert database_of("HR00001") == "PTB-XL" and database_of("HR1") == "unknown"
    assert database_of("E00009x") == "unknown"


def test_progress_totals_short_records_and_every_reason(tmp_path, make_ecg, capsys,
                                                       write_challenge):
    from mets_fast.data.preprocess import DEFAULT_SETTINGS
    from mets_fast.data.sources.challenge import source

    root = tmp_path / "t"
    for k, seconds in enumerate([10, 10, 25, 1.5]):
        x, _ = make_ecg(500, seconds=seconds, seed=k)
        write_challenge(root, f"A000{k + 1}", np.stack([x] * 12), 500, ["164889003"])
    (root / "A0005.hea").write_text("A0005 12 500 5000\nA0005.mat 16 1000/mV\n")
    # windows: 1 + 1 + 2 + 1 (a record the header misdescribes counts 1); exact, not 2 each
    assert source(DEFAULT_SETTINGS, root).n_max == 6
    assert prepare_main(["challenge", str(root), "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert len(ECGStore.open(tmp_path / "s")) == 4  # the 1.5 s record is not stored
    assert "notch off" in printed
    assert "lasts 1.5 s: too short" in printed and "signal line(s)" in printed


def test_the_help_and_the_readme_say_what_is_done(capsys):
    from pathlib import Path

    with pytest.raises(SystemExit):
        prepare_main(["challenge", "--help"])
    assert "Challenge trees none" in " ".join(capsys.readouterr().out.split())
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "three example records (PTB-XL" not in readme and "no real record" in readme
