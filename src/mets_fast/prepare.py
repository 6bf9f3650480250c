"""``python -m mets_fast.prepare``: ECGs and their reports into an ECG store.

    python -m mets_fast.prepare synthetic --n 10000 --seed 0 --out stores/synthetic
    python -m mets_fast.prepare ptbxl /data/ptb-xl --out stores/ptbxl
    python -m mets_fast.prepare mitbih /data/mitdb --out stores/mitbih
    python -m mets_fast.prepare wfdb rec1 rec2 ... --out stores/mine [--reports reports.csv]
    python -m mets_fast.prepare challenge /data/cinc2021/training --out stores/challenge
    python -m mets_fast.prepare mimic-iv-ecg /data/mimic-iv-ecg --out stores/mimic --workers 2
    python -m mets_fast.prepare mimic-iv-ecg /data/mimic-iv-ecg --out stores/mimic --resume

Every ECG is resampled to --fs (100 Hz by default), cleaned (baseline removal, 0.5-40 Hz
band-pass, power-line notch: 50 Hz, 60 Hz for MIT-BIH, recorded in the Americas), normalised
lead by lead over its real samples (a record shorter than --seconds is zero-padded, and the
padding is left out of the statistics) and written as float16 (--dtype).  The settings go into
the store's manifest, and from there into every model trained on it, so that inference repeats
them.  Which leads each ECG really has is stored beside the signals.

Mistakes in the flags end with one line on standard error and exit code 2; data that cannot be
prepared, with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .data.ingest import write_source
from .data.preprocess import Settings
from .data.records import parse_lead_names, parse_leads
from .data.sources import SETTINGS, open_source
from .data.sources.wfdb import read_reports_csv
from .data.store import check_replaceable
from .errors import UsageError, command, positive_int, seed
from .processes import cap_workers
from .signal._checks import MIN_FS


def settings_of(args) -> Settings:
    """The settings the flags ask for (the source's own, ``SETTINGS``, where a flag is left
    out), or a UsageError naming the flag that is wrong."""
    default = SETTINGS[args.source]
    fs = default.fs if args.fs is None else args.fs
    seconds = default.seconds if args.seconds is None else args.seconds
    for name, value in (("fs", fs), ("seconds", seconds)):
        if not (np.isfinite(value) and value > 0):
            raise UsageError(f"--{name} must be a positive number, got {value:g}")
    if fs < MIN_FS:
        raise UsageError(f"--fs must be at least {MIN_FS:g} Hz, got {fs:g}")
    if args.source == "synthetic" and args.n < 1:
        raise UsageError(f"--n must be a positive number of ECGs, got {args.n}")
    args.workers = cap_workers(args.workers)
    if args.workers > 1 and args.source in ("synthetic", "mitbih"):
        raise UsageError(f"--workers applies to ptbxl, wfdb, challenge and mimic-iv-ecg "
                         f"(processes reading records); "
                         f"{args.source} is prepared in one process, whose Numba kernels use "
                         f"--threads")
    powerline = args.powerline if args.powerline is not None else (default.powerline or 0.0)
    if not (np.isfinite(powerline) and powerline >= 0):
        raise UsageError(f"--powerline must be a frequency in Hz (0: no notch), got {powerline}")
    sharded = args.source == "mimic-iv-ecg"
    if (args.resume or args.shard_size) and not sharded:
        raise UsageError(f"--resume and --shard-size apply to mimic-iv-ecg (prepared in "
                         f"shards), not {args.source}")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues an interrupted run, --overwrite discards it: "
                         "pass one")
    if args.out.exists() and not (args.overwrite or args.resume):
        raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
    try:
        check_replaceable(args.out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    leads = default.leads if args.leads is None else parse_leads(args.leads)
    if getattr(args, "lead_names", None) is not None:
        args.lead_names = parse_lead_names(args.lead_names)
    return Settings(fs, seconds, leads, not args.no_clean, powerline or None,
                    args.normalize or default.normalize, args.dtype or default.dtype)


def _print_summary(summary: dict, out: Path, settings: Settings) -> None:
    print(f"\nstore written: {out} ({summary['written']} ECGs; splits {summary['splits']})")
    print(f"  {settings.fs:g} Hz, {settings.seconds:g} s, notch "
          f"{f'{settings.powerline:g} Hz' if settings.powerline else 'off'}, normalise "
          f"{settings.normalize}")
    present = summary["leads_present"]
    missing = {lead: summary["written"] - k for lead, k in present.items()
               if k < summary["written"]}
    if missing:
        print(f"  leads missing (stored as zeros, flagged in lead_mask.npy): {missing}")
    if summary["padded"]:
        print(f"  {summary['padded']} ECG(s) shorter than {settings.seconds:g} s, zero-padded")
    if summary["no_report"]:
        print(f"  {summary['no_report']} ECG(s) without a report")
    for family in ("superclass", "rhythm", "form"):
        if summary.get(family):
            print(f"  {family}: {summary[family]}")
    if summary["skipped"]:
        print(f"  skipped {summary['skipped']} record(s): {dict(summary['skip_reasons'])}")
        print(f"  first skipped: {summary['skipped_ids']}")
        for error, k in summary["first_errors"].items():
            print(f"  {k} x {error}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mets_fast.prepare",
                                     description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, type=Path, help="store directory to create")
    common.add_argument("--fs", type=float, help="sampling rate in Hz (100)")
    common.add_argument("--seconds", type=float, default=None,
                        help="ECG length in s (10; MIT-BIH beat windows 3)")
    common.add_argument("--leads", help="comma-separated leads, in order (the 12 standard leads)")
    common.add_argument("--allow-missing-leads", action="store_true",
                        help="store a lead named in --leads that no record has as zeros (it is "
                             "an error otherwise)")
    common.add_argument("--dtype", choices=("float16", "float32"),
                        help="stored sample type (float16)")
    common.add_argument("--normalize", choices=("lead", "record", "none"),
                        help="per-lead standardisation (default), one scale per ECG, or none")
    common.add_argument("--no-clean", action="store_true", help="skip the cleaning chain")
    common.add_argument("--powerline", type=float, default=None,
                        help="power-line frequency of the notch in Hz (the source's: 50; "
                             "MIT-BIH 60; Challenge trees none, their databases were recorded "
                             "on both mains; 0: off)")
    common.add_argument("--workers", type=positive_int, default=1,
                        help="processes reading records, ptbxl, wfdb, challenge and "
                             "mimic-iv-ecg only (spawned; 1: they pay off for thousands of "
                             "records)")
    common.add_argument("--threads", type=positive_int, default=None,
                        help="threads for the Numba kernels (default: all cores)")
    common.add_argument("--seed", type=seed, default=0, help="seed for splits and sampling")
    common.add_argument("--overwrite", action="store_true", help="replace an existing store")
    common.add_argument("--resume", action="store_true",
                        help="mimic-iv-ecg: continue a run that was interrupted (killed, "
                             "Ctrl-C, a full disk) from its last finished shard")
    common.add_argument("--shard-size", type=positive_int, default=None,
                        help="mimic-iv-ecg: records per shard, the unit of work of a worker "
                             "and of --resume (1024)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    s = sub.add_parser("synthetic", parents=[common], help="the embedded synthetic corpus")
    s.add_argument("--n", type=int, default=10000, help="number of ECGs (10000)")
    s = sub.add_parser("ptbxl", parents=[common], help="PTB-XL from its root directory")
    s.add_argument("root", type=Path,
                   help="PTB-XL's folder (ptbxl_database.csv, scp_statements.csv, records*/)")
    s.add_argument("--rate", type=int, choices=(100, 500), default=None,
                   help="records to read: records100 or records500 (default: 500 above 100 Hz)")
    s = sub.add_parser("mitbih", parents=[common], help="MIT-BIH Arrhythmia records, windowed")
    s.add_argument("root", type=Path,
                   help="a folder of MIT-BIH-format records (.hea, .dat and .atr each)")
    s.add_argument("--windows", choices=("beats", "consecutive"), default="beats",
                   help="windows centred on beats, reported by the centre beat (default), or "
                        "back-to-back windows reported by everything annotated in them")
    s.add_argument("--step", type=float, default=None,
                   help="hop of consecutive windows in s (= --seconds)")
    s = sub.add_parser("wfdb", parents=[common], help="any WFDB records")
    s.add_argument("paths", nargs="+", type=Path, metavar="RECORD",
                   help="WFDB records (with or without .hea)")
    s.add_argument("--reports", type=Path, default=None,
                   help="CSV with 'record' and 'report' columns (else each header's comments)")
    s = sub.add_parser("challenge", parents=[common],
                       help="PhysioNet/CinC Challenge 2020/2021 trees (.hea + .mat)")
    s.add_argument("paths", nargs="+", type=Path, metavar="ROOT",
                   help="folders searched recursively for records (every database mixed)")
    s.add_argument("--lead-names", default=None, metavar="OWN=STD,...",
                   help="map the records' own lead names to standard ones (ECG=I for the "
                        "2017 Challenge's single lead); a record with none of the leads asked "
                        "for is skipped, naming its leads")
    s = sub.add_parser("mimic-iv-ecg", parents=[common],
                       help="MIMIC-IV-ECG: record_list.csv, machine_measurements.csv, files/")
    s.add_argument("root", type=Path, help="the MIMIC-IV-ECG root")
    s.add_argument("--split", choices=("patient", "random"), default="patient",
                   help="by patient (default; seeded 98/1/1) or by record (MERL's)")
    return parser


def _run(args) -> int:
    from .threads import set_threads

    settings = settings_of(args)
    reports = read_reports_csv(args.reports) if getattr(args, "reports", None) else None
    set_threads(args.threads)
    # leads asked for by name must exist in some record; the source's own set need not
    default_leads = SETTINGS[args.source].leads
    explicit = [] if args.allow_missing_leads or settings.leads == default_leads else \
        settings.leads
    source = open_source(args.source, settings, root=getattr(args, "root", None),
                         paths=getattr(args, "paths", None), n=getattr(args, "n", 0),
                         seed=args.seed, workers=args.workers,
                         rate=getattr(args, "rate", None), step=getattr(args, "step", None),
                         windows=getattr(args, "windows", "beats"), reports=reports,
                         split=getattr(args, "split", "patient"),
                         lead_names=getattr(args, "lead_names", None))
    summary = write_source(args.out, source, settings, workers=args.workers,
                           overwrite=args.overwrite, resume=args.resume,
                           shard_size=args.shard_size, quiet=args.quiet,
                           required_leads=explicit)
    if summary["written"] is None:
        print(f"{args.out} is complete: nothing to resume")
    elif not args.quiet:
        _print_summary(summary, args.out, settings)
    return 0


main = command(build_parser, _run)

if __name__ == "__main__":
    sys.exit(main())
