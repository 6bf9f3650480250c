"""Embedding PTB-XL's reports with the frozen language model: first pass and cached pass,
against the naive loop.

The 2,028 real reports of the shared PTB-XL excerpt (1,454 distinct), default model
(all-MiniLM-L6-v2), CPU.  Naive loop: every report in file order, batches of 64 padded to
max_length (256) as peer code does, no de-duplication, no cache.  Ours: first pass into an empty
cache, then the same reports again (all cached).  Reports per second, side by side.

    python benchmarks/bench_text.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import shared_data, table, write_results  # noqa: E402

from mets_fast.text import REPORT_TEMPLATE, FrozenTextEncoder, default_model_dir  # noqa: E402


def reports(quick: bool) -> list:
    path = shared_data("ptbxl/ptbxl_database_excerpt.csv")
    if path is None:
        raise SystemExit("the shared PTB-XL excerpt was not found (METS_FAST_DATA or "
                         "../shared/data)")
    texts = pd.read_csv(path)["report"].fillna("").tolist()
    return texts[:300] if quick else texts


@torch.inference_mode()
def naive(texts: list, batch_size: int = 64, max_length: int = 256,
          dtype=torch.float32) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir())
    model = AutoModel.from_pretrained(default_model_dir()).eval().to(dtype)
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tok([REPORT_TEMPLATE.format(t) for t in texts[start:start + batch_size]],
                    padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1)
        out.append(((hidden.float() * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 reports: under a minute")
    args = parser.parse_args()
    texts = reports(args.quick)
    threads = torch.get_num_threads()
    cache = Path(tempfile.mkdtemp(prefix="bench_text-"))
    times = {}
    try:
        for dtype in ("float32", "bfloat16"):
            encoder = FrozenTextEncoder(cache_dir=cache, dtype=dtype)
            encoder.encode(["warm-up report"], template="{}")  # first-call costs, untimed
            t0 = time.perf_counter()
            base = naive(texts, dtype=getattr(torch, dtype))
            times[f"naive {dtype}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            first = encoder.encode(texts)
            times[f"first {dtype}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            second = encoder.encode(texts)
            times[f"cached {dtype}"] = time.perf_counter() - t0
            fresh = FrozenTextEncoder(cache_dir=cache, dtype=dtype)
            t0 = time.perf_counter()
            third = fresh.encode(texts)
            times[f"cached new encoder {dtype}"] = time.perf_counter() - t0
            tolerance = 1e-4 if dtype == "float32" else 5e-2
            assert np.abs(first - base).max() < tolerance, dtype
            assert np.array_equal(first, second) and np.array_equal(first, third)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    n = len(texts)
    t_naive, t_first, t_second = times["naive float32"], times["first float32"], \
        times["cached float32"]
    rows = [[f"naive loop, {d} (file order, padded to 256)", n / times[f"naive {d}"],
             t_naive / times[f"naive {d}"]] for d in ("float32", "bfloat16")]
    for d in ("float32", "bfloat16"):
        rows += [[f"mets_fast {d}, first pass (empty cache)", n / times[f"first {d}"],
                  t_naive / times[f"first {d}"]],
                 [f"mets_fast {d}, cached pass", n / times[f"cached {d}"],
                  t_naive / times[f"cached {d}"]],
                 [f"mets_fast {d}, cached, new encoder", n / times[f"cached new encoder {d}"],
                  t_naive / times[f"cached new encoder {d}"]]]
    print(f"\n## {n} PTB-XL reports ({len(set(texts))} distinct), all-MiniLM-L6-v2, CPU, "
          f"{threads} threads\n")
    print(table(["pass", "reports/s", "vs naive float32"], rows))
    same = times["naive bfloat16"] / times["first bfloat16"]
    print(f"\n- first pass >= 8x naive (float32 both): {t_naive / t_first:.1f}x -> "
          f"{'met' if t_naive / t_first >= 8 else 'NOT met'} (bfloat16 both: {same:.1f}x; "
          f"bfloat16 against the float32 naive loop: {t_naive / times['first bfloat16']:.1f}x)")
    print(f"- cached pass >= 100x first pass: {t_first / t_second:.0f}x -> "
          f"{'met' if t_first / t_second >= 100 else 'NOT met'}")
    path = write_results("bench_text", {
        "reports": n, "distinct": len(set(texts)), "threads": threads, "seconds": times,
    }, args.quick)
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
