"""``python -m mets_fast.linear_probe``: how good a trained encoder's features are with few
labels, beside the same probe on a randomly initialised encoder of the same architecture
(:mod:`mets_fast.evaluation.probe`).

The encoder is frozen; its pooled features (512 per ECG) are standardised and a logistic
regression (scikit-learn; one per class, one-vs-rest, for multi-label tasks) is trained on 1 %,
10 % and 100 % of the training labels, then scored on the test split: macro AUROC for
multi-label tasks, accuracy / precision / recall / F1 (macro) and AUROC for single-label ones.

    python -m mets_fast.linear_probe --model runs/x --data ptbxl:/data/ptb-xl --out results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsageError, add_run_flags, command, seed
from .outputs import output_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.linear_probe",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    parser.add_argument("--data", required=True,
                        help="synthetic, ptbxl:ROOT, mitbih:DIR or store:DIR")
    parser.add_argument("--out", help="write linear_probe.json here")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the label subsets and of the random encoder (0)")
    add_run_flags(parser)
    return parser


def _run(args) -> int:
    from .data.spec import parse_data
    from .evaluation.evaluate import evaluate
    from .evaluation.paper import probe_table
    from .jsonio import write_json
    from .model import load
    from .threads import set_threads

    try:
        spec = parse_data(args.data)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        output_dir(args.out)
    set_threads(args.threads)
    model = load(args.model)
    report = evaluate(model, spec, protocol="probe", seed=args.seed, quiet=args.quiet)
    print(f"linear probe, {args.data} (frozen encoder, logistic regression; test split):")
    print(probe_table(report.results, report.sets))
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {task: {**r, "classes": list(report.sets[task].classes),
                          "multilabel": report.sets[task].multilabel}
                   for task, r in report.results.items()}
        write_json(folder / "linear_probe.json", payload)
        print(f"written to {folder}/linear_probe.json")
    return 0


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
