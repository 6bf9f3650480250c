"""The frozen language model: report embeddings computed once, cached on disk, reused.

``FrozenTextEncoder().encode(reports)`` returns one float32 vector per report; every distinct
text is embedded at most once, ever (the cache lives under ``~/.cache/mets_fast/text``).
:class:`TextSpace` names everything that decides those vectors.
"""

from ..paths import default_cache_dir
from .cache import EmbeddingCache
from .encoder import FrozenTextEncoder, pool
from .models import default_model_dir
from .space import REPORT_TEMPLATE, TextSpace

__all__ = ["FrozenTextEncoder", "TextSpace", "REPORT_TEMPLATE", "EmbeddingCache",
           "default_cache_dir", "default_model_dir", "pool"]
