"""Preparing PTB-XL-shaped records and Challenge 2021 records into a store, against plain loops.

Records of PTB-XL's shape (12 leads, 10 s, 500 Hz, 16-bit WFDB files) are written to a temporary
PTB-XL layout; `python -m mets_fast.prepare ptbxl` turns them into a 100 Hz store (resampling,
cleaning, normalisation) and the baseline does the same in a plain loop: ``wfdb.rdrecord``,
``scipy.signal.resample_poly`` and the same cleaning chain in scipy.  Records per second of wall
time, side by side.

Challenge: the 50 records of ``../shared/data/cinc2021-sample`` (Georgia, PTB-XL,
Chapman-Shaoxing/Ningbo; 12 leads, 10 s, 500 Hz, ``.hea`` + ``.mat``) copied under new names
until there are 1,000 (200 with --quick), prepared by ``python -m mets_fast.prepare challenge``
on one core (``--threads 1``, one worker) beside a plain loop (``scipy.io.loadmat``,
``resample_poly``, the same scipy cleaning chain).  Target: >= 300 records/s on one core.

    python benchmarks/bench_prepare.py [--quick]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import table, write_results  # noqa: E402

from mets_fast.data.records import STANDARD_LEADS  # noqa: E402
from mets_fast.data.sources.synthetic import synthetic_corpus  # noqa: E402
from mets_fast.prepare import main as prepare_main  # noqa: E402

STATEMENTS = """,description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass
NORM,normal ECG,1.0,,,NORM,NORM
SR,sinus rhythm,,,1.0,,
"""


def write_ptbxl_like(root: Path, n: int) -> None:
    import wfdb

    signals, meta = synthetic_corpus(n, seed=0, fs=500)
    rows = []
    for i in range(n):
        folder = root / "records500" / f"{i // 1000 * 1000:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{i + 1:05d}_hr"
        wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=list(STANDARD_LEADS),
                    p_signal=signals[i].T.astype(np.float64), fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
        rows.append({"ecg_id": i + 1, "patient_id": i, "report": meta["report"][i],
                     "scp_codes": "{'NORM': 100.0, 'SR': 0.0}", "strat_fold": i % 10 + 1,
                     "filename_lr": f"records100/{folder.name}/{i + 1:05d}_lr",
                     "filename_hr": f"records500/{folder.name}/{name}"})
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    (root / "scp_statements.csv").write_text(STATEMENTS)


def plain_loop(root: Path) -> np.ndarray:
    """What one writes without mets_fast: read, resample, clean, normalise, record by record."""
    import scipy.signal
    import wfdb

    from mets_fast.signal.reference import clean_scipy

    table = pd.read_csv(root / "ptbxl_database.csv")
    out = np.empty((len(table), 12, 1000), dtype=np.float16)
    for k, name in enumerate(table["filename_hr"]):
        x = wfdb.rdrecord(str(root / name)).p_signal.T
        x = scipy.signal.resample_poly(x, 1, 5, axis=-1)
        x = clean_scipy(x, 100.0)
        x = (x - x.mean(-1, keepdims=True)) / np.maximum(x.std(-1, keepdims=True), 1e-6)
        out[k] = x
    return out


def copy_challenge(sample: Path, out: Path, n: int) -> None:
    """`n` records made of the sample's, each under a name of its own (its prefix kept, so the
    database is still known)."""
    headers = sorted(sample.glob("*.hea"))
    out.mkdir(parents=True)
    for k in range(n):
        header = headers[k % len(headers)]
        stem = f"{header.stem}{k // len(headers):03d}"
        (out / f"{stem}.hea").write_text(header.read_text().replace(header.stem, stem))
        shutil.copy(header.with_suffix(".mat"), out / f"{stem}.mat")


def plain_challenge(root: Path) -> np.ndarray:
    """The Challenge records read, resampled, cleaned and normalised in a plain loop."""
    import scipy.io
    import scipy.signal

    from mets_fast.signal.reference import clean_scipy

    headers = sorted(root.glob("*.hea"))
    out = np.empty((len(headers), 12, 1000), dtype=np.float16)
    for k, header in enumerate(headers):
        x = scipy.io.loadmat(str(header.with_suffix(".mat")))["val"] / 1000.0
        x = scipy.signal.resample_poly(x, 1, 5, axis=-1)
        x = clean_scipy(x, 100.0)
        out[k] = (x - x.mean(-1, keepdims=True)) / np.maximum(x.std(-1, keepdims=True), 1e-6)
    return out


def bench_challenge(work: Path, n: int) -> list:
    from mets_fast.data.shared import shared_data
    from mets_fast.threads import set_threads

    root = shared_data(anchor=__file__)
    sample = root / "cinc2021-sample" if root is not None else None
    if sample is None or not sample.is_dir():
        print("Challenge rows skipped: ../shared/data/cinc2021-sample not found")
        return []
    copy_challenge(sample, work / "challenge", n)
    common = ["--quiet", "--overwrite", "--threads", "1"]
    assert prepare_main(["challenge", str(work / "challenge"), "--out", str(work / "cw"),
                         *common]) == 0  # warm-up
    results = []
    for label, run in (
        ("plain loop (loadmat + scipy), 1 core", lambda: plain_challenge(work / "challenge")),
        ("mets_fast.prepare challenge, 1 core",
         lambda: prepare_main(["challenge", str(work / "challenge"), "--out", str(work / "c1"),
                               *common])),
    ):
        set_threads(1)
        results.append(timed(label, run, n))
    return results


def timed(label: str, run, n: int) -> dict:
    """Runs `run` once; its records per second of wall time, printed."""
    w0 = time.perf_counter()
    run()
    wall = time.perf_counter() - w0
    print(f"  {label}: {n / wall:.0f} records/s", flush=True)
    return {"implementation": label, "records": n, "wall_s": wall, "records_per_s": n / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 records: under a minute")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    work = Path(tempfile.mkdtemp(prefix="bench_prepare-"))
    try:
        print(f"writing {n} PTB-XL-shaped records ...", flush=True)
        write_ptbxl_like(work / "ptbxl", n)
        cores = os.cpu_count() or 1
        results = []
        # warm-up: Numba compilation and file cache, outside the timings
        common = ["--rate", "500", "--quiet", "--overwrite"]
        assert prepare_main(["ptbxl", str(work / "ptbxl"), "--out", str(work / "warm"),
                             *common]) == 0
        for label, run in (
            ("plain loop (wfdb + scipy)", lambda: plain_loop(work / "ptbxl")),
            ("mets_fast.prepare, 1 worker",
             lambda: prepare_main(["ptbxl", str(work / "ptbxl"), "--out", str(work / "s1"),
                                   *common])),
            (f"mets_fast.prepare, {cores} workers",
             lambda: prepare_main(["ptbxl", str(work / "ptbxl"), "--out", str(work / "s2"),
                                   *common, "--workers", str(cores)])),
        ):
            results.append(timed(label, run, n))
        print(f"Challenge: {200 if args.quick else 1000} records ...", flush=True)
        challenge = bench_challenge(work, 200 if args.quick else 1000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]["records_per_s"]
    print(f"\n## PTB-XL-shaped records (12 leads, 10 s, 500 Hz) -> 100 Hz store, {cores} cores\n")
    print(table(["implementation", "records/s", "vs plain loop"],
                [[r["implementation"], r["records_per_s"], r["records_per_s"] / base]
                 for r in results]))
    best = max(r["records_per_s"] for r in results[1:])
    print(f"\n- target >= 300 records/s: {best:.0f} -> {'met' if best >= 300 else 'NOT met'}")
    if challenge:
        base = challenge[0]["records_per_s"]
        print("\n## Challenge 2021 records (.hea + .mat, 12 leads, 10 s, 500 Hz) -> 100 Hz "
              "store, 1 core\n")
        print(table(["implementation", "records/s", "vs plain loop"],
                    [[r["implementation"], r["records_per_s"], r["records_per_s"] / base]
                     for r in challenge]))
        rate = challenge[-1]["records_per_s"]
        print(f"\n- target >= 300 records/s on one core: {rate:.0f} -> "
              f"{'met' if rate >= 300 else 'NOT met'}")
    path = write_results("bench_prepare", {"results": results, "challenge": challenge},
                         args.quick)
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
