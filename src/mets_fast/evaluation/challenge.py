"""Zero-shot and the linear probe on a PhysioNet/CinC Challenge tree: every class the Challenge
scores that the split's recordings carry, multi-label, with the macro AUROC and the Challenge's
own metric."""

from __future__ import annotations

import numpy as np

from ..data.sources.challenge import NORMAL, challenge_labels
from ..data.spec import DataSpec
from .datasets import ProbeSet, default_split, model_store, with_leads
from .metrics import challenge_score, multilabel_auroc, softmax
from .zeroshot import ZeroShotClassifier


def challenge_zeroshot(model, spec: DataSpec, split: str | None = None,
                       quiet: bool = False, leads=None) -> dict:
    """Zero-shot scores of the Challenge tree `spec` (prepared with the model's settings):
    the recordings of `split` (the test split by default; ``"all"``: every recording), each
    scored by the mean logits of its windows against the scored classes present (each class
    prompted by its name; sinus rhythm always among them, as the metric's normal class).

    The Challenge metric needs yes/no outputs: a recording is given every class whose
    probability (softmax over the classes) is above the uniform ``1 / C`` - no threshold is
    tuned on the labels.  `leads`: only these leads (the others zeros).  Returns ``auroc`` (macro over the classes with positives and
    negatives), ``per_class`` (abbreviation -> AUROC), ``positives`` (abbreviation -> recordings
    carrying it), ``classes``, ``n`` (recordings) and ``challenge_score``."""
    store = model_store(spec, model.settings, quiet=quiet)
    split = split or default_split(store)
    rows = np.arange(len(store)) if split == "all" else store.split(split)
    if not len(rows):
        raise ValueError(f"{spec} has no recording in its {split} split")
    meta = store.meta.iloc[rows]
    records, firsts, which = np.unique(meta["record"].astype(str).to_numpy(),
                                       return_index=True, return_inverse=True)
    codes = [set(meta["dx"].iloc[k]) for k in firsts]  # a record's windows share its labels
    labels = challenge_labels()
    classes = [c for c in labels.scored if c == NORMAL or any(c in dx for dx in codes)]
    targets = np.array([[c in dx for c in classes] for dx in codes], dtype=np.int8)
    classifier = ZeroShotClassifier(model, {c: [labels.names[c]] for c in classes})
    signals = with_leads(store.signals, model.settings, leads)
    logits = classifier.score_embeddings(model.embed_ecgs(signals[rows]))
    per_record = np.zeros((len(records), len(classes)))
    np.add.at(per_record, which, logits)
    per_record /= np.bincount(which, minlength=len(records))[:, None]
    outputs = softmax(per_record) >= 1.0 / len(classes)
    index = [labels.scored.index(c) for c in classes]
    result = multilabel_auroc(per_record, targets)
    name = [labels.abbreviations.get(c, c) for c in classes]
    result["per_class"] = {name[k]: value for k, value in result["per_class"].items()}
    result["positives"] = dict(zip(name, targets.sum(0).tolist()))
    result["challenge_score"] = challenge_score(targets, outputs,
                                                labels.weights[np.ix_(index, index)],
                                                classes.index(NORMAL))
    result["split"] = split
    return result


def challenge_probe_set(model, spec: DataSpec, quiet: bool = False, leads=None) -> ProbeSet:
    """The linear-probe set of a Challenge tree: its train and test splits (the first window
    of each record), multi-label over the scored classes present in both (sinus rhythm
    always), with the Challenge metric."""
    store = model_store(spec, model.settings, quiet=quiet)
    labels = challenge_labels()
    parts = {}
    for split in ("train", "test"):
        rows = store.split(split)
        _, firsts = np.unique(store.meta["record"].astype(str).to_numpy()[rows],
                              return_index=True)
        parts[split] = rows[np.sort(firsts)]
    dx = {split: [set(store.meta["dx"].iloc[r]) for r in rows] for split, rows in parts.items()}
    classes = [c for c in labels.scored
               if c == NORMAL or all(any(c in d for d in dx[s]) for s in parts)]
    if not len(parts["train"]) or not len(parts["test"]):
        raise ValueError(f"{spec} needs records in its train and its test split for a probe")
    targets = {s: np.array([[c in d for c in classes] for d in dx[s]], dtype=np.int8)
               for s in parts}
    index = [labels.scored.index(c) for c in classes]
    return ProbeSet(with_leads(store.signals, model.settings, leads), parts["train"],
                    targets["train"], parts["test"], targets["test"],
                    tuple(labels.abbreviations.get(c, c) for c in classes), True,
                    (labels.weights[np.ix_(index, index)], classes.index(NORMAL)))
