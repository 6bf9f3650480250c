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
import sys
from pathlib import Path

from .data.build import open_source, write_store
from .data.preprocess import Settings
from .data.records import STANDARD_LEADS


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
    s.add_argument("--windows", choices=("beats", "consecutive"), default="beats",
                   help="windows centred on beats, reported by the centre beat (default), or "
                        "back-to-back windows reported by everything annotated in them")
    s.add_argument("--step", type=float, default=None,
                   help="hop of consecutive windows in s (= --seconds)")
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
    try:
        source = open_source(args.source, settings, root=getattr(args, "root", None),
                             paths=getattr(args, "paths", None), n=getattr(args, "n", 0),
                             seed=args.seed, workers=args.workers,
                             rate=getattr(args, "rate", None), step=getattr(args, "step", None),
                             windows=getattr(args, "windows", "beats"))
        summary = write_store(args.out, source.items, source.n_max, settings, args.overwrite,
                              args.quiet, source.extra)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
