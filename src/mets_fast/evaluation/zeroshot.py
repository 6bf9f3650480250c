"""Zero-shot ECG classification: class names become prompts, prompts become embeddings through
the frozen language model and the trained text projection, and each ECG takes the class whose
embedding is closest (cosine, through the fused ``normalized_similarity``; softmax with the
model's logit scale), as METS classifies (Li et al. 2023)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..loss import normalized_similarity
from .metrics import classification_metrics, softmax
from .tasks import KINDS

# METS's prompt of each kind of class, embedded as it is (without the report template).
TEMPLATES = {kind: f"The ECG of {{}}, a type of {kind}." for kind in KINDS}


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
        descriptions = check_classes(classes)
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

    def predict_windows(self, windows) -> np.ndarray:
        """Class probabilities ``(C,)`` of one recording given as its preprocessed windows
        ``(n, leads, samples)`` (``model.preprocess(..., windows=True)``): the softmax of the
        windows' mean logits."""
        return softmax(self.scores(windows).mean(0, keepdims=True))[0]

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


def check_classes(classes) -> dict:
    """name -> list of descriptions, validated."""
    if isinstance(classes, str):
        raise TypeError("classes must be a list of names or a mapping name -> descriptions, "
                        "not one string")
    if isinstance(classes, (set, frozenset)):
        raise TypeError("classes must be ordered (a list or a mapping), not a set: the columns "
                        "of the probabilities follow their order")
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
        if not isinstance(descriptions, (list, tuple)):
            raise ValueError(f"class {name!r} needs a list of descriptions, got "
                             f"{descriptions!r}")
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
