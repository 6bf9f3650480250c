"""Zero-shot classification and the linear probe: the classifier against a hand computation,
the metrics against scikit-learn, the balanced sets, the CLIs on a tiny store and on records
the tests write, and the bad inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mets_fast.data.preprocess import Settings
from mets_fast.evaluation.metrics import classification_metrics
from mets_fast.evaluation.probe import label_subset
from mets_fast.evaluation.tasks import evaluation_sets
from mets_fast.evaluation.zeroshot import TEMPLATES, ZeroShotClassifier
from mets_fast.linear_probe import main as probe_main
from mets_fast.model import METSModel
from mets_fast.train import main as train_main
from mets_fast.zeroshot import main as zeroshot_main


class FakeText:
    """A stand-in language model: a fixed random vector per text (no transformer needed)."""

    dim = 6

    def __init__(self):
        self.seen = []

    def encode(self, texts, template=None):
        self.seen += list(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim)
                         for t in texts]).astype(np.float32)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    settings = Settings(100.0, 2.0, ("I", "II"), False, None, "none", "float32")
    model = METSModel(FakeText.dim, 4, settings, encoder={"widths": (4, 4, 8, 8)}).eval()
    model.use_text_encoder(FakeText())
    return model


def test_classifier_equals_a_hand_computation(tiny_model):
    classes = {"af": ["atrial fibrillation", "irregular rhythm"], "sr": ["sinus rhythm"]}
    clf = ZeroShotClassifier(tiny_model, classes, kind="rhythm")
    template = TEMPLATES["rhythm"]
    assert clf.prompts["af"] == [template.format("atrial fibrillation"),
                                 template.format("irregular rhythm")]
    text = tiny_model._text_encoder
    with torch.no_grad():
        def embed(prompts):
            e = tiny_model.text_projection(torch.from_numpy(text.encode(prompts)))
            return F.normalize(F.normalize(e, dim=-1).mean(0), dim=0)

        class_emb = torch.stack([embed(clf.prompts["af"]), embed(clf.prompts["sr"])])
        ecgs = np.random.default_rng(1).standard_normal((7, 2, 200)).astype(np.float32)
        e = F.normalize(tiny_model.ecg_projection(tiny_model.encoder(torch.from_numpy(ecgs))),
                        dim=-1)
        logits = float(tiny_model.logit_scale) * e @ class_emb.T
    np.testing.assert_allclose(clf.scores(ecgs, batch_size=3), logits.numpy(), atol=1e-5)
    proba = clf.predict_proba(ecgs)
    np.testing.assert_allclose(proba, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert list(clf.predict(ecgs)) == [clf.names[k] for k in logits.argmax(1)]
    labels = list(clf.predict(ecgs))
    assert clf.evaluate(ecgs, labels)["accuracy"] == 1.0


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import (accuracy_score, confusion_matrix,
                                 precision_recall_fscore_support, roc_auc_score)

    rng = np.random.default_rng(0)
    for seed in range(5):
        n, c = 50 + seed * 13, 3 + seed % 3
        labels = np.random.default_rng(seed).integers(0, c, n)
        logits = rng.standard_normal((n, c)) + np.eye(c)[labels] * seed * 0.5
        proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        got = classification_metrics(labels, proba, c)
        p, r, f, _ = precision_recall_fscore_support(labels, proba.argmax(1), average="macro",
                                                     zero_division=0)
        assert got["accuracy"] == pytest.approx(accuracy_score(labels, proba.argmax(1)))
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f))
        assert got["auroc"] == pytest.approx(roc_auc_score(labels, proba, multi_class="ovr"))
        assert got["confusion"] == confusion_matrix(labels, proba.argmax(1),
                                                    labels=range(c)).tolist()
        assert got["n"] == n
    # a class missing from the labels: AUROC over the present ones, no crash
    one = classification_metrics(np.zeros(4, int), np.full((4, 2), 0.5), 2)
    assert np.isnan(one["auroc"]) and one["accuracy"] == 1.0


@pytest.mark.parametrize("classes,error,phrase", [
    ([], ValueError, "empty"), (["a"], ValueError, "at least two"),
    (["a", "a"], ValueError, "given twice"), ("abc", TypeError, "not one string"),
    ({"a": [], "b": ["x"]}, ValueError, "at least one non-empty description"),
    (["a", ""], ValueError, "non-empty strings"), (5, TypeError, "list of names")])
def test_bad_classes(tiny_model, classes, error, phrase):
    with pytest.raises(error, match=phrase):
        ZeroShotClassifier(tiny_model, classes)


def test_bad_kind_templates_and_labels(tiny_model):
    with pytest.raises(ValueError, match="kind"):
        ZeroShotClassifier(tiny_model, ["a", "b"], kind="beat")
    with pytest.raises(ValueError, match="exactly one"):
        ZeroShotClassifier(tiny_model, ["a", "b"], templates=["no field"])
    clf = ZeroShotClassifier(tiny_model, ["a", "b"])
    with pytest.raises(ValueError, match="not classes"):
        clf.evaluate(np.zeros((1, 2, 200), np.float32), ["c"])
    with pytest.raises(ValueError, match=r"\(N, 2, 200\)"):
        clf.scores(np.zeros((1, 3, 200), np.float32))


def test_evaluation_sets_are_balanced_seeded_and_single_label():
    from mets_fast.data import synthetic_corpus

    _, meta = synthetic_corpus(600, seed=3)
    a = evaluation_sets(meta, split="test", per_class=10, seed=1)
    b = evaluation_sets(meta, split="test", per_class=10, seed=1)
    c = evaluation_sets(meta, split="test", per_class=10, seed=2)
    assert set(a) == {"synthetic_rhythm", "synthetic_superclass"}
    for name in a:
        assert np.array_equal(a[name].rows, b[name].rows)
        _, counts = np.unique(a[name].labels, return_counts=True)
        assert counts.max() <= 10
        family = a[name].task.family
        assert all(len(meta[family].iloc[r]) == 1 for r in a[name].rows)
        assert (meta["split"].iloc[a[name].rows] == "test").all()
    assert any(not np.array_equal(a[n].rows, c[n].rows) for n in a)
    with pytest.raises(ValueError, match="unknown task"):
        evaluation_sets(meta, tasks=["nope"])
    with pytest.raises(ValueError, match="label column"):
        evaluation_sets(meta.drop(columns="rhythm"), tasks=["synthetic_rhythm"])


def test_label_subsets_are_stratified_and_seeded():
    labels = np.array([0] * 300 + [1] * 50 + [2] * 3)
    part = label_subset(labels, 0.1, seed=0)
    assert np.bincount(labels[part]).tolist() == [30, 5, 1]
    assert np.array_equal(part, label_subset(labels, 0.1, seed=0))
    assert len(label_subset(labels, 1.0, 0)) == len(labels)
    multi = np.zeros((200, 3), int)
    multi[:100, 0] = 1
    multi[150, 2] = 1
    rows = label_subset(multi, 0.01, seed=0)
    assert multi[rows, 2].sum() == 1 and multi[rows, 0].sum() >= 1


# ------------------------------------------------------------------------------------ CLIs


@pytest.fixture(scope="module")
def trained(tiny_lm, tmp_path_factory):
    """A tiny model trained one short epoch on the synthetic corpus."""
    out = tmp_path_factory.mktemp("zs") / "run"
    assert train_main(["--preset", "smoke", "--corpus-size", "320", "--batch-size", "32",
                       "--lm", str(tiny_lm), "--out", str(out), "--quiet"]) == 0
    return out


def test_zeroshot_cli_on_the_synthetic_data(trained, tmp_path, capsys):
    out = tmp_path / "res"
    assert zeroshot_main(["--model", str(trained), "--data", "synthetic", "--out", str(out),
                          "--per-class", "5"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic_rhythm" in printed and "METS paper" in printed
    result = json.loads((out / "zeroshot.json").read_text())
    for task in ("synthetic_rhythm", "synthetic_superclass"):
        assert set(result[task]) >= {"accuracy", "precision", "recall", "f1", "auroc", "n",
                                     "confusion", "classes"}
        assert (out / f"confusion_{task}.png").stat().st_size > 1000
        assert sum(map(sum, result[task]["confusion"])) == result[task]["n"]


def test_zeroshot_cli_on_records_any_rate_and_leads(trained, tmp_path, make_ecg, write_record,
                                                    capfd):
    x, _ = make_ecg(250, seconds=25, seed=2)
    long_record = write_record(tmp_path, "long", np.stack([x, 0.5 * x, -x]), 250,
                               ["II", "V1", "aVR"])
    short = write_record(tmp_path, "short", np.stack([x[:1000]]), 250, ["I"])
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"af": ["atrial fibrillation"], "sr": ["sinus rhythm"],
                                   "brady": ["sinus bradycardia", "slow heart rate"]}))
    args = ["--model", str(trained), "--record", str(long_record), str(short),
            "--classes-file", str(classes), "--kind", "rhythm", "--json"]
    with pytest.warns(UserWarning, match="lacks the lead"):
        assert zeroshot_main(args) == 0
    captured = capfd.readouterr()
    result = json.loads(captured.out)  # standard output holds the JSON document alone
    assert [r["windows"] for r in result["records"]] == [2, 1]
    for r in result["records"]:
        assert sum(item["probability"] for item in r["ranked"]) == pytest.approx(1.0)
        assert sorted(item["class"] for item in r["ranked"]) == ["af", "brady", "sr"]
    assert zeroshot_main(["--model", str(trained), "--record", str(short), "--classes",
                          "atrial fibrillation", "sinus rhythm"]) == 0
    assert "atrial fibrillation" in capfd.readouterr().out
    alien = write_record(tmp_path, "alien", np.stack([x]), 250, ["X9"])
    assert zeroshot_main(["--model", str(trained), "--record", str(alien), "--classes", "a",
                          "b"]) == 1
    assert "share none with the model" in capfd.readouterr().err


@pytest.mark.parametrize("args,code,phrase", [
    (["--data", "synthetic", "--classes", "a", "b"], 2, "go with --record"),
    (["--record", "x"], 2, "needs the classes"),
    (["--data", "nowhere"], 2, "unknown source"),
    (["--data", "synthetic", "--per-class", "0"], 2, "positive"),
    (["--data", "synthetic", "--split", "all"], 2, "--split all is for mitbih"),
])
def test_zeroshot_cli_refusals(trained, args, code, phrase, capsys):
    assert zeroshot_main(["--model", str(trained), *args]) == code
    assert phrase in capsys.readouterr().err


def test_zeroshot_cli_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert zeroshot_main(["--model", str(tmp_path), "--data", "synthetic"]) == 1
    assert "not a mets_fast run directory" in capsys.readouterr().err


def test_zeroshot_and_probe_on_mitbih_records(trained, tmp_path, mitbih_writer, capsys):
    """The beat task from MIT-BIH-format records (a 12-lead model, records with II and V1),
    a record sharing no lead skipped with a warning."""
    root = tmp_path / "mit"
    for k, name in enumerate(("900", "901", "902", "903")):
        mitbih_writer(root, name, seed=k, seconds=60)
    from mets_fast.data.records import read_record
    import wfdb

    rec = read_record(root / "903")
    wfdb.wrsamp("904", fs=360, units=["mV"], sig_name=["X1"], fmt=["16"],
                p_signal=rec.signal[:1].T.astype(np.float64), adc_gain=[1000.0], baseline=[0],
                write_dir=str(root))
    (root / "904.atr").write_bytes((root / "903.atr").read_bytes())
    with pytest.warns(UserWarning, match="sharing no lead.*904"):
        assert zeroshot_main(["--model", str(trained), "--data", f"mitbih:{root}", "--out",
                              str(tmp_path / "z")]) == 0
    result = json.loads((tmp_path / "z" / "zeroshot.json").read_text())["mitbih"]
    counts = np.asarray(result["confusion"]).sum(1)
    assert result["classes"][:3] == ["normal beat", "left bundle branch block beat",
                                     "right bundle branch block beat"]
    # L up to 100, R and A absent, the 8 PVCs of the 4 readable records; every N beat that
    # lies a half window from the edges (fewer than 100)
    assert counts[1] == 100 and counts[2] == counts[3] == 0 and counts[4] == 8
    assert 40 < counts[0] < 100
    assert probe_main(["--model", str(trained), "--data", f"mitbih:{root}", "--out",
                       str(tmp_path / "p")]) == 0
    probe = json.loads((tmp_path / "p" / "linear_probe.json").read_text())
    assert set(probe["mitbih"]) == {"pretrained", "random", "classes", "multilabel"}
    assert set(probe["mitbih"]["pretrained"]) == {"1%", "10%", "100%"}


def test_linear_probe_cli_on_the_synthetic_data(trained, tmp_path, capsys):
    assert probe_main(["--model", str(trained), "--data", "synthetic", "--out",
                       str(tmp_path / "p"), "--quiet"]) == 0
    result = json.loads((tmp_path / "p" / "linear_probe.json").read_text())
    assert set(result) == {"synthetic_rhythm", "synthetic_superclass"}
    assert not result["synthetic_rhythm"]["multilabel"]
    assert result["synthetic_superclass"]["multilabel"]
    for task in result.values():
        for encoder in ("pretrained", "random"):
            for fraction in ("1%", "10%", "100%"):
                scores = task[encoder][fraction]
                assert 0 <= scores["auroc"] <= 1
    assert "random" in capsys.readouterr().out


def test_python_dash_m_mets_fast_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "mets_fast", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0
    for command in ("prepare", "train", "zeroshot", "linear-probe"):
        assert command in result.stdout


def test_reduced_leads_are_the_zeros_preprocess_gives_a_recording_without_them(make_ecg):
    import warnings

    from mets_fast.data.preprocess import DEFAULT_SETTINGS, prepare_recording
    from mets_fast.evaluation.datasets import with_leads

    x, _ = make_ecg(500, seconds=10, seed=4)
    twelve = np.stack([x * (1 + 0.1 * k) + 0.01 * k for k in range(12)])
    stored = prepare_recording(twelve, 500, DEFAULT_SETTINGS.leads, DEFAULT_SETTINGS)[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = prepare_recording(twelve[[0, 1, 7]], 500, ["I", "II", "V2"], DEFAULT_SETTINGS)
    subset = with_leads(stored, DEFAULT_SETTINGS, ["i", "II", "V2"])
    np.testing.assert_array_equal(subset[0:1][0], alone)
    assert subset.shape == stored.shape and np.all(subset[[0]][0, 2] == 0)
    assert with_leads(stored, DEFAULT_SETTINGS, None) is stored
    with pytest.raises(ValueError, match=r"\['X'\] are not among the model's leads"):
        with_leads(stored, DEFAULT_SETTINGS, ["I", "X"])
    with pytest.raises(ValueError, match="normalised one by one"):
        with_leads(stored, DEFAULT_SETTINGS._replace(normalize="record"), ["I"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_one_to_twelve_leads_score_as_the_stored_ecg_with_only_those(make_ecg, seed):
    """The inference path (model.preprocess of a recording with some leads, in any order and
    spelling, then the classifier) gives what the evaluation scores for the same leads of a
    stored 12-lead ECG, for every count from 1 to 12, on a model told which leads are missing
    (trained with lead subsets)."""
    import warnings

    from mets_fast.data.preprocess import DEFAULT_SETTINGS
    from mets_fast.evaluation.datasets import with_leads

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = METSModel(FakeText.dim, 4, DEFAULT_SETTINGS,
                      encoder={"widths": (4, 4, 8, 8), "lead_indicator": True}).eval()
    model.use_text_encoder(FakeText())
    classifier = ZeroShotClassifier(model, ["sinus rhythm", "atrial fibrillation"],
                                    kind="rhythm")
    x, _ = make_ecg(360, seconds=12, seed=seed)
    names = list(DEFAULT_SETTINGS.leads)
    twelve = np.stack([np.roll(x, 7 * k) * (0.5 + 0.1 * k) for k in range(12)])
    stored = model.preprocess(twelve, 360, names)[None]
    full = classifier.predict_proba(stored)
    seen = []
    for count in range(1, 13):
        pick = rng.permutation(12)[:count]
        spelt = [names[k].lower() if rng.random() < 0.5 else names[k] for k in pick]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the missing leads are named in a warning
            alone = model.preprocess(twelve[pick], 360, spelt)
        subset = with_leads(stored, DEFAULT_SETTINGS, [names[k] for k in pick])
        np.testing.assert_array_equal(alone, subset[[0]][0])
        proba = classifier.predict_proba(alone[None])
        np.testing.assert_allclose(proba, classifier.predict_proba(subset), atol=1e-6)
        assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-5)
        seen.append(proba)
    np.testing.assert_allclose(seen[-1], full, atol=1e-6)
    assert not np.allclose(seen[0], full)  # one lead is not twelve to the encoder


def test_zeroshot_and_probe_with_reduced_leads(trained, capsys, tmp_path):
    from mets_fast.linear_probe import main as probe_main

    assert zeroshot_main(["--model", str(trained), "--data", "synthetic", "--json",
                          "--quiet"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert zeroshot_main(["--model", str(trained), "--data", "synthetic", "--leads", "I",
                          "--json", "--quiet"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert set(one) == set(full) and one != full
    assert probe_main(["--model", str(trained), "--data", "synthetic", "--leads", "I,II",
                       "--quiet"]) == 0
    assert "pretrained" in capsys.readouterr().out
    assert zeroshot_main(["--model", str(trained), "--record", "x", "--classes", "a", "b",
                          "--leads", "I"]) == 2
    assert "--leads goes with --data or --benchmark" in capsys.readouterr().err
    assert zeroshot_main(["--model", str(trained), "--data", "synthetic", "--leads",
                          "I,,II"]) == 2
    assert "--leads must be comma-separated" in capsys.readouterr().err
