"""Bad input, one row per case: what a user got wrong, the exception (or the CLI's exit code) it
must get, and a phrase of the message, which must say what is wrong."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from mets_fast.data import ECGStore, StoreWriter, read_record
from mets_fast.data.sources.mitbih import beat_windows, mitbih_windows
from mets_fast.loss import ContrastiveLoss, contrastive_loss
from mets_fast.prepare import main as prepare_main


def _meta(n, report="sinus rhythm."):
    return pd.DataFrame({"id": [f"e{i}" for i in range(n)], "report": [report] * n,
                         "report_clean": [report] * n, "split": ["train"] * n,
                         "source": ["t"] * n, "superclass": [[]] * n, "subclass": [[]] * n,
                         "form": [[]] * n, "rhythm": [[]] * n})


@pytest.fixture
def store(tmp_path):
    with StoreWriter(tmp_path / "s", 4, ["I", "II"], 50, 100.0, "float32") as w:
        w.signals[:] = 1.0
        w.set_meta(_meta(4))
    return tmp_path / "s"


# ------------------------------------------------------------------------- library calls

def _write(path, signal, dtype="float16", meta=None):
    with StoreWriter(path, len(signal), ["I"], signal.shape[-1], 100.0, dtype) as w:
        w.signals[:] = signal
        w.set_meta(meta if meta is not None else _meta(len(signal)))


def _damage(store_path, how):
    path = store_path / how[0]
    if how[1] == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif how[1] == "header-only":
        data = path.read_bytes()
        path.write_bytes(data[:128])
    elif how[1] == "not-an-object":
        path.write_text("[]")
    elif how[1] == "version-string":
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, "version": "1"}))
    ECGStore.open(store_path)


LIBRARY = [
    # (name, call(tmp_path, fixtures), exception, phrase)
    ("StoreWriter refuses NaN",
     lambda t, f: _write(t / "n", np.array([[[np.nan] * 10]], np.float32)), ValueError,
     "row 0 (ECG 'e0') holds NaN or inf"),
    ("StoreWriter refuses float16 overflow",
     lambda t, f: _write(t / "o", np.full((2, 1, 10), 1e6, np.float32)), ValueError,
     "beyond its range"),
    ("StoreWriter refuses a report that is not a string",
     lambda t, f: _write(t / "r", np.zeros((2, 1, 10), np.float32),
                         meta=_meta(2).assign(report=[float("nan"), "x"])), ValueError,
     "row 0 ('e0'): report is float"),
    ("truncated signals.npy", lambda t, f: _damage(f["store"], ("signals.npy", "truncate")),
     ValueError, "is truncated"),
    ("header-only signals.npy",
     lambda t, f: _damage(f["store"], ("signals.npy", "header-only")), ValueError,
     "is truncated"),
    ("truncated meta.jsonl", lambda t, f: _damage(f["store"], ("meta.jsonl", "truncate")),
     ValueError, "meta.jsonl is damaged or truncated"),
    ("manifest holding a list, not an object",
     lambda t, f: _damage(f["store"], ("manifest.json", "not-an-object")), ValueError,
     "is not a mets_fast ECG store (format None)"),
    ("manifest version as a string",
     lambda t, f: _damage(f["store"], ("manifest.json", "version-string")), ValueError,
     "gives the format version as '1' (str)"),
    ("read_record fs=nan", lambda t, f: read_record(f["record"], fs=float("nan")), ValueError,
     "fs must be a positive number"),
    ("read_record fs=0", lambda t, f: read_record(f["record"], fs=0), ValueError,
     "fs must be a positive number"),
    ("mitbih_windows given a path", lambda t, f: mitbih_windows("100"), TypeError,
     "takes a record read by read_mitbih"),
    ("beat_windows given a path", lambda t, f: beat_windows("100", 300), TypeError,
     "takes a record read by read_mitbih"),
    ("loss given a Python list",
     lambda t, f: contrastive_loss([[1.0, 2.0]], torch.ones(1, 2), 1.0), TypeError,
     "must be a torch.Tensor, got list"),
    ("ContrastiveLoss given a list",
     lambda t, f: ContrastiveLoss()([[1.0, 2.0]], torch.ones(1, 2)), TypeError,
     "must be a torch.Tensor, got list"),
    ("create_graph through the fused loss",
     lambda t, f: contrastive_loss(torch.randn(3, 4, requires_grad=True), torch.randn(3, 4),
                                   2.0).backward(create_graph=True), RuntimeError,
     "no second derivative"),
    ("text encoder on a missing directory",
     lambda t, f: _encoder(model=str(t / "no" / "such" / "dir")), FileNotFoundError,
     "language model directory not found"),
    pytest.param("text encoder on CUDA without CUDA", lambda t, f: _encoder(device="cuda"),
                 ValueError, "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
    ("an uncached hub id offline fails at once",
     lambda t, f: _encoder(model="someone/not-a-cached-model"), OSError,
     "not in the local Hugging Face cache"),
]


def _encoder(**kwargs):
    from mets_fast.text import FrozenTextEncoder

    return FrozenTextEncoder(cache_dir=False, **kwargs)


@pytest.mark.parametrize("name,call,error,phrase", LIBRARY,
                         ids=[r[0] if isinstance(r, tuple) and len(r) == 4 else r.values[0]
                              for r in LIBRARY])
def test_library_bad_input(name, call, error, phrase, tmp_path, store, twelve_lead,
                           monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fixtures = {"store": store, "record": twelve_lead[0]}
    with pytest.raises(error, match=re.escape(phrase)):
        call(tmp_path, fixtures)
    assert not [p for p in tmp_path.glob(".*.tmp-*")]  # nothing half-written left


def test_a_lead_name_string_is_one_lead_in_its_standard_spelling(twelve_lead):
    path, signal = twelve_lead
    rec = read_record(path, leads="V1")
    assert rec.leads == ("V1",) and rec.mask.tolist() == [True]
    np.testing.assert_allclose(rec.signal[0], signal[6], atol=1e-3)
    assert read_record(path, leads="ii").leads == ("II",)


# ---------------------------------------------------------------------------------- CLIs

PREPARE = [
    # (argv after the source, exit code, phrase)
    (["synthetic", "--n", "-5"], 2, "--n must be a positive number"),
    (["synthetic", "--n", "8", "--seconds", "0"], 2, "--seconds must be a positive number"),
    (["synthetic", "--n", "8", "--leads", ""], 2, "--leads must be comma-separated"),
    (["synthetic", "--n", "8", "--leads", "I,,II"], 2, "--leads must be comma-separated"),
    (["synthetic", "--n", "8", "--leads", "II,ii"], 2, "names a lead twice"),
    (["synthetic", "--n", "8", "--workers", "2"], 2, "--workers applies to ptbxl and wfdb"),
    (["synthetic", "--n", "8", "--fs", "20"], 2, "--fs must be at least 50"),
    (["synthetic", "--n", "8", "--powerline", "-50"], 2, "--powerline must be a frequency"),
    (["synthetic", "--n", "8", "--leads", "I,foo"], 1, "not among them"),
    (["ptbxl", "{tmp}/no-ptbxl"], 1, "PTB-XL database table not found"),
    (["mitbih", "{tmp}/nonexistent"], 1, "MIT-BIH folder not found"),
    (["mitbih", "{tmp}"], 1, "holds no MIT-BIH records"),
    (["wfdb", "{record}", "--leads", "II,V1,foo"], 1, "no record has the lead(s) ['foo']"),
    (["wfdb", "{record}", "--reports", "{tmp}/none.csv"], 1, "reports file not found"),
]


@pytest.mark.parametrize("argv,code,phrase", PREPARE, ids=[" ".join(r[0]) for r in PREPARE])
def test_prepare_cli_bad_input(argv, code, phrase, tmp_path, twelve_lead, capsys):
    argv = [a.format(tmp=tmp_path, record=twelve_lead[0]) for a in argv]
    out = tmp_path / "out"
    assert prepare_main(argv + ["--out", str(out), "--quiet"]) == code
    err = capsys.readouterr().err
    assert phrase in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_prepare_refuses_an_existing_out_before_any_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "out").mkdir()
    import mets_fast.prepare

    monkeypatch.setattr(mets_fast.prepare, "open_source",
                        lambda *a, **k: pytest.fail("work was done"))
    assert prepare_main(["synthetic", "--n", "8", "--out", str(tmp_path / "out")]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------ silent wrong data, fixed


def test_a_killed_prepare_leaves_a_temporary_the_next_run_removes(tmp_path):
    stale = tmp_path / ".out.tmp-999999999-abc"  # a process that is long gone
    stale.mkdir()
    (stale / "signals.npy").write_bytes(b"half")
    live = tmp_path / f".out.tmp-{__import__('os').getpid()}-xyz"  # a writer still running
    live.mkdir()
    assert prepare_main(["synthetic", "--n", "8", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert not stale.exists() and live.exists()


def test_wfdb_reports_leads_mask_padding_and_the_summary(tmp_path, twelve_lead, write_record,
                                                         make_ecg, capsys):
    """Reports from a CSV or the header's comments, lower-case lead names stored standard,
    the mask of the leads a record lacks, and a short record padded but normalised over its
    real samples only."""
    path, _ = twelve_lead  # 10 s, 12 leads; comments "age: 60", "sex: male"
    x, _ = make_ecg(500, seconds=4, seed=9)
    short = write_record(tmp_path / "short", "short", np.stack([x, -x]), 500, ["I", "V1"],
                         ["Reason for admission: Myocardial infarction"])
    csv = tmp_path / "reports.csv"
    csv.write_text("record,report\nrec,sinus rhythm. normal ecg.\n")
    out = tmp_path / "store"
    assert prepare_main(["wfdb", str(path), str(short), "--leads", "i,ii,v1", "--reports",
                         str(csv), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    store = ECGStore.open(out)
    assert store.leads == ("I", "II", "V1")
    by_id = dict(zip(store.meta["id"], range(len(store))))
    assert store.meta["report"].iloc[by_id["wfdb-rec"]] == "sinus rhythm. normal ecg."
    assert store.meta["report"].iloc[by_id["wfdb-short"]] == \
        "Reason for admission: Myocardial infarction"
    assert store.lead_mask[by_id["wfdb-short"]].tolist() == [True, False, True]
    assert store.lead_mask[by_id["wfdb-rec"]].all()
    signal = store.signals[by_id["wfdb-short"]].astype(np.float32)
    assert np.all(signal[:, 400:] == 0) and np.all(signal[1] == 0)
    np.testing.assert_allclose(signal[0, :400].std(), 1, rtol=2e-3)
    assert "leads missing" in printed and "'II': 1" in printed and "zero-padded" in printed


def test_mitbih_prepares_with_a_60_hz_notch_and_three_second_beat_windows(tmp_path,
                                                                         mitbih_writer):
    root = tmp_path / "mit"
    for k, name in enumerate(("900", "901")):
        mitbih_writer(root, name, seed=k, seconds=60)
    assert prepare_main(["mitbih", str(root), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    store = ECGStore.open(tmp_path / "s")
    assert store.preprocessing["powerline"] == 60.0 and store.preprocessing["seconds"] == 3.0
    assert store.manifest["samples"] == 300
    assert store.lead_mask[:, [1, 6]].all() and not store.lead_mask[:, 0].any()


def _edit_header(path, line0):
    header = path.with_suffix(".hea") if path.suffix else path.parent / (path.name + ".hea")
    lines = header.read_text().splitlines()
    header.write_text("\n".join([line0(lines[0])] + lines[1:]) + "\n")
    return header


def test_wfdb_header_edge_cases(twelve_lead, tmp_path):
    import shutil

    path, signal = twelve_lead
    # no sample count: valid WFDB (the signal file's length says it), read as wfdb reads it
    _edit_header(path, lambda first: " ".join(first.split()[:3]))
    rec = read_record(path)
    assert rec.signal.shape == signal.shape
    np.testing.assert_allclose(rec.signal, signal, atol=1e-3)
    # a sampling rate of 0 is refused, naming the header
    _edit_header(path, lambda first: " ".join(first.split()[:2] + ["0"] + first.split()[3:]))
    with pytest.raises(ValueError, match="sampling rate"):
        read_record(path)
    # an empty header says it is empty
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(path.parent / (path.name + ".dat"), empty / "rec.dat")
    (empty / "rec.hea").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_record(empty / "rec")
