"""``mets-fast embed``: a trained model's embeddings of a store's ECGs, a file of reports or WFDB
records of any rate and lead set, written to a ``.npy`` (:mod:`mets_fast.retrieval`).

    mets-fast embed --model runs/x --store stores/ptbxl --out ecgs.npy
    mets-fast embed --model runs/x --reports reports.txt --out reports.npy
    mets-fast embed --model runs/x rec1 rec2 --out records.npy
"""

from __future__ import annotations

import argparse
import sys

from .errors import UsageError, add_run_flags, command
from .outputs import output_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mets-fast embed", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--store", help="embed every ECG of this store (in store order)")
    source.add_argument("--reports", help="embed the reports of this file (.txt one per line, "
                                          ".csv or .jsonl with a report column)")
    parser.add_argument("records", nargs="*", metavar="RECORD",
                        help="WFDB records to embed (one vector per record)")
    parser.add_argument("--out", required=True, help="the .npy file to write (N, d) float32")
    add_run_flags(parser)
    return parser


def _run(args) -> int:
    if sum([bool(args.store), bool(args.reports), bool(args.records)]) != 1:
        raise UsageError("give exactly one of --store, --reports or records")
    from .data.store import ECGStore
    from .model import load
    from .retrieval.embeddings import (embed_records, embed_reports, embed_store, read_reports,
                                       save_npy)
    from .threads import set_threads

    output_file(args.out, ".npy")
    set_threads(args.threads)
    model = load(args.model)
    if args.store:
        emb = embed_store(model, ECGStore.open(args.store), args.quiet)
    elif args.reports:
        emb = embed_reports(model, read_reports(args.reports), args.quiet)
    else:
        emb = embed_records(model, args.records, args.quiet)
    path = save_npy(args.out, emb)
    if not args.quiet:
        print(f"{emb.shape[0]} embeddings of {emb.shape[1]} written to {path}", file=sys.stderr)
    return 0


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
