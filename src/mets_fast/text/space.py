"""The text space: everything that decides a report's frozen embedding besides its text (which
language model, from which files, pooled how, cut at which length, wrapped in which template,
in which arithmetic) and its width.  The trainer records it in the model, the model rebuilds its
language model from it, and the embedding cache and the indexes are keyed by it."""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

# METS wraps every report in this sentence before embedding it.
REPORT_TEMPLATE = "The report of the ECG is that {}"


class TextSpace(NamedTuple):
    """``model``: the language model as it was asked for (``"default"``, a directory, a hub
    id); ``source``: where it was loaded from; ``identity``: the hash of its files; ``pooling``
    (``"mean"`` or ``"cls"``), ``max_length`` (tokens), ``template`` (wraps each report),
    ``dtype`` (the model's arithmetic) and ``dim`` (the embeddings' width)."""

    model: str = ""
    source: str = ""
    identity: str = ""
    pooling: str = "mean"
    template: str = REPORT_TEMPLATE
    max_length: int = 256
    dtype: str = "float32"
    dim: int = 0

    def key(self, template: str | None = None) -> str:
        """The cache key of the space (with `template` instead of the space's own, e.g.
        ``"{}"`` for class prompts): a hash of all but ``model``, ``source`` and ``dim``."""
        key = {"model": self.identity, "pooling": self.pooling, "max_length": self.max_length,
               "template": self.template if template is None else template,
               "dtype": self.dtype}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict:
        return self._asdict()

    @classmethod
    def from_dict(cls, values: dict | None, dim: int | None = None) -> "TextSpace":
        """The space a model's config recorded (fields it lacks take their defaults; `dim`,
        when given, is the width of the model's text projection, which it must match)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls._fields))
        if unknown:
            raise ValueError(f"the text space has unknown fields {unknown}; it takes "
                             f"{list(cls._fields)}")
        if dim is not None:
            recorded = values.setdefault("dim", dim)
            if recorded != dim:
                raise ValueError(f"the text space records {recorded}-d embeddings but the text "
                                 f"projection takes {dim}")
        space = cls(**values)
        if not isinstance(space.max_length, int) or isinstance(space.max_length, bool):
            raise ValueError(f"the text space's max_length must be an integer, got "
                             f"{space.max_length!r}")
        return space
