"""What a server holds and computes, without HTTP: the model and its indexes, loaded once; an
ECG's windows as ``model.preprocess`` makes them; zero-shot probabilities, index look-ups and
embeddings with the numbers of the library and the command-line tools."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import torch

from ..evaluation.metrics import softmax
from ..evaluation.tasks import builtin_tasks
from ..evaluation.zeroshot import TEMPLATES, ZeroShotClassifier, check_classes
from ..retrieval import EmbeddingIndex, embed_queries, model_id
from .batcher import Batcher
from .inputs import Recording

_CLASSIFIERS = 64  # class lists whose prompt embeddings are kept


class Windows(NamedTuple):
    """An ECG as the model's input: ``windows`` ``(n, leads, samples)`` and each window's
    ``spans`` ``[start_s, end_s]`` in the recording."""

    windows: np.ndarray
    spans: list


class Service:
    """A trained model and named indexes built with it, for a server's endpoints.

    The model runs in one thread of its own (torch's intra-op threads within it), fed by a
    :class:`~mets_fast.serving.batcher.Batcher` per app; ECGs are embedded in float32 whatever the
    model trained in, so that a record's numbers do not depend on what it was batched with
    (bfloat16 is used from 8 ECGs a batch on a CPU) and equal those of the tools that score
    one record."""

    def __init__(self, model, indexes: Mapping[str, EmbeddingIndex] | None = None, *,
                 max_batch: int = 64, max_wait_ms: float = 5.0):
        self.model = model.eval()
        self.id = model_id(model)
        self.indexes = dict(indexes or {})
        if max_batch < 1 or not 0 <= max_wait_ms <= 10_000:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms from 0 to 10000, got "
                             f"{max_batch} and {max_wait_ms}")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mets-fast-model")
        self.max_batch, self.max_wait_ms = max_batch, max_wait_ms
        self._classifiers: OrderedDict = OrderedDict()

    @classmethod
    def load(cls, run: str | Path, indexes: Mapping[str, str | Path] | None = None,
             **kwargs) -> "Service":
        """The model of run directory `run` and each index directory of `indexes` (name ->
        folder), each refused unless built by this model."""
        from ..model import load

        model = load(run)
        mine = model_id(model)
        return cls(model, {name: EmbeddingIndex.load(path, model_id=mine)
                           for name, path in (indexes or {}).items()}, **kwargs)

    def info(self) -> dict:
        s = self.model.settings
        return {"model": self.id,
                "preprocessing": {"fs": s.fs, "leads": list(s.leads), "seconds": s.seconds},
                "indexes": [{"name": name, "items": index.items, "kind": index.kind,
                             "count": len(index), "dim": index.dim}
                            for name, index in self.indexes.items()],
                "tasks": {name: {"kind": task.kind, "classes": list(task.names().values())}
                          for name, task in builtin_tasks().items()}}

    def windows(self, recording: Recording) -> Windows:
        """The recording's consecutive windows (``model.preprocess(..., windows=True)``)."""
        x = self.model.preprocess(recording.signal, recording.fs, recording.leads,
                                  windows=True, name="the ECG")
        seconds = self.model.settings.seconds
        length = recording.signal.shape[-1] / recording.fs
        spans = [[k * seconds, min((k + 1) * seconds, length)] for k in range(len(x))]
        return Windows(x, spans)

    def batcher(self) -> Batcher:
        """A new :class:`~mets_fast.serving.batcher.Batcher` of this model (one per app: it
        belongs to the event loop that starts it)."""
        return Batcher(self.encode, self.executor, self.max_batch, self.max_wait_ms / 1000)

    async def run(self, fn, *args):
        """`fn(*args)` in the model's thread (text encoding, index search)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def classifier(self, classes=None, task: str | None = None,
                   kind: str | None = None) -> ZeroShotClassifier:
        """The classifier of `classes` (names, or name -> descriptions) or of a built-in
        `task`, its prompt embeddings kept for the next request with the same list.  Run it
        in the model's thread (:meth:`run`): a new list is encoded by the language model."""
        if (classes is None) == (task is None):
            raise ValueError("give classes or task (one of the two)")
        if task is not None and not isinstance(task, str) or \
                kind is not None and not isinstance(kind, str):
            raise ValueError("task and kind must be strings")
        if kind is not None and kind not in TEMPLATES:
            raise ValueError(f"kind must be one of {sorted(TEMPLATES)}, got {kind!r}")
        if task is not None:
            known = builtin_tasks()
            if task not in known:
                raise ValueError(f"unknown task {task!r}; the tasks are {sorted(known)}")
            names = known[task].names()
            classes = {names[c]: list(ds) for c, ds in known[task].classes.items()}
            kind = kind or known[task].kind
        described = check_classes(classes)
        key = (tuple((n, tuple(ds)) for n, ds in described.items()), kind or "diagnostic")
        if key not in self._classifiers:
            self._classifiers[key] = ZeroShotClassifier(self.model, described, kind=key[1])
            if len(self._classifiers) > _CLASSIFIERS:
                self._classifiers.popitem(last=False)
        self._classifiers.move_to_end(key)
        return self._classifiers[key]

    @staticmethod
    def zeroshot(classifier: ZeroShotClassifier, embeddings: np.ndarray,
                 spans: list) -> dict:
        """The probabilities of each window and of the recording (the softmax of the windows'
        mean logits, as ``ZeroShotClassifier.predict_windows``)."""
        logits = classifier.score_embeddings(torch.from_numpy(embeddings))
        return {"classes": list(classifier.names),
                "probabilities": softmax(logits).tolist(),
                "mean": softmax(logits.mean(0, keepdims=True))[0].tolist(),
                "windows": spans}

    def text_query(self, text: str) -> np.ndarray:
        """A report's query vector ``(1, d)`` (the language model, the report template)."""
        return embed_queries(self.model, texts=[text])

    def search(self, index: str, query: np.ndarray, k) -> list:
        """The `k` nearest items of index `index`: ``[{"rank", "score", "text" | "id"}]``."""
        if index not in self.indexes:
            raise ValueError(f"unknown index {index!r}; the indexes are {sorted(self.indexes)}")
        found = self.indexes[index]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(found):
            raise ValueError(f"k must be an integer from 1 to the {len(found)} items of index "
                             f"{index!r}, got {k!r}")
        scores, ids = found.search(query, k)
        field = "text" if found.items == "reports" else "id"
        names = found.texts
        return [{"rank": r + 1, "score": float(s),
                 field: names[i] if names is not None else int(i)}
                for r, (i, s) in enumerate(zip(ids[0], scores[0]))]

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings ``(n, d)`` of windows (in the model's thread: the batcher calls it)."""
        return self.model.embed_ecgs(windows, amp=False).cpu().numpy()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

