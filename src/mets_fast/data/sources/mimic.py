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
from ..shards import ShardedSource
from .wfdb import Fitted, read_fitted

SETTINGS = DEFAULT_SETTINGS._replace(powerline=60.0)  # Beth Israel Deaconess, Boston
SPLITS = ("patient", "random")
FRACTIONS = (0.98, 0.01, 0.01)
REPORT_COLUMNS = tuple(f"report_{k}" for k in range(18))
# machine_measurements.csv's intervals (ms, from onsets and ends) and axes (degrees)
MEASUREMENTS = ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis",
                "qrs_axis", "t_axis")


def read_tables(root: str | Path) -> pd.DataFrame:
    """``record_list.csv`` joined with ``machine_measurements.csv`` on ``study_id``: one row
    per study with its record path, patient, report lines and measurements (only those columns
    are read: the tables of 800,035 studies hold many more).  A missing table or column is a
    ValueError naming the file and what it lacks."""
    root = Path(root)
    records = _csv(root / "record_list.csv", ("subject_id", "study_id", "path"), ("ecg_time",))
    measured = _csv(root / "machine_measurements.csv", ("study_id",),
                    (*REPORT_COLUMNS, *MEASUREMENTS))
    if not any(c in measured for c in REPORT_COLUMNS):
        raise ValueError(f"{root / 'machine_measurements.csv'} has no report_0 ... report_17 "
                         f"column (columns: {_columns(root / 'machine_measurements.csv')})")
    return records.merge(measured, on="study_id", how="left", validate="one_to_one")


def _csv(path: Path, needed: tuple, wanted: tuple = ()) -> pd.DataFrame:
    """The `needed` and, where present, the `wanted` columns of a table."""
    if not path.is_file():
        raise FileNotFoundError(f"MIMIC-IV-ECG table not found: {path}")
    columns = set(pd.read_csv(path, nrows=0).columns)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing} (columns: {_columns(path)})")
    return pd.read_csv(path, usecols=[c for c in (*needed, *wanted) if c in columns],
                       dtype={"subject_id": str, "study_id": str, "path": str},
                       low_memory=False)


def _columns(path: Path) -> list:
    return list(pd.read_csv(path, nrows=0).columns)[:10]


def measurements(table: pd.DataFrame) -> dict:
    """The studies' measurements as the store keeps them, one array per column: ``rr``, ``pr``,
    ``qrs``, ``qt`` in ms (from the onsets and ends) and ``p_axis``, ``qrs_axis``, ``t_axis`` in
    degrees; NaN where the cart gave none (MIMIC-IV-ECG writes 29999 for a missing value)."""
    def value(key):
        if key not in table:
            return np.full(len(table), np.nan)
        v = pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)
        return np.where(np.abs(v) >= 29999, np.nan, v)

    return {"rr": value("rr_interval"), "pr": value("qrs_onset") - value("p_onset"),
            "qrs": value("qrs_end") - value("qrs_onset"), "qt": value("t_end") - value("qrs_onset"),
            "p_axis": value("p_axis"), "qrs_axis": value("qrs_axis"), "t_axis": value("t_axis")}


def source(settings: Settings, root, *, seed: int = 0, split: str = "patient") -> ShardedSource:
    """The MIMIC-IV-ECG tree at `root` (see the module's description), for
    :func:`~mets_fast.data.shards.write_sharded`: the studies with a report, their metadata as
    columns."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    table = read_tables(root)
    groups = table["subject_id"] if split == "patient" else np.arange(len(table))
    splits = split_groups(groups, FRACTIONS, seed)
    lines = [c for c in REPORT_COLUMNS if c in table]
    reports = [machine_report(r) for r in table[lines].itertuples(index=False, name=None)]
    keep = np.array([bool(text) for text, _ in reports])
    ids = "mimic-" + table["study_id"].astype(str)
    skipped = [{"id": name, "skip": "NoReport: the study has no report line"}
               for name in ids[~keep]]
    table, ids, splits = table[keep].reset_index(drop=True), ids[keep], splits[keep]
    texts = pd.Series([text for (text, _), k in zip(reports, keep) if k], dtype=object)
    cleaned = {text: clean_report(text) for text in texts.unique()}  # reports repeat a lot
    empty = [[]] * len(table)
    meta = pd.DataFrame({
        "id": ids.to_numpy(), "report": texts, "report_clean": texts.map(cleaned),
        "split": splits, "source": "mimic-iv-ecg", "superclass": empty, "subclass": empty,
        "form": empty, "rhythm": empty, "patient": table["subject_id"].astype(str),
        "study": table["study_id"].astype(str), "record": table["path"].astype(str),
        "ecg_time": (table["ecg_time"].astype(str) if "ecg_time" in table else ""),
        "quality_flag": [flag for (_, flag), k in zip(reports, keep) if k],
        **measurements(table)})
    records = [str(root / p) for p in table["path"]]
    return ShardedSource(records, meta, read_checked, skipped,
                         {"source": "mimic-iv-ecg", "seed": seed, "split": split})


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
