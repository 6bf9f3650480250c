"""Zero-shot ECG classification: class names become prompts, prompts become embeddings through
the frozen language model and the trained text projection, and each ECG takes the class whose
embedding is closest (cosine, through the fused ``normalized_similarity``; softmax with the
model's logit scale), as METS classifies (Li et al. 2023)."""

from __future__ import annotations

import json
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data.tasks import KINDS, ZeroShotTask
from .jsonio import dumps, write_json
from .loss import normalized_similarity

# METS's prompt of each kind of class, embedded as it is (without the report template).
TEMPLATES = {kind: f"The ECG of {{}}, a type of {kind}." for kind in KINDS}
METRICS = ("accuracy", "precision", "recall", "f1", "auroc", "n")


class ZeroShotClassifier:
    """Scores ECGs against class prompts.

    Args:
        model: a :class:`~mets_fast.model.METSModel` (``mets_fast.load(run_dir)``).
        classes: class names (``["atrial fibrillation", "sinus rhythm"]``), or a mapping of
            name -> descriptions (``{"AF": ["atrial fibrillation", "irregular rhythm without p
            waves"]}``): each description becomes a prompt.
        templates: prompt templates with one ``{}`` each; default METS's of the `kind`,
            ``"The ECG of {}, a type of diagnostic."`` (``form``, ``rhythm``).
        kind: ``"diagnostic"``, ``"form"`` or ``"rhythm"``: chooses the default template.

    Each class embedding is the normalised mean of its prompts' normalised embeddings (prompt
    ensembling, as OpenCLIP's ``build_zero_shot_classifier``); the prompts go through the
    frozen language model as they are, and through its on-disk cache.  ECG inputs are
    preprocessed signals ``(N, leads, samples)`` (``model.preprocess`` makes them from any
    recording); any array that slices, a store's memory map included.
    """

    def __init__(self, model, classes: Sequence[str] | Mapping[str, Sequence[str]],
                 templates: Sequence[str] | None = None, kind: str = "diagnostic"):
        if kind not in TEMPLATES:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        descriptions = _check_classes(classes)
        templates = [TEMPLATES[kind]] if templates is None else list(templates)
        if not templates or any(not isinstance(t, str) or t.count("{}") != 1 for t in templates):
            raise ValueError(f"templates must be strings with exactly one '{{}}' each, got "
                             f"{templates!r}")
        self.model = model
        self.names = tuple(descriptions)
        self.prompts = {name: [t.format(d) for d in ds for t in templates]
                        for name, ds in descriptions.items()}
        self.class_embeddings = self._embed_classes()

    @torch.no_grad()
    def _embed_classes(self) -> torch.Tensor:
        flat = [p for name in self.names for p in self.prompts[name]]
        emb = self.model.encode_texts(flat, template="{}")
        sizes = [len(self.prompts[name]) for name in self.names]
        means = torch.stack([chunk.mean(0) for chunk in torch.split(emb, sizes)])
        return F.normalize(means, dim=-1)

    @torch.no_grad()
    def score_embeddings(self, ecg_emb: torch.Tensor) -> np.ndarray:
        """Logits ``(N, C)`` (logit scale times cosine) of ECG embeddings ``(N, d)``."""
        emb = torch.as_tensor(ecg_emb, dtype=torch.float32).to(self.class_embeddings.device)
        scale = self.model.logit_scale.detach().float()
        return normalized_similarity(emb, self.class_embeddings, scale).cpu().numpy()

    def scores(self, ecgs, batch_size: int = 256) -> np.ndarray:
        """Logits ``(N, C)``: the model's logit scale times the cosine similarity of each ECG
        to each class, columns in the order of :attr:`names`."""
        return self.score_embeddings(self.model.embed_ecgs(ecgs, batch_size=batch_size))

    def predict_proba(self, ecgs, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, C)``: the softmax of :meth:`scores`."""
        return softmax(self.scores(ecgs, batch_size))

    def predict(self, ecgs, batch_size: int = 256) -> np.ndarray:
        """The most probable class name of each ECG, ``(N,)``."""
        return np.asarray(self.names, dtype=object)[self.scores(ecgs, batch_size).argmax(1)]

    def evaluate(self, ecgs, labels: Sequence[str], batch_size: int = 256) -> dict:
        """The paper's four metrics and more on labelled ECGs (`labels`: class names).  See
        :func:`classification_metrics` for the keys."""
        labels = self._label_indices(labels)
        return classification_metrics(labels, self.predict_proba(ecgs, batch_size),
                                      len(self.names))

    def evaluate_embeddings(self, ecg_emb: torch.Tensor, labels: Sequence[str]) -> dict:
        """:meth:`evaluate` on ECG embeddings already computed."""
        labels = self._label_indices(labels)
        return classification_metrics(labels, softmax(self.score_embeddings(ecg_emb)),
                                      len(self.names))

    def _label_indices(self, labels) -> np.ndarray:
        index = {name: k for k, name in enumerate(self.names)}
        unknown = sorted({str(x) for x in labels if x not in index})
        if unknown:
            raise ValueError(f"labels hold names that are not classes: {unknown[:5]} (classes: "
                             f"{list(self.names)})")
        return np.array([index[x] for x in labels], dtype=np.int64)


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


def _check_classes(classes) -> dict:
    """name -> list of descriptions, validated."""
    if isinstance(classes, str):
        raise TypeError("classes must be a list of names or a mapping name -> descriptions, "
                        "not one string")
    if isinstance(classes, Mapping):
        items = list(classes.items())
    else:
        try:
            items = [(name, [name]) for name in classes]
        except TypeError:
            raise TypeError(f"classes must be a list of names or a mapping name -> "
                            f"descriptions, got {type(classes).__name__}") from None
    if not items:
        raise ValueError("classes is empty: give at least two class names")
    out: dict = {}
    for name, descriptions in items:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class names must be non-empty strings, got {name!r}")
        if name in out:
            raise ValueError(f"class {name!r} is given twice")
        if isinstance(descriptions, str):
            descriptions = [descriptions]
        descriptions = list(descriptions)
        if not descriptions or any(not isinstance(d, str) or not d.strip()
                                   for d in descriptions):
            raise ValueError(f"class {name!r} needs at least one non-empty description, got "
                             f"{descriptions!r}")
        out[name] = descriptions
    if len(out) < 2:
        raise ValueError(f"zero-shot classification needs at least two classes, got "
                         f"{list(out)}")
    return out


# ----------------------------------------------------------------------------- built-in tasks


def builtin_tasks() -> dict:
    """The zero-shot tasks mets_fast knows, by name: the synthetic corpus's, PTB-XL's three
    (METS's balanced single-label sets; classes by their ``scp_statements.csv``
    descriptions, superclasses by PTB-XL's names for them) and the MIT-BIH beat task."""
    from .data.mitbih import METS_CLASS_NAMES
    from .data.ptbxl import ZERO_SHOT_TASKS
    from .data.synthetic import SUPERCLASS_DESCRIPTIONS, SYNTHETIC_TASKS

    described = {**SUPERCLASS_DESCRIPTIONS, **{c: (d,) for c, d in PTBXL_DESCRIPTIONS.items()}}
    tasks = dict(SYNTHETIC_TASKS)
    for family, codes in ZERO_SHOT_TASKS.items():
        kind = {"superclass": "diagnostic"}.get(family, family)
        tasks[f"ptbxl_{family}"] = ZeroShotTask(family, kind, {c: described[c] for c in codes})
    tasks["mitbih"] = ZeroShotTask("beat", "diagnostic",
                                   {c: (METS_CLASS_NAMES[c],) for c in "NLRAV"})
    return tasks


# The descriptions scp_statements.csv gives the codes of METS's form and rhythm tasks.
PTBXL_DESCRIPTIONS = {
    "NDT": "non-diagnostic T abnormalities", "NST_": "non-specific ST changes",
    "ABQRS": "abnormal QRS", "PVC": "ventricular premature complex",
    "STD_": "non-specific ST depression", "SR": "sinus rhythm", "AFIB": "atrial fibrillation",
    "STACH": "sinus tachycardia", "SARRH": "sinus arrhythmia", "SBRAD": "sinus bradycardia",
}
# Which tasks a store's ECGs can be scored on, by the source that made them.
TASKS_BY_SOURCE = {"synthetic": ("synthetic_rhythm", "synthetic_superclass"),
                   "ptbxl": ("ptbxl_superclass", "ptbxl_form", "ptbxl_rhythm"),
                   "mitbih": ("mitbih",)}


class EvalSet(NamedTuple):
    """A task's balanced labelled set in a store: positions and class names."""

    task: ZeroShotTask
    rows: np.ndarray
    labels: np.ndarray


def evaluation_sets(meta, split: str = "val", per_class: int = 200, seed: int = 0,
                    tasks: Sequence[str] | None = None) -> dict:
    """The balanced single-label sets (:func:`~mets_fast.data.zero_shot_set`) of the tasks a
    store's metadata supports (by its ``source`` column, or the named `tasks`), on `split`.
    Returns ``{task name: EvalSet}``; tasks with fewer than two classes present are left out."""
    from .data.ptbxl import zero_shot_set

    known = builtin_tasks()
    if tasks is None:
        sources = set(meta["source"]) if len(meta) else set()
        tasks = [t for s in sorted(sources) for t in TASKS_BY_SOURCE.get(s, ())]
    out = {}
    for name in tasks:
        if name not in known:
            raise ValueError(f"unknown task {name!r}; known: {sorted(known)}")
        task = known[name]
        if task.family not in meta:
            raise ValueError(f"task {name!r} needs the label column {task.family!r}, which the "
                             f"data lacks")
        chosen = zero_shot_set(meta, name, per_class=per_class, seed=seed,
                               classes=tuple(task.classes), family=task.family, split=split)
        if sum(k > 0 for k in chosen.counts.values()) < 2:
            continue
        names = task.names()
        out[name] = EvalSet(task, np.asarray(chosen.rows, dtype=np.int64),
                            np.array([names[c] for c in chosen.labels], dtype=object))
    return out


def evaluate_sets(model, signals, sets: dict, batch_size: int = 256) -> dict:
    """Zero-shot metrics of every set (each class by its descriptions, METS's template of the
    task's kind): ``{task: evaluate()'s dict}``.  The ECGs of all sets are embedded once."""
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
        results[name] = classifier.evaluate_embeddings(emb[pick], s.labels)
    return results


def multilabel_auroc(classifier: ZeroShotClassifier, ecg_emb: torch.Tensor,
                     targets: np.ndarray) -> dict:
    """Macro one-vs-rest AUROC of multi-label targets ``(n, C)`` (columns in the order of the
    classifier's classes), each class ranked by its cosine score; classes with no positive or
    no negative ECG are left out of the mean (``classes`` counts those kept)."""
    from sklearn.metrics import roc_auc_score

    scores = classifier.score_embeddings(ecg_emb)
    kept = [c for c in range(targets.shape[1]) if 0 < targets[:, c].sum() < len(targets)]
    aurocs = [roc_auc_score(targets[:, c], scores[:, c]) for c in kept]
    return {"auroc": float(np.mean(aurocs)) if aurocs else float("nan"), "classes": len(kept),
            "n": int(len(targets))}


def retrieval_recall(model, ecgs, reports, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """ECG-to-report retrieval: each ECG searches the distinct reports among `reports` (one
    per ECG, its own) by cosine similarity; recall@k is the share whose own report text is
    among the first k.  Returns ``{"recall@1": ..., "recall@5": ..., "recall@10": ..., "n",
    "reports"}`` (the gallery's size)."""
    from .index import ReportIndex

    reports = [str(r) for r in reports]
    gallery = sorted(set(reports))
    with torch.no_grad():
        index = ReportIndex.build(model.encode_texts(gallery).cpu().numpy(), gallery,
                                  kind="flat")
    emb = model.embed_ecgs(ecgs).cpu().numpy()
    found = index.search(emb, min(max(ks), len(gallery)))[1]
    own = np.searchsorted(np.asarray(gallery, dtype=object), np.asarray(reports, dtype=object))
    hits = found == own[:, None]
    out = {f"recall@{k}": float(hits[:, :k].any(1).mean()) for k in ks}
    return {**out, "n": int(len(reports)), "reports": len(gallery)}


# ------------------------------------------------------------------------------------- CLI


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mets_fast.zeroshot", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Zero-shot ECG classification with a trained METS model.",
        epilog="""examples:
  python -m mets_fast.zeroshot --model runs/x --data ptbxl:/data/ptb-xl --out results
  python -m mets_fast.zeroshot --model runs/x --data mitbih:/data/mitdb
  python -m mets_fast.zeroshot --model runs/x --record rec1 rec2 \\
      --classes "atrial fibrillation" "sinus rhythm" --kind rhythm""")
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", help="evaluate the built-in tasks of: synthetic, ptbxl:ROOT, "
                                     "mitbih:DIR or store:DIR")
    what.add_argument("--record", nargs="+", metavar="REC",
                      help="WFDB records (any rate and leads) to classify among --classes")
    parser.add_argument("--classes", nargs="+", metavar="NAME",
                        help="class names for --record")
    parser.add_argument("--classes-file", help="JSON of class name -> list of descriptions")
    parser.add_argument("--kind", choices=KINDS, default="diagnostic",
                        help="which METS template the classes take (default diagnostic)")
    parser.add_argument("--split", choices=("test", "val", "all"),
                        help="which ECGs of --data: a store's test split (its val split where "
                             "it has no test), MIT-BIH: all records (val: those the trainer "
                             "held out)")
    parser.add_argument("--per-class", type=int,
                        help="ECGs per class of the balanced sets (200; MIT-BIH beats 100)")
    parser.add_argument("--statements", help="PTB-XL's scp_statements.csv, for the multi-label "
                                             "AUROC of a store:DIR")
    parser.add_argument("--out", help="write zeroshot.json and confusion_<task>.png here")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on standard output and nothing else")
    parser.add_argument("--seed", type=int, default=0, help="seed of the balanced sets (0)")
    parser.add_argument("--threads", type=int, help="threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list | None = None) -> int:
    import sys

    args = build_parser().parse_args(argv)
    try:
        _check_cli(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from .model import load

        model = load(args.model)
        if args.record:
            out = _classify_records(model, args)
        else:
            out = _evaluate_data(model, args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(dumps(out))
    return 0


def _check_cli(args) -> None:
    if args.record and not (args.classes or args.classes_file):
        raise ValueError("--record needs the classes to choose among: --classes or "
                         "--classes-file")
    if args.data and (args.classes or args.classes_file):
        raise ValueError("--classes and --classes-file go with --record; --data evaluates "
                         "the built-in tasks of the data")
    if args.per_class is not None and args.per_class < 1:
        raise ValueError(f"--per-class must be a positive integer, got {args.per_class}")
    if args.data:
        from .data.prepared import parse_data

        args.spec = parse_data(args.data)
        if args.split == "all" and args.spec.kind != "mitbih":
            raise ValueError("--split all is for mitbih:DIR (a store has test and val splits)")


def _classes(args) -> dict | list:
    if not args.classes_file:
        return args.classes
    from pathlib import Path

    path = Path(args.classes_file)
    if not path.is_file():
        raise FileNotFoundError(f"--classes-file not found: {path}")
    try:
        value = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"--classes-file {path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"--classes-file must hold a JSON object of class name -> list of "
                         f"descriptions, got {type(value).__name__}")
    return value


def _classify_records(model, args) -> dict:
    """Each record's classes ranked by probability (a record longer than the model's window
    is scored window by window, the logits averaged)."""
    import sys

    from .data.records import read_record

    classifier = ZeroShotClassifier(model, _classes(args), kind=args.kind)
    out = {"model": str(args.model), "classes": list(classifier.names), "records": []}
    for path in args.record:
        rec = read_record(path)
        shared = set(rec.leads) & set(model.settings.leads)
        if not shared:
            raise ValueError(f"record {path} has the leads {list(rec.leads)}, none of which the "
                             f"model takes ({list(model.settings.leads)})")
        windows = model.preprocess(rec.signal, rec.fs, rec.leads, windows=True)
        logits = classifier.scores(windows).mean(0, keepdims=True)
        proba = softmax(logits)[0]
        order = np.argsort(-proba)
        ranked = [{"class": classifier.names[k], "probability": float(proba[k])} for k in order]
        out["records"].append({"record": str(path), "windows": int(len(windows)),
                               "ranked": ranked})
        if not args.json:
            print(f"{path} ({len(windows)} window(s) of {model.settings.seconds:g} s)")
            width = max(len(n) for n in classifier.names)
            for item in ranked:
                print(f"  {item['class']:<{width}}  {item['probability']:.3f}")
    sys.stdout.flush()
    return out


def _evaluate_data(model, args) -> dict:
    import sys
    from pathlib import Path

    from .evaluation.datasets import corpus_size, mitbih_evaluation, store_evaluation
    from .evaluation.paper import (multi_label_table, plot_confusion, retrieval_table,
                                   single_label_table)

    spec = args.spec
    if spec.kind == "mitbih":
        evaluation = mitbih_evaluation(spec.path, model.settings, split=args.split or "all",
                                       per_class=args.per_class or 100, seed=args.seed,
                                       quiet=args.quiet)
    else:
        evaluation = store_evaluation(spec, model.settings, split=args.split,
                                      per_class=args.per_class or 200, seed=args.seed,
                                      statements=args.statements, n=corpus_size(args.model),
                                      quiet=args.quiet or args.json)
    single, multi = {}, {}
    for name, labelled in evaluation.single.items():
        names = labelled.task.names()
        classifier = ZeroShotClassifier(
            model, {names[c]: list(ds) for c, ds in labelled.task.classes.items()},
            kind=labelled.task.kind)
        single[name] = {**classifier.evaluate(labelled.ecgs, labelled.labels),
                        "classes": list(classifier.names)}
    for family, ml in evaluation.multi.items():
        kind = {"superclass": "diagnostic"}.get(family, family)
        classifier = ZeroShotClassifier(model, dict(zip(ml.codes, ([d] for d in ml.descriptions))),
                                        kind=kind)
        multi[family] = multilabel_auroc(classifier, model.embed_ecgs(ml.ecgs), ml.targets)
    retrieval = {source: retrieval_recall(model, r.ecgs, r.reports)
                 for source, r in evaluation.retrieval.items()}
    out = {**single}
    if multi:
        out["ptbxl_multilabel"] = multi
    if retrieval:
        out["retrieval"] = retrieval
    if evaluation.notes:
        out["notes"] = evaluation.notes
    if not args.json:
        print(f"zero-shot, {args.data} (macro averages; balanced single-label sets):")
        print(single_label_table(single))
        if multi:
            print()
            print(multi_label_table(multi))
        if retrieval:
            print()
            print(retrieval_table(retrieval))
        for note in evaluation.notes:
            print(f"note: {note}")
    else:
        for note in evaluation.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "zeroshot.json", out)
        for name, r in single.items():
            plot_confusion(r["confusion"], r["classes"], folder / f"confusion_{name}.png",
                           f"{name} (zero-shot)")
        if not args.json:
            print(f"written to {folder}/zeroshot.json")
    return out


if __name__ == "__main__":
    import sys

    sys.exit(main())
