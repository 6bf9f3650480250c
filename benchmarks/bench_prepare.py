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

MIMIC-IV-ECG: a tree in the real layout (both tables with quoted report cells, four studies per
patient, ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat}`` of 12 leads, 10 s, 500 Hz, format
16, aVF before aVL, some invalid samples and flat leads, studies without a report) of 20,000
records (2,000 with --quick), prepared to the default 100 Hz store with one worker on one core
and with two workers, twice each in the order 1, 2, 2, 1 (issue 21: >= 1.7x, and >= 400
records/s per core); the peak resident memory of the whole job (one process; the median of
three) at a quarter of the records and at all of them, whose slope per record must stay
<= 2 KB; and what that gives for MIMIC-IV-ECG's 800,035 records.

    python benchmarks/bench_prepare.py [--quick] [--only mimic]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import peak_memory_probe, peak_rss, table, write_results  # noqa: E402

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


MIMIC_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
STATEMENTS_MIMIC = ("Sinus rhythm", "Sinus bradycardia", "Atrial fibrillation",
                    "Left axis deviation", "Possible left atrial abnormality", "Normal ECG",
                    "Borderline ECG", "Abnormal ECG", "Inferior infarct - age undetermined",
                    "Nonspecific T wave abnormalities", "Low QRS voltages in limb leads",
                    "--- Warning: Data quality may affect interpretation ---")
MIMIC_RECORDS = 800_035


def write_mimic_like(root: Path, n: int, seed: int = 0) -> None:
    """A MIMIC-IV-ECG tree of `n` studies (four per patient), written with NumPy (the WFDB
    header and format-16 data by their definitions): 64 distinct synthetic 12-lead ECGs, each
    record one of them with its own offset; every 50th has a run of invalid samples
    (-32768), every 70th a flat lead, every 100th no report line."""
    signals, _ = synthetic_corpus(64, seed=seed, fs=500)
    names = list(STANDARD_LEADS)
    pool = np.round(signals[:, [names.index(lead) for lead in MIMIC_LEADS]] * 200)
    pool = np.clip(pool, -32767, 32767).astype("<i2")
    rng = np.random.default_rng(seed)
    records, measured = [], []
    for i in range(n):
        subject, study = f"{10000000 + i // 4}", f"{40000000 + i}"
        rel = f"files/p{subject[:4]}/p{subject}/s{study}"
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        x = pool[i % 64] + np.int16(i % 7)
        if i % 50 == 3:
            x = x.copy()
            x[2, 1000:1100] = -32768
        if i % 70 == 5:
            x = x.copy()
            x[9] = 0
        x.T.tofile(folder / f"{study}.dat")  # format 16: samples interleaved, little-endian
        lines = [f"{study} 12 500 5000"]
        for k, lead in enumerate(MIMIC_LEADS):
            check = int(x[k].astype(np.int64).sum()) % 65536
            check = check - 65536 if check >= 32768 else check
            lines.append(f"{study}.dat 16 200/mV 16 0 {int(x[k, 0])} {check} 0 {lead}")
        (folder / f"{study}.hea").write_text("\n".join(lines) + "\n")
        records.append([subject, study, study, "2180-07-23 08:44:00", f"{rel}/{study}"])
        picked = [] if i % 100 == 7 else \
            list(rng.choice(STATEMENTS_MIMIC, size=1 + i % 4, replace=False))
        measured.append([subject, study, "2180-07-23 08:44:00",
                         *(picked + [""] * (18 - len(picked))),
                         659, 40, 128, 170, 258, 518, 81, 77, 29999])
    with open(root / "record_list.csv", "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["subject_id", "study_id", "file_name", "ecg_time", "path"])
        writer.writerows(records)
    with open(root / "machine_measurements.csv", "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["subject_id", "study_id", "ecg_time",
                         *[f"report_{k}" for k in range(18)], "rr_interval", "p_onset",
                         "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis",
                         "t_axis"])
        writer.writerows(measured)


def first_studies(root: Path, out: Path, n: int) -> Path:
    """A MIMIC-IV-ECG root of the first `n` studies of `root` (its tables cut, its files
    linked)."""
    out.mkdir(parents=True)
    (out / "files").symlink_to(root / "files")
    for name in ("record_list.csv", "machine_measurements.csv"):
        with open(root / name) as f:
            head = [next(f) for _ in range(n + 1)]
        (out / name).write_text("".join(head))
    return out


def probe(args: list) -> None:
    """``--probe ARGS``: ``prepare ARGS`` in this fresh process; prints its peak RSS."""
    assert prepare_main(args) == 0
    print(json.dumps({"peak_rss": peak_rss()}))


def bench_mimic(work: Path, n: int) -> dict:
    root = work / "mimic"
    print(f"MIMIC-IV-ECG: writing {n} records ...", flush=True)
    write_mimic_like(root, n)
    common = ["--quiet", "--overwrite"]
    small = first_studies(root, work / "mimic-small", n // 4)
    assert prepare_main(["mimic-iv-ecg", str(small), "--out", str(work / "mw"), *common,
                         "--threads", "1"]) == 0  # warm-up: Numba's compilation
    # 1, 2, 2, 1 workers (drift cancels), each run's output flushed to disk before the next
    # starts (its write-back would otherwise land in the next one's time); the mean of each
    walls = {1: [], 2: []}
    for workers in (1, 2, 2, 1):
        os.sync()
        run = timed(f"mets_fast.prepare mimic-iv-ecg, {workers} worker(s)",
                    lambda: prepare_main(["mimic-iv-ecg", str(root), "--out",
                                          str(work / f"m{workers}"), *common, "--threads", "1",
                                          "--workers", str(workers)]), n)
        walls[workers].append(run["wall_s"])
    runs = [{"implementation": f"mets_fast.prepare mimic-iv-ecg, {w} worker(s)", "records": n,
             "wall_s": float(np.mean(walls[w])), "walls_s": walls[w],
             "records_per_s": n / float(np.mean(walls[w]))} for w in (1, 2)]
    same = all((work / "m1" / f).read_bytes() == (work / "m2" / f).read_bytes()
               for f in ("signals.npy", "meta.parquet", "lead_mask.npy"))
    store_bytes = (work / "m1" / "signals.npy").stat().st_size
    written = len(pd.read_parquet(work / "m1" / "meta.parquet", columns=["id"]))
    # three fresh processes a size, alternating; the median (one process's peak can be some
    # MB off, which at 15,000 records is most of a KB per record)
    peaks = {"quarter": [], "all": []}
    for label, tree in (("quarter", small), ("all", root)) * 3:
        peaks[label].append(peak_memory_probe(__file__, ["mimic-iv-ecg", str(tree), "--out",
                                                         str(work / f"r-{label}"), *common,
                                                         "--threads", "1"])["peak_rss"])
    rss = {label: float(np.median(v)) for label, v in peaks.items()}
    print("  preparing to 500 Hz (the disk and time of a full-rate store) ...", flush=True)
    os.sync()
    full = timed("mets_fast.prepare mimic-iv-ecg --fs 500, 2 workers",
                 lambda: prepare_main(["mimic-iv-ecg", str(small), "--out", str(work / "m500"),
                                       *common, "--fs", "500", "--workers", "2"]), n // 4)
    full_bytes = (work / "m500" / "signals.npy").stat().st_size / \
        len(pd.read_parquet(work / "m500" / "meta.parquet", columns=["id"]))
    return {"records": n, "written": written, "runs": runs + [full], "same_bytes": same,
            "bytes_per_ecg_100hz": store_bytes / written, "bytes_per_ecg_500hz": full_bytes,
            "peak_rss": rss, "peak_rss_runs": peaks, "rss_records": {"quarter": n // 4, "all": n}}


def report_mimic(m: dict) -> None:
    one, two, full = m["runs"]
    ratio = two["records_per_s"] / one["records_per_s"]
    slope = (m["peak_rss"]["all"] - m["peak_rss"]["quarter"]) / \
        (m["rss_records"]["all"] - m["rss_records"]["quarter"])
    print(f"\n## MIMIC-IV-ECG-shaped tree ({m['records']} records, 12 leads, 10 s, 500 Hz) -> "
          f"100 Hz store\n")
    print(table(["implementation", "records/s", "vs 1 worker"],
                [[r["implementation"], round(r["records_per_s"]),
                  r["records_per_s"] / one["records_per_s"]] for r in m["runs"][:2]]))
    print(f"\n- 2 workers vs 1: {ratio:.2f}x (target >= 1.7x) -> "
          f"{'met' if ratio >= 1.7 else 'NOT met'}; the stores are "
          f"{'byte-identical' if m['same_bytes'] else 'DIFFERENT'}")
    print(f"- per core: {one['records_per_s']:.0f} records/s with 1 worker, "
          f"{two['records_per_s'] / 2:.0f} with 2 (target >= 400) -> "
          f"{'met' if min(one['records_per_s'], two['records_per_s'] / 2) >= 400 else 'NOT met'}")
    q, a = m["rss_records"]["quarter"], m["rss_records"]["all"]
    print(f"- peak RSS (1 process): {m['peak_rss']['quarter'] / 2**20:.0f} MB at {q} records, "
          f"{m['peak_rss']['all'] / 2**20:.0f} MB at {a}: {slope / 1024:.2f} KB per record "
          f"(target <= 2) -> {'met' if slope <= 2048 else 'NOT met'}")
    at_full = m["peak_rss"]["all"] + slope * (MIMIC_RECORDS - a)
    rate2, rate500 = two["records_per_s"], full["records_per_s"]
    print(f"- {MIMIC_RECORDS:,} records: {at_full / 2**30:.2f} GB peak RSS; 100 Hz store "
          f"{m['bytes_per_ecg_100hz'] * MIMIC_RECORDS / 1e9:.1f} GB in "
          f"{MIMIC_RECORDS / rate2 / 60:.0f} min with 2 workers; 500 Hz store "
          f"{m['bytes_per_ecg_500hz'] * MIMIC_RECORDS / 1e9:.1f} GB in "
          f"{MIMIC_RECORDS / rate500 / 60:.0f} min ({rate500:.0f} records/s, 2 workers)")


def timed(label: str, run, n: int) -> dict:
    """Runs `run` once; its records per second of wall time, printed."""
    w0 = time.perf_counter()
    run()
    wall = time.perf_counter() - w0
    print(f"  {label}: {n / wall:.0f} records/s", flush=True)
    return {"implementation": label, "records": n, "wall_s": wall, "records_per_s": n / wall}


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        return probe(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 records: under a minute")
    parser.add_argument("--only", choices=("ptbxl", "challenge", "mimic"), default=None,
                        help="one group of rows")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    work = Path(tempfile.mkdtemp(prefix="bench_prepare-"))
    results, challenge, mimic = [], [], None
    cores = os.cpu_count() or 1
    try:
        if args.only in (None, "ptbxl"):
            results = bench_ptbxl(work, n, cores)
        if args.only in (None, "challenge"):
            print(f"Challenge: {200 if args.quick else 1000} records ...", flush=True)
            challenge = bench_challenge(work, 200 if args.quick else 1000)
        if args.only in (None, "mimic"):
            mimic = bench_mimic(work, 2000 if args.quick else 20000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if results:
        base = results[0]["records_per_s"]
        print(f"\n## PTB-XL-shaped records (12 leads, 10 s, 500 Hz) -> 100 Hz store, {cores} "
              f"cores\n")
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
    if mimic:
        report_mimic(mimic)
    name = "bench_prepare" if args.only is None else f"bench_prepare_{args.only}"
    path = write_results(name, {"results": results, "challenge": challenge, "mimic": mimic},
                         args.quick)
    print(f"results written to {path}")


def bench_ptbxl(work: Path, n: int, cores: int) -> list:
    print(f"writing {n} PTB-XL-shaped records ...", flush=True)
    write_ptbxl_like(work / "ptbxl", n)
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
    return results


if __name__ == "__main__":
    main()
