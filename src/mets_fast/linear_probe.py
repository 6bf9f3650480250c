"""``python -m mets_fast.linear_probe``: how good a trained encoder's features are with few
labels, the other protocol of METS and MERL, always beside the same probe on a randomly
initialised encoder of the same architecture (which a recent study finds close to pre-trained
encoders on several PTB-XL tasks: what pre-training bought is the difference).

The encoder is frozen; its pooled features (512 per ECG) are standardised and a logistic
regression (scikit-learn; one per class, one-vs-rest, for multi-label tasks) is trained on 1 %,
10 % and 100 % of the training labels, then scored on the test split: macro AUROC for
multi-label tasks, accuracy / precision / recall / F1 (macro) and AUROC for single-label ones.

    python -m mets_fast.linear_probe --model runs/x --data ptbxl:/data/ptb-xl --out results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

FRACTIONS = (0.01, 0.1, 1.0)


def features(model, ecgs, batch_size: int = 256) -> np.ndarray:
    """The frozen encoder's pooled features ``(N, 512)`` of preprocessed ECGs (eval mode)."""
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ecgs), batch_size):
            chunk = np.ascontiguousarray(ecgs[start:start + batch_size], dtype=np.float32)
            out.append(model.ecg_features(chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, model.encoder.out_features))


def label_subset(targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of `fraction` of the training labels, drawn with `seed`: stratified for
    single-label targets (that fraction of each class, at least one of each), at random for
    multi-label ones (at least one ECG per class where a class occurs)."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    if fraction >= 1:
        return np.arange(n)
    if targets.ndim == 1:
        picked = []
        for c in np.unique(targets):
            members = np.flatnonzero(targets == c)
            take = max(1, int(round(fraction * len(members))))
            picked.append(rng.choice(members, size=take, replace=False))
        return np.sort(np.concatenate(picked))
    chosen = set(rng.choice(n, size=max(1, int(round(fraction * n))), replace=False).tolist())
    for c in range(targets.shape[1]):
        members = np.flatnonzero(targets[:, c])
        if len(members) and not chosen & set(members.tolist()):
            chosen.add(int(rng.choice(members)))
    return np.array(sorted(chosen))


def fit_and_score(train_x, train_y, test_x, test_y, multilabel: bool, seed: int = 0) -> dict:
    """A standardised logistic regression on the training features, scored on the test ones."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from .zeroshot import classification_metrics

    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)

    def head():
        return LogisticRegression(max_iter=2000, C=1.0, random_state=seed)

    if not multilabel:
        present = np.unique(train_y)
        n_classes = int(max(train_y.max(), test_y.max())) + 1
        proba = np.zeros((len(b), n_classes))
        if len(present) == 1:
            proba[:, present[0]] = 1.0
        else:
            proba[:, present] = head().fit(a, train_y).predict_proba(b)
        result = classification_metrics(test_y, proba, n_classes)
        result.pop("confusion")
        return result
    aurocs = []
    for c in range(train_y.shape[1]):
        if not 0 < test_y[:, c].sum() < len(test_y):
            continue
        if 0 < train_y[:, c].sum() < len(train_y):
            score = head().fit(a, train_y[:, c]).predict_proba(b)[:, 1]
        else:  # the subset holds no positive (or no negative) of this class
            score = np.full(len(b), float(train_y[:, c].mean()))
        aurocs.append(roc_auc_score(test_y[:, c], score))
    return {"auroc": float(np.mean(aurocs)) if aurocs else float("nan"),
            "classes": len(aurocs), "n": int(len(test_y))}


def random_encoder(model, seed: int = 0):
    """A model of the same architecture with a fresh random initialisation."""
    from .model import METSModel

    torch.manual_seed(seed)
    return METSModel.from_config(model.config).eval()


def probe(model, sets: dict, seed: int = 0, quiet: bool = False) -> dict:
    """``{task: {"pretrained" | "random": {"1%" | "10%" | "100%": metrics}}}``.  The features
    of each ECG are computed once per encoder, whatever the number of tasks that use it."""
    results = {task: {} for task in sets}
    encoders = {"pretrained": model, "random": random_encoder(model, seed)}
    for name, encoder in encoders.items():
        cache: dict = {}
        for task, s in sets.items():
            key = id(s.signals)
            if key not in cache:
                rows = np.unique(np.concatenate([t.train for t in sets.values()
                                                 if t.signals is s.signals]
                                                + [t.test for t in sets.values()
                                                   if t.signals is s.signals]))
                cache[key] = (rows, features(encoder, _Rows(s.signals, rows)))
            rows, feats = cache[key]
            train_x = feats[np.searchsorted(rows, s.train)]
            test_x = feats[np.searchsorted(rows, s.test)]
            results[task][name] = {}
            for fraction in FRACTIONS:
                rows = label_subset(s.train_targets, fraction, seed)
                results[task][name][f"{fraction:.0%}"] = fit_and_score(
                    train_x[rows], s.train_targets[rows], test_x, s.test_targets, s.multilabel,
                    seed)
        if not quiet:
            print(f"  {name} encoder done", file=sys.stderr, flush=True)
    return results


class _Rows:
    """Rows `rows` of `signals` (a memory map), read a slice at a time."""

    def __init__(self, signals, rows):
        self.signals, self.rows = signals, rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, part: slice):
        return self.signals[self.rows[part]]


def table(results: dict, sets: dict) -> str:
    lines = ["| task | metric | encoder | 1% | 10% | 100% |", "|---|---|---|---|---|---|"]
    for task, by_encoder in results.items():
        keys = ("auroc",) if sets[task].multilabel else ("accuracy", "f1", "auroc")
        for key in keys:
            for encoder, by_fraction in by_encoder.items():
                cells = [by_fraction[f][key] for f in ("1%", "10%", "100%")]
                lines.append(f"| {task} | {key} | {encoder} | "
                             + " | ".join("nan" if v != v else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.linear_probe",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    parser.add_argument("--data", required=True,
                        help="synthetic, ptbxl:ROOT, mitbih:DIR or store:DIR")
    parser.add_argument("--out", help="write linear_probe.json here")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the label subsets and of the random encoder (0)")
    parser.add_argument("--threads", type=int, help="threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data.prepared import parse_data
    from .evaluation.datasets import corpus_size, mitbih_probe_sets, store_probe_sets
    from .model import load
    from .jsonio import write_json

    try:
        spec = parse_data(args.data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = load(args.model)
        if spec.kind == "mitbih":
            sets = mitbih_probe_sets(spec.path, model.settings, seed=args.seed)
        else:
            sets = store_probe_sets(spec, model.settings, n=corpus_size(args.model),
                                    quiet=args.quiet)
        if not sets:
            raise ValueError(f"{args.data} has no labels a linear probe can use (a train and "
                             f"a test split sharing two classes of a label family)")
        results = probe(model, sets, seed=args.seed, quiet=args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"linear probe, {args.data} (frozen encoder, logistic regression; test split):")
    print(table(results, sets))
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {task: {**r, "classes": list(sets[task].classes),
                          "multilabel": sets[task].multilabel} for task, r in results.items()}
        write_json(folder / "linear_probe.json", payload)
        print(f"written to {folder}/linear_probe.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
