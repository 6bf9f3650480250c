"""What a server holds and computes, without HTTP: the model and its indexes, loaded once; an
ECG's windows as ``model.preprocess`` makes them; zero-shot probabilities, index look-ups and
embeddings with the numbers of the library and the command-line tools."""

from __future__ import annotations

import asyncio
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch

from ..evaluation.metrics import softmax
from ..evaluation.tasks import builtin_tasks
from ..evaluation.zeroshot import TEMPLATES, ZeroShotClassifier, check_classes
from ..retrieval import EmbeddingIndex, embed_queries, model_id
from ..retrieval.embeddings import recording_query
from .batcher import Batcher
from .inputs import Recording
from .limits import Limits
from .limits import check_classes as check_class_limits

_CLASSIFIERS = 64  # class lists whose prompt embeddings are kept


class Windows(NamedTuple):
    """An ECG as the model's input: ``windows`` ``(n, leads, samples)``, each window's
    ``spans`` ``[start_s, end_s]`` in the recording and the ``notes`` (warnings) of its
    preprocessing."""

    windows: np.ndarray
    spans: list
    notes: list = []


def _model_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="mets-fast-model")


class Job(NamedTuple):
    """One ECG of a request, and what its batch computes beside its embeddings: the zero-shot
    probabilities of `prompts` (a :meth:`Service.prompts` key), the `k` nearest items of
    `index`."""

    recording: Recording
    prompts: tuple | None = None
    index: str | None = None
    k: int = 0


class Answer(NamedTuple):
    """What a batch computed for a :class:`Job`: its windows' ``spans``, its ``query`` vector
    ``(1, d)`` (``recording_query`` of its windows' embeddings), the ``zeroshot`` result, the
    ``hits`` of its index (None where the job asked for none) and the ``warnings`` its
    preprocessing gave (leads missing, unusable or not the model's; a short recording)."""

    spans: list
    query: np.ndarray
    zeroshot: dict | None
    hits: list | None
    warnings: list = []


class Service:
    """A trained model and named indexes built with it, for a server's endpoints.

    The model runs in one thread of its own (torch's intra-op threads within it), fed by a
    :class:`~mets_fast.serving.batcher.Batcher` per app with :class:`Job` lists.  Give the
    thread as `executor` (one worker) when the model was loaded in it, as :meth:`load` does:
    OpenMP makes a team of threads for each thread that runs torch, and once two teams exist
    on a CPU with no core to spare, libgomp stops spinning between parallel regions (one
    record's encoding on 2 cores: 8 ms with one team, 15 ms with two).

    ECGs are embedded in float32 whatever the model trained in, so that a record's numbers do
    not depend on what it was batched with (bfloat16 is used from 8 ECGs a batch on a CPU) and
    equal those of the tools that score one record."""

    def __init__(self, model, indexes: Mapping[str, EmbeddingIndex] | None = None, *,
                 max_batch: int = 64, max_wait_ms: float = 5.0,
                 executor: ThreadPoolExecutor | None = None, limits: Limits = Limits()):
        self.model = model.eval()
        self.id = model_id(model)
        self.indexes = dict(indexes or {})
        if max_batch < 1 or not 0 <= max_wait_ms <= 10_000:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms from 0 to 10000, got "
                             f"{max_batch} and {max_wait_ms}")
        self.limits = limits.check()
        self.executor = executor or _model_thread()
        # bodies are parsed and uploads read here, one at a time (memory stays bounded), off
        # the event loop and off the model's thread
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mets-fast-read")
        self.max_batch, self.max_wait_ms = max_batch, max_wait_ms
        self._classifiers: OrderedDict = OrderedDict()
        # what clients send is never written to the text cache on disk, and only the last
        # `limits.memory` prompts and queries are kept in memory (options apply when the
        # model's language model is first built: here, unless a caller gave it one)
        if model.text_space.model:
            model.text_encoder(cache_dir=False, memory=int(self.limits.memory))

    @classmethod
    def load(cls, run: str | Path, indexes: Mapping[str, str | Path] | None = None,
             **kwargs) -> "Service":
        """The model of run directory `run` and each index directory of `indexes` (name ->
        folder), each refused unless built by this model; loaded in the model's thread."""
        from ..model import load

        def build() -> "Service":
            model = load(run)
            mine = model_id(model)
            return cls(model, {name: EmbeddingIndex.load(path, model_id=mine)
                               for name, path in (indexes or {}).items()},
                       executor=executor, **kwargs)

        executor = _model_thread()
        try:
            return executor.submit(build).result()
        except BaseException:
            executor.shutdown(wait=False)
            raise

    def info(self) -> dict:
        s = self.model.settings
        return {"model": self.id,
                "preprocessing": {"fs": s.fs, "leads": list(s.leads), "seconds": s.seconds},
                "limits": self.limits._asdict(),
                "indexes": [{"name": name, "items": index.items, "kind": index.kind,
                             "count": len(index), "dim": index.dim}
                            for name, index in self.indexes.items()],
                "tasks": {name: {"kind": task.kind, "classes": list(task.names().values())}
                          for name, task in builtin_tasks().items()}}

    def windows(self, recording: Recording) -> Windows:
        """The recording's consecutive windows (``model.preprocess(..., windows=True)``) and,
        in ``notes``, the warnings its preprocessing gave."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = self.model.preprocess(recording.signal, recording.fs, recording.leads,
                                      windows=True, name="the ECG")
        seconds = self.model.settings.seconds
        length = recording.signal.shape[-1] / recording.fs
        spans = [[k * seconds, min((k + 1) * seconds, length)] for k in range(len(x))]
        return Windows(x, spans, [str(w.message) for w in caught])

    def window_count(self, recording: Recording) -> int:
        """How many windows :meth:`windows` makes of `recording` (what encoding it costs),
        from its length alone."""
        seconds = recording.signal.shape[-1] / recording.fs
        return max(1, int(seconds / self.model.settings.seconds + 1e-9))

    def batcher(self) -> Batcher:
        """A new :class:`~mets_fast.serving.batcher.Batcher` of :meth:`run_batch` (one per app:
        it belongs to the event loop that starts it); a batch holds at most
        ``limits.windows`` windows, so that one large request delays the others by one batch
        at most."""
        return Batcher(self.run_batch, self.executor, self.max_batch, self.max_wait_ms / 1000,
                       cost=lambda job: self.window_count(job.recording),
                       max_cost=int(self.limits.windows))

    async def run(self, fn, *args):
        """`fn(*args)` in the model's thread (a text's encoding and search)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def read(self, fn, *args):
        """`fn(*args)` in the reading thread (a body's parsing, an upload's reading)."""
        return await asyncio.get_running_loop().run_in_executor(self.reader, fn, *args)

    def prompts(self, classes=None, task: str | None = None, kind: str | None = None) -> tuple:
        """The checked key of a zero-shot class list for :class:`Job`: `classes` (names, or
        name -> descriptions) or a built-in `task`, and the prompt `kind`."""
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
        check_class_limits(self.limits, described)
        return tuple((n, tuple(ds)) for n, ds in described.items()), kind or "diagnostic"

    def classifier(self, prompts: tuple) -> ZeroShotClassifier:
        """The classifier of a :meth:`prompts` key, its prompt embeddings kept for the next
        request with the same list (in the model's thread: a new list is encoded by the
        language model)."""
        if prompts not in self._classifiers:
            described, kind = dict((n, list(ds)) for n, ds in prompts[0]), prompts[1]
            self._classifiers[prompts] = ZeroShotClassifier(self.model, described, kind=kind)
            if len(self._classifiers) > _CLASSIFIERS:
                self._classifiers.popitem(last=False)
        self._classifiers.move_to_end(prompts)
        return self._classifiers[prompts]

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

    def check_search(self, index, k) -> None:
        """Raises ValueError unless `index` names an index and `k` is from 1 to its size."""
        if index not in self.indexes:
            raise ValueError(f"unknown index {index!r}; the indexes are {sorted(self.indexes)}")
        found = self.indexes[index]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(found):
            raise ValueError(f"k must be an integer from 1 to the {len(found)} items of index "
                             f"{index!r}, got {k!r}")

    def search(self, index: str, queries: np.ndarray, ks: Sequence[int]) -> list:
        """The ``ks[i]`` nearest items of index `index` to each query ``(n, d)``, in one FAISS
        call: per query ``[{"rank", "score", "text" | "id"}]``."""
        for k in ks:
            self.check_search(index, k)
        found = self.indexes[index]
        scores, ids = found.search(queries, max(ks))
        field = "text" if found.items == "reports" else "id"
        names = found.texts
        return [[{"rank": r + 1, "score": float(s),
                  field: names[i] if names is not None else int(i)}
                 for r, (i, s) in enumerate(zip(ids[q, :k], scores[q, :k]))]
                for q, k in enumerate(ks)]

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings ``(n, d)`` of windows, in float32."""
        return self.model.embed_ecgs(windows, amp=False).cpu().numpy()

    def run_batch(self, jobs: Sequence["Job"]) -> list:
        """Each job's :class:`Answer`, or the exception that job raised (a record too short,
        ...; the others are answered all the same): the jobs' windows encoded in one call,
        each index searched once for all its jobs.  In the model's thread (the batcher)."""
        answers: list = [None] * len(jobs)
        windows = {}
        for j, job in enumerate(jobs):
            try:
                windows[j] = self.windows(job.recording)
            except Exception as exc:  # noqa: BLE001 - this job's answer
                answers[j] = exc
        if not windows:
            return answers
        embeddings = self.encode(np.concatenate([w.windows for w in windows.values()]))
        bounds = np.cumsum([0] + [len(w.windows) for w in windows.values()])
        own = {j: embeddings[a:b] for j, a, b in zip(windows, bounds[:-1], bounds[1:])}
        queries = {j: recording_query(e) for j, e in own.items()}
        hits: dict = {}
        for index in {jobs[j].index for j in windows} - {None}:
            mine = [j for j in windows if jobs[j].index == index]
            try:
                found = self.search(index, np.concatenate([queries[j] for j in mine]),
                                    [jobs[j].k for j in mine])
            except Exception as exc:  # noqa: BLE001 - these jobs' answer
                found = [exc] * len(mine)
            hits.update(zip(mine, found))
        for j in windows:
            prompts, found = jobs[j].prompts, hits.get(j)
            try:
                if isinstance(found, Exception):
                    raise found
                result = None if prompts is None else \
                    self.zeroshot(self.classifier(prompts), own[j], windows[j].spans)
                answers[j] = Answer(windows[j].spans, queries[j], result, found,
                                    windows[j].notes)
            except Exception as exc:  # noqa: BLE001 - this job's answer
                answers[j] = exc
        return answers

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.reader.shutdown(wait=False, cancel_futures=True)

