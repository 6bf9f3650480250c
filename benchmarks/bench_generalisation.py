"""What each part of the real-data recipe carries: ``--preset real`` on the synthetic corpus,
the PTB-XL subset and MIT-BIH DS1, then the same with each augmentation switched off in turn
and with the synthetic corpus left out, three seeds each, scored on data none of them trained
on (:mod:`mets_fast.evaluation.generalisation`): the CinC 2021 sample zero-shot with 12 leads
and with lead I alone, MERL's PTB-XL rhythm and superclass test sets, MIT-BIH's held-out
patients.

    python benchmarks/bench_generalisation.py            # the full ablation (8 x 3 runs)
    python benchmarks/bench_generalisation.py --quick    # the machinery in under 2 minutes

Prints a markdown table of means (standard deviations) over the seeds and writes it with a
PNG and the JSON of every run to ``benchmarks/results/``.  Runs already complete in ``--out``
are read, not repeated, so an interrupted ablation resumes.  ``--quick`` trains one seed of
the recipe and of the recipe without augmentation for one short epoch on a small synthetic
corpus and PTB-XL (no MIT-BIH in training): its figures say the code runs, not how well.
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

AUGMENTATIONS = {"gain": "scale", "noise": "noise", "power line": "powerline",
                 "baseline wander": "wander", "time shift": "shift", "lead subsets": "leads"}


def variants(quick: bool) -> dict:
    """name -> (extra train flags, whether the synthetic corpus is in)."""
    if quick:
        off = [a for flag in AUGMENTATIONS.values() for a in (f"--aug-{flag}", "0")]
        return {"recipe": ([], True), "no augmentation": (off, True)}
    out = {"recipe": ([], True)}
    for name, flag in AUGMENTATIONS.items():
        out[f"no {name}"] = ([f"--aug-{flag}", "0"], True)
    out["no synthetic"] = ([], False)
    return out


def train(flags: list, out: Path) -> float:
    """One training run into `out` (read where it finished before); its training seconds."""
    metrics = out / "metrics.jsonl"
    config = out / "config.json"
    if not (config.exists() and (out / "model.safetensors").exists()):
        if out.exists() and not any((out / "checkpoints").glob("epoch-*")):
            shutil.rmtree(out)  # stopped before its first checkpoint: start again
        subprocess.run([sys.executable, "-m", "mets_fast.train", *flags, "--out", str(out),
                        "--quiet"] + (["--resume"] if out.exists() else []), check=True)
    return sum(json.loads(line)["seconds"] for line in metrics.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/generalisation"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import mets_fast
    from mets_fast.evaluation.generalisation import FIGURES, generalisation

    roots = {k: shared_data(k) for k in ("ptbxl-subset", "mitdb-ds1", "cinc2021-sample")}
    missing = [k for k, v in roots.items() if v is None]
    if missing:
        sys.exit(f"the shared data lack {missing}: nothing to measure generalisation on")
    seeds = args.seeds[:1] if args.quick else args.seeds
    out = args.out / ("quick" if args.quick else "full")
    real = [f"ptbxl:{roots['ptbxl-subset']}"] + ([] if args.quick else
                                                  [f"mitbih:{roots['mitdb-ds1']}"])
    base = ["--preset", "real"] + (["--epochs", "1", "--corpus-size", "1000"] if args.quick
                                   else [])
    began = time.perf_counter()
    runs = {}
    for name, (extra, synthetic) in variants(args.quick).items():
        data = (["synthetic"] if synthetic else []) + real
        for seed in seeds:
            where = out / f"{name.replace(' ', '-')}-seed{seed}"
            flags = base + [a for d in data for a in ("--data", d)] + extra + ["--seed", str(seed)]
            seconds = train(flags, where)
            scores = generalisation(mets_fast.load(where), cinc=roots["cinc2021-sample"],
                                    ptbxl=roots["ptbxl-subset"], mitbih=roots["mitdb-ds1"])
            runs[f"{name} seed {seed}"] = {"variant": name, "seed": seed, "train_s": seconds,
                                           **scores}
            print(f"  {name}, seed {seed}: {seconds:.0f} s; "
                  + ", ".join(f"{k} {scores[k]:.3f}" for k in FIGURES), flush=True)
    wall = time.perf_counter() - began

    summary = {}
    for name in variants(args.quick):
        mine = [r for r in runs.values() if r["variant"] == name]
        summary[name] = {k: (float(np.mean([r[k] for r in mine])),
                             float(np.std([r[k] for r in mine]))) for k in FIGURES}
        summary[name]["train_s"] = float(np.mean([r["train_s"] for r in mine]))
    headers = ["variant"] + [FIGURES[k][0] for k in FIGURES] + ["train (min)"]
    rows = [[name] + [f"{s[k][0]:.3f} ({s[k][1]:.3f})" for k in FIGURES]
            + [f"{s['train_s'] / 60:.1f}"] for name, s in summary.items()]
    targets = ["target (issue 22)"] + [f">= {t:.2f}" if t else "within 0.05 of 12-lead"
                                       for _, t in FIGURES.values()] + [""]
    markdown = table(headers, rows + [targets])
    title = (f"Generalisation ablation: mean (standard deviation) over seeds {seeds}"
             + (" (--quick: one short epoch, figures meaningless)" if args.quick else ""))
    print(f"\n## {title}\n\n{markdown}\n")
    print(f"{len(runs)} runs, this invocation {wall / 60:.1f} min (runs found done are read)")
    path = write_results("bench_generalisation", {"seeds": seeds, "runs": runs,
                                                   "summary": summary, "wall_s": wall},
                         quick=args.quick)  # a quick run's files go to a temporary folder
    path.with_suffix(".md").write_text(f"## {title}\n\n{markdown}\n")
    _plot(summary, FIGURES, path.with_suffix(".png"), title)
    print(f"results written to {path} (table .md and chart .png beside it)")


def _plot(summary: dict, figures: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        means = [summary[name][f][0] for f in figures]
        stds = [summary[name][f][1] for f in figures]
        ax.bar(np.arange(len(figures)) + (k - (len(names) - 1) / 2) * width, means, width,
               yerr=stds, capsize=2, label=name)
    ax.set_xticks(np.arange(len(figures)), [t for t, _ in figures.values()], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="lower center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
