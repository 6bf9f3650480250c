"""Zero-shot ECG classification: class names become prompts, prompts become embeddings through
the frozen language model and the trained text projection, and each ECG takes the class whose
embedding is closest (cosine, through the fused ``normalized_similarity``; softmax with the
model's logit scale), as METS classifies (Li et al. 2023)."""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data.tasks import KINDS, ZeroShotTask
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


def evaluate_sets(model, signals, sets: dict, amp: bool = False,
                  batch_size: int = 256) -> dict:
    """Zero-shot metrics of every set (each class by its descriptions, METS's template of the
    task's kind): ``{task: evaluate()'s dict}``.  The ECGs of all sets are embedded once."""
    if not sets:
        return {}
    rows = np.unique(np.concatenate([s.rows for s in sets.values()]))
    emb = model.embed_ecgs(signals[rows], batch_size=batch_size, amp=amp)
    where = {r: k for k, r in enumerate(rows)}
    results = {}
    for name, s in sets.items():
        names = s.task.names()
        classifier = ZeroShotClassifier(
            model, {names[c]: list(ds) for c, ds in s.task.classes.items()}, kind=s.task.kind)
        pick = torch.as_tensor([where[r] for r in s.rows], dtype=torch.long)
        results[name] = classifier.evaluate_embeddings(emb[pick], s.labels)
    return results
