"""``python -m mets_fast.retrieve``: the reports (or stored ECGs) nearest to WFDB records of any
sampling rate and lead set, or the stored ECGs nearest to a report.

    python -m mets_fast.retrieve --model runs/x --index indexes/reports rec1 rec2 -k 5
    python -m mets_fast.retrieve --model runs/x --index indexes/ecgs --text "atrial fibrillation."

Records are read, preprocessed as the model's training data were (``model.preprocess``),
embedded (a record longer than the model's window: the mean of its windows' embeddings) and
searched in an index that ``mets-fast index build`` made with the same model.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import UsageError, add_run_flags, command, each


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.retrieve",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run directory (mets_fast.train --out)")
    parser.add_argument("--index", required=True, help="an index directory built by this model")
    parser.add_argument("records", nargs="*", metavar="RECORD", help="WFDB records to look up")
    parser.add_argument("--text", action="append", metavar="REPORT",
                        help="a report to look up (in an ECG index); may repeat")
    parser.add_argument("-k", type=int, default=5, help="results per query (5)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on standard output and nothing else")
    add_run_flags(parser, quiet=False)
    return parser


def _run(args) -> int:
    if bool(args.records) == bool(args.text):
        raise UsageError("give WFDB records or --text reports to look up (one of the two)")
    if args.k < 1:
        raise UsageError(f"-k must be a positive integer, got {args.k}")
    if any(not t.strip() for t in args.text or ()):
        raise UsageError("--text is empty: give the report to look up")
    from .jsonio import dumps
    from .model import load
    from .retrieval import EmbeddingIndex, embed_queries, embed_records, model_id
    from .threads import set_threads

    set_threads(args.threads)
    model = load(args.model)
    index = EmbeddingIndex.load(args.index, model_id=model_id(model))
    if args.k > len(index):
        raise UsageError(f"-k {args.k} exceeds the {len(index)} items of the index")
    if args.records:
        done, failed = each(args.records, lambda path: embed_records(model, [path]))
        names = [str(path) for path, _ in done]
        queries = np.concatenate([q for _, q in done]) if done else None
    else:
        failed, names = [], list(args.text)
        queries = embed_queries(model, texts=args.text)
    found = index.search_texts(queries, args.k) if names else []
    results = [{"query": q, "results": [{"text": t, "score": s} for t, s in hits]}
               for q, hits in zip(names, found)]
    if args.json:
        document = {"index": str(args.index), "items": index.items, "k": args.k,
                    "queries": results}
        if failed:
            document["errors"] = [{"query": str(p), "error": m} for p, m in failed]
        print(dumps(document))
    else:
        for r in results:
            print(r["query"])
            for rank, hit in enumerate(r["results"], 1):
                print(f"  {rank:>2}. {hit['score']:.3f}  {hit['text']}")
    return 1 if failed else 0


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
