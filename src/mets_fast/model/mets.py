"""The METS model: a trainable ECG encoder and two linear projections into one shared space,
aligned by the fused contrastive loss against a frozen language model's report embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.preprocess import DEFAULT_SETTINGS, Settings, prepare_recording
from ..loss import ContrastiveLoss
from ..precision import device_bf16
from ..text.space import TextSpace
from .resnet1d import ResNet1d

AMP_MIN_BATCH = 8  # CPU batches below this encode in float32 even for a bfloat16 model


class METSModel(nn.Module):
    """ResNet1d-18 ECG encoder + linear projection, a linear projection over frozen text
    embeddings, and the :class:`~mets_fast.loss.ContrastiveLoss` that owns the logit scale.

    Args:
        text_dim: width of the language model's embeddings (384 for all-MiniLM-L6-v2, 768 for
            Bio_ClinicalBERT): the input of the text projection.
        embed_dim: the shared space (128 in METS).
        settings: the preprocessing the training store was made with; :meth:`preprocess`
            repeats it, and the encoder takes ``len(settings.leads)`` leads.
        encoder: keyword arguments of :class:`~mets_fast.model.resnet1d.ResNet1d` besides the
            lead count (kernel sizes, widths).
        text: the :class:`~mets_fast.text.TextSpace` of the frozen text side (or its dict, as
            a config records it): the language model, its files' hash, pooling, template,
            maximum length, arithmetic.  :meth:`text_encoder` rebuilds the language model from
            it.
        init_temperature: the loss's initial temperature (0.07: scale 1/0.07).
        amp: the model was trained under bfloat16 autocast; :meth:`embed_ecgs` then encodes
            batches in bfloat16 too where the device computes it natively (2x faster on
            CPUs with AMX; embeddings within cosine 0.9999 of float32's).
    """

    def __init__(self, text_dim: int, embed_dim: int = 128, settings: Settings = DEFAULT_SETTINGS,
                 encoder: dict | None = None, text: TextSpace | dict | None = None,
                 init_temperature: float = 0.07, amp: bool = False):
        super().__init__()
        if not isinstance(text_dim, int) or text_dim < 1:
            raise ValueError(f"text_dim must be a positive integer, got {text_dim!r}")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        self.settings = settings
        self.text_space = TextSpace.from_dict(text._asdict() if isinstance(text, TextSpace)
                                              else text, dim=text_dim)
        self.encoder = ResNet1d(len(settings.leads), **(encoder or {}))
        self.ecg_projection = nn.Linear(self.encoder.out_features, embed_dim)
        self.text_projection = nn.Linear(text_dim, embed_dim)
        self.loss = ContrastiveLoss(init_temperature)
        self.embed_dim, self.text_dim = embed_dim, text_dim
        self._init_temperature = float(init_temperature)
        self.amp = bool(amp)
        self._text_encoder = None
        # the SHA-256 of the weights a run directory holds (set by ``load``): names the model
        # an index was built with; None for a model not loaded from a run
        self.run_id: str | None = None
        self.run_dir: str | None = None  # the run directory ``load`` read it from

    # --------------------------------------------------------------------------------- config

    @property
    def config(self) -> dict:
        """Everything :meth:`from_config` needs to rebuild this model (JSON-serialisable)."""
        encoder = {k: v for k, v in self.encoder.config.items() if k != "leads"}
        return {"encoder": "resnet1d", "encoder_config": encoder, "embed_dim": self.embed_dim,
                "text_dim": self.text_dim, "init_temperature": self._init_temperature,
                "amp": self.amp, "preprocessing": self.settings.as_dict(),
                "text": self.text_space.as_dict()}

    @classmethod
    def from_config(cls, config: dict) -> "METSModel":
        """The model :attr:`config` describes (untrained).  A ValueError names the first key
        that is missing or holds a value of the wrong kind (``model.embed_dim`` ...)."""
        if not isinstance(config, dict):
            raise ValueError(f"the key 'model' must hold the model's configuration (an object), "
                             f"got {type(config).__name__}")
        missing = [k for k in ("encoder", "encoder_config", "embed_dim", "text_dim",
                               "preprocessing") if k not in config]
        if missing:
            raise ValueError(f"the model's configuration lacks the key(s) "
                             f"{', '.join('model.' + k for k in missing)}")
        if config["encoder"] != "resnet1d":
            raise ValueError(f"unknown encoder {config['encoder']!r} (this mets_fast builds "
                             f"'resnet1d')")
        for key in ("embed_dim", "text_dim"):
            if isinstance(config[key], bool) or not isinstance(config[key], int) or \
                    config[key] < 1:
                raise ValueError(f"model.{key} must be a positive integer, got {config[key]!r}")
        for key in ("encoder_config", "preprocessing"):
            if not isinstance(config[key], dict):
                raise ValueError(f"model.{key} must be an object, got "
                                 f"{type(config[key]).__name__}")
        temperature = config.get("init_temperature", 0.07)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0 < temperature < float("inf"):
            raise ValueError(f"model.init_temperature must be a positive number, got "
                             f"{temperature!r}")
        try:
            settings = Settings.from_dict(config["preprocessing"])
        except ValueError as exc:
            raise ValueError(f"model.preprocessing: {exc}") from None
        try:
            return cls(config["text_dim"], config["embed_dim"], settings,
                       config["encoder_config"], config.get("text"), float(temperature),
                       bool(config.get("amp", False)))
        except TypeError as exc:  # an encoder_config key ResNet1d does not take
            raise ValueError(f"model.encoder_config does not fit this mets_fast's encoder: "
                             f"{exc}") from None

    # ------------------------------------------------------------------------------- encoding

    @property
    def logit_scale(self) -> Tensor:
        """The multiplier 1 / temperature (the loss module's; used for zero-shot too)."""
        return self.loss.logit_scale

    @property
    def device(self) -> torch.device:
        return self.text_projection.weight.device

    def ecg_features(self, ecg: Tensor | np.ndarray) -> Tensor:
        """The encoder's pooled features ``(N, 512)`` of preprocessed ECGs ``(N, leads,
        samples)`` (a NumPy array is moved to the model's device): what a linear probe reads."""
        if isinstance(ecg, np.ndarray):
            ecg = torch.from_numpy(np.ascontiguousarray(ecg, dtype=np.float32))
        return self.encoder(ecg.to(self.device))

    def encode_ecg(self, ecg: Tensor | np.ndarray) -> Tensor:
        """L2-normalised embeddings ``(N, embed_dim)`` of preprocessed ECGs."""
        return F.normalize(self.ecg_projection(self.ecg_features(ecg)).float(), dim=-1)

    @torch.no_grad()
    def embed_ecgs(self, ecgs, batch_size: int = 256, amp: bool | None = None) -> Tensor:
        """:meth:`encode_ecg` over many preprocessed ECGs ``(N, leads, samples)`` in eval mode
        (the previous mode is restored), `batch_size` at a time: any array that slices (a
        store's float16 memory map included) or a tensor.

        ``amp``: bfloat16 autocast (default: as the model was trained, :attr:`amp`, where this
        device computes bfloat16 natively: :mod:`mets_fast.precision`; a CPU that emulates it
        would take 10x longer).  On the CPU, batches of fewer than :data:`AMP_MIN_BATCH` ECGs
        stay in float32, which oneDNN runs faster there (one record's latency)."""
        shape = tuple(getattr(ecgs, "shape", ()))
        expected = (len(self.settings.leads), self.settings.samples)
        if len(shape) != 3 or shape[1:] != expected:
            raise ValueError(f"ECGs must be (N, {expected[0]}, {expected[1]}) as "
                             f"model.preprocess makes them, got shape {shape}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if amp is None:
            amp = self.amp and device_bf16(self.device)[0]
        training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, shape[0], batch_size):
                chunk = ecgs[start:start + batch_size]
                if not isinstance(chunk, Tensor):
                    chunk = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
                if not bool(torch.isfinite(chunk).all()):
                    bad = start + int((~torch.isfinite(chunk)).flatten(1).any(1).nonzero()[0])
                    raise ValueError(f"ECG {bad} holds NaN or inf: make ECGs with "
                                     f"model.preprocess, which fills or zeroes invalid samples")
                half = amp and (self.device.type != "cpu" or len(chunk) >= AMP_MIN_BATCH)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=half):
                    out.append(self.encode_ecg(chunk.float()))
        finally:
            self.train(training)
        if not out:
            return torch.empty((0, self.embed_dim), device=self.device)
        return torch.cat(out)

    def encode_text_embeddings(self, text_emb: Tensor | np.ndarray) -> Tensor:
        """L2-normalised embeddings ``(N, embed_dim)`` of frozen language-model embeddings
        ``(N, text_dim)``."""
        if isinstance(text_emb, np.ndarray):
            text_emb = torch.from_numpy(np.ascontiguousarray(text_emb, dtype=np.float32))
        return F.normalize(self.text_projection(text_emb.to(self.device)).float(), dim=-1)

    def forward(self, ecg: Tensor, text_emb: Tensor, groups: Tensor | None = None) -> Tensor:
        """The METS loss of a batch: ECGs ``(B, leads, samples)`` against their reports'
        frozen embeddings ``(B, text_dim)`` (the fused kernel normalises both sides).
        ``groups``: ``(B,)`` report ids; pairs of one report are then not each other's
        negatives (``loss.contrastive_loss``)."""
        x = self.ecg_projection(self.encoder(ecg)).float()
        y = self.text_projection(text_emb).float()
        return self.loss(x, y, groups)

    def text_encoder(self, **options):
        """The frozen language model this model was trained against, rebuilt from
        :attr:`text` (loaded once, then reused; its embeddings are cached on disk).  `options`
        (``cache_dir``, ``memory``, ``device``: see :class:`~mets_fast.text.FrozenTextEncoder`)
        apply when it is first built."""
        if self._text_encoder is None:
            from ..text import FrozenTextEncoder

            space = self.text_space
            if not space.model:
                raise ValueError("this model records no text encoder (its config has no 'text' "
                                 "model); encode texts with FrozenTextEncoder yourself")
            encoder = FrozenTextEncoder(model=space.model, pooling=space.pooling,
                                        max_length=space.max_length, template=space.template,
                                        dtype=space.dtype, **options)
            if space.identity and encoder.identity != space.identity:
                raise ValueError(
                    f"the language model {space.model!r} found here (files "
                    f"{encoder.identity[:12]}) is not the one this model was trained with "
                    f"({space.identity[:12]}): its embeddings would not match the trained "
                    f"projection")
            self.use_text_encoder(encoder)
        return self._text_encoder

    def use_text_encoder(self, encoder) -> None:
        """Encodes texts with `encoder` (a :class:`~mets_fast.text.FrozenTextEncoder` already
        loaded, such as the trainer's) instead of loading the language model again; it must
        embed into this model's text width."""
        if encoder.dim != self.text_dim:
            raise ValueError(f"the language model embeds {encoder.dim}-d vectors; this model's "
                             f"text projection takes {self.text_dim}")
        self._text_encoder = encoder

    def encode_texts(self, texts: Sequence[str], template: str | None = None) -> Tensor:
        """L2-normalised embeddings of texts through the frozen language model (its cache)
        and the text projection.  `template` as in
        :meth:`~mets_fast.text.FrozenTextEncoder.encode` (``"{}"``: texts as they are, as
        zero-shot class prompts are embedded); the default is the report template."""
        return self.encode_text_embeddings(self.text_encoder().encode(texts, template=template))

    # ---------------------------------------------------------------------------- preprocess

    def preprocess(self, signal: np.ndarray, fs: float, leads: Sequence[str], *,
                   windows: bool = False, name: str = "the recording") -> np.ndarray:
        """Any recording (any rate, lead names and order, length) as this model's input,
        made exactly as its training data was: resampled, leads reordered (missing or unusable
        ones zero, with one warning naming them), cropped or padded, cleaned and normalised.

        `signal` is ``(leads, samples)`` or a batch ``(n, leads, samples)`` in mV; returns
        float32 ``(leads, samples)`` (``(n, leads, samples)`` for a batch, or for the
        consecutive windows of one recording with ``windows=True``); `name` is what messages
        call it.  See :func:`mets_fast.data.preprocess.prepare_recording`."""
        return prepare_recording(signal, fs, leads, self.settings, windows=windows, name=name)

    def record_windows(self, path) -> np.ndarray:
        """The WFDB record at `path` (any rate and lead set) as this model's input: its
        consecutive windows ``(n, leads, samples)`` (:meth:`preprocess` with ``windows=True``).
        A record sharing no usable lead with the model is a ValueError naming the record."""
        from ..data.records import read_record

        rec = read_record(path)
        return self.preprocess(rec.signal, rec.fs, rec.leads, windows=True,
                               name=f"record {path}")
