"""The numbers an evaluation reports: single-label classification metrics (METS's four and
MERL's AUROC), multi-label macro AUROC, and retrieval recall; scikit-learn computes what it can."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_metrics(labels: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    """Single-label metrics of class probabilities ``(N, C)`` against true class indices:
    ``accuracy``; ``precision``, ``recall``, ``f1`` (macro averages over the classes that
    occur in `labels` or in the predictions, as scikit-learn computes them; METS's four);
    ``auroc`` (macro one-vs-rest over the classes present in `labels`, MERL's; NaN when fewer
    than two are); ``n``; and ``confusion`` (rows: true class, columns: predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("no labelled ECGs to evaluate")
    predicted = proba.argmax(1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="macro", zero_division=0)
    present = np.unique(labels)
    aurocs = [roc_auc_score(labels == c, proba[:, c]) for c in present] if len(present) > 1 \
        else []
    confusion = confusion_matrix(labels, predicted, labels=np.arange(n_classes))
    return {"accuracy": float((predicted == labels).mean()), "precision": float(precision),
            "recall": float(recall), "f1": float(f1),
            "auroc": float(np.mean(aurocs)) if aurocs else float("nan"), "n": int(len(labels)),
            "confusion": confusion.tolist()}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def multilabel_auroc(scores: np.ndarray, targets: np.ndarray) -> dict:
    """Macro one-vs-rest AUROC of multi-label 0/1 `targets` ``(n, C)`` ranked by `scores`
    ``(n, C)``; classes with no positive or no negative ECG are left out of the mean
    (``classes`` counts those kept; ``per_class``: column -> AUROC of each kept)."""
    from sklearn.metrics import roc_auc_score

    kept = [c for c in range(targets.shape[1]) if 0 < targets[:, c].sum() < len(targets)]
    aurocs = {c: float(roc_auc_score(targets[:, c], scores[:, c])) for c in kept}
    return {"auroc": float(np.mean(list(aurocs.values()))) if aurocs else float("nan"),
            "classes": len(kept), "n": int(len(targets)), "per_class": aurocs}


def hit_rates(found: np.ndarray, own: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``{"recall@k": share of queries whose own item (`own`, ``(Q,)``) is among their first k
    results}`` for each k, `found` being the ranked ids ``(Q, >= max(ks))``."""
    hits = found == np.asarray(own)[:, None]
    return {f"recall@{k}": float(hits[:, :k].any(1).mean()) for k in ks}


def challenge_score(labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray,
                    normal: int) -> float:
    """The PhysioNet/CinC Challenge 2020/2021 metric of binary multi-label outputs.

    Args:
        labels: ``(N, C)`` 0/1, the true classes of each recording (the Challenge's scored
            classes, equivalent codes merged).
        outputs: ``(N, C)`` 0/1, the classes the model gives each recording.
        weights: ``(C, C)``, the credit of output class k for true class j (``weights.csv``:
            1 on the diagonal, partial credit between similar classes).
        normal: the column of the normal class (sinus rhythm, ``426783006``).

    Each recording spreads one unit of credit over the (true, output) pairs it holds: pair
    (j, k) counts ``1 / |true or output classes|`` (a modified confusion matrix A); the score
    ``sum(W * A)`` is normalised so that outputting the true labels scores 1 and outputting
    only the normal class scores 0 (0 where the two coincide), as the Challenge's
    ``compute_challenge_metric`` (vectorised here, the same numbers)."""
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != outputs.shape or \
            weights.shape != (labels.shape[1],) * 2:
        raise ValueError(f"labels and outputs must be (N, C) and weights (C, C), got "
                         f"{labels.shape}, {outputs.shape} and {weights.shape}")
    if not 0 <= normal < labels.shape[1]:
        raise ValueError(f"normal must be a column of the {labels.shape[1]} classes, got "
                         f"{normal}")

    def credit(out: np.ndarray) -> float:
        share = 1.0 / np.maximum((labels | out).sum(1), 1)
        return float(np.nansum(weights * ((labels * share[:, None]).T @ out)))

    inactive = np.zeros_like(outputs)
    inactive[:, normal] = True
    correct, idle = credit(labels), credit(inactive)
    return 0.0 if correct == idle else (credit(outputs) - idle) / (correct - idle)
