"""``python -m mets_fast.train``: trains a METS model (ResNet1d-18 ECG encoder against a frozen
language model's report embeddings) and writes a run directory.

    python -m mets_fast.train                                   # the synthetic default
    python -m mets_fast.train --data mitbih:/data/mitdb          # MIT-BIH beat windows
    python -m mets_fast.train --preset paper --data store:stores/ptbxl --device cuda
    python -m mets_fast.train --preset real --data synthetic --data ptbxl:/data/ptb-xl
    torchrun --nproc_per_node 2 -m mets_fast.train ...           # data-parallel

With no arguments it trains on the embedded synthetic corpus (prepared once into the cache and
reused) with the default language model, on a preset sized to a 2-core CPU, and scores
zero-shot classification on the validation split after every epoch.
"""

from __future__ import annotations

import argparse
import sys

from .errors import EXPECTED, UsageError, positive_int, run_cli, seed
from .training.presets import NEGATIVES, PRESETS
from .training.schedule import SCHEDULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mets_fast.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Flags left out take the preset's value (see mets_fast/training/presets.py).")
    add = parser.add_argument
    add("--data", action="append",
        help="synthetic (default), ptbxl:ROOT, mitbih:ROOT, challenge:ROOT, "
             "mimic-iv-ecg:ROOT or store:DIR (a prepared store); give it several times to "
             "train on several sources together, each with @W for its share of each epoch "
             "if wanted (synthetic@0.5: half of every epoch; the others share the rest by "
             "size)")
    add("--preset", choices=sorted(PRESETS),
        help="default (sized to a 2-core CPU), real (real data beside the synthetic corpus: "
             "augmented, for new devices, patients and lead sets), paper (Li et al. 2023) or "
             "smoke (one short epoch)")
    add("--epochs", type=int, help="passes over the training split")
    add("--batch-size", type=int, help="the global batch (split over torchrun's processes)")
    add("--lr", type=float, help="Adam's learning rate (peak of the schedule)")
    add("--weight-decay", type=float, help="Adam's weight decay (weight matrices only)")
    add("--embed-dim", type=int, help="width of the shared ECG-text space (128)")
    add("--schedule", choices=SCHEDULES, help="learning-rate schedule (cosine decays to zero)")
    add("--corpus-size", type=int, help="ECGs of the synthetic corpus (--data synthetic)")
    add("--negatives", choices=NEGATIVES,
        help="all: every other pair of a batch is a negative (CLIP, METS); distinct-reports: "
             "ECGs that share a report are not each other's negatives (the default preset's "
             "choice, except on the synthetic corpus, whose reports rarely repeat)"),
    add("--lm", help="language model: default (all-MiniLM-L6-v2), a local directory or a hub id")
    add("--device", default=None, help="cpu (default) or cuda")
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument("--amp", dest="amp", action="store_true", default=None,
                     help="bfloat16 autocast even where the device emulates it (the "
                          "presets but paper use it only where the CPU or GPU computes "
                          "bfloat16 natively: AMX, AVX512-BF16, compute capability 8+)")
    amp.add_argument("--no-amp", dest="amp", action="store_false", help="float32 throughout")
    add("--threads", type=positive_int,
        help="threads per process (default: the cores / processes)")
    add("--seed", type=seed, help="seed of the initialisation and the shuffling (0)")
    add("--out", help="run directory to create (default runs/<timestamp>)")
    add("--resume", action="store_true",
        help="continue the run in --out from its last checkpoint, with its own settings "
             "(args.json; flags that would change its result are refused, but a larger "
             "--epochs, which extends a run, finished or not)")
    add("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    add("--augment", action="store_true",
        help="augment each batch with the strengths of --preset real (those --aug-* flags "
             "do not set): a gain per lead, noise, power line, baseline wander, a time "
             "shift, lead subsets")
    add("--aug-scale", type=float, help="spread of a log gain per lead (0: off; recipe 0.15)")
    add("--aug-noise", type=float, help="white noise, in lead standard deviations (0.05)")
    add("--aug-powerline", type=float, help="power-line pick-up at 50 or 60 Hz (0.05)")
    add("--aug-wander", type=float, help="baseline wander of 0.05-0.5 Hz (0.1)")
    add("--aug-shift", type=float, help="longest time shift in s, zeros shifted in (1.0)")
    add("--aug-leads", type=float,
        help="probability that an ECG keeps only a random subset of its leads, down to one "
             "(0.5); the encoder then sees which leads are missing")
    add("--val-size", type=positive_int,
        help="validation ECGs scored after each epoch: a fixed, seeded sample "
             "(2000), so that an epoch's check stays seconds on a corpus of any size")
    return parser


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .training.trainer import TrainingError

    return run_cli(lambda: _run(args), expected=EXPECTED + (TrainingError,),
                   interrupted="interrupted; the last committed checkpoint stays (--resume "
                               "continues it)")


def _run(args) -> int:
    from .training.trainer import fit, resolve

    if args.resume and not args.out:
        raise UsageError("--resume continues the run in --out: give --out RUN_DIR")
    try:
        config = resolve(**vars(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    fit(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
