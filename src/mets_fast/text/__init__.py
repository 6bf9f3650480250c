"""The frozen language model: report embeddings computed once, cached on disk, reused.

``FrozenTextEncoder().encode(reports)`` returns one float32 vector per report; every distinct
text is embedded at most once, ever (the cache lives under ``~/.cache/mets_fast/text``).
"""

from .cache import EmbeddingCache, default_cache_dir
from .encoder import REPORT_TEMPLATE, FrozenTextEncoder, pool
from .models import default_model_dir

__all__ = ["FrozenTextEncoder", "REPORT_TEMPLATE", "EmbeddingCache", "default_cache_dir",
           "default_model_dir", "pool"]
