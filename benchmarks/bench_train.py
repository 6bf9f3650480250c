"""Training step of ``python -m mets_fast.train`` against the two baselines of the trainer issue.

At batch 32 and 256 on the CPU, side by side in one process (interleaved repeats, medians):

- **ours**: the trainer's own step (``gather`` + ``report_embeddings`` + ``train_step``): a
  batch read from the memory-mapped store (float16 to float32), its reports' embeddings looked
  up in the table the trainer computes once, ResNet1d-18 + projections, the fused loss,
  backward, Adam, clamp;
- **naive**: the METS loop as peer code writes it: the same encoder and precision, but the
  frozen language model runs on the batch's reports at every step (tokenised, padded to 256
  tokens) and the loss is the eager PyTorch one;
- **bare**: forward, backward and Adam step of the ECG encoder alone on a batch already in
  memory (the floor: everything else ours does must cost under 15 % on top).

Each in float32 and with bfloat16 autocast (``--amp``).  The full run then trains the default
preset twice, with ``--amp`` and ``--no-amp``, and reports the ECGs/s and the zero-shot scores
of each (``--quick`` leaves those out and measures batch 32 only).

``--loader`` measures the batch loader instead (issue 21), on a store of 20,000 ECGs (12 leads,
10 s at 100 Hz, float16) in the page cache: the ECGs/s of the loader alone (no model; target
>= 20,000 on 2 cores) beside the plain gather it replaced and beside the loader applying
``--preset real``'s augmentations (issue 22), and a run of training steps fed by each of the
first two, interleaved (target: the loader's steps are not slower).

    python benchmarks/bench_train.py [--quick] [--loader]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_times, table, write_results  # noqa: E402

from mets_fast.data import ECGStore  # noqa: E402
from mets_fast.data.cache import prepared_store  # noqa: E402
from mets_fast.data.spec import DataSpec  # noqa: E402
from mets_fast.data.preprocess import store_settings  # noqa: E402
from mets_fast.loss import reference_contrastive_loss  # noqa: E402
from mets_fast.model import METSModel  # noqa: E402
from mets_fast.text import FrozenTextEncoder, pool  # noqa: E402
from mets_fast.training.augment import RECIPE, augment  # noqa: E402
from mets_fast.training.loader import BatchLoader, gather  # noqa: E402
from mets_fast.training.trainer import report_embeddings, train_step  # noqa: E402


class Setup:
    """The store, the report table and one model + optimizer per contender."""

    def __init__(self, cache: Path):
        self.store = ECGStore.open(prepared_store(DataSpec("synthetic", None), n=2000,
                                                  cache_dir=cache, quiet=True))
        reports = self.store.meta["report_clean"].to_numpy()
        self.reports = reports
        unique, self.index = np.unique(reports, return_inverse=True)
        self.lm = FrozenTextEncoder(cache_dir=cache / "text")
        self.table = torch.from_numpy(self.lm.encode(list(unique)))
        self.rng = np.random.default_rng(0)

    def model(self):
        torch.manual_seed(0)
        model = METSModel(self.lm.dim, 128, store_settings(self.store)).train()
        return model, torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-3)

    def ids(self, batch: int) -> np.ndarray:
        return np.sort(self.rng.choice(len(self.store), size=batch, replace=False))


def contenders(setup: Setup, batch: int, amp: bool) -> dict:
    ours, ours_opt = setup.model()
    naive, naive_opt = setup.model()
    bare, bare_opt = setup.model()
    tokenizer, lm = setup.lm.tokenizer, setup.lm.model
    fixed_x = torch.from_numpy(setup.store.signals[setup.ids(batch)].astype(np.float32))

    def run_ours():
        ids = setup.ids(batch)
        x = gather(setup.store.signals, ids)
        train_step(ours, ours, ours_opt, x, report_embeddings(setup.table, setup.index, ids),
                   amp)

    def run_naive():
        ids = setup.ids(batch)
        x = torch.from_numpy(setup.store.signals[ids].astype(np.float32))
        texts = [setup.lm.template.format(r) for r in setup.reports[ids]]
        tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=256,
                           return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                hidden = lm(**tokens).last_hidden_state
            text = pool(hidden.float(), tokens["attention_mask"], "mean")
            e = naive.ecg_projection(naive.encoder(x)).float()
            t = naive.text_projection(text).float()
        loss = reference_contrastive_loss(e, t, naive.logit_scale)
        naive_opt.zero_grad(set_to_none=True)
        loss.backward()
        naive_opt.step()
        naive.loss.clamp_()

    def run_bare():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            features = bare.encoder(fixed_x)
        loss = features.float().square().mean()
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()

    return {"ours": run_ours, "naive": run_naive, "bare": run_bare}


def step_speed(setup: Setup, batches, repeats: dict) -> list:
    rows = []
    for amp in (False, True):
        for batch in batches:
            t = median_times(contenders(setup, batch, amp), repeats[batch])
            row = {"batch": batch, "amp": amp, **t,
                   "steps_per_s": {k: 1.0 / v["wall_s"] for k, v in t.items()},
                   "vs_naive": t["naive"]["cpu_s"] / t["ours"]["cpu_s"],
                   "over_bare": t["ours"]["cpu_s"] / t["bare"]["cpu_s"]}
            rows.append(row)
            print(f"  B={batch} amp={amp}: ours {t['ours']['wall_s'] * 1e3:.0f} ms, naive "
                  f"{t['naive']['wall_s'] * 1e3:.0f} ms, bare {t['bare']['wall_s'] * 1e3:.0f} ms",
                  flush=True)
    return rows


def default_runs(cache: Path) -> list:
    """The default preset trained twice, with and without bfloat16 autocast."""
    rows = []
    for flag in ("--amp", "--no-amp"):
        out = Path(tempfile.mkdtemp(prefix="bench_train-run-")) / "run"
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mets_fast.train", flag, "--quiet", "--out",
                        str(out)], check=True, env={**os.environ, "METS_FAST_CACHE": str(cache)})
        seconds = time.perf_counter() - began
        metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        last = metrics[-1]
        rows.append({"amp": flag == "--amp", "wall_s": seconds, "epochs": last["epoch"],
                     "ecgs_per_s": float(np.median([m["ecgs_per_s"] for m in metrics])),
                     "final_loss": last["loss"], "zeroshot": last["zeroshot"]})
        print(f"  default run {flag}: {seconds:.0f} s, {rows[-1]['ecgs_per_s']:.0f} ECG/s",
              flush=True)
    return rows


def loader_store(folder: Path, n: int) -> ECGStore:
    """A store of `n` ECGs of random float16 values (what the loader reads does not matter),
    read once so that it sits in the page cache."""
    from mets_fast.data.preprocess import DEFAULT_SETTINGS
    from mets_fast.data.store import StoreWriter, store_row

    s = DEFAULT_SETTINGS
    rng = np.random.default_rng(0)
    with StoreWriter(folder, n, s.leads, s.samples, s.fs, preprocessing=s.as_dict()) as writer:
        for a in range(0, n, 1000):
            b = min(n, a + 1000)
            writer.signals[a:b] = rng.standard_normal((b - a, len(s.leads), s.samples))
        writer.set_meta(pd.DataFrame([store_row(f"e{k}", f"report {k % 50}", "train", "bench")
                                      for k in range(n)]))
    store = ECGStore.open(folder)
    np.asarray(store.signals).sum(dtype=np.float64)
    return store


def epoch_batches(n: int, batch: int, seed: int) -> list:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[b * batch:(b + 1) * batch]) for b in range(n // batch)]


def bench_loader(quick: bool) -> dict:
    n, batch = (5000, 256) if quick else (20000, 256)
    folder = Path(tempfile.mkdtemp(prefix="bench_loader-"))
    store = loader_store(folder / "store", n)
    signals, cpu = store.signals, torch.device("cpu")
    epochs = iter(range(10**6))

    def plain():  # the trainer's gather before the loader: in the loop, before each step
        for ids in epoch_batches(n, batch, next(epochs)):
            torch.from_numpy(signals[ids].astype(np.float32)).to(cpu)

    def loader():
        with BatchLoader(signals, epoch_batches(n, batch, next(epochs)), cpu) as batches:
            for _ in batches:
                pass

    fs = store_settings(store).fs

    def augmented():  # the loader with --preset real's augmentations, seeded as the trainer
        def transform(k, ids, x):
            return augment(x, None, fs, RECIPE, np.random.default_rng([0, 1, k, 0]))

        with BatchLoader(signals, epoch_batches(n, batch, next(epochs)), cpu,
                         transform) as batches:
            for _ in batches:
                pass

    alone = median_times({"plain gather": plain, "loader": loader,
                          "loader + augmentation": augmented}, 3 if quick else 5)
    rates = {k: n // batch * batch / v["wall_s"] for k, v in alone.items()}
    for k, v in rates.items():
        print(f"  {k}: {v:,.0f} ECGs/s", flush=True)

    steps, step_batch = (4, 32) if quick else (12, 64)
    torch.manual_seed(0)
    table = torch.randn(50, 384)
    index = np.arange(n) % 50
    models = {}
    for name in ("plain gather", "loader"):
        torch.manual_seed(0)
        model = METSModel(384, 128, store_settings(store)).train()
        models[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-4))

    def run_plain():
        model, opt = models["plain gather"]
        for ids in epoch_batches(n, step_batch, next(epochs))[:steps]:
            x = torch.from_numpy(signals[ids].astype(np.float32)).to(cpu)
            train_step(model, model, opt, x, report_embeddings(table, index, ids), False)

    def run_loader():
        model, opt = models["loader"]
        with BatchLoader(signals, epoch_batches(n, step_batch, next(epochs))[:steps],
                         cpu) as batches:
            for ids, x in batches:
                train_step(model, model, opt, x, report_embeddings(table, index, ids), False)

    fed = median_times({"plain gather": run_plain, "loader": run_loader}, 3)
    for k, v in fed.items():
        print(f"  {steps} training steps of {step_batch} fed by the {k}: {v['wall_s']:.2f} s",
              flush=True)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return {"ecgs": n, "batch": batch, "alone": alone, "ecgs_per_s": rates,
            "steps": steps, "step_batch": step_batch, "fed": fed,
            "threads": torch.get_num_threads()}


def report_loader(r: dict) -> None:
    rate = r["ecgs_per_s"]["loader"]
    ratio = r["fed"]["loader"]["wall_s"] / r["fed"]["plain gather"]["wall_s"]
    print(f"\n## Loader: {r['ecgs']} ECGs (12 leads, 1000 samples, float16) in the page cache, "
          f"batch {r['batch']}, {r['threads']} threads\n")
    print(table(["feeding", "ECGs/s alone", f"{r['steps']} steps of {r['step_batch']} (s)"],
                [[k, round(r["ecgs_per_s"][k]), r["fed"][k]["wall_s"] if k in r["fed"] else "-"]
                 for k in r["ecgs_per_s"]]))
    print(f"\n- loader alone: {rate:,.0f} ECGs/s (target >= 20,000) -> "
          f"{'met' if rate >= 20000 else 'NOT met'}")
    print(f"- with --preset real's augmentations (all six, in the loader's thread): "
          f"{r['ecgs_per_s']['loader + augmentation']:,.0f} ECGs/s")
    print(f"- training steps fed by the loader take {ratio:.3f}x the time of the plain gather "
          f"(target <= 1, within the 3 % the interleaved medians vary by) -> "
          f"{'met' if ratio <= 1.03 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 32 only, no default runs")
    parser.add_argument("--loader", action="store_true",
                        help="the batch loader alone and feeding steps, nothing else")
    args = parser.parse_args()
    if args.loader:
        result = bench_loader(args.quick)
        report_loader(result)
        path = write_results("bench_train_loader", result, args.quick)
        print(f"\nwritten to {path}")
        return
    cache = Path(os.environ.get("METS_FAST_CACHE") or tempfile.mkdtemp(prefix="bench_train-"))
    setup = Setup(cache)
    batches = (32,) if args.quick else (32, 256)
    repeats = {32: 3, 256: 3} if args.quick else {32: 9, 256: 3}
    print(f"training steps, {torch.get_num_threads()} threads:")
    steps = step_speed(setup, batches, repeats)
    runs = [] if args.quick else default_runs(cache)
    print()
    print(table(["batch", "amp", "ours steps/s", "naive steps/s", "bare steps/s",
                 "ours vs naive", "ours / bare"],
                [[r["batch"], r["amp"], r["steps_per_s"]["ours"], r["steps_per_s"]["naive"],
                  r["steps_per_s"]["bare"], r["vs_naive"], r["over_bare"]] for r in steps]))
    if runs:
        print()
        print(table(["default run", "wall s", "ECG/s", "final loss", "rhythm acc", "rhythm F1",
                     "superclass acc", "superclass F1"],
                    [["--amp" if r["amp"] else "--no-amp", r["wall_s"], r["ecgs_per_s"],
                      r["final_loss"], r["zeroshot"]["synthetic_rhythm"]["accuracy"],
                      r["zeroshot"]["synthetic_rhythm"]["f1"],
                      r["zeroshot"]["synthetic_superclass"]["accuracy"],
                      r["zeroshot"]["synthetic_superclass"]["f1"]] for r in runs]))
    path = write_results("bench_train", {"threads": torch.get_num_threads(), "steps": steps,
                                         "default_runs": runs}, args.quick)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
