"""The linear probe: how good a trained encoder's features are with few labels, the other
protocol of METS and MERL, always beside the same probe on a randomly initialised encoder of
the same architecture (which a recent study finds close to pre-trained encoders on several
PTB-XL tasks: what pre-training bought is the difference).

The encoder is frozen; its pooled features (512 per ECG) are standardised and a logistic
regression (scikit-learn; one per class, one-vs-rest, for multi-label tasks) is trained on 1 %,
10 % and 100 % of the training labels, then scored on the test split: macro AUROC for
multi-label tasks, accuracy / precision / recall / F1 (macro) and AUROC for single-label ones.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .metrics import challenge_score, classification_metrics, multilabel_auroc

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


def fit_and_score(train_x, train_y, test_x, test_y, multilabel: bool, seed: int = 0,
                  challenge: tuple | None = None) -> dict:
    """A standardised logistic regression on the training features, scored on the test ones
    (with `challenge`, (weights, normal column), a multi-label task also gets the Challenge
    metric of the classes whose probability is at least 0.5)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

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
    scores = np.zeros(test_y.shape)
    for c in range(train_y.shape[1]):
        if not 0 < test_y[:, c].sum() < len(test_y):
            continue  # multilabel_auroc leaves such a class out
        if 0 < train_y[:, c].sum() < len(train_y):
            scores[:, c] = head().fit(a, train_y[:, c]).predict_proba(b)[:, 1]
        else:  # the subset holds no positive (or no negative) of this class
            scores[:, c] = float(train_y[:, c].mean())
    result = multilabel_auroc(scores, test_y)
    if challenge is not None:
        result["challenge_score"] = challenge_score(test_y, scores >= 0.5, *challenge)
    return result


def random_encoder(model, seed: int = 0):
    """A model of the same architecture with a fresh random initialisation."""
    from ..model import METSModel

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
                    seed, s.challenge)
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
