"""MIMIC-IV-ECG v1.0 (Gow et al. 2023): 800,035 diagnostic 12-lead ECGs of about 160,000
patients, 10 s at 500 Hz, each with up to 18 machine report lines; the corpus ECG-text models
pre-train on.

The root holds ``record_list.csv`` (``subject_id``, ``study_id``, ``file_name``, ``ecg_time``,
``path``), ``machine_measurements.csv`` (``report_0`` ... ``report_17`` beside the intervals and
axes) and the WFDB records at ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat}``, whose leads
are stored I, II, III, aVR, aVF, aVL, V1-V6 (aVF before aVL): they are mapped by name, never by
position.  A study's report is its report lines cleaned as the field does
(:func:`~mets_fast.data.reports.machine_report`); a study without any is not stored, a record
listed but absent on disk is skipped, and so is one whose header is not a 12-lead ECG; each is
counted in the summary with its reason.  Invalid samples are filled over short gaps and a lead
that is off or flat is stored as missing (``read_record``).  The default split is by patient
(``subject_id``; seeded, 98 / 1 / 1: no patient in two splits); ``split="random"`` gives MERL's
record-level split, for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..preprocess import DEFAULT_SETTINGS, Settings
from ..records import STANDARD_LEADS, standard_lead
from ..reports import clean_report, machine_report
from ..splits import split_groups
from ..store import store_row
from .items import Item, Source
from .wfdb import Fitted, read_fitted, read_many

SETTINGS = DEFAULT_SETTINGS._replace(powerline=60.0)  # Beth Israel Deaconess, Boston
SPLITS = ("patient", "random")
FRACTIONS = (0.98, 0.01, 0.01)
REPORT_COLUMNS = tuple(f"report_{k}" for k in range(18))
# machine_measurements.csv's intervals (ms, from onsets and ends) and axes (degrees)
MEASUREMENTS = ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis",
                "qrs_axis", "t_axis")


def read_tables(root: str | Path) -> pd.DataFrame:
    """``record_list.csv`` joined with ``machine_measurements.csv`` on ``study_id``: one row
    per study with its record path, patient, report lines and measurements.  A missing table
    or column is a ValueError naming the file and what it lacks."""
    root = Path(root)
    records = _csv(root / "record_list.csv", ("subject_id", "study_id", "path"))
    measured = _csv(root / "machine_measurements.csv", ("study_id",))
    lines = [c for c in REPORT_COLUMNS if c in measured]
    if not lines:
        raise ValueError(f"{root / 'machine_measurements.csv'} has no report_0 ... report_17 "
                         f"column (columns: {list(measured.columns)[:10]})")
    keep = ["study_id", *lines, *[c for c in MEASUREMENTS if c in measured]]
    return records.merge(measured[keep], on="study_id", how="left", validate="one_to_one")


def _csv(path: Path, needed: tuple) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"MIMIC-IV-ECG table not found: {path}")
    table = pd.read_csv(path, dtype={"subject_id": str, "study_id": str, "path": str},
                        low_memory=False)
    missing = [c for c in needed if c not in table]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing} (columns: "
                         f"{list(table.columns)[:10]})")
    return table


def measurements(row) -> dict:
    """A study's measurements as the store keeps them: ``rr``, ``pr``, ``qrs``, ``qt`` in ms
    (from the onsets and ends) and ``p_axis``, ``qrs_axis``, ``t_axis`` in degrees; None where
    the cart gave none (MIMIC-IV-ECG writes 29999 for a missing value)."""
    def value(key):
        v = pd.to_numeric(row.get(key), errors="coerce")
        return None if pd.isna(v) or abs(v) >= 29999 else float(v)

    def span(start, end):
        a, b = value(start), value(end)
        return None if a is None or b is None else b - a

    return {"rr": value("rr_interval"), "pr": span("p_onset", "qrs_onset"),
            "qrs": span("qrs_onset", "qrs_end"), "qt": span("qrs_onset", "t_end"),
            "p_axis": value("p_axis"), "qrs_axis": value("qrs_axis"),
            "t_axis": value("t_axis")}


def source(settings: Settings, root, *, seed: int = 0, workers: int = 1,
           split: str = "patient") -> Source:
    """The MIMIC-IV-ECG tree at `root` (see the module's description)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    table = read_tables(root)
    return Source(mimic_source(Path(root), table, settings, seed, workers, split), len(table),
                  {"source": "mimic-iv-ecg", "seed": seed, "split": split})


def mimic_source(root: Path, table: pd.DataFrame, settings: Settings, seed: int, workers: int,
                 split: str):
    groups = table["subject_id"] if split == "patient" else np.arange(len(table))
    splits = split_groups(groups, FRACTIONS, seed)
    lines = [c for c in REPORT_COLUMNS if c in table]
    reports = [machine_report(r) for r in table[lines].itertuples(index=False)]
    keep = np.array([bool(text) for text, _ in reports])
    tasks = [(str(root / p), settings.fs, settings.leads, settings.samples)
             for p in table["path"][keep]]
    read = iter(read_many(tasks, workers, read_checked))
    for k, row in enumerate(table.itertuples(index=False)):
        name = f"mimic-{row.study_id}"
        if not keep[k]:
            yield Item(None, {"id": name, "skip": "NoReport: the study has no report line"})
            continue
        fitted = next(read)
        if fitted.error is not None:
            yield Item(None, {"id": name, "skip": fitted.error})
            continue
        text, flagged = reports[k]
        yield Item(fitted.signal,
                   store_row(name, text, splits[k], "mimic-iv-ecg", report_clean=clean_report(text),
                             patient=str(row.subject_id), study=str(row.study_id),
                             record=str(row.path), ecg_time=str(getattr(row, "ecg_time", "")),
                             quality_flag=flagged, **measurements(row._asdict())),
                   fitted.mask, fitted.length)


def read_checked(args) -> Fitted:
    """Worker: :func:`~mets_fast.data.sources.wfdb.read_fitted` of a record whose header names
    the 12 standard leads (a MIMIC-IV-ECG record always does: another is damaged).  A missing
    header is read_fitted's to report."""
    path = Path(args[0])
    header = path.with_name(path.name + ".hea")
    if header.is_file():
        names = [standard_lead(" ".join(line.split()[8:]))
                 for line in header.read_text(errors="replace").splitlines()[1:]
                 if line.strip() and not line.startswith("#")]
        if sorted(names) != sorted(STANDARD_LEADS):
            return Fitted(None, None, 0, (), f"ValueError: {header} names {len(names)} leads "
                                             f"{names}, not the 12 standard leads")
    return read_fitted(args)
