"""The summary of a prepared store: what was written and skipped (and why), the splits, the
ECGs without a report and the label counts; what ``prepare`` prints."""

from __future__ import annotations

from collections import Counter

import pandas as pd


def summarize(meta: pd.DataFrame, skipped: list) -> dict:
    """The summary of a store of metadata `meta` whose writer skipped `skipped` (``{"id",
    "skip"}`` each, the reason opening with the error's kind, ``"NoReport: ..."``)."""
    summary = {"written": len(meta), "skipped": len(skipped),
               "skip_reasons": Counter(s["skip"].split(":")[0] for s in skipped),
               "skipped_ids": [s["id"] for s in skipped[:20]],
               "first_error": skipped[0]["skip"] if skipped else None,
               "splits": dict(Counter(meta["split"])) if len(meta) else {},
               "no_report": int((meta["report_clean"].astype(str).str.strip() == "").sum())
               if len(meta) else 0}
    for family in ("superclass", "rhythm", "form"):
        if family in meta and len(meta):
            summary[family] = dict(Counter(c for ls in meta[family] for c in ls).most_common())
    return summary
