"""What report-aware negatives buy: ``--negatives all`` against ``--negatives distinct-reports``.

The same runs in both modes, nothing else changed: three seeds of the default synthetic run and
of the MIT-BIH DS1 run (the trainer's split: validation records held out), with ``--epochs`` cut
so that the twelve runs fit in an hour on a 2-core CPU (8 epochs: 5.3 min a synthetic run,
3 min a MIT-BIH one).  Reports, per run and per mode (mean and
standard deviation over the seeds), the last epoch's zero-shot accuracy and macro-F1 on the
validation split and the final training loss.  The losses of the two modes are not comparable
(leaving pairs out of the softmaxes lowers the loss by itself); the zero-shot scores are.

    python benchmarks/bench_negatives.py [--epochs 8] [--seeds 0 1 2] [--out runs/negatives]

Runs already complete in ``--out`` are read, not repeated, so an interrupted ablation resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import shared_data, table, write_results  # noqa: E402

MODES = ("all", "distinct-reports")


def run(data: str, mode: str, seed: int, epochs: int, out: Path) -> dict:
    """One training run (skipped when `out` already holds all its epochs); its last epoch."""
    metrics = out / "metrics.jsonl"
    if not (metrics.exists() and len(metrics.read_text().splitlines()) == epochs):
        began = time.perf_counter()
        if out.exists() and not any((out / "checkpoints").glob("epoch-*")):
            shutil.rmtree(out)  # stopped before its first checkpoint: start again
        subprocess.run([sys.executable, "-m", "mets_fast.train", "--data", data,
                        "--negatives", mode, "--seed", str(seed), "--epochs", str(epochs),
                        "--out", str(out), "--quiet"] + (["--resume"] if out.exists() else []),
                       check=True)
        print(f"  {out.name}: {time.perf_counter() - began:.0f} s", flush=True)
    lines = metrics.read_text().splitlines()
    last = json.loads(lines[-1])
    return {"loss": last["loss"], "seconds": sum(json.loads(line)["seconds"] for line in lines),
            "zeroshot": {task: {"accuracy": s["accuracy"], "f1": s["f1"]}
                         for task, s in last["zeroshot"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/negatives"))
    args = parser.parse_args()

    datasets = {"synthetic": ("synthetic", args.seeds)}
    mitdb = shared_data("mitdb-ds1")
    if mitdb is not None:
        datasets["mitbih"] = (f"mitbih:{mitdb}", args.seeds)
    else:
        print("no MIT-BIH DS1 records in the shared data: the synthetic runs only")

    began = time.perf_counter()
    results = {}
    for name, (data, seeds) in datasets.items():
        for mode in MODES:
            for seed in seeds:
                key = f"{name}-{mode}-seed{seed}"
                results[key] = {"data": name, "mode": mode, "seed": seed,
                                **run(data, mode, seed, args.epochs, args.out / key)}
    wall = time.perf_counter() - began
    trained = sum(r["seconds"] for r in results.values())

    tasks = sorted({t for r in results.values() for t in r["zeroshot"]})
    rows = []
    for r in results.values():
        scores = [r["zeroshot"].get(t, {}) for t in tasks]
        rows.append([r["data"], r["mode"], r["seed"], r["loss"]]
                    + [v for s in scores for v in (s.get("accuracy", "-"), s.get("f1", "-"))])
    headers = ["data", "negatives", "seed", "final loss"] + [
        f"{t} {k}" for t in tasks for k in ("acc", "F1")]
    print(f"\n## Every run ({args.epochs} epochs; zero-shot on the validation split)\n")
    print(table(headers, rows))

    summary = {}
    for name in datasets:
        for mode in MODES:
            runs = [r for r in results.values() if r["data"] == name and r["mode"] == mode]
            entry = {}
            for t in tasks:
                for k in ("accuracy", "f1"):
                    values = [r["zeroshot"][t][k] for r in runs if t in r["zeroshot"]]
                    if values:
                        entry[f"{t} {k}"] = (float(np.mean(values)), float(np.std(values)))
            entry["final loss"] = (float(np.mean([r["loss"] for r in runs])),
                                   float(np.std([r["loss"] for r in runs])))
            summary[f"{name} {mode}"] = {"n": len(runs), **entry}
    print("\n## Mean (standard deviation) over the seeds\n")
    columns = sorted({k for s in summary.values() for k in s if k != "n"})
    print(table(["data, negatives", "runs"] + columns,
                [[k, s["n"]] + [f"{s[c][0]:.3f} ({s[c][1]:.3f})" if c in s else "-"
                                for c in columns] for k, s in summary.items()]))
    print(f"\nablation: {trained / 60:.1f} min of training and per-epoch scoring over all "
          f"runs; this invocation {wall / 60:.1f} min (runs found done are read, not rerun)")
    path = write_results("bench_negatives", {"epochs": args.epochs, "runs": results,
                                             "summary": summary, "wall_s": wall}, quick=False)
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
