"""MIMIC-IV-ECG: a tree written here in the real layout (both tables with quoted report cells,
several studies per patient, WFDB format 16 with aVF before aVL, invalid samples, a flat lead,
a study without report, a record listed but absent, an 11-lead header, a truncated .dat), and
the reader on it."""

import csv

import numpy as np
import pandas as pd
import pytest

from mets_fast.data import ECGStore
from mets_fast.data.reports import machine_report
from mets_fast.data.sources.mimic import measurements
from mets_fast.prepare import main as prepare_main

MIMIC_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
MEASURED = ["bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end",
            "t_end", "p_axis", "qrs_axis", "t_axis"]


def write_mimic(root, make_ecg, studies):
    """`studies`: dicts of subject, study, reports (list), and optionally ``leads`` (names in
    file order), ``absent`` (listed, no files), ``truncate`` (bytes cut from the .dat),
    ``invalid`` (lead index -> (start, stop) samples written as WFDB's invalid value),
    ``flat`` (a lead index written as zeros).  Lead k of study s carries ``(k + 1) * x``."""
    import wfdb

    records, measured = [], []
    for s in studies:
        subject, study = s["subject"], s["study"]
        rel = f"files/p{subject[:4]}/p{subject}/s{study}/{study}"
        records.append({"subject_id": subject, "study_id": study, "file_name": study,
                        "ecg_time": "2180-07-23 08:44:00", "path": rel})
        row = {"subject_id": subject, "study_id": study, "cart_id": "6848296",
               "ecg_time": "2180-07-23 08:44:00"}
        row.update({f"report_{k}": (s["reports"][k] if k < len(s["reports"]) else "")
                    for k in range(18)})
        row.update(bandwidth="0.005-150 Hz", filtering="60 Hz notch Baseline filter",
                   rr_interval=659, p_onset=40, p_end=128, qrs_onset=170, qrs_end=258,
                   t_end=518, p_axis=81, qrs_axis=77, t_axis=29999)
        measured.append(row)
        if s.get("absent"):
            continue
        leads = s.get("leads", MIMIC_LEADS)
        x, _ = make_ecg(500, seconds=10, seed=int(study) % 97)
        signal = np.stack([x * (1 + 0.1 * MIMIC_LEADS.index(n)) for n in leads])
        if "flat" in s:
            signal[s["flat"]] = 0.0
        folder = root / rel.rsplit("/", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(study, fs=500, units=["mV"] * len(leads), sig_name=leads,
                    p_signal=np.ascontiguousarray(signal.T), fmt=["16"] * len(leads),
                    adc_gain=[200.0] * len(leads), baseline=[0] * len(leads),
                    write_dir=str(folder))
        dat = folder / f"{study}.dat"
        if "invalid" in s:
            raw = np.fromfile(dat, "<i2").reshape(5000, len(leads))
            for lead, (a, b) in s["invalid"].items():
                raw[a:b, lead] = -32768
            raw.tofile(dat)
        if "truncate" in s:
            dat.write_bytes(dat.read_bytes()[:-s["truncate"]])
    for name, rows in (("record_list.csv", records), ("machine_measurements.csv", measured)):
        with open(root / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=csv.QUOTE_NONNUMERIC)
            writer.writeheader()
            writer.writerows(rows)
    return root


@pytest.fixture
def mimic_tree(tmp_path, make_ecg):
    studies = []
    for p in range(12):  # 12 patients, 2-3 studies each
        for k in range(2 + p % 2):
            studies.append({"subject": f"{10000032 + p}", "study": f"{40000000 + 10 * p + k}",
                            "reports": ["Sinus rhythm", "Normal EKG"]})
    studies[0]["reports"] = ["Atrial fibrillation, with rapid ventricular response",
                             "--- Warning: Data quality may affect interpretation ---",
                             "Abnormal ECG"]
    studies[1].update(invalid={2: (1000, 1100), 8: (0, 5000)}, flat=10)
    studies[2]["reports"] = []  # no report line
    studies[3]["absent"] = True  # listed, not on disk
    studies[4]["leads"] = MIMIC_LEADS[:11]  # an 11-lead header
    studies[5]["truncate"] = 400  # a truncated .dat
    return write_mimic(tmp_path / "mimic", make_ecg, studies), studies


def test_prepare_mimic_maps_leads_by_name_reports_and_measurements(mimic_tree, tmp_path,
                                                                   make_ecg, capsys):
    root, studies = mimic_tree
    out = tmp_path / "store"
    assert prepare_main(["mimic-iv-ecg", str(root), "--out", str(out), "--no-clean",
                         "--normalize", "none", "--dtype", "float32", "--fs", "500"]) == 0
    printed = capsys.readouterr().out
    store = ECGStore.open(out)
    meta = store.meta.set_index("id")
    assert len(store) == len(studies) - 4
    assert "skipped 4 record(s)" in printed
    for reason in ("NoReport", "FileNotFoundError", "ValueError"):
        assert reason in printed
    first = meta.loc[f"mimic-{studies[0]['study']}"]
    assert first["report"] == ("Atrial fibrillation, with rapid ventricular response. "
                               "Abnormal ECG.")
    assert first["report_clean"].startswith("atrial fibrillation")
    assert bool(first["quality_flag"]) and not meta["quality_flag"].iloc[1:].any()
    assert first["qrs"] == 88 and first["pr"] == 130 and first["qt"] == 348
    assert first["t_axis"] is None or np.isnan(first["t_axis"])  # 29999: not measured
    assert first["patient"] == studies[0]["subject"]
    # leads by name: stored row of aVL is the file's sixth signal, aVF its fifth
    row = int(np.flatnonzero(store.meta["id"] == f"mimic-{studies[6]['study']}")[0])
    x, _ = make_ecg(500, seconds=10, seed=int(studies[6]["study"]) % 97)
    stored = store.signals[row]
    names = list(store.leads)
    for lead in ("aVF", "aVL", "V6"):
        np.testing.assert_allclose(stored[names.index(lead)],
                                   x * (1 + 0.1 * MIMIC_LEADS.index(lead)), atol=0.01)
    # invalid run of 0.2 s filled, a lead off and a flat lead stored as missing
    damaged = int(np.flatnonzero(store.meta["id"] == f"mimic-{studies[1]['study']}")[0])
    assert np.isfinite(store.signals[damaged]).all()
    mask = store.lead_mask[damaged]
    assert not mask[names.index("V3")] and not mask[names.index("V5")]
    assert mask[names.index("III")] and mask.sum() == 10
    # by patient: no patient in two splits
    assert (store.meta.groupby("patient")["split"].nunique() == 1).all()


def test_the_random_split_is_by_record(mimic_tree, tmp_path):
    root, _ = mimic_tree
    assert prepare_main(["mimic-iv-ecg", str(root), "--out", str(tmp_path / "s"), "--split",
                         "random", "--quiet"]) == 0
    assert ECGStore.open(tmp_path / "s").manifest["preprocessing"]["split"] == "random"


@pytest.mark.parametrize("damage,phrase", [
    (lambda r: (r / "record_list.csv").unlink(), "MIMIC-IV-ECG table not found"),
    (lambda r: (r / "machine_measurements.csv").write_text("study_id,x\n1,2\n"),
     "has no report_0 ... report_17 column"),
    (lambda r: (r / "record_list.csv").write_text("subject_id,file_name\n1,2\n"),
     "lacks the column(s) ['study_id', 'path']"),
])
def test_bad_mimic_tables_get_one_line_and_no_store(mimic_tree, tmp_path, capsys, damage,
                                                    phrase):
    root, _ = mimic_tree
    damage(root)
    out = tmp_path / "s"
    assert prepare_main(["mimic-iv-ecg", str(root), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert phrase in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".s.tmp-*"))


def test_reports_and_measurements_as_the_field_cleans_them():
    text, flagged = machine_report(["*** Poor data quality, interpretation may be adversely "
                                    "affected", "Sinus  rhythm", float("nan"), "", "Borderline EKG"])
    assert text == "Sinus rhythm. Borderline ECG." and flagged
    assert machine_report([None, ""]) == ("", False)
    m = measurements(pd.DataFrame({"rr_interval": ["800", "x"], "p_onset": [29999, 40],
                                   "qrs_onset": [200, 100], "qrs_end": ["290", ""],
                                   "t_end": [600, 500], "qrs_axis": [-30, 10]}))
    assert m["rr"][0] == 800 and np.isnan(m["pr"][0]) and m["qrs"][0] == 90
    assert m["qt"][0] == 400 and m["qrs_axis"][0] == -30 and np.isnan(m["p_axis"]).all()
    assert np.isnan(m["rr"][1]) and m["pr"][1] == 60 and np.isnan(m["qrs"][1])


STORE_FILES = ("signals.npy", "meta.parquet", "lead_mask.npy")
SLOW_CHILD = """
import sys, time
from mets_fast.data import shards
from mets_fast.data.sources import mimic
from mets_fast.prepare import main

read, copy = mimic.read_checked, shards._copy
mimic.read_checked = lambda args: (time.sleep(0.05), read(args))[1]
shards._copy = lambda *args: (time.sleep(0.4), copy(*args))[1]
sys.exit(main(sys.argv[1:]))
"""


def _prepare(root, out, *flags):
    return prepare_main(["mimic-iv-ecg", str(root), "--out", str(out), "--quiet",
                         "--shard-size", "3", *flags])


def _same_store(a, b):
    for name in STORE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_the_store_is_the_same_whatever_the_workers(mimic_tree, tmp_path):
    root, _ = mimic_tree
    assert _prepare(root, tmp_path / "one") == 0
    assert _prepare(root, tmp_path / "two", "--workers", "2") == 0
    _same_store(tmp_path / "one", tmp_path / "two")
    assert not list(tmp_path.glob(".*.partial"))


def _kill_when(root, out, ready, timeout=120):
    """Starts a slowed prepare in a child process and SIGKILLs it once ``ready(work)``."""
    import subprocess
    import sys
    import time

    work = out.with_name(f".{out.name}.partial")
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD, "mimic-iv-ecg", str(root),
                              "--out", str(out), "--quiet", "--shard-size", "3", "--resume"])
    deadline = time.monotonic() + timeout
    while not ready(work) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed = child.poll() is None
    child.kill()
    child.wait()
    return killed


def _shards_done(k):
    return lambda work: len(list(work.glob("shards/*.npz"))) >= k


@pytest.mark.parametrize("points", [
    [_shards_done(1)],
    [_shards_done(4), _shards_done(7)],  # killed twice: the second time while resuming
    [lambda work: (work / "appended.json").is_file()],
    [lambda work: (work / "appended.json").is_file() and '"shards": 2' in
     (work / "appended.json").read_text()],
], ids=["first-shard", "twice", "appending", "mid-append"])
def test_resume_after_sigkill_gives_the_same_store(mimic_tree, tmp_path, points):
    root, _ = mimic_tree
    assert _prepare(root, tmp_path / "whole") == 0
    out = tmp_path / "resumed"
    for ready in points:
        assert _kill_when(root, out, ready), "the child ended before it could be killed"
        assert not out.exists() and (tmp_path / ".resumed.partial" / "plan.json").is_file()
    assert _prepare(root, out, "--resume") == 0
    _same_store(tmp_path / "whole", out)
    assert not (tmp_path / ".resumed.partial").exists()


def test_an_interrupted_run_is_resumed_or_discarded_never_mixed(mimic_tree, tmp_path,
                                                               capsys):
    root, _ = mimic_tree
    out = tmp_path / "s"
    assert _kill_when(root, out, _shards_done(2))
    capsys.readouterr()
    assert _prepare(root, out) == 1  # neither --resume nor --overwrite
    err = capsys.readouterr().err
    assert "holds an interrupted preparation" in err and err.count("\n") == 1
    assert _prepare(root, out, "--resume", "--fs", "250") == 1  # other settings
    assert "other records or settings" in capsys.readouterr().err
    assert _prepare(root, out, "--overwrite", "--fs", "250") == 0
    assert ECGStore.open(out).fs == 250
    assert _prepare(root, out, "--resume", "--fs", "250") == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert prepare_main(["synthetic", "--n", "4", "--out", str(tmp_path / "x"),
                         "--resume"]) == 2
    assert "apply to mimic-iv-ecg" in capsys.readouterr().err


def test_killed_after_the_store_was_in_place_resume_has_nothing_to_do(mimic_tree, tmp_path,
                                                                      monkeypatch, capsys):
    from mets_fast.data import shards

    root, _ = mimic_tree
    out, work = tmp_path / "s", tmp_path / ".s.partial"
    commit = shards.commit_dir

    def commit_then_die(tmp, target):
        commit(tmp, target)
        raise KeyboardInterrupt  # as a kill between the rename and the clean-up

    monkeypatch.setattr(shards, "commit_dir", commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        _prepare(root, out)
    monkeypatch.undo()
    assert work.is_dir() and out.is_dir()
    before = (out / "signals.npy").read_bytes()
    assert _prepare(root, out, "--resume") == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert not work.exists() and (out / "signals.npy").read_bytes() == before


def test_data_mimic_is_prepared_once_into_the_cache(mimic_tree, tmp_path):
    from mets_fast.data.cache import prepared_store
    from mets_fast.data.spec import parse_data

    root, studies = mimic_tree
    spec = parse_data(f"mimic-iv-ecg:{root}")
    first = prepared_store(spec, cache_dir=tmp_path / "cache", quiet=True)
    assert prepared_store(spec, cache_dir=tmp_path / "cache", quiet=True) == first
    store = ECGStore.open(first)
    assert len(store) == len(studies) - 4 and store.manifest["preprocessing"]["data"]
    assert not list((tmp_path / "cache" / "stores").glob(".*.partial"))


def test_a_tree_with_no_readable_record_gets_one_line_and_leaves_nothing(tmp_path, make_ecg,
                                                                         capsys):
    studies = [{"subject": "10000032", "study": f"{40000000 + k}", "reports": ["Sinus rhythm"],
                "truncate": 400} for k in range(4)]
    root = write_mimic(tmp_path / "mimic", make_ecg, studies)
    out = tmp_path / "s"
    assert _prepare(root, out, "--workers", "2") == 1
    err = capsys.readouterr().err
    assert "no ECG could be prepared" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mimic"]  # no store, no partial
