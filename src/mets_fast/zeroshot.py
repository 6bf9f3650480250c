"""``python -m mets_fast.zeroshot``: zero-shot ECG classification with a trained METS model, on
the built-in tasks of some data (the paper's figures beside ours) or on records among any
classes.  The library lives in :mod:`mets_fast.evaluation`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .errors import UsageError, add_run_flags, command, each, seed
from .evaluation.tasks import KINDS
from .atomic import write_text
from .jsonio import dumps, read_json, write_json
from .outputs import output_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mets_fast.zeroshot", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0],
        epilog="""examples:
  python -m mets_fast.zeroshot --model runs/x --data ptbxl:/data/ptb-xl --out results
  python -m mets_fast.zeroshot --model runs/x --data mitbih:/data/mitdb
  python -m mets_fast.zeroshot --model runs/x --record rec1 rec2 \\
      --classes "atrial fibrillation" "sinus rhythm" --kind rhythm
  python -m mets_fast.zeroshot --model runs/x --benchmark merl --ptbxl /data/ptb-xl \\
      --challenge /data/cinc2021 --out results""")
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", help="evaluate the built-in tasks of: synthetic, ptbxl:ROOT, "
                                     "mitbih:DIR, challenge:ROOT or store:DIR")
    what.add_argument("--record", nargs="+", metavar="REC",
                      help="WFDB records (any rate and leads) to classify among --classes")
    add_benchmark_flags(parser, what)
    parser.add_argument("--leads", help="--data / --benchmark: score with only these leads "
                                        "(comma-separated, e.g. I,II); the others are zeros, "
                                        "as for a recording without them")
    parser.add_argument("--prompts", choices=("merl", "mets"),
                        help="--benchmark's class prompts: MERL's CKEPE descriptions (merl, "
                             "the default) or METS's template (mets)")
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument("--classes", nargs="+", metavar="NAME",
                         help="class names for --record")
    classes.add_argument("--classes-file", help="JSON of class name -> list of descriptions")
    parser.add_argument("--kind", choices=KINDS,
                        help="which METS template the classes of --record take (default "
                             "diagnostic)")
    parser.add_argument("--split", choices=("test", "val", "all"),
                        help="which ECGs of --data: a store's test split (its val split where "
                             "it has no test), MIT-BIH: all records (val: those the trainer "
                             "held out)")
    parser.add_argument("--per-class", type=int,
                        help="ECGs per class of the balanced sets (200; MIT-BIH beats 100)")
    parser.add_argument("--statements", help="PTB-XL's scp_statements.csv, for the multi-label "
                                             "AUROC of a store:DIR")
    parser.add_argument("--out", help="write zeroshot.json (and, for --data, "
                                      "confusion_<task>.png) into this directory")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on standard output and nothing else")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the balanced sets (0)")
    add_run_flags(parser)
    return parser


def add_benchmark_flags(parser: argparse.ArgumentParser, what) -> None:
    """``--benchmark merl`` (in the group `what`) and the data it reads, ``--ptbxl ROOT`` and
    ``--challenge ROOT`` (zero-shot and linear probe share them)."""
    what.add_argument("--benchmark", choices=("merl",),
                      help="the MERL benchmark: six multi-label test sets (PTB-XL super, sub, "
                           "form, rhythm from --ptbxl; CPSC2018 and CSN from --challenge)")
    parser.add_argument("--ptbxl", help="--benchmark: a PTB-XL root")
    parser.add_argument("--challenge", help="--benchmark: a PhysioNet/CinC Challenge tree")


def benchmark_roots(args) -> dict:
    """The data roots of ``--benchmark``, checked before any work."""
    roots = {"ptbxl": args.ptbxl, "challenge": args.challenge}
    if not args.benchmark:
        given = [f"--{k}" for k, v in roots.items() if v]
        if given:
            raise UsageError(f"{', '.join(given)} go(es) with --benchmark")
        return {}
    if not any(roots.values()):
        raise UsageError("--benchmark merl needs data: --ptbxl ROOT and/or --challenge ROOT")
    for key, root in roots.items():
        if root and not Path(root).is_dir():
            raise UsageError(f"--{key} {root} is not a directory")
    return roots


def _run(args) -> int:
    from .data.records import parse_leads
    from .data.spec import parse_data
    from .model import load
    from .threads import set_threads

    if args.record and not (args.classes or args.classes_file):
        raise UsageError("--record needs the classes to choose among: --classes or "
                         "--classes-file")
    for flags, goes in (((("--classes", args.classes), ("--classes-file", args.classes_file),
                          ("--kind", args.kind)), "record"),
                        ((("--split", args.split), ("--per-class", args.per_class),
                          ("--statements", args.statements)), "data"),
                        ((("--prompts", args.prompts),), "benchmark")):
        given = [flag for flag, value in flags if value is not None]
        if given and not getattr(args, goes):
            raise UsageError(f"{', '.join(given)} only go with --{goes}")
    if args.leads is not None and args.record:
        raise UsageError("--leads goes with --data or --benchmark (a record is scored with the "
                         "leads it has)")
    args.leads = parse_leads(args.leads) if args.leads is not None else None
    if args.per_class is not None and args.per_class < 1:
        raise UsageError(f"--per-class must be a positive integer, got {args.per_class}")
    if args.data:
        try:
            spec = parse_data(args.data)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.split == "all" and spec.kind not in ("mitbih", "challenge"):
            raise UsageError("--split all is for mitbih:DIR and challenge:ROOT (a store has "
                             "test and val splits)")
    roots = benchmark_roots(args)
    if args.out:
        output_dir(args.out)
    classes = _classes(args) if args.record else None
    set_threads(args.threads)
    model = load(args.model)
    if args.record:
        out = _classify_records(model, classes, args)
    elif args.benchmark:
        out = _benchmark(model, roots, args)
    else:
        out = _evaluate_data(model, spec, args)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "zeroshot.json", out)
        if not args.json:
            print(f"written to {folder}/zeroshot.json")
    if args.json:
        print(dumps(out))
    return 1 if out.get("errors") else 0


def _classes(args) -> dict | list:
    from .evaluation.zeroshot import check_classes

    if not args.classes_file:
        return args.classes
    path = Path(args.classes_file)
    if not path.is_file():
        raise FileNotFoundError(f"--classes-file not found: {path}")
    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"--classes-file {path} must hold a JSON object of class name -> list "
                         f"of descriptions, got {type(value).__name__}")
    try:
        check_classes(value)
    except ValueError as exc:
        raise ValueError(f"--classes-file {path}: {exc}") from None
    return value


def _classify_records(model, classes, args) -> dict:
    """Each record's classes ranked by probability (a record longer than the model's window
    is scored window by window, the logits averaged); a record that cannot be read or scored
    is listed under ``errors`` and does not stop the others."""
    from .evaluation.zeroshot import ZeroShotClassifier

    classifier = ZeroShotClassifier(model, classes, kind=args.kind or "diagnostic")
    width = max(len(n) for n in classifier.names)

    def score(path):
        windows = model.record_windows(path)
        proba = classifier.predict_windows(windows)
        ranked = [{"class": classifier.names[k], "probability": float(proba[k])}
                  for k in np.argsort(-proba)]
        if not args.json:
            print(f"{path} ({len(windows)} window(s) of {model.settings.seconds:g} s)")
            for item in ranked:
                print(f"  {item['class']:<{width}}  {item['probability']:.3f}", flush=True)
        return {"record": str(path), "windows": int(len(windows)), "ranked": ranked}

    done, failed = each(args.record, score)
    out = {"model": str(args.model), "classes": list(classifier.names),
           "records": [result for _, result in done]}
    if failed:
        out["errors"] = [{"record": str(path), "error": message} for path, message in failed]
    sys.stdout.flush()
    return out


def _benchmark(model, roots: dict, args) -> dict:
    from .evaluation.merl import merl_zeroshot
    from .evaluation.paper import merl_table, plot_merl

    result = merl_zeroshot(model, prompts=args.prompts or "merl",
                           quiet=args.quiet or args.json, leads=args.leads, **roots)
    table = merl_table(result)
    if not args.json:
        print(f"MERL benchmark, zero-shot ({result['prompts']} prompts"
              f"{'; leads ' + ','.join(args.leads) if args.leads else ''}):")
        print(table)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "merl.md", table + "\n")
        plot_merl(result, folder / "merl.png")
    return {"benchmark": "merl", "protocol": "zeroshot", **result}


def _evaluate_data(model, spec, args) -> dict:
    from .evaluation.evaluate import evaluate
    from .evaluation.paper import (multi_label_table, plot_confusion, retrieval_table,
                                   single_label_table)

    report = evaluate(model, spec, split=args.split, per_class=args.per_class, seed=args.seed,
                      statements=args.statements, quiet=args.quiet or args.json,
                      leads=args.leads)
    out = report.as_dict()
    if not args.json:
        print(f"zero-shot, {args.data} (macro averages; balanced single-label sets):")
        print(single_label_table(report.single))
        if report.multi:
            print()
            print(multi_label_table(report.multi))
        if report.retrieval:
            print()
            print(retrieval_table(report.retrieval))
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr if args.json else sys.stdout)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        for name, r in report.single.items():
            plot_confusion(r["confusion"], r["classes"], folder / f"confusion_{name}.png",
                           f"{name} (zero-shot)")
    return out


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
