"""``python -m mets_fast.linear_probe``: how good a trained encoder's features are with few
labels, beside the same probe on a randomly initialised encoder of the same architecture
(:mod:`mets_fast.evaluation.probe`).

The encoder is frozen; its pooled features (512 per ECG) are standardised and a logistic
regression (scikit-learn; one per class, one-vs-rest, for multi-label tasks) is trained on 1 %,
10 % and 100 % of the training labels, then scored on the test split: macro AUROC for
multi-label tasks, accuracy / precision / recall / F1 (macro) and AUROC for single-label ones.

    python -m mets_fast.linear_probe --model runs/x --data ptbxl:/data/ptb-xl --out results
    python -m mets_fast.linear_probe --model runs/x --benchmark merl --ptbxl /data/ptb-xl

With ``--benchmark merl`` the probes are MERL's: its six multi-label sets, the label fractions
drawn (seeded) from MERL's train split, scored on its test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsageError, add_run_flags, command, seed
from .outputs import output_dir
from .zeroshot import add_benchmark_flags, benchmark_roots


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.linear_probe",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", help="synthetic, ptbxl:ROOT, mitbih:DIR, challenge:ROOT or "
                                     "store:DIR")
    add_benchmark_flags(parser, what)
    parser.add_argument("--leads", help="probe with only these leads (comma-separated, e.g. "
                                        "I,II); the others are zeros")
    parser.add_argument("--out", help="write linear_probe.json here")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the label subsets and of the random encoder (0)")
    add_run_flags(parser)
    return parser


def _run(args) -> int:
    from .data.records import parse_leads
    from .data.spec import parse_data
    from .evaluation.paper import probe_table
    from .jsonio import write_json
    from .model import load
    from .threads import set_threads

    roots = benchmark_roots(args)
    args.leads = parse_leads(args.leads) if args.leads is not None else None
    if args.data:
        try:
            spec = parse_data(args.data)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.out:
        output_dir(args.out)
    set_threads(args.threads)
    model = load(args.model)
    results, sets, notes, title = _probe(model, spec if args.data else None, roots, args)
    print(f"linear probe, {title} (frozen encoder, logistic regression; test split):")
    print(probe_table(results, sets))
    for task, note in notes.items():
        print(f"note: {task}: {note}")
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {task: {**r, "classes": list(sets[task].classes),
                          "multilabel": sets[task].multilabel}
                   for task, r in results.items()}
        write_json(folder / "linear_probe.json", {**payload, "notes": notes} if notes
                   else payload)
        print(f"written to {folder}/linear_probe.json")
    return 0


def _probe(model, spec, roots: dict, args) -> tuple:
    """(results, sets, notes, title) of the probe of --data or of --benchmark merl."""
    from .evaluation.evaluate import evaluate

    if spec is not None:
        report = evaluate(model, spec, protocol="probe", seed=args.seed, quiet=args.quiet,
                          leads=args.leads)
        return report.results, report.sets, {}, args.data
    from .evaluation.merl import merl_probe_sets
    from .evaluation.probe import probe

    sets, notes = merl_probe_sets(model, quiet=args.quiet, leads=args.leads, **roots)
    if not sets:
        raise ValueError("no MERL set has both train and test ECGs in the data given: "
                         + "; ".join(f"{t}: {n}" for t, n in notes.items()))
    return probe(model, sets, seed=args.seed, quiet=args.quiet), sets, notes, "MERL benchmark"


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
