"""Bad input, one row per case: what a user got wrong, the exception (or the CLI's exit code) it
must get, and a phrase of the message, which must say what is wrong."""

import json
import os
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
    ("truncated meta.parquet", lambda t, f: _damage(f["store"], ("meta.parquet", "truncate")),
     ValueError, "meta.parquet is damaged or truncated"),
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
    (["synthetic", "--n", "8", "--workers", "2"], 2, "--workers applies to ptbxl, wfdb,"),
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


# ------------------------------------------------------------------ damaged run directories

def _run_copy(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "model.safetensors").unlink()  # a link into the checkpoint: give the copy its own
    shutil.copy(trained / "model.safetensors", run / "model.safetensors")
    return run


def _overwrite(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _edit_config(run, edit):
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def _nan_weights(run):
    from mets_fast.checksums import read_tensors, tensor_bytes

    tensors = read_tensors(run / "model.safetensors")
    tensors["ecg_projection.weight"][0, 0] = float("nan")
    (run / "model.safetensors").write_bytes(tensor_bytes(tensors))


RUNS = [
    # (name, damage(run), phrase of the ValueError of mets_fast.load)
    ("weights overwritten, same size (400 KB)",
     lambda r: _overwrite(r / "model.safetensors", 100_000, b"\x01" * 400_000),
     "is damaged: the SHA-256 of its tensors differs"),
    ("weights truncated",
     lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:-9]),
     "is truncated"),
    ("weights not safetensors", lambda r: (r / "model.safetensors").write_bytes(b"\xff" * 64),
     "is truncated or not a safetensors file"),
    ("NaN weights (checksum intact)", _nan_weights, "holds NaN or inf in 1 tensor(s)"),
    ("config.json without model", lambda r: _edit_config(r, lambda c: c.pop("model")),
     "config.json: the key 'model' must hold"),
    ("config.json model without embed_dim",
     lambda r: _edit_config(r, lambda c: c["model"].pop("embed_dim")),
     "lacks the key(s) model.embed_dim"),
    ("config.json embed_dim not an integer",
     lambda r: _edit_config(r, lambda c: c["model"].update(embed_dim="12x")),
     "model.embed_dim must be a positive integer, got '12x'"),
    ("config.json text_dim not the weights'",
     lambda r: _edit_config(r, lambda c: c["model"].update(text_dim=48)),
     "config.json: the text space records 32-d embeddings but the text projection takes 48"),
    ("config.json embed_dim not the weights'",
     lambda r: _edit_config(r, lambda c: c["model"].update(embed_dim=64)),
     "does not fit the model config.json describes (4 tensor(s): ecg_projection.weight is"),
    ("config.json fs negative",
     lambda r: _edit_config(r, lambda c: c["model"]["preprocessing"].update(fs=-100)),
     "preprocessing fs must be a positive number"),
    ("config.json leads repeated",
     lambda r: _edit_config(r, lambda c: c["model"]["preprocessing"].update(leads=["I", "I"])),
     "preprocessing leads must be a list of distinct lead names"),
    ("config.json encoder_config unknown key",
     lambda r: _edit_config(r, lambda c: c["model"]["encoder_config"].update(depth=3)),
     "model.encoder_config does not fit"),
    ("config.json not JSON", lambda r: (r / "config.json").write_text("{"), "is not valid JSON"),
]


@pytest.mark.parametrize("name,damage,phrase", RUNS, ids=[r[0] for r in RUNS])
def test_damaged_runs_are_refused_naming_the_file(name, damage, phrase, trained, tmp_path):
    import mets_fast

    run = _run_copy(trained, tmp_path)
    mets_fast.load(run)  # the copy itself is sound
    damage(run)
    with pytest.raises(ValueError, match=re.escape(phrase)) as caught:
        mets_fast.load(run)
    assert str(run) in str(caught.value)


MODEL_CALLS = [
    # (name, call(model, run), exception, phrase)
    ("load given a file", lambda m, r: __import__("mets_fast").load(r / "config.json"),
     ValueError, "is a file; a run is a directory"),
    ("embed_ecgs of NaN ECGs",
     lambda m, r: m.embed_ecgs(np.full((3, 12, 1000), np.nan, np.float32)), ValueError,
     "ECG 0 holds NaN or inf: make ECGs with model.preprocess"),
    ("zero-shot classes as a set (no order)",
     lambda m, r: __import__("mets_fast").ZeroShotClassifier(m, {"a", "b"}), TypeError,
     "classes must be ordered"),
    ("zero-shot class with no description",
     lambda m, r: __import__("mets_fast").ZeroShotClassifier(m, {"a": [], "b": ["x"]}),
     ValueError, "class 'a' needs at least one non-empty description"),
]


@pytest.mark.parametrize("name,call,error,phrase", MODEL_CALLS, ids=[r[0] for r in MODEL_CALLS])
def test_model_calls_bad_input(name, call, error, phrase, trained):
    import mets_fast

    with pytest.raises(error, match=re.escape(phrase)):
        call(mets_fast.load(trained), trained)


# ------------------------------------------------------------------------ damaged indexes

def _saved_index(tmp_path, kind="flat"):
    from mets_fast.retrieval import EmbeddingIndex

    x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    path = tmp_path / "idx"
    EmbeddingIndex.build(x, [f"r{i}" for i in range(300)], kind=kind).save(path)
    return path


def _index_file(path, role):
    return path / json.loads((path / "index.json").read_text())["files"][role]


def _edit_manifest(path, edit):
    manifest = json.loads((path / "index.json").read_text())
    edit(manifest)
    (path / "index.json").write_text(json.dumps(manifest))


def _garbage_without_checksum(path):
    _index_file(path, "index").write_bytes(b"garbage" * 100)
    _edit_manifest(path, lambda m: m.pop("checksums"))  # as an index written before them


def _flat_read_as(path, kind, params):
    _edit_manifest(path, lambda m: m.update(kind=kind, params=params))


INDEXES = [
    # (name, damage(index dir), phrase)
    ("truncated .faiss",
     lambda p: _index_file(p, "index").write_bytes(_index_file(p, "index").read_bytes()[:-100]),
     "is damaged or truncated"),
    ("a flipped byte in the .faiss", lambda p: _overwrite(_index_file(p, "index"), 500, b"\x7f"),
     "is damaged: its SHA-256 differs"),
    ("garbage .faiss with no checksum", _garbage_without_checksum,
     "is not a readable FAISS index"),
    ("index.json without files", lambda p: _edit_manifest(p, lambda m: m.pop("files")),
     "files must be an object naming its 'index'"),
    ("index.json files naming a path outside",
     lambda p: _edit_manifest(p, lambda m: m["files"].update(index="../x.faiss")),
     "files must be an object naming"),
    ("kind hnsw with a flat index's parameters", lambda p: _flat_read_as(p, "hnsw", {}),
     "params must be the parameters of a hnsw index"),
    ("kind ivf over a flat FAISS file",
     lambda p: _flat_read_as(p, "ivf", {"nlist": 4, "nprobe": 2}),
     "holds a IndexFlatIP of 8-d vectors, but"),
    ("unknown kind", lambda p: _edit_manifest(p, lambda m: m.update(kind="lsh")),
     "kind must be one of"),
    ("texts file missing", lambda p: _index_file(p, "texts").unlink(),
     "its texts file texts-"),
    ("texts not JSON (no checksum)",
     lambda p: (_index_file(p, "texts").write_text("[\"r0\", "),
                _edit_manifest(p, lambda m: m.pop("checksums"))),
     "is not valid JSON"),
    ("texts not strings (no checksum)",
     lambda p: (_index_file(p, "texts").write_text(json.dumps(list(range(300)))),
                _edit_manifest(p, lambda m: m.pop("checksums"))),
     "must hold a JSON list of strings"),
]


@pytest.mark.parametrize("name,damage,phrase", INDEXES, ids=[r[0] for r in INDEXES])
def test_damaged_indexes_are_refused_naming_the_file(name, damage, phrase, tmp_path):
    from mets_fast.retrieval import EmbeddingIndex

    path = _saved_index(tmp_path)
    EmbeddingIndex.load(path)
    damage(path)
    with pytest.raises(ValueError, match=re.escape(phrase)) as caught:
        EmbeddingIndex.load(path)
    assert str(path) in str(caught.value)


# ------------------------------------------------------------------------ records and leads

def _settings():
    from mets_fast.data.preprocess import DEFAULT_SETTINGS

    return DEFAULT_SETTINGS


def _twelve(make_ecg, seconds=10, fs=500):
    x, _ = make_ecg(fs, seconds=seconds, seed=3)
    return np.stack([x * (1 + 0.1 * k) for k in range(12)])


def _preprocess(signal, fs, leads):
    from mets_fast.data.preprocess import prepare_recording

    return prepare_recording(signal, fs, leads, _settings(), name="record r")


def _header_naming_every_lead(path, name):
    header = path.parent / (path.name + ".hea")
    lines = header.read_text().splitlines()
    header.write_text("\n".join(lines[:1] + [" ".join(l.split()[:8] + [name]) for l in lines[1:13]]
                                + lines[13:]) + "\n")
    return path


def _header_declaring(path, n_sig):
    header = path.parent / (path.name + ".hea")
    lines = header.read_text().splitlines()
    first = lines[0].split()
    header.write_text("\n".join([" ".join([first[0], str(n_sig)] + first[2:])]
                                + lines[1:1 + n_sig]) + "\n")
    return path


RECORDS = [
    # (name, call(fixtures), phrase of the ValueError)
    ("duplicated lead names given to preprocess",
     lambda f: _preprocess(f["x"], 500, ["I", "I"] + list(_settings().leads[2:])),
     "record r names the lead(s) I more than once"),
    ("a header naming every lead II",
     lambda f: _model_windows(f, _header_naming_every_lead(f["record"], "II")),
     "names the lead(s) II more than once"),
    ("a header declaring 6 of the 12 signals its .dat holds",
     lambda f: read_record(_header_declaring(f["record"], 6)),
     "holds the samples of 12 signals of 5000, but the header declares 6"),
    ("a flat (all-zero) record", lambda f: _preprocess(np.zeros((12, 5000)), 500, _settings().leads),
     "record r has no usable lead: I: flat"),
    ("a record whose every lead is invalid",
     lambda f: _preprocess(np.full((12, 5000), np.nan), 500, _settings().leads),
     "record r has no usable lead: I: no valid sample"),
    ("a 5-sample record", lambda f: _preprocess(f["x"][:, :5], 500, _settings().leads),
     "record r lasts 0.01 s (5 samples at 500 Hz): too short to score"),
    ("a record sharing no lead with the model",
     lambda f: _preprocess(f["x"][:2], 500, ["X1", "X2"]), "share none with the model's"),
    ("fs of zero", lambda f: _preprocess(f["x"], 0, _settings().leads),
     "fs must be a positive number of Hz"),
    ("fs of 10 Hz", lambda f: _preprocess(f["x"], 10, _settings().leads),
     "record r is sampled at 10 Hz; at least 50 Hz is needed"),
    ("amplitudes of 1e300 mV", lambda f: _preprocess(f["x"] * 1e300, 500, _settings().leads),
     "mV, which no ECG has (is its gain"),
    ("read_record at a rate of a record with no usable lead",
     lambda f: read_record(f["dead"], fs=100), "has no usable lead"),
    ("a header declaring a trillion samples (nothing is allocated for them)",
     lambda f: read_record(_header_of_a_trillion_samples(f["tmp"])),
     "big.dat holds 100 bytes, the header needs 2000000000000"),
    ("an empty batch", lambda f: _preprocess(np.zeros((0, 12, 1000)), 500, _settings().leads),
     "none of them 0, got shape (0, 12, 1000)"),
]


def _header_of_a_trillion_samples(tmp):
    (tmp / "big.hea").write_text("big 1 500 1000000000000\nbig.dat 16 1000 16 0 0 0 0 I\n")
    (tmp / "big.dat").write_bytes(b"\0" * 100)
    return tmp / "big"


def _model_windows(f, path):
    from mets_fast.data.preprocess import prepare_recording

    rec = read_record(path)
    return prepare_recording(rec.signal, rec.fs, rec.leads, _settings(), windows=True,
                             name=f"record {path}")


@pytest.mark.parametrize("name,call,phrase", RECORDS, ids=[r[0] for r in RECORDS])
def test_bad_records_and_leads(name, call, phrase, twelve_lead, make_ecg, write_record,
                               tmp_path):
    x = _twelve(make_ecg)
    dead = write_record(tmp_path / "dead", "dead", np.zeros((2, 5000)), 500, ["I", "II"])
    fixtures = {"x": x, "record": twelve_lead[0], "dead": dead, "tmp": tmp_path}
    with pytest.raises(ValueError, match=re.escape(phrase)):
        call(fixtures)


def test_an_unusable_lead_is_zero_named_and_masked_not_fatal(make_ecg, write_record, tmp_path):
    """A lead that is off (all invalid), has an invalid run over 1 s, or is flat becomes a
    missing lead: zeros, mask False, one warning naming it and why; the others are kept."""
    x = _twelve(make_ecg)
    x[8] = np.nan  # V3 off
    x[3, 1000:2000] = np.nan  # aVR: 2 s invalid
    x[4] = 0.0  # aVL flat
    with pytest.warns(UserWarning) as caught:
        out = _preprocess(x, 500, _settings().leads)
    message = " ".join(str(w.message) for w in caught)
    assert "V3 (no valid sample)" in message and "aVR (invalid for 2 s)" in message
    assert "aVL (flat)" in message and message.startswith("record r")
    assert np.all(out[[3, 4, 8]] == 0) and np.isfinite(out).all()
    assert np.all(out[[0, 1, 2, 5, 6, 7, 9, 10, 11]].std(-1) > 0.5)
    # the same record from disk (invalid samples as WFDB writes them): the mask says it
    path = write_record(tmp_path, "off", np.nan_to_num(x), 500, _settings().leads)
    data = path.parent / "off.dat"
    raw = np.fromfile(data, "<i2").reshape(5000, 12)
    raw[:, 8] = -32768  # WFDB's invalid sample of format 16
    raw.tofile(data)
    rec = read_record(path, fs=100)
    assert rec.mask.tolist() == [k not in (4, 8) for k in range(12)]
    assert np.all(rec.signal[8] == 0) and np.isfinite(rec.signal).all()


def test_a_short_record_is_scored_with_a_warning(make_ecg):
    with pytest.warns(UserWarning, match=r"lasts 3 s, less than the model's 10 s window"):
        out = _preprocess(_twelve(make_ecg, seconds=3), 500, _settings().leads)
    assert out.shape == (12, 1000) and np.all(out[:, 300:] == 0)


# ------------------------------------------------------------------ the trainer's failures

def _exit_code(main, argv) -> int:
    """A command's exit code, argparse's own refusals (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _train(tiny_lm, out, *extra):
    from mets_fast.train import main as train_main

    return _exit_code(train_main, ["--preset", "smoke", "--corpus-size", "160", "--batch-size",
                                   "16", "--quiet", "--lm", str(tiny_lm), "--out", str(out),
                                   *extra])


TRAIN = [
    # (flags, exit code, phrase)
    (["--batch-size", "1"], 2, "--batch-size must be at least 2"),
    (["--lr", "1e300"], 2, "--lr must be a finite number > 0 (within float32)"),
    (["--lr", "nan"], 2, "--lr must be a finite number"),
    (["--weight-decay", "-1"], 2, "--weight-decay must be a finite number >= 0"),
    (["--device", "tpu"], 2, "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (["--device", "mps"], 2, "--device must be cpu, cuda or cuda:N, got 'mps'"),
    (["--threads", "-1"], 2, "must be a positive integer, got -1"),
    (["--threads", "0"], 2, "must be a positive integer, got 0"),
    (["--epochs", "0"], 2, "--epochs must be a positive integer"),
    (["--seed", "-1"], 2, "argument --seed: must be a non-negative integer, got -1"),
    # within float32, but Adam's first step (lr / (1 - 0.9)) overflows it
    (["--lr", "1e38"], 1, "the optimiser's step overflowed float32 (learning rate 1e+38)"),
]


@pytest.mark.parametrize("flags,code,phrase", TRAIN, ids=[" ".join(r[0]) for r in TRAIN])
def test_train_cli_bad_input(flags, code, phrase, tiny_lm, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_lm, out, *flags) == code
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*tmp-*"))  # nothing half-made


def test_a_run_killed_before_its_first_checkpoint_restarts_with_the_same_command(
        tiny_lm, tmp_path, capsys):
    """What a kill -9 before the first checkpoint leaves (config.json, args.json, a
    temporary, the lock file) is neither a run to resume nor a dead end: the same command, with
    or without --resume, starts the run again."""
    for resume in ([], ["--resume"]):
        out = tmp_path / f"run{len(resume)}"
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "args.json").write_text("{}")
        (out / ".lock").write_text("999999999")
        (out / ".metrics.jsonl.tmp-999999999-abc").write_text("half")
        assert _train(tiny_lm, out, *resume) == 0
        assert "run written to" in capsys.readouterr().out  # printed even with --quiet
        assert not list(out.glob(".*tmp-*"))
        assert [p.name for p in checkpoint_dirs(out)] == ["epoch-0001"]
    alien = tmp_path / "notes"
    alien.mkdir()
    (alien / "thesis.tex").write_text("")
    assert _train(tiny_lm, alien) == 1
    assert "holds files that are not a run's (thesis.tex)" in capsys.readouterr().err
    assert (alien / "thesis.tex").exists() and len(list(alien.iterdir())) == 1


def checkpoint_dirs(run):
    from mets_fast.model import checkpoint

    return checkpoint.committed_checkpoints(run)


def test_a_locked_run_is_refused_and_dead_writers_temporaries_go(tiny_lm, tmp_path, capsys):
    from mets_fast.atomic import lock

    out = tmp_path / "run"
    assert _train(tiny_lm, out) == 0
    # a kill -9 during a checkpoint write and during the weights' link left these
    stale = [out / "checkpoints" / ".epoch-0002.tmp-999999999-abc", out / ".model.safetensors"
             ".tmp-999999999-def"]
    stale[0].mkdir()
    (stale[0] / "model.safetensors").write_bytes(b"x" * 1000)
    stale[1].write_bytes(b"y")
    held = lock(out, "training it")  # another process training it
    try:
        assert _train(tiny_lm, out, "--resume", "--epochs", "1") == 1
        assert f"is locked: process {os.getpid()} is training it" in capsys.readouterr().err
    finally:
        os.close(held)
    assert all(p.exists() for p in stale)  # the refused run touched nothing
    assert _train(tiny_lm, out, "--resume", "--epochs", "1") == 0
    assert not any(p.exists() for p in stale)


# ------------------------------------------------------------------- the other commands

@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """A trained run, a reports file and an index built from it."""
    from mets_fast.index import main as index_main

    root = tmp_path_factory.mktemp("served")
    reports = root / "reports.txt"
    reports.write_text("sinus rhythm.\natrial fibrillation.\nsinus bradycardia.\n")
    assert index_main(["build", "--model", str(trained), "--reports", str(reports), "--out",
                       str(root / "index"), "--quiet"]) == 0
    bare = root / "bare-run"
    import shutil

    shutil.copytree(trained, bare)
    (bare / "args.json").unlink()
    classes = root / "classes.json"
    classes.write_text(json.dumps({"AF": None, "SR": ["sinus rhythm"]}))
    a_file = root / "a-file"
    a_file.write_text("")
    return {"run": trained, "reports": reports, "index": root / "index", "bare": bare,
            "classes": classes, "file": a_file}


COMMANDS = [
    # (command, argv ({run}, {index}, {record}, {tmp}, ...), exit code, phrase)
    ("zeroshot", "--model {run} --record {record} --classes a b --classes-file {classes}", 2,
     "argument --classes-file: not allowed with argument --classes"),
    ("zeroshot", "--model {run} --record {record} --classes-file {classes}", 1,
     "--classes-file {classes}: class 'AF' needs a list of descriptions, got None"),
    ("zeroshot", "--model {run} --record {record} --classes a b --split val", 2,
     "--split only go with --data"),
    ("zeroshot", "--model {run} --data synthetic --kind rhythm", 2, "--kind only go with --record"),
    ("zeroshot", "--model {run} --data synthetic --prompts mets", 2,
     "--prompts only go with --benchmark"),
    ("zeroshot", "--model {run} --data synthetic --ptbxl {tmp}", 2,
     "--ptbxl go(es) with --benchmark"),
    ("zeroshot", "--model {run} --benchmark merl", 2, "--benchmark merl needs data"),
    ("zeroshot", "--model {run} --benchmark merl --ptbxl {file}", 2, "is not a directory"),
    ("zeroshot", "--model {run} --data synthetic --out {file}", 2, "--out {file} is a file"),
    ("zeroshot", "--model {bare} --data synthetic", 1,
     "args.json is missing or gives no corpus_size"),
    ("zeroshot", "--model {run} --data synthetic --threads -1", 2,
     "must be a positive integer, got -1"),
    ("zeroshot", "--model {run} --data synthetic --threads 0", 2,
     "must be a positive integer, got 0"),
    ("zeroshot", "--model {run} --data synthetic --seed -3", 2,
     "must be a non-negative integer, got -3"),
    ("linear_probe", "--model {run} --data synthetic --out {file}", 2, "--out {file} is a file"),
    ("linear_probe", "--model {bare} --data synthetic", 1, "gives no corpus_size"),
    ("index", "build --model {run} --reports {reports} --out {run}", 2,
     "holds other files (no index.json)"),
    ("index", "build --model {run} --reports {reports} --out {file}", 2, "is a file"),
    ("embed", "--model {run} --reports {reports} --out {tmp}", 2, "is a directory"),
    ("embed", "--model {run} --reports {reports} --out {tmp}/e.txt", 2, "must name a .npy file"),
    ("embed", "--model {run} --reports {reports} --out {file}/e.npy", 2,
     "lies under {file}, which is a file"),
    ("retrieve", "--model {run} --index {index} --text ", 2, "--text is empty"),
    ("retrieve", "--model {run} --index {index} --text x -k 0", 2, "-k must be a positive"),
    ("retrieve", "--model {run} --index {index} --text x -k 4", 2,
     "-k 4 exceeds the 3 items of the index"),
    ("retrieve", "--model {run} --index {run} --text x", 1, "no index in"),
]


@pytest.mark.parametrize("command,argv,code,phrase", COMMANDS,
                         ids=[f"{c} {a}" for c, a, _, _ in COMMANDS])
def test_command_bad_input(command, argv, code, phrase, served, twelve_lead, tmp_path, capsys):
    from importlib import import_module

    values = {**{k: str(v) for k, v in served.items()}, "record": str(twelve_lead[0]),
              "tmp": str(tmp_path)}
    args = argv.format(**values).split(" ")
    args = [a for a in args if a] + ([""] if argv.endswith("--text ") else [])
    before = sorted(p.name for p in tmp_path.iterdir())
    got = _exit_code(import_module(f"mets_fast.{command}").main, args)
    err = capsys.readouterr().err
    assert got == code, err
    assert phrase.format(**values) in err and "Traceback" not in err
    assert err.count("error:") == 1  # one line (argparse's is after its usage line)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert not list(served["run"].glob(".*tmp-*"))


def test_one_bad_record_does_not_stop_the_others(served, twelve_lead, tmp_path, capfd):
    from mets_fast.retrieve import main as retrieve_main
    from mets_fast.zeroshot import main as zeroshot_main

    good, bad = str(twelve_lead[0]), str(tmp_path / "missing")
    assert zeroshot_main(["--model", str(served["run"]), "--record", good, bad, "--classes",
                          "a", "b", "--json", "--out", str(tmp_path / "z")]) == 1
    printed = capfd.readouterr()
    document = json.loads(printed.out)
    assert [r["record"] for r in document["records"]] == [good]
    assert document["errors"][0]["record"] == bad and "not found" in document["errors"][0]["error"]
    assert f"error: WFDB header not found: {bad}.hea" in printed.err
    assert json.loads((tmp_path / "z" / "zeroshot.json").read_text()) == document
    assert retrieve_main(["--model", str(served["run"]), "--index", str(served["index"]), bad,
                          good, "-k", "2"]) == 1
    printed = capfd.readouterr()
    assert printed.out.startswith(good) and printed.out.count(". ") == 2
    assert "not found" in printed.err


def test_commands_accept_both_spellings_and_info_speaks_plainly(capsys):
    from mets_fast.cli import main as cli_main

    with pytest.raises(SystemExit) as done:
        cli_main(["linear_probe", "--help"])
    assert done.value.code == 0 and "linear_probe" in capsys.readouterr().out
    assert cli_main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    cuda = info["backends"]["cuda"]
    assert cuda.startswith(("CUDA kernels built and in use", "CUDA kernels built, but no usable",
                            "no CUDA kernels in this build"))
    if info["backends"]["cuda_built"] and not info["backends"]["cuda_available"]:
        assert "the CPU kernels run" in cuda
