"""``python -m mets_fast.train``: a short run end to end, bit-for-bit resume, the refusals, the
distributed loss against one process, and a two-process run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import mets_fast
from mets_fast.data import StoreWriter
from mets_fast.data.spec import parse_data
from mets_fast.model import checkpoint
from mets_fast.train import build_parser
from mets_fast.train import main as train_main
from mets_fast.training.trainer import fit, resolve
from mets_fast.training.schedule import learning_rate

SMALL = ["--preset", "smoke", "--corpus-size", "160", "--batch-size", "16", "--quiet"]


def run_args(tiny_lm, out, *extra):
    return SMALL + ["--lm", str(tiny_lm), "--out", str(out), *extra]


def test_a_short_run_writes_a_loadable_run_directory(tiny_lm, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(run_args(tiny_lm, out, "--epochs", "2")) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "args.json", "model.safetensors", "metrics.jsonl", "curves.png",
            "checkpoints"} <= names
    assert [p.name for p in checkpoint.committed_checkpoints(out)] == ["epoch-0002"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m) >= {"epoch", "loss", "logit_scale", "ecgs_per_s", "seconds", "zeroshot"}
        assert np.isfinite(m["loss"]) and m["ecgs_per_s"] > 0
        assert set(m["zeroshot"]) == {"synthetic_rhythm", "synthetic_superclass"}
        for scores in m["zeroshot"].values():
            assert set(scores) == {"accuracy", "precision", "recall", "f1", "auroc", "n"}
            assert 0 <= scores["accuracy"] <= 1 and scores["n"] > 0
    model = mets_fast.load(out)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["text"]["model"] == str(tiny_lm)
    assert config["model"]["text"]["identity"] and config["model"]["embed_dim"] == 128
    assert model.embed_dim == 128 and not model.training
    args = json.loads((out / "args.json").read_text())
    assert args["epochs"] == 2 and args["batch_size"] == 16 and args["preset"] == "smoke"
    assert metrics[0]["retrieval"]["n"] == 16  # the whole val split: 10 % of 160
    assert 0 <= metrics[0]["retrieval"]["recall@10"] <= 1


def test_each_epoch_scores_a_fixed_sample_of_the_validation_split(tiny_lm, tmp_path):
    from mets_fast.data import ECGStore
    from mets_fast.data.cache import prepared_store
    from mets_fast.data.spec import DataSpec
    from mets_fast.evaluation.evaluate import evaluate

    out = tmp_path / "run"
    assert train_main(run_args(tiny_lm, out, "--epochs", "2", "--val-size", "5")) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["retrieval"]["n"] for m in metrics] == [5, 5]
    assert all(s["n"] <= 5 for m in metrics for s in m["zeroshot"].values())
    model = mets_fast.load(out)
    store = ECGStore.open(prepared_store(DataSpec("synthetic", None), n=160, quiet=True))
    first, again = (evaluate(model, store, split="val", sample=5) for _ in range(2))
    assert first.retrieval == again.retrieval and first.retrieval["val"]["n"] == 5


@pytest.mark.parametrize("augment", [[], ["--augment"]], ids=["plain", "augmented"])
def test_resume_continues_bit_for_bit(tiny_lm, tmp_path, augment):
    whole, split = tmp_path / "whole", tmp_path / "split"
    common = ["--epochs", "3", "--threads", "1", "--seed", "4", *augment]
    assert train_main(run_args(tiny_lm, whole, *common)) == 0
    # the same run, stopped after its first epoch (as if killed), then resumed
    args = build_parser().parse_args(run_args(tiny_lm, split, *common))
    fit(resolve(**vars(args)), stop_after=1)
    assert [p.name for p in checkpoint.committed_checkpoints(split)] == ["epoch-0001"]
    # the run's own settings (args.json): --out and --resume are enough
    assert train_main(["--out", str(split), "--resume", "--quiet"]) == 0
    a = mets_fast.load(whole).state_dict()
    b = mets_fast.load(split).state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = (split / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    args = json.loads((split / "args.json").read_text())
    assert (args["aug_noise"] > 0) == bool(augment)


def test_augmentation_changes_what_the_model_learns(tiny_lm, tmp_path):
    common = ["--epochs", "1", "--threads", "1"]
    assert train_main(run_args(tiny_lm, tmp_path / "a", *common)) == 0
    assert train_main(run_args(tiny_lm, tmp_path / "b", *common, "--augment",
                               "--aug-shift", "0")) == 0
    args = json.loads((tmp_path / "b" / "args.json").read_text())
    assert args["aug_shift"] == 0 and args["aug_scale"] == 0.15 and args["aug_leads"] == 0.5
    encoder = json.loads((tmp_path / "b" / "config.json").read_text())["model"]["encoder_config"]
    assert encoder["lead_indicator"]  # trained on lead subsets: told which leads are missing
    assert "lead_indicator" not in json.loads((tmp_path / "a" / "config.json").read_text())[
        "model"]["encoder_config"]
    a = mets_fast.load(tmp_path / "a").state_dict()
    b = mets_fast.load(tmp_path / "b").state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_changed_arguments(tiny_lm, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(run_args(tiny_lm, out, "--epochs", "1")) == 0
    capsys.readouterr()
    assert train_main(run_args(tiny_lm, out, "--epochs", "1")) == 1
    assert "holds a run; pass --resume" in capsys.readouterr().err
    assert train_main(run_args(tiny_lm, out, "--epochs", "2", "--lr", "0.01", "--resume")) == 1
    err = capsys.readouterr().err
    assert "--lr 0.001 -> 0.01" in err and "--epochs" not in err  # a larger --epochs extends
    assert train_main(["--out", str(out), "--resume", "--seed", "9", "--quiet"]) == 1
    assert "--seed 0 -> 9" in capsys.readouterr().err
    assert train_main(run_args(tiny_lm, out, "--epochs", "1", "--resume")) == 0  # finished
    assert train_main(["--resume"]) == 2
    assert "--out" in capsys.readouterr().err


def test_resume_takes_the_runs_own_settings_and_extends_a_finished_run(tiny_lm, tmp_path,
                                                                       capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    common = ["--epochs", "3", "--threads", "1", "--seed", "2", "--augment", "--aug-noise", "0.1"]
    assert train_main(run_args(tiny_lm, whole, *common)) == 0
    # two epochs, finished; then `--out RUN --resume --epochs 3` alone, without the other flags
    assert train_main(run_args(tiny_lm, split, "--epochs", "2", *common[2:])) == 0
    assert train_main(["--out", str(split), "--resume", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "the run now ends after 3 epochs" in out
    args = json.loads((split / "args.json").read_text())
    assert args["epochs"] == 3 and args["aug_noise"] == 0.1 and args["lm"] == str(tiny_lm)
    assert [p.name for p in checkpoint.committed_checkpoints(split)][-1] == "epoch-0003"
    # the schedule is the new total's: the extended run is not the 3-epoch run bit for bit,
    # but it trained the third epoch with the run's own data, seed and augmentations
    metrics = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert train_main(["--out", str(split), "--resume", "--epochs", "2"]) == 1
    assert "has trained 3 epochs already" in capsys.readouterr().err


@pytest.mark.parametrize("data,phrase", [
    ("nonsense", "unknown source"), ("store", "needs a path"), ("synthetic:/x", "takes no path"),
    ("mitbih:/nonexistent/folder", "is not a directory"), ("", "must be one of")])
def test_bad_data_is_refused_before_any_work(data, phrase, tmp_path, capsys):
    assert train_main(["--data", data, "--out", str(tmp_path / "r")]) == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _store(path, reports, splits):
    n = len(reports)
    with StoreWriter(path, n, ["I", "II"], 200, 100.0, "float32") as w:
        w.signals[:] = np.random.default_rng(0).standard_normal((n, 2, 200))
        w.set_meta(pd.DataFrame({
            "id": [f"e{i}" for i in range(n)], "report": reports, "report_clean": reports,
            "split": splits, "source": "mine", "superclass": [[]] * n, "subclass": [[]] * n,
            "form": [[]] * n, "rhythm": [[]] * n}))
    return path


def test_stores_without_reports_or_train_split_are_refused(tiny_lm, tmp_path, capsys):
    no_reports = _store(tmp_path / "a", [""] * 40, ["train"] * 40)
    no_train = _store(tmp_path / "b", ["sinus rhythm."] * 40, ["val"] * 40)
    for store, phrase in ((no_reports, "holds no reports"), (no_train, "no train split")):
        out = tmp_path / f"run-{store.name}"
        code = train_main(["--data", f"store:{store}", "--lm", str(tiny_lm), "--out", str(out),
                           "--batch-size", "8", "--quiet"])
        assert code == 1 and phrase in capsys.readouterr().err
        assert not out.exists()


def test_a_custom_store_trains_and_a_non_finite_loss_stops_the_run(tiny_lm, tmp_path, capsys):
    reports = [["sinus rhythm.", "atrial fibrillation.", "left bundle branch block."][i % 3]
               for i in range(48)]
    store = _store(tmp_path / "s", reports, ["train"] * 40 + ["val"] * 8)
    out = tmp_path / "run"
    common = ["--data", f"store:{store}", "--lm", str(tiny_lm), "--batch-size", "8", "--quiet"]
    assert train_main(common + ["--out", str(out), "--epochs", "1"]) == 0
    model = mets_fast.load(out)
    assert model.settings.leads == ("I", "II") and model.settings.samples == 200
    # an absurd learning rate blows the weights up: the run stops and names the step and ECGs
    bad = tmp_path / "bad"
    assert train_main(common + ["--out", str(bad), "--epochs", "2", "--lr", "1e30",
                                "--schedule", "constant"]) == 1
    err = capsys.readouterr().err
    assert "loss is not finite" in err and "at step" in err and "ECG ids: ['e" in err


def test_distinct_report_negatives_reach_the_loss(tiny_lm, tmp_path):
    """One report for every ECG: with --negatives distinct-reports each pair is alone in its
    softmaxes, so every step's loss is 0; with all negatives it is not."""
    store = _store(tmp_path / "s", ["sinus rhythm."] * 48, ["train"] * 40 + ["val"] * 8)
    common = ["--data", f"store:{store}", "--lm", str(tiny_lm), "--batch-size", "8", "--quiet",
              "--epochs", "1"]
    losses = {}
    for mode in ("all", "distinct-reports"):
        out = tmp_path / mode
        assert train_main(common + ["--out", str(out), "--negatives", mode]) == 0
        assert json.loads((out / "args.json").read_text())["negatives"] == mode
        losses[mode] = json.loads((out / "metrics.jsonl").read_text())["loss"]
    assert abs(losses["distinct-reports"]) < 1e-5 < losses["all"]


def test_runs_from_before_the_negatives_flag_resume_as_all(tiny_lm, tmp_path, capsys):
    out = tmp_path / "run"
    args = build_parser().parse_args(run_args(tiny_lm, out, "--epochs", "2", "--threads", "1"))
    fit(resolve(**vars(args)), stop_after=1)
    saved = json.loads((out / "args.json").read_text())
    del saved["negatives"]
    (out / "args.json").write_text(json.dumps(saved))
    assert train_main(run_args(tiny_lm, out, "--epochs", "2", "--threads", "1",
                               "--negatives", "distinct-reports", "--resume")) == 1
    assert "--negatives 'all' -> 'distinct-reports'" in capsys.readouterr().err
    assert train_main(run_args(tiny_lm, out, "--epochs", "2", "--threads", "1",
                               "--negatives", "all", "--resume")) == 0


def test_learning_rate_schedule():
    total = 100
    rates = [learning_rate(s, total, 1.0, "cosine", 0.1) for s in range(total)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] < 1e-3 and learning_rate(50, total, 0.5, "constant") == 0.5
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, 10, 1.0, "linear")


def test_parse_data():
    assert parse_data("synthetic").kind == "synthetic"
    with pytest.raises(ValueError, match="ptbxl:ROOT"):
        parse_data("ptb")


# ------------------------------------------------------------------------------ distributed

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch, torch.distributed as dist
    from mets_fast.loss import contrastive_loss, distributed_contrastive_loss

    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    B, D = 10, 7
    ecg, text = torch.randn(B, D, dtype=torch.float64), torch.randn(B, D, dtype=torch.float64)
    proj = torch.nn.Linear(D, 5).double()
    scale = torch.tensor(14.0, dtype=torch.float64, requires_grad=True)
    # report ids (global, as the trainer's), or none
    groups = torch.tensor([0, 3, 0, 1, 3, 3, 2, 0, 1, 5]) if sys.argv[2] == "groups" else None
    # one process, the global batch
    loss = contrastive_loss(proj(ecg), proj(text), scale, groups=groups)
    loss.backward()
    single = {"loss": float(loss), "w": proj.weight.grad.clone(), "s": float(scale.grad)}
    proj.zero_grad(); scale.grad = None
    # this process's rows, through DDP
    ddp = torch.nn.parallel.DistributedDataParallel(proj)
    part = slice(rank * B // size, (rank + 1) * B // size)
    x, y = ecg[part].clone().requires_grad_(), text[part].clone().requires_grad_()
    local = distributed_contrastive_loss(ddp(x), ddp(y), scale,
                                         None if groups is None else groups[part])
    local.backward()
    total = torch.tensor([float(local)], dtype=torch.float64)
    dist.all_reduce(total)
    dist.all_reduce(scale.grad)
    if rank == 0:
        out = {"loss": [single["loss"], float(total) / size],
               "w": float((proj.weight.grad - single["w"]).abs().max()),
               "s": [single["s"], float(scale.grad) / size]}
        open(sys.argv[1], "w").write(json.dumps(out))
    dist.destroy_process_group()
""")


def _torchrun(args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("groups", ["none", "groups"])
def test_two_processes_give_the_single_process_loss_and_gradients(tmp_path, groups):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    result = _torchrun([str(script), str(tmp_path / "out.json"), groups], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["loss"][0] == pytest.approx(out["loss"][1], abs=1e-5)
    assert out["w"] < 1e-5
    assert out["s"][0] == pytest.approx(out["s"][1], abs=1e-5)


def test_a_two_process_run_completes_and_writes_one_run(tiny_lm, tmp_path):
    out = tmp_path / "run"
    result = _torchrun(["-m", "mets_fast.train", *run_args(tiny_lm, out, "--threads", "1")],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in checkpoint.committed_checkpoints(out)] == ["epoch-0001"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    mets_fast.load(out)


def test_stacked_signals_read_as_the_concatenated_arrays(tmp_path):
    from mets_fast.data import ECGStore

    rng = np.random.default_rng(0)
    parts, paths = [], []
    for k, n in enumerate((5, 1, 7)):
        x = rng.standard_normal((n, 2, 10)).astype(np.float32)
        path = tmp_path / f"s{k}"
        with StoreWriter(path, n, ["I", "II"], 10, 100.0, "float32") as w:
            w.signals[:] = x
            w.set_meta(pd.DataFrame([{"id": f"{k}-{i}", "report": "r", "report_clean": "r",
                                      "split": "train", "source": f"src{k}", "superclass": [],
                                      "subclass": [], "form": [], "rhythm": []}
                                     for i in range(n)]))
        parts.append(x)
        paths.append(path)
    store = ECGStore.concat([ECGStore.open(p) for p in paths])
    whole = np.concatenate(parts)
    assert len(store) == 13 and store.signals.shape == whole.shape
    for key in (np.array([12, 0, 5, 5, 6]), slice(3, 9), slice(None), np.arange(13)[::-2],
                np.array([], dtype=int)):
        np.testing.assert_array_equal(store.signals[key], whole[key])
    np.testing.assert_array_equal(store.signals[6], whole[6])
    assert store.meta["source"].tolist() == ["src0"] * 5 + ["src1"] + ["src2"] * 7
    with pytest.raises(IndexError):
        store.signals[np.array([13])]
    with StoreWriter(tmp_path / "other", 2, ["I"], 10, 100.0, "float32") as w:
        w.signals[:] = 0
        w.set_meta(pd.DataFrame([{"id": f"o{i}", "report": "r", "report_clean": "r",
                                  "split": "train", "source": "o", "superclass": [],
                                  "subclass": [], "form": [], "rhythm": []} for i in range(2)]))
    with pytest.raises(ValueError, match="hold ECGs of other shapes"):
        ECGStore.concat([ECGStore.open(paths[0]), ECGStore.open(tmp_path / "other")])


def test_several_data_sources_train_together(tiny_lm, tmp_path, capsys, make_ecg,
                                             write_challenge):
    from mets_fast.prepare import main as prepare_main

    for k in range(40):
        x, _ = make_ecg(500, seconds=10, seed=k)
        write_challenge(tmp_path / "tree", f"A{k:04d}", np.stack([x] * 12), 500,
                        [("164889003", "426783006", "427084000")[k % 3]])
    assert prepare_main(["challenge", str(tmp_path / "tree"), "--out", str(tmp_path / "ch"),
                         "--quiet"]) == 0
    out = tmp_path / "run"
    argv = ["--preset", "smoke", "--corpus-size", "160", "--batch-size", "16", "--lm",
            str(tiny_lm), "--out", str(out), "--data", "synthetic", "--data",
            f"store:{tmp_path / 'ch'}"]
    assert train_main(argv) == 0
    printed = capsys.readouterr().out
    assert "training on" in printed and "of 2 sources: synthetic" in printed
    assert "challenge" in printed.split("sources:")[1].splitlines()[0]
    saved = json.loads((out / "args.json").read_text())
    assert saved["data"] == ["synthetic", f"store:{tmp_path / 'ch'}"]
    assert train_main(argv + ["--resume", "--epochs", "1"]) == 0  # the list compares equal
    assert train_main(["--data", "synthetic", "--data", "synthetic@0.5", "--out",
                       str(tmp_path / "r2")]) == 2
    assert "names 'synthetic' twice" in capsys.readouterr().err
    # weighted: the synthetic corpus a quarter of each epoch, the 36 Challenge ECGs the rest
    weighted = argv[:-4] + ["--out", str(tmp_path / "w"), "--data", "synthetic@0.25",
                            "--data", f"store:{tmp_path / 'ch'}"]
    assert train_main(weighted) == 0
    printed = capsys.readouterr().out
    assert "(25 % of each epoch)" in printed and "(75 % of each epoch)" in printed
    assert json.loads((tmp_path / "w" / "args.json").read_text())["data"][0] == "synthetic@0.25"
    assert train_main(weighted[:-4] + ["--data", "synthetic@1.5", "--data",
                                       f"store:{tmp_path / 'ch'}", "--out",
                                       str(tmp_path / "w2")]) == 1
    assert "must sum to less than 1" in capsys.readouterr().err


def test_a_run_says_its_arithmetic_and_records_it(tiny_lm, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METS_FAST_CPU_ISA", "avx2")  # a CPU without bfloat16, on any CPU
    plain = [a for a in SMALL if a != "--quiet"] + ["--lm", str(tiny_lm), "--epochs", "1"]
    assert train_main(plain + ["--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert first.startswith("arithmetic: float32") and "METS_FAST_CPU_ISA=avx2" in first
    assert json.loads((tmp_path / "a" / "args.json").read_text())["amp"] is False
    with pytest.warns(UserWarning, match="bfloat16 autocast, as asked, although"):
        assert train_main(run_args(tiny_lm, tmp_path / "b", "--epochs", "1", "--amp")) == 0
    assert json.loads((tmp_path / "b" / "args.json").read_text())["amp"] is True
