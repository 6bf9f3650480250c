"""The summary of a prepared store: what was written and skipped (and why), the splits, the
ECGs without a report and the label counts; what ``prepare`` prints.  Also the two ways a
preparation fails as a whole, whoever wrote it: nothing could be written, or a lead asked for
by name is in no record."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd


def summarize(meta: pd.DataFrame, skipped: list) -> dict:
    """The summary of a store of metadata `meta` whose writer skipped `skipped` (``{"id",
    "skip"}`` each, the reason opening with the error's kind, ``"NoReport: ..."``)."""
    summary = {"written": len(meta), "skipped": len(skipped),
               "skip_reasons": Counter(s["skip"].split(":")[0] for s in skipped),
               "skipped_ids": [s["id"] for s in skipped[:20]],
               "first_error": skipped[0]["skip"] if skipped else None,
               "first_errors": _first_errors(skipped),
               "splits": dict(Counter(meta["split"])) if len(meta) else {},
               "no_report": int((meta["report_clean"].astype(str).str.strip() == "").sum())
               if len(meta) else 0}
    for family in ("superclass", "rhythm", "form"):
        if family in meta and len(meta):
            summary[family] = dict(Counter(c for ls in meta[family] for c in ls).most_common())
    return summary


def _first_errors(skipped: list) -> dict:
    """The first message of each distinct skip reason, with how many records it stopped
    (``{"ValueError: record A0001 lasts 1.5 s ...": 3}``), at most five: reasons that differ
    only in a record's name, path or numbers (any word with a digit) count as one."""
    counts: Counter = Counter()
    first: dict = {}
    for s in skipped:
        shape = re.sub(r"\S*\d\S*", "#", s["skip"])
        counts[shape] += 1
        first.setdefault(shape, s["skip"])
    return {first[shape]: k for shape, k in counts.most_common(5)}


def check_written(out, written: int, skipped: list) -> None:
    """A ValueError when no ECG could be prepared for the store at `out` (naming each distinct
    reason once)."""
    if not written:
        detail = "".join(f"; {k} x {error}" for error, k in _first_errors(skipped).items())
        raise ValueError(f"no ECG could be prepared for {out} ({len(skipped)} skipped"
                         f"{detail})")


def check_leads(leads, mask: np.ndarray, required) -> None:
    """A ValueError naming the leads of `required` that no row of the lead `mask` (``(N,
    leads)``) has."""
    absent = [lead for lead, k in zip(leads, np.asarray(mask).sum(0))
              if not k and lead in set(required)]
    if absent:
        raise ValueError(f"no record has the lead(s) {absent} (asked for with --leads; "
                         f"--allow-missing-leads stores them as zeros)")
