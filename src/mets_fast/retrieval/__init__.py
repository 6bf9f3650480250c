"""Retrieval: a FAISS index over a trained model's embeddings of reports or ECGs
(:class:`EmbeddingIndex`, ``index.py``), and the embeddings of stores, reports and records that
the ``embed``, ``index`` and ``retrieve`` commands share (``embeddings.py``)."""

from .embeddings import (embed_queries, embed_records, embed_reports, embed_store, index_reports,
                         index_store, model_id)
from .index import EmbeddingIndex

__all__ = ["EmbeddingIndex", "embed_store", "embed_reports", "embed_records", "embed_queries",
           "index_store", "index_reports", "model_id"]
