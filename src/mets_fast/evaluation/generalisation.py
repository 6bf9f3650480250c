"""How a model does on data it never trained on: the figures the real-data recipe
(``--preset real``) is chosen by and its ablation reports.

    cinc       zero-shot macro AUROC over a Challenge tree's scored classes that at least
               `min_positives` recordings carry, with all 12 leads and with lead I alone
               (a handheld device); none of its recordings is in the recipe's training data
    merl       MERL's PTB-XL rhythm and superclass test sets (PTB-XL's fold 10, never
               trained on), zero-shot macro AUROC with MERL's class descriptions
    mitbih     METS's MIT-BIH beat task on the DS1 records the trainer holds out (patients
               it never saw), zero-shot macro F1

Each part is scored only when its data is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.spec import DataSpec
from .challenge import challenge_zeroshot
from .datasets import mitbih_evaluation
from .merl import merl_zeroshot

# The figures, in the order tables print them: key -> (column title, target of issue 22)
FIGURES = {"cinc_12": ("CinC 12-lead AUROC", 0.80), "cinc_lead_i": ("CinC lead I AUROC", None),
           "merl_rhythm": ("PTB-XL rhythm AUROC", 0.85),
           "merl_super": ("PTB-XL superclass AUROC", 0.75),
           "mitbih_f1": ("MIT-BIH held-out F1", 0.55)}


def generalisation(model, *, cinc: str | Path | None = None, ptbxl: str | Path | None = None,
                   mitbih: str | Path | None = None, min_positives: int = 7,
                   quiet: bool = True) -> dict:
    """The figures of :data:`FIGURES` that the data given allow, as ``{key: value}``, plus
    ``cinc_classes`` (the Challenge classes averaged: abbreviation -> recordings carrying it).

    Args:
        model: a trained :class:`~mets_fast.model.METSModel`.
        cinc: a PhysioNet/CinC Challenge tree (every recording is scored: ``split="all"``).
        ptbxl: a PTB-XL root holding some of MERL's test ids.
        mitbih: a folder of MIT-BIH records (the trainer's held-out ones are scored).
        min_positives: a Challenge class counts in the mean when at least this many
            recordings carry it (fewer give an AUROC that one recording swings by 0.1 and
            more); at least 1.
    """
    if min_positives < 1:
        raise ValueError(f"min_positives must be at least 1, got {min_positives}")
    out: dict = {}
    if cinc is not None:
        spec = DataSpec("challenge", Path(cinc))
        for key, leads in (("cinc_12", None), ("cinc_lead_i", ["I"])):
            result = challenge_zeroshot(model, spec, split="all", quiet=quiet, leads=leads)
            kept = {c: n for c, n in result["positives"].items()
                    if n >= min_positives and c in result["per_class"]}
            if not kept:
                raise ValueError(f"no class of {cinc} is carried by {min_positives} or more "
                                 f"recordings; lower min_positives")
            out[key] = float(np.mean([result["per_class"][c] for c in kept]))
            out["cinc_classes"] = kept
    if ptbxl is not None:
        sets = merl_zeroshot(model, ptbxl=ptbxl, quiet=quiet)["sets"]
        out["merl_rhythm"] = sets["ptbxl_rhythm"]["auroc"]
        out["merl_super"] = sets["ptbxl_super"]["auroc"]
    if mitbih is not None:
        from .evaluate import score_sets

        found = mitbih_evaluation(Path(mitbih), model.settings, split="val", quiet=quiet)
        out["mitbih_f1"] = score_sets(model, found.signals, found.single)["mitbih"]["f1"]
    return out
