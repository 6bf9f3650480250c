"""``python -m mets_fast.prepare``: ECGs and their reports into an ECG store.

    python -m mets_fast.prepare synthetic --n 10000 --seed 0 --out stores/synthetic
    python -m mets_fast.prepare ptbxl /data/ptb-xl --out stores/ptbxl
    python -m mets_fast.prepare mitbih /data/mitdb --out stores/mitbih
    python -m mets_fast.prepare wfdb rec1 rec2 ... --out stores/mine

Every ECG is resampled to ``--fs`` (100 Hz by default), cleaned with
:func:`mets_fast.signal.clean` (baseline removal, 0.5–40 Hz band-pass, power-line notch),
normalised lead by lead and written as float16 (``--dtype``).  The settings go into the store's
manifest, and from there into every checkpoint trained on it, so that inference repeats them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from .data.records import STANDARD_LEADS, read_record
from .data.store import StoreWriter

BATCH = 256  # ECGs cleaned and written at a time


class Settings(NamedTuple):
    """The preprocessing a store records (and inference repeats)."""

    fs: float
    seconds: float
    leads: tuple
    clean: bool
    powerline: float | None
    normalize: str  # "lead", "record" or "none"
    dtype: str

    @property
    def samples(self) -> int:
        """Samples per lead of every stored ECG."""
        return int(round(self.fs * self.seconds))

    def as_dict(self) -> dict:
        return {**self._asdict(), "leads": list(self.leads)}


def preprocess(signals: np.ndarray, settings: Settings) -> np.ndarray:
    """Cleaning and normalisation of a batch ``(n, leads, samples)`` at ``settings.fs``; the
    one function both prepare and inference call.  Normalisation: ``"lead"`` divides each lead
    by its standard deviation after removing its mean (leads that are all zeros, missing ones,
    stay zeros), ``"record"`` divides all leads of an ECG by one standard deviation (keeping
    their relative amplitudes), ``"none"`` keeps millivolts."""
    from .signal import clean

    x = np.asarray(signals, dtype=np.float32)
    if settings.clean:
        x = clean(x, settings.fs, powerline=settings.powerline, nan_policy="interpolate")
    if settings.normalize == "lead":
        x = x - x.mean(axis=-1, keepdims=True)
        x = x / np.maximum(x.std(axis=-1, keepdims=True), 1e-6)
    elif settings.normalize == "record":
        x = x - x.mean(axis=-1, keepdims=True)
        x = x / np.maximum(x.std(axis=(-2, -1), keepdims=True), 1e-6)
    elif settings.normalize != "none":
        raise ValueError(f"normalize must be 'lead', 'record' or 'none', got {settings.normalize!r}")
    return x.astype(np.float32)


def fit_length(x: np.ndarray, samples: int) -> np.ndarray:
    """Crops to the first `samples` samples or pads with zeros at the end."""
    if x.shape[-1] >= samples:
        return x[..., :samples]
    return np.concatenate([x, np.zeros(x.shape[:-1] + (samples - x.shape[-1],), x.dtype)], -1)


# ---------------------------------------------------------------------------------------------
# Sources: each yields (signal (leads, samples) float32 at settings.fs, metadata dict) or
# (None, {"id": ..., "skip": reason}).
# ---------------------------------------------------------------------------------------------


def _read_one(args) -> tuple:
    """Worker: one WFDB record read, resampled and cut to length (runs in spawned processes,
    which run no parallel Numba code)."""
    path, fs, leads, samples = args
    try:
        record = read_record(path, fs=fs, leads=leads)
        return fit_length(record.signal, samples), None
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _map_records(tasks: list, workers: int) -> Iterable:
    if workers <= 1:
        yield from map(_read_one, tasks)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_read_one, tasks, chunksize=16)


def ptbxl_source(root: Path, meta: pd.DataFrame, settings: Settings, rate: int | None,
                 workers: int):
    """The records of `meta` (read_ptbxl's table of the data set at `root`)."""
    rate = rate or (500 if settings.fs > 100 else 100)
    column = {100: "filename_lr", 500: "filename_hr"}[rate]
    tasks = [(str(root / f), settings.fs, settings.leads, settings.samples) for f in meta[column]]
    keep = ["id", "patient", "report", "report_clean", "split", "source", "superclass",
            "subclass", "form", "rhythm", "strat_fold"]
    rows = meta[keep].to_dict("records")
    for row, (signal, error) in zip(rows, _map_records(tasks, workers)):
        yield (signal, row) if error is None else (None, {"id": row["id"], "skip": error})


def mitbih_source(root: Path, settings: Settings, seed: int, step: float | None):
    from .data.mitbih import mitbih_windows, read_mitbih, split_records

    headers = sorted(root.glob("*.hea"))
    splits = split_records([h.stem for h in headers], seed=seed)
    for header in headers:
        try:
            rec = read_mitbih(header.with_suffix(""), fs=settings.fs)
        except (OSError, ValueError) as exc:
            yield None, {"id": f"mitbih-{header.stem}", "skip": f"{type(exc).__name__}: {exc}"}
            continue
        signals, meta = mitbih_windows(rec, settings.seconds, step)
        index = {n: k for k, n in enumerate(rec.record.leads)}
        for k, row in meta.iterrows():
            # both leads kept: MLII as II, the second under its own name when it is standard
            signal = np.zeros((len(settings.leads), settings.samples), np.float32)
            for j, lead in enumerate(settings.leads):
                if lead in index:
                    signal[j] = signals[k, index[lead]]
            yield signal, {"id": f"mitbih-{header.stem}-{row['start']}", "patient": header.stem,
                           "report": row["report"], "report_clean": row["report"],
                           "split": splits[header.stem], "source": "mitbih",
                           "superclass": row["superclass"], "subclass": row["subclass"],
                           "form": row["form"], "rhythm": row["rhythm"], "start": row["start"]}


def wfdb_source(paths: list, settings: Settings, seed: int, workers: int):
    tasks = [(str(p), settings.fs, settings.leads, settings.samples) for p in paths]
    order = np.random.default_rng(seed).permutation(len(paths))
    split = np.empty(len(paths), dtype=object)
    cut1, cut2 = int(round(0.8 * len(paths))), int(round(0.9 * len(paths)))
    split[order[:cut1]], split[order[cut1:cut2]], split[order[cut2:]] = "train", "val", "test"
    for k, (signal, error) in enumerate(_map_records(tasks, workers)):
        name = f"wfdb-{Path(paths[k]).stem}"
        if error is not None:
            yield None, {"id": name, "skip": error}
            continue
        yield signal, {"id": name, "report": "", "report_clean": "", "split": split[k],
                       "source": "wfdb", "superclass": [], "subclass": [], "form": [],
                       "rhythm": []}


def write_store(out: Path, source: Iterable, n_max: int, settings: Settings,
                overwrite: bool = False, quiet: bool = False, extra: dict | None = None) -> dict:
    """Drains `source` into a store at `out`; returns the summary (written, skipped with
    reasons, label counts)."""
    from tqdm import tqdm

    rows, skipped = [], []
    with StoreWriter(out, n_max, settings.leads, settings.samples, settings.fs, settings.dtype,
                     preprocessing={**settings.as_dict(), **(extra or {})},
                     overwrite=overwrite) as writer:
        batch, batch_rows = [], []

        def flush():
            if batch:
                start = len(rows)
                writer.signals[start:start + len(batch)] = preprocess(np.stack(batch), settings)
                rows.extend(batch_rows)
                batch.clear()
                batch_rows.clear()

        for signal, row in tqdm(source, total=n_max, disable=quiet, unit="ecg",
                                desc=f"preparing {out.name}"):
            if signal is None:
                skipped.append(row)
                continue
            batch.append(signal)
            batch_rows.append(row)
            if len(batch) == BATCH:
                flush()
        flush()
        if not rows:
            detail = f"; the first error: {skipped[0]['skip']}" if skipped else ""
            raise ValueError(f"no ECG could be prepared for {out} ({len(skipped)} skipped"
                             f"{detail})")
        writer.shrink(len(rows))
        meta = pd.DataFrame(rows)
        writer.set_meta(meta)
    return summarize(meta, skipped)


def summarize(meta: pd.DataFrame, skipped: list) -> dict:
    summary = {"written": len(meta), "skipped": len(skipped),
               "skip_reasons": Counter(s["skip"].split(":")[0] for s in skipped),
               "skipped_ids": [s["id"] for s in skipped[:20]],
               "first_error": skipped[0]["skip"] if skipped else None,
               "splits": dict(Counter(meta["split"])) if len(meta) else {}}
    for family in ("superclass", "rhythm", "form"):
        if family in meta and len(meta):
            summary[family] = dict(Counter(c for ls in meta[family] for c in ls).most_common())
    return summary


def _print_summary(summary: dict, out: Path) -> None:
    print(f"\nstore written: {out} ({summary['written']} ECGs; splits {summary['splits']})")
    for family in ("superclass", "rhythm", "form"):
        if summary.get(family):
            print(f"  {family}: {summary[family]}")
    if summary["skipped"]:
        print(f"  skipped {summary['skipped']} record(s): {dict(summary['skip_reasons'])}")
        print(f"  first skipped: {summary['skipped_ids']}")
        print(f"  first error: {summary['first_error']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.prepare",
                                     description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, type=Path, help="store directory to create")
    common.add_argument("--fs", type=float, default=100.0, help="sampling rate in Hz (100)")
    common.add_argument("--seconds", type=float, default=10.0, help="ECG length in s (10)")
    common.add_argument("--leads", default=",".join(STANDARD_LEADS),
                        help="comma-separated leads, in order (the 12 standard leads)")
    common.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    common.add_argument("--normalize", choices=("lead", "record", "none"), default="lead",
                        help="per-lead standardisation (default), one scale per ECG, or none")
    common.add_argument("--no-clean", action="store_true", help="skip the cleaning chain")
    common.add_argument("--powerline", type=float, default=50.0,
                        help="power-line frequency for the notch (50; 60 in the Americas; 0 = off)")
    common.add_argument("--workers", type=int, default=1,
                        help="processes reading records (spawned; default 1)")
    common.add_argument("--threads", type=int, default=None,
                        help="threads for the Numba kernels (default: all cores)")
    common.add_argument("--seed", type=int, default=0, help="seed for splits and sampling")
    common.add_argument("--overwrite", action="store_true", help="replace an existing store")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="source", required=True)
    s = sub.add_parser("synthetic", parents=[common], help="the embedded synthetic corpus")
    s.add_argument("--n", type=int, default=10000, help="number of ECGs (10000)")
    s = sub.add_parser("ptbxl", parents=[common], help="PTB-XL from its root directory")
    s.add_argument("root", type=Path)
    s.add_argument("--rate", type=int, choices=(100, 500), default=None,
                   help="records to read: records100 or records500 (default: 500 above 100 Hz)")
    s = sub.add_parser("mitbih", parents=[common], help="MIT-BIH Arrhythmia records, windowed")
    s.add_argument("root", type=Path)
    s.add_argument("--step", type=float, default=None, help="window hop in s (= --seconds)")
    s = sub.add_parser("wfdb", parents=[common], help="any WFDB records")
    s.add_argument("paths", nargs="+", type=Path)
    return parser


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    leads = tuple(x.strip() for x in args.leads.split(",") if x.strip())
    settings = Settings(args.fs, args.seconds, leads, not args.no_clean,
                        args.powerline or None, args.normalize, args.dtype)
    extra = {"source": args.source}
    if args.source == "synthetic":
        from .data.synthetic import synthetic_corpus

        signals, meta = synthetic_corpus(args.n, seed=args.seed, fs=args.fs, seconds=args.seconds)
        index = [STANDARD_LEADS.index(x) for x in leads]
        source = ((signals[k, index], row) for k, row in enumerate(meta.to_dict("records")))
        n_max = args.n
        extra["seed"] = args.seed
    elif args.source == "ptbxl":
        from .data.ptbxl import read_ptbxl

        meta = read_ptbxl(args.root)
        n_max = len(meta)
        source = ptbxl_source(args.root, meta, settings, args.rate, args.workers)
    elif args.source == "mitbih":
        headers = sorted(args.root.glob("*.hea"))
        # one spare window per record: resampling may round a record's length up
        n_max = sum(_count_windows(h, settings, args.step) + 1 for h in headers)
        source = mitbih_source(args.root, settings, args.seed, args.step)
    else:
        n_max = len(args.paths)
        source = wfdb_source(args.paths, settings, args.seed, args.workers)
    try:
        summary = write_store(args.out, source, n_max, settings, args.overwrite, args.quiet,
                              extra)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_summary(summary, args.out)
    return 0


def _count_windows(header: Path, settings: Settings, step: float | None) -> int:
    """Windows a MIT-BIH record will give, from its header alone."""
    import wfdb

    try:
        h = wfdb.rdheader(str(header.with_suffix("")))
    except Exception:  # the reader reports the bad record when it gets there
        return 0
    n = int(round(h.sig_len * settings.fs / h.fs))
    width = settings.samples
    hop = int(round((step or settings.seconds) * settings.fs))
    return max(0, (n - width) // hop + 1)


if __name__ == "__main__":
    sys.exit(main())
