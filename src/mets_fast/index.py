"""``mets-fast index build``: a FAISS index of a trained model's embeddings of a store's
distinct reports, of a file of reports, or of a store's ECGs (:mod:`mets_fast.retrieval`).

    mets-fast index build --model runs/x --store stores/ptbxl --out indexes/reports
    mets-fast index build --model runs/x --store stores/ptbxl --out indexes/ecgs --ecgs
"""

from __future__ import annotations

import argparse
import sys

from .errors import UsageError, add_run_flags, command
from .outputs import output_dir
from .retrieval.index import KINDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mets-fast index", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="embed a store's reports (or ECGs) and index them")
    build.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", help="a store: its distinct reports (or its ECGs, --ecgs)")
    source.add_argument("--reports", help="a file of reports (.txt one per line, .csv or "
                                          ".jsonl with a report column)")
    build.add_argument("--ecgs", action="store_true",
                       help="index the store's ECGs (by id) instead of its reports")
    build.add_argument("--out", required=True,
                       help="index directory: new, empty, or holding an index (replaced)")
    build.add_argument("--kind", choices=KINDS, default="auto",
                       help="auto (exact below 200,000 vectors, IVF above), flat, ivf, hnsw")
    add_run_flags(build)
    return parser


def _run(args) -> int:
    if args.ecgs and not args.store:
        raise UsageError("--ecgs indexes a store's ECGs: give --store")
    from .data.store import ECGStore
    from .model import load
    from .retrieval.embeddings import index_reports, index_store, read_reports
    from .threads import set_threads

    output_dir(args.out, own="index.json")
    set_threads(args.threads)
    model = load(args.model)
    if args.store:
        index = index_store(model, ECGStore.open(args.store), "ecgs" if args.ecgs else "reports",
                            args.kind, args.quiet)
    else:
        index = index_reports(model, read_reports(args.reports), args.kind, args.quiet)
    index.save(args.out)
    if not args.quiet:
        what = "ECGs" if args.ecgs else "distinct reports"
        print(f"indexed {len(index)} {what} ({index.kind}, {index.dim}-d) in {args.out}",
              file=sys.stderr)
    return 0


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
