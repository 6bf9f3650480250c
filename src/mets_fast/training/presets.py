"""Training presets: settings that go together, chosen by ``--preset`` and overridden flag by
flag."""

from __future__ import annotations

from typing import NamedTuple

from ..data.sources.synthetic import CORPUS_SIZE


class Preset(NamedTuple):
    """``epochs``, ``batch_size`` (the global batch, split over the processes), Adam's ``lr``
    and ``weight_decay``, ``embed_dim`` (the shared space), ``schedule`` (``"cosine"``: a
    linear warm-up over ``warmup`` of the steps, then a cosine decay to zero; ``"constant"``),
    ``amp`` (bfloat16 autocast where the device computes it natively:
    :mod:`mets_fast.precision`), ``corpus_size`` (ECGs of the synthetic corpus),
    ``negatives`` (``"all"``: every other pair of the batch is a negative, as CLIP and METS;
    ``"distinct-reports"``: pairs of the same report are not, see ``loss.contrastive_loss``),
    and the strengths of the batch augmentations (:mod:`~mets_fast.training.augment`), each 0
    for off: ``aug_scale``, the standard deviation of the logarithm of a random gain per lead;
    ``aug_noise``, of white noise; ``aug_powerline``, the amplitude of a power-line sinusoid
    (50 or 60 Hz, as a device sampling at the store's rate records it); ``aug_wander``, the
    amplitude of a baseline wander of 0.05-0.5 Hz; ``aug_shift``, the longest time shift in
    seconds (what is shifted in is zeros, as the padding of a short record); ``aug_leads``, the
    probability that an ECG keeps only a random subset of its leads (how many: uniform from one
    to all it has; which: uniform), the others made missing (zeros), as a handheld or a 3-lead
    monitor records.  Amplitudes are in the store's units (one lead standard deviation with the
    default normalisation)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    embed_dim: int
    schedule: str
    warmup: float
    amp: bool
    corpus_size: int
    negatives: str = "all"
    aug_scale: float = 0.0
    aug_noise: float = 0.0
    aug_powerline: float = 0.0
    aug_wander: float = 0.0
    aug_shift: float = 0.0
    aug_leads: float = 0.0


NEGATIVES = ("all", "distinct-reports")

PRESETS = {
    # sized to a 2-core CPU: the whole default run (corpus, embeddings, training and the
    # per-epoch zero-shot scoring) in under 10 minutes with AMX (bf16); 14 with AVX512-BF16,
    # 30 in float32 on AVX2 alone (README: "bfloat16 only where the CPU computes it")
    "default": Preset(epochs=12, batch_size=128, lr=3e-3, weight_decay=1e-3, embed_dim=128,
                      schedule="cosine", warmup=0.05, amp=True, corpus_size=CORPUS_SIZE,
                      negatives="distinct-reports"),
    # Li et al. 2023: Adam, lr 1e-3, weight decay 1e-3, batch 32, 50 epochs, 128-d
    "paper": Preset(epochs=50, batch_size=32, lr=1e-3, weight_decay=1e-3, embed_dim=128,
                    schedule="constant", warmup=0.0, amp=False, corpus_size=10000),
    # real data beside the synthetic corpus, for ECGs of other devices, patients and lead
    # sets; sized so that the README's three-source run takes about 4 minutes on a 2-core CPU
    # and the ablation (benchmarks/bench_generalisation.py, 24 runs) 90.  Chosen by
    # measurement, with the figures in the design notes: 4 epochs, 4,000 synthetic ECGs, every
    # augmentation on, sources mixed by size.
    "real": Preset(epochs=4, batch_size=128, lr=3e-3, weight_decay=1e-3, embed_dim=128,
                   schedule="cosine", warmup=0.05, amp=True, corpus_size=4000,
                   negatives="distinct-reports", aug_scale=0.15, aug_noise=0.05,
                   aug_powerline=0.05, aug_wander=0.1, aug_shift=1.0, aug_leads=0.5),
    # one short epoch: checks that everything runs (CI)
    "smoke": Preset(epochs=1, batch_size=32, lr=1e-3, weight_decay=1e-3, embed_dim=128,
                    schedule="cosine", warmup=0.0, amp=True, corpus_size=384),
}
# What the default preset changes for some data.  MIT-BIH: many short beat windows.  Synthetic:
# all negatives.  Its reports rarely repeat within a batch (2 of a row's 127 negatives share its
# report, against 31 in a MIT-BIH batch), and benchmarks/bench_negatives.py measured no gain
# there (rhythm 0.941 either way, superclass 0.968 -> 0.956; 3 seeds), where MIT-BIH gained on
# every seed (held-out patients: accuracy 0.494 -> 0.521, macro-F1 0.361 -> 0.384).
DATA_OVERRIDES = {"default": {"mitbih": {"epochs": 10, "batch_size": 128},
                              "synthetic": {"negatives": "all"}}}


def preset_for(name: str, data_kind: str) -> Preset:
    """The preset `name` as it applies to data of `data_kind`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]._replace(**DATA_OVERRIDES.get(name, {}).get(data_kind, {}))
