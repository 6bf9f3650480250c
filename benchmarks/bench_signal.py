"""R-peak detection and ECG cleaning against the usual Python peers, side by side.

Detection, single thread, over the shared MIT-BIH DS1 records (lead MLII): ours against
sleepecg's C detector, neurokit2's default, Pan-Tompkins and Manikandan detectors and wfdb's
GQRS, each with its own filtering; Se, PPV and F1 in total and for every record (150 ms
matching, each beat used once, ventricular flutter excluded as ANSI/AAMI EC57 does, and also with
nothing excluded) and samples per second of process CPU time.  Then the same on each record's
other lead (V1 mostly), which the detector was never developed on: a check that it generalises.

Cleaning: `clean` on 256 PTB-XL-shaped ECGs (12 leads, 10 s, 500 Hz) against the same chain
written with scipy (mets_fast.signal.reference.clean_scipy) and neurokit2's ecg_clean, records
per second on 1 and 2 threads.

    python benchmarks/bench_signal.py [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import shared_data, table, write_results  # noqa: E402

from mets_fast.signal import clean, detect_rpeaks, match_beats  # noqa: E402
from mets_fast.signal.reference import clean_scipy  # noqa: E402


def load_mitdb(folder: Path, names=None):
    """{record: (leads, fs, reference beats, ventricular flutter intervals)} from the data
    layer's MIT-BIH reader; `leads` holds MLII first, then the record's other lead (V1 in most
    records, V2, V4 or V5 in a few)."""
    from mets_fast.data.sources.mitbih import qrs_reference, read_mitbih

    records = {}
    for header in sorted(folder.glob("*.hea")):
        if names and header.stem not in names:
            continue
        rec = read_mitbih(header.with_suffix(""))
        mlii, beats, flutter = qrs_reference(rec)
        other = rec.record.signal[[k for k, lead in enumerate(rec.record.leads) if lead != "II"][0]]
        records[header.stem] = (np.stack([mlii, other.astype(np.float64)]), rec.record.fs, beats,
                                flutter)
    return records


def detectors(quick: bool) -> dict:
    """name -> (callable(signal, fs) -> indices, repeats for timing)."""
    found = {"mets_fast": (lambda x, fs: detect_rpeaks(x, fs), 5)}
    try:
        import sleepecg

        found["sleepecg (C)"] = (lambda x, fs: sleepecg.detect_heartbeats(x, fs, backend="c"), 5)
    except ImportError:
        print("sleepecg not installed: skipped (pip install '.[bench]')")
    try:
        import neurokit2 as nk

        def nk_detector(method, clean_method):
            def run(x, fs):
                cleaned = nk.ecg_clean(x, sampling_rate=int(fs), method=clean_method)
                return nk.ecg_peaks(cleaned, sampling_rate=int(fs), method=method)[1]["ECG_R_Peaks"]
            return run

        found["neurokit2 default"] = (nk_detector("neurokit", "neurokit"), 1)
        found["neurokit2 Pan-Tompkins"] = (nk_detector("pantompkins1985", "pantompkins1985"), 1)
        found["neurokit2 Manikandan"] = (nk_detector("manikandan2012", "neurokit"), 1)
    except ImportError:
        print("neurokit2 not installed: skipped (pip install '.[bench]')")
    if not quick:
        import wfdb.processing

        found["wfdb GQRS"] = (lambda x, fs: wfdb.processing.gqrs_detect(x, fs=fs), 1)
    return found


def detection(records: dict, quick: bool, lead: int, timed: bool) -> list:
    """Every detector on lead `lead` of every record: totals (EC57 exclusion and none), the
    counts of each record and, when `timed`, samples per second of process CPU time."""
    numba.set_num_threads(1)
    rows = []
    for name, (fn, repeats) in detectors(quick).items():
        ec57 = everything = None
        per_record, failed = {}, {}
        cpu = 0.0
        samples = 0
        first = next(iter(records.values()))
        fn(first[0][lead], first[1])  # warm-up (compilation, caches)
        for record, (leads, fs, beats, flutter) in records.items():
            signal = np.ascontiguousarray(leads[lead])
            times = []
            for _ in range(repeats if timed else 1):
                c0 = time.process_time()
                try:
                    found = np.asarray(fn(signal, fs), dtype=np.int64)
                except Exception as exc:  # a peer's bug: scored as finding nothing, and said
                    found = np.empty(0, np.int64)
                    failed[record] = f"{type(exc).__name__}: {exc}"
                times.append(time.process_time() - c0)
            cpu += statistics.median(times)
            samples += len(signal)
            a = match_beats(found, beats, fs, 0.15, exclude=flutter)
            b = match_beats(found, beats, fs, 0.15)
            per_record[record] = a
            ec57 = a if ec57 is None else ec57 + a
            everything = b if everything is None else everything + b
        rows.append({"detector": name, "se": ec57.sensitivity, "ppv": ec57.ppv, "f1": ec57.f1,
                     "se_all": everything.sensitivity, "ppv_all": everything.ppv,
                     "msamples_per_s": samples / cpu / 1e6 if timed else None,
                     "counts": ec57._asdict(),
                     "records": {k: v._asdict() for k, v in per_record.items()},
                     "failed": failed, "_per_record": per_record})
        for record, error in failed.items():
            print(f"  lead {lead} {name} raised on record {record} ({error}); scored as no beats")
        print(f"  lead {lead} {name}: Se {100 * ec57.sensitivity:.2f} %, PPV {100 * ec57.ppv:.2f} %"
              + (f", {samples / cpu / 1e6:.1f} M samples/s" if timed else ""), flush=True)
    return rows


def detection_table(rows: list, timed: bool) -> str:
    head = ["detector", "Se %", "PPV %", "F1 %", "Se % (no exclusion)", "PPV % (no exclusion)"]
    body = [[r["detector"], *(f"{100 * r[k]:.2f}" for k in ("se", "ppv", "f1", "se_all", "ppv_all"))]
            for r in rows]
    if timed:
        head += ["M samples/s", "vs sleepecg"]
        body = [b + [r["msamples_per_s"], _ratio(r, rows)] for b, r in zip(body, rows)]
    failures = [f"{r['detector']} raised on record(s) {', '.join(r['failed'])} (scored as no "
                f"beats found)" for r in rows if r["failed"]]
    return table(head, body) + "".join(f"\n\n{line}" for line in failures)


def per_record_table(rows: list) -> str:
    """Se / PPV of every detector on every record (EC57 exclusion)."""
    names = [r["detector"] for r in rows]
    records = list(rows[0]["_per_record"])
    body = []
    for record in records:
        line = [record]
        for r in rows:
            m = r["_per_record"][record]
            line.append(f"{100 * m.sensitivity:.2f} / {100 * m.ppv:.2f}")
        body.append(line)
    return table(["record"] + [f"{n} Se / PPV %" for n in names], body)


def ptbxl_like(n_records: int, seed: int = 0) -> np.ndarray:
    """12-lead, 10 s, 500 Hz float32 signals: a random walk (wander) plus white noise."""
    rng = np.random.default_rng(seed)
    shape = (n_records, 12, 5000)
    x = np.cumsum(rng.standard_normal(shape, dtype=np.float32), axis=-1) * 0.01
    return (x + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def cleaning(n_records: int, repeats: int) -> list:
    x = ptbxl_like(n_records)
    fs = 500.0
    rows = []

    def timed(fn):
        fn()
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        return statistics.median(wall), statistics.median(cpu)

    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        wall, cpu = timed(lambda: clean(x, fs))
        rows.append({"implementation": "mets_fast.clean", "threads": threads,
                     "records_per_s": n_records / wall, "cpu_s": cpu})
    wall, cpu = timed(lambda: clean_scipy(x, fs))
    rows.append({"implementation": "same chain in scipy", "threads": 1,
                 "records_per_s": n_records / wall, "cpu_s": cpu})
    try:
        import neurokit2 as nk

        subset = x[: max(1, n_records // 8)]
        wall, cpu = timed(lambda: [nk.ecg_clean(lead, sampling_rate=500) for rec in subset
                                   for lead in rec])
        rows.append({"implementation": "neurokit2 ecg_clean", "threads": 1,
                     "records_per_s": len(subset) / wall, "cpu_s": cpu * n_records / len(subset)})
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 records, 32 ECGs: under a minute")
    args = parser.parse_args()

    folder = shared_data("mitdb-ds1")
    det_rows = other_rows = []
    if folder is None:
        print("shared MIT-BIH records not found (METS_FAST_DATA or ../shared/data): detection "
              "skipped")
    else:
        records = load_mitdb(folder, {"101", "203", "207"} if args.quick else None)
        det_rows = detection(records, args.quick, lead=0, timed=True)
        other_rows = detection(records, args.quick, lead=1, timed=False)
    clean_rows = cleaning(32 if args.quick else 256, 2 if args.quick else 5)

    if det_rows:
        print(f"\n## R-peak detection, MIT-BIH DS1 ({len(records)} records, MLII), 1 thread\n")
        print(detection_table(det_rows, timed=True))
        print("\n### Every record (MLII; ventricular flutter excluded)\n")
        print(per_record_table(det_rows))
        print("\n## The other lead (V1 in most records; never used while developing the "
              "detector)\n")
        print(detection_table(other_rows, timed=False))
    print("\n## clean: 12 leads x 10 s x 500 Hz ECGs (wall time, medians)\n")
    scipy_rate = next(r["records_per_s"] for r in clean_rows if r["implementation"].startswith("same"))
    print(table(["implementation", "threads", "records/s", "vs scipy chain"],
                [[r["implementation"], r["threads"], r["records_per_s"],
                  r["records_per_s"] / scipy_rate] for r in clean_rows]))
    for r in det_rows + other_rows:
        del r["_per_record"]
    path = write_results("bench_signal", {"detection": det_rows, "other_lead": other_rows,
                                          "clean": clean_rows}, args.quick)
    print(f"\nresults written to {path}")


def _ratio(row, rows):
    peer = next((r for r in rows if r["detector"].startswith("sleepecg")), None)
    return row["msamples_per_s"] / peer["msamples_per_s"] if peer else float("nan")


if __name__ == "__main__":
    main()
