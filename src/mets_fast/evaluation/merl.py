"""The MERL benchmark (Liu et al., ICML 2024), the one ECG-text papers compare on since: six
multi-label test sets, macro AUROC, zero-shot and by linear probes on 1 / 10 / 100 % of the
training labels.

    ptbxl_super (5 classes), ptbxl_sub (23), ptbxl_form (19), ptbxl_rhythm (12)   from PTB-XL
    cpsc2018 (9; records A0001-A6877), csn (38; Chapman-Shaoxing/Ningbo JS*)      from a
                                                                   PhysioNet/CinC Challenge tree

The split files (train / val / test ids and their 0/1 label columns, as MERL's repository
ships them) and MERL's CKEPE class descriptions live in ``data/merl`` with MERL's MIT licence;
the published figures, each with its paper and what was checked, in ``data/merl/published.json``.
ECGs are found by id in stores prepared with the model's settings (PTB-XL: ``ecg_id``;
Challenge: the record name); a set whose ECGs are only partly present says how many.  A
Challenge record longer than the window is scored by the mean logits of its windows
(zero-shot) or by its first window (probe).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..data.spec import DataSpec
from .datasets import ProbeSet, model_store, with_leads
from .metrics import multilabel_auroc
from .zeroshot import TEMPLATES, ZeroShotClassifier

MERL = Path(__file__).resolve().parents[1] / "data" / "merl"
SETS = {"ptbxl_super": "ptbxl", "ptbxl_sub": "ptbxl", "ptbxl_form": "ptbxl",
        "ptbxl_rhythm": "ptbxl", "cpsc2018": "challenge", "csn": "challenge"}
PROMPTS = ("merl", "mets")


class MerlSplit(NamedTuple):
    """One split of a MERL set: the ECG ``ids`` (PTB-XL ``ecg_id`` or a Challenge record
    name), the ``classes`` (label columns) and the 0/1 ``targets`` ``(n, C)``."""

    ids: np.ndarray
    classes: tuple
    targets: np.ndarray


def merl_split(task: str, split: str) -> MerlSplit:
    """The shipped split file of a set (``"train"``, ``"val"`` or ``"test"``)."""
    if task not in SETS:
        raise ValueError(f"unknown MERL set {task!r}; the sets are {list(SETS)}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    table = pd.read_csv(MERL / f"{task}_{split}.csv.gz", dtype={"id": str})
    return MerlSplit(table["id"].to_numpy(), tuple(table.columns[1:]),
                     table.iloc[:, 1:].to_numpy(np.int8))


def ckepe_prompts() -> dict:
    """MERL's CKEPE description of each class code (class -> one descriptive text)."""
    return json.loads((MERL / "CKEPE_prompt.json").read_text())


def published() -> dict:
    """The published figures (``zeroshot`` / ``probe`` lists of {model, paper, table,
    checked, auroc by set, average, average_over})."""
    return json.loads((MERL / "published.json").read_text())


def class_prompts(classes, prompts: str) -> tuple:
    """(classes -> descriptions, templates) of a zero-shot classifier: ``"merl"``, MERL's
    CKEPE descriptions embedded as they are; ``"mets"``, the first phrase of each description
    in METS's template ("The ECG of {}, a type of diagnostic.")."""
    if prompts not in PROMPTS:
        raise ValueError(f"prompts must be one of {PROMPTS}, got {prompts!r}")
    described = ckepe_prompts()
    if prompts == "merl":
        return {c: [described[c]] for c in classes}, ["{}"]
    return {c: [described[c].split(",")[0].strip()] for c in classes}, \
        [TEMPLATES["diagnostic"]]


class _Located(NamedTuple):
    signals: object  # the store's ECGs (with only the leads asked for)
    rows: dict  # id -> store rows (a Challenge record's windows)


def _locate(model, kind: str, root, quiet: bool, leads) -> _Located:
    store = model_store(DataSpec(kind, Path(root)), model.settings, quiet=quiet)
    if kind == "ptbxl":
        ids = store.meta["id"].astype(str).str.removeprefix("ptbxl-")
    else:
        ids = store.meta["record"].astype(str)
    rows: dict = {}
    for row, key in enumerate(ids):
        rows.setdefault(key, []).append(row)
    return _Located(with_leads(store.signals, model.settings, leads), rows)


def _data(model, ptbxl, challenge, quiet: bool, leads) -> dict:
    roots = {"ptbxl": ptbxl, "challenge": challenge}
    return {kind: _locate(model, kind, root, quiet, leads)
            for kind, root in roots.items() if root is not None}


def merl_zeroshot(model, ptbxl=None, challenge=None, prompts: str = "merl",
                  quiet: bool = False, leads=None) -> dict:
    """Zero-shot macro AUROC of each MERL set on its test split (``sets``: task -> found,
    total, auroc, classes scored, a note where data are missing), the ``average`` over the
    sets scored and the ``prompts`` used.  `ptbxl`: a PTB-XL root; `challenge`: a Challenge
    tree (holding CPSC2018 and Chapman-Shaoxing/Ningbo records); `leads`: only these leads
    (the others zeros).  A ValueError, naming each set's note, when no set can be scored
    (none of their test ECGs in the data given, or a single class among those found)."""
    data = _data(model, ptbxl, challenge, quiet, leads)
    tests = {task: merl_split(task, "test") for task in SETS}
    found = {task: [k for k, i in enumerate(split.ids)
                    if SETS[task] in data and i in data[SETS[task]].rows]
             for task, split in tests.items()}
    embedded = {}  # kind -> (rows embedded, their embeddings): each ECG once for all sets
    for kind, where in data.items():
        rows = sorted({r for task, split in tests.items() if SETS[task] == kind
                       for k in found[task] for r in where.rows[split.ids[k]]})
        if rows:
            embedded[kind] = (np.array(rows), model.embed_ecgs(where.signals[rows]))
    sets = {}
    for task, split in tests.items():
        kind = SETS[task]
        row = {"found": len(found[task]), "total": len(split.ids), "auroc": None,
               "classes": len(split.classes)}
        if not found[task]:
            flag = "--ptbxl" if kind == "ptbxl" else "--challenge"
            row["note"] = (f"no data given ({flag})" if kind not in data
                           else "none of its test ECGs is in the data given")
            sets[task] = row
            continue
        rows, emb = embedded[kind]
        descriptions, templates = class_prompts(split.classes, prompts)
        classifier = ZeroShotClassifier(model, descriptions, templates=templates)
        logits = classifier.score_embeddings(emb).astype(np.float64)
        where = data[kind].rows
        scores = np.stack([logits[np.searchsorted(rows, where[split.ids[k]])].mean(0)
                           for k in found[task]])
        result = multilabel_auroc(scores, split.targets[found[task]])
        row.update(auroc=result["auroc"], classes=result["classes"])
        if len(found[task]) < len(split.ids):
            row["note"] = f"{len(found[task]):,} of {len(split.ids):,} test ECGs found"
        sets[task] = row
    scored = [r["auroc"] for r in sets.values() if r["auroc"] is not None]
    if not scored:
        raise ValueError("no MERL set could be scored: "
                         + "; ".join(f"{task}: {r.get('note', 'not scored')}"
                                     for task, r in sets.items()))
    return {"sets": sets, "average": float(np.mean(scored)) if scored else None,
            "average_over": [t for t, r in sets.items() if r["auroc"] is not None],
            "prompts": prompts}


def merl_probe_sets(model, ptbxl=None, challenge=None, quiet: bool = False,
                    leads=None) -> tuple:
    """The linear-probe sets (:class:`~mets_fast.evaluation.datasets.ProbeSet`, multi-label)
    of the MERL sets whose train and test ECGs are found, and the notes of those that are
    not: ``(sets, notes)``."""
    data = _data(model, ptbxl, challenge, quiet, leads)
    sets, notes = {}, {}
    for task, kind in SETS.items():
        where = data.get(kind)
        parts = {}
        for split in ("train", "test"):
            s = merl_split(task, split)
            found = [k for k, i in enumerate(s.ids) if where and i in where.rows]
            parts[split] = (np.array([where.rows[s.ids[k]][0] for k in found], dtype=np.int64),
                            s.targets[found], len(s.ids))
        (train, train_y, n_train), (test, test_y, n_test) = parts["train"], parts["test"]
        if not len(train) or not len(test):
            notes[task] = (f"{len(train)} of {n_train:,} train and {len(test)} of {n_test:,} "
                           f"test ECGs found")
            continue
        sets[task] = ProbeSet(where.signals, train, train_y, test, test_y,
                              merl_split(task, "test").classes, True)
        if len(train) < n_train or len(test) < n_test:
            notes[task] = (f"{len(train):,} of {n_train:,} train and {len(test):,} of "
                           f"{n_test:,} test ECGs found")
    return sets, notes
