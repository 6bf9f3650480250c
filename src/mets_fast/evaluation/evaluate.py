"""One evaluation of a trained model on some data: what ``python -m mets_fast.zeroshot --data``,
``python -m mets_fast.linear_probe`` and the trainer's per-epoch scoring all call.

``evaluate(model, data)`` scores the built-in zero-shot tasks of the data (METS's balanced
single-label sets, PTB-XL's multi-label sets, ECG-to-report retrieval);
``evaluate(model, data, protocol="probe")`` runs the linear probe on the data's label families
beside a randomly initialised encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..data.preprocess import check_compatible
from ..data.spec import DataSpec, parse_data
from ..data.store import ECGStore
from .datasets import (corpus_size, default_split, mitbih_evaluation, mitbih_probe_sets,
                       probe_with_leads, reported, store_evaluation, store_probe_sets,
                       with_leads)
from .metrics import hit_rates, multilabel_auroc
from .probe import probe
from .tasks import evaluation_sets
from .zeroshot import ZeroShotClassifier

PROTOCOLS = ("zeroshot", "probe")


class ZeroShotReport(NamedTuple):
    """Zero-shot results: single-label metrics by task, multi-label AUROC by PTB-XL family,
    retrieval recall by source, and notes for the user."""

    single: dict
    multi: dict
    retrieval: dict
    notes: list

    def as_dict(self) -> dict:
        """The JSON document ``zeroshot.json`` holds: the tasks, then ``ptbxl_multilabel``,
        ``challenge`` (a Challenge tree's classes and metric), ``retrieval`` and ``notes``
        where there are any."""
        out = dict(self.single)
        ptbxl = {k: v for k, v in self.multi.items() if k != "challenge"}
        if ptbxl:
            out["ptbxl_multilabel"] = ptbxl
        if "challenge" in self.multi:
            out["challenge"] = self.multi["challenge"]
        if self.retrieval:
            out["retrieval"] = self.retrieval
        if self.notes:
            out["notes"] = self.notes
        return out


class ProbeReport(NamedTuple):
    """Linear-probe results ``{task: {"pretrained" | "random": {"1%" | "10%" | "100%":
    metrics}}}`` and the probe sets they were measured on."""

    results: dict
    sets: dict


def evaluate(model, data: str | DataSpec | ECGStore, *, protocol: str = "zeroshot",
             tasks: Sequence[str] | None = None, split: str | None = None,
             per_class: int | None = None, seed: int = 0, statements: str | None = None,
             run_dir: str | None = None, quiet: bool = False,
             leads: Sequence[str] | None = None,
             sample: int | None = None) -> ZeroShotReport | ProbeReport:
    """Evaluates `model` on `data`: a ``--data`` value (``synthetic``, ``ptbxl:ROOT``,
    ``mitbih:DIR``, ``store:DIR``; prepared with the model's preprocessing), or an open store,
    whose single-label zero-shot sets alone are scored (the trainer's per-epoch check).

    Args:
        protocol: ``"zeroshot"`` or ``"probe"`` (linear probe on 1, 10 and 100 % of the
            training labels, beside a random encoder of the same architecture).
        tasks: built-in task names (default: those of the data's sources).
        split: which ECGs: a store's ``test`` split (``val`` where it has none); MIT-BIH
            ``all`` records (``val``: those the trainer held out).
        per_class: ECGs per class of the balanced single-label sets (200; MIT-BIH 100).
        seed: draws the balanced sets, the probe's label subsets and its random encoder.
        statements: PTB-XL's ``scp_statements.csv`` for the multi-label sets of a
            ``store:DIR`` (a ``ptbxl:ROOT`` has its own).
        run_dir: the model's run directory (default: the one ``mets_fast.load`` read it from):
            ``synthetic`` is read at the size the run trained on, so its test split holds no
            training ECG.  A model from no run is scored on the default corpus, with a note
            that the split may hold ECGs it trained on.
        leads: score with only these leads (the others zeros, as ``model.preprocess`` makes
            a recording without them), e.g. ``["I", "II"]``; None: all the model's.
        sample: an open store only: score a fixed sample of this many ECGs of the split
            (drawn with `seed`), its single-label sets and the retrieval of its ECGs' reports
            (``retrieval["<split>"]``; a corpus without labels, MIMIC-IV-ECG's, has only that),
            so that the trainer's per-epoch check costs the same on a corpus of any size.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if isinstance(data, ECGStore):
        if protocol != "zeroshot":
            raise ValueError("an open store is evaluated zero-shot on its single-label sets; "
                             "pass a --data value for the linear probe")
        check_compatible(data, model.settings)
        split = split or default_split(data)
        meta, retrieval = data.meta, {}
        if sample is None:
            signals = with_leads(data.signals, model.settings, leads)
        else:
            rows = data.split(split)
            if len(rows) > sample:
                rows = np.sort(np.random.default_rng(seed).choice(rows, sample, replace=False))
            meta = data.meta.iloc[rows].reset_index(drop=True)
            signals = with_leads(data.signals[rows], model.settings, leads)
            picked = reported(signals, meta["report_clean"], seed)
            if len(picked.reports):
                retrieval[split] = report_retrieval(model, picked.ecgs, picked.reports)
        sets = evaluation_sets(meta, split=split, per_class=per_class or 200, seed=seed,
                               tasks=tasks)
        return ZeroShotReport(score_sets(model, signals, sets), {}, retrieval, [])
    spec = parse_data(data) if isinstance(data, str) else data
    run_dir = run_dir if run_dir is not None else getattr(model, "run_dir", None)
    n = corpus_size(run_dir if spec.kind == "synthetic" else None)
    if spec.kind == "challenge":
        from .challenge import challenge_probe_set, challenge_zeroshot

        if protocol == "probe":
            sets = {"challenge": challenge_probe_set(model, spec, quiet, leads)}
            return ProbeReport(probe(model, sets, seed=seed, quiet=quiet), sets)
        return ZeroShotReport({}, {"challenge": challenge_zeroshot(model, spec, split, quiet,
                                                                   leads)}, {}, [])
    if protocol == "probe":
        if spec.kind == "mitbih":
            sets = mitbih_probe_sets(spec.path, model.settings, seed=seed)
        else:
            sets = store_probe_sets(spec, model.settings, n=n, quiet=quiet)
        if not sets:
            raise ValueError(f"{spec} has no labels a linear probe can use (a train and a test "
                             f"split sharing two classes of a label family)")
        sets = probe_with_leads(sets, model.settings, leads)
        return ProbeReport(probe(model, sets, seed=seed, quiet=quiet), sets)
    if spec.kind == "mitbih":
        found = mitbih_evaluation(spec.path, model.settings, split=split or "all",
                                  per_class=per_class or 100, seed=seed, quiet=quiet)
    else:
        if split == "all":
            raise ValueError("--split all is for mitbih:DIR (a store has test and val splits)")
        found = store_evaluation(spec, model.settings, split=split, per_class=per_class or 200,
                                 seed=seed, tasks=tasks,
                                 statements=Path(statements) if statements else None,
                                 n=n, quiet=quiet)
    if spec.kind == "synthetic" and run_dir is None:
        found.notes.append(f"the model comes from no run directory, so the synthetic corpus it "
                           f"trained on is unknown: scored on the default corpus of {n} ECGs, "
                           f"whose test split may hold ECGs it trained on")
    found = found._replace(
        signals=with_leads(found.signals, model.settings, leads),
        multi={f: ml._replace(ecgs=with_leads(ml.ecgs, model.settings, leads))
               for f, ml in found.multi.items()},
        retrieval={k: r._replace(ecgs=with_leads(r.ecgs, model.settings, leads))
                   for k, r in found.retrieval.items()})
    single = score_sets(model, found.signals, found.single)
    multi = {}
    for family, ml in found.multi.items():
        kind = {"superclass": "diagnostic"}.get(family, family)
        classifier = ZeroShotClassifier(model, dict(zip(ml.codes, ([d] for d in ml.descriptions))),
                                        kind=kind)
        scores = classifier.score_embeddings(model.embed_ecgs(ml.ecgs))
        multi[family] = multilabel_auroc(scores, ml.targets)
    retrieval = {source: report_retrieval(model, r.ecgs, r.reports)
                 for source, r in found.retrieval.items()}
    return ZeroShotReport(single, multi, retrieval, found.notes)


def score_sets(model, signals, sets: dict, batch_size: int = 256) -> dict:
    """Zero-shot metrics of every single-label set (:class:`~mets_fast.evaluation.tasks.EvalSet`:
    rows of `signals`; each class by its descriptions, METS's template of the task's kind):
    ``{task: metrics}`` (see :func:`~mets_fast.evaluation.metrics.classification_metrics`,
    plus ``classes``).  The ECGs of all sets are embedded once."""
    if not sets:
        return {}
    rows = np.unique(np.concatenate([s.rows for s in sets.values()]))
    emb = model.embed_ecgs(signals[rows], batch_size=batch_size)
    where = {r: k for k, r in enumerate(rows)}
    results = {}
    for name, s in sets.items():
        names = s.task.names()
        classifier = ZeroShotClassifier(
            model, {names[c]: list(ds) for c, ds in s.task.classes.items()}, kind=s.task.kind)
        pick = torch.as_tensor([where[r] for r in s.rows], dtype=torch.long)
        results[name] = {**classifier.evaluate_embeddings(emb[pick], s.labels),
                         "classes": list(classifier.names)}
    return results


def report_retrieval(model, ecgs, reports, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """ECG-to-report retrieval: each ECG searches the distinct reports among `reports` (one
    per ECG, its own) by cosine similarity; recall@k is the share whose own report text is
    among the first k.  Returns ``{"recall@1": ..., "recall@5": ..., "recall@10": ..., "n",
    "reports"}`` (the gallery's size)."""
    from ..retrieval.index import EmbeddingIndex

    reports = [str(r) for r in reports]
    gallery = sorted(set(reports))
    with torch.no_grad():
        index = EmbeddingIndex.build(model.encode_texts(gallery).cpu().numpy(), gallery,
                                     kind="flat")
    emb = model.embed_ecgs(ecgs).cpu().numpy()
    found = index.search(emb, min(max(ks), len(gallery)))[1]
    own = np.searchsorted(np.asarray(gallery, dtype=object), np.asarray(reports, dtype=object))
    return {**hit_rates(found, own, ks), "n": int(len(reports)), "reports": len(gallery)}

