"""mets_fast: METS (ECG encoders aligned with a frozen language model's report embeddings),
fast: fused contrastive kernels (C++/OpenMP and CUDA), Numba ECG signal processing, cached
report embeddings, zero-shot ECG classification and FAISS retrieval.

The public face is this module: ``mets_fast.load``, ``load_encoder``, ``ZeroShotClassifier``,
``evaluate``, ``EmbeddingIndex``, ``contrastive_loss``, the data readers and ``set_threads``.
``import mets_fast`` is light: each name loads its module on first use, so ``mets_fast.signal``
and ``mets_fast.data`` work without importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

# Public names and the submodule that defines each; resolved lazily (PEP 562).
_LAZY = {
    "contrastive_loss": "loss",
    "infonce": "loss",
    "normalized_similarity": "loss",
    "ContrastiveLoss": "loss",
    "reference_contrastive_loss": "loss",
    "reference_infonce": "loss",
    "backends": "loss",
    "METSModel": "model",
    "load": "model",
    "load_encoder": "model",
    "ZeroShotClassifier": "evaluation.zeroshot",
    "evaluate": "evaluation.evaluate",
    "EmbeddingIndex": "retrieval.index",
    "FrozenTextEncoder": "text",
    "TextSpace": "text",
    "read_record": "data",
    "read_ptbxl": "data",
    "read_mitbih": "data",
    "synthetic_corpus": "data",
    "ECGStore": "data",
    "set_threads": "threads",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mets_fast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
