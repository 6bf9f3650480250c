"""PTB-XL (Wagner et al. 2020): the database table, the label families of the PTB-XL benchmark,
the recommended split, and the METS zero-shot test sets."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..preprocess import DEFAULT_SETTINGS, Settings
from ..reports import clean_report
from .items import Item, Source
from .wfdb import read_many

SETTINGS = DEFAULT_SETTINGS  # 100 Hz (records100), 10 s, the 12 leads, 50 Hz notch (Germany)

# The METS zero-shot tasks: a balanced single-label test set per task (Li et al. 2023).
ZERO_SHOT_TASKS = {
    "superclass": ("NORM", "CD", "MI", "HYP", "STTC"),
    "form": ("NDT", "NST_", "ABQRS", "PVC", "STD_"),
    "rhythm": ("SR", "AFIB", "STACH", "SARRH", "SBRAD"),
}

SPLIT_BY_FOLD = {**{f: "train" for f in range(1, 9)}, 9: "val", 10: "test"}


def download_ptbxl(root: str | os.PathLike) -> Path:
    """Downloads PTB-XL from PhysioNet into `root` with ``wfdb.dl_database`` (about 3 GB at
    both rates; needs the internet, which the tests never use) and returns `root`."""
    import wfdb

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wfdb.dl_database("ptb-xl", str(root), keep_subdirs=True)
    return root


def read_scp_statements(root: str | os.PathLike) -> pd.DataFrame:
    path = Path(root) / "scp_statements.csv"
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL statement table not found: {path}")
    return pd.read_csv(path, index_col=0)


def read_ptbxl(root: str | os.PathLike, database: str = "ptbxl_database.csv") -> pd.DataFrame:
    """PTB-XL's database table with the columns the store uses.

    Returns one row per ECG (index ``ecg_id``) with ``id`` (``"ptbxl-<ecg_id>"``), ``patient``,
    ``report`` (as recorded), ``report_clean`` (:func:`clean_report`), ``split`` (by
    ``strat_fold``: 1–8 train, 9 val, 10 test), ``source`` ("ptbxl"), the label lists
    ``superclass``, ``subclass``, ``form`` and ``rhythm`` derived from ``scp_statements.csv`` as
    Strodthoff et al. (2020) derive them (every statement of the record counts, whatever its
    likelihood), ``scp_codes`` (the statement -> likelihood dict), ``strat_fold`` and the record
    paths ``filename_lr`` and ``filename_hr``.
    """
    root = Path(root)
    path = root / database
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL database table not found: {path}")
    table = pd.read_csv(path, index_col="ecg_id")
    missing = {"report", "scp_codes", "strat_fold", "filename_lr", "filename_hr"} - set(table)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    statements = read_scp_statements(root)
    codes = table["scp_codes"].map(_parse_codes)
    labels = label_families(codes, statements)
    out = pd.DataFrame({
        "id": [f"ptbxl-{i}" for i in table.index],
        "patient": table.get("patient_id", pd.Series(np.nan, index=table.index)),
        "report": table["report"].fillna(""),
        "report_clean": table["report"].fillna("").map(clean_report),
        "split": table["strat_fold"].map(SPLIT_BY_FOLD),
        "source": "ptbxl",
        **labels,
        "scp_codes": codes,
        "strat_fold": table["strat_fold"],
        "filename_lr": table["filename_lr"],
        "filename_hr": table["filename_hr"],
    }, index=table.index)
    if out["split"].isna().any():
        bad = sorted(table.loc[out["split"].isna(), "strat_fold"].unique())
        raise ValueError(f"{path}: strat_fold must lie in 1..10, got {bad}")
    return out


def label_families(codes: pd.Series, statements: pd.DataFrame) -> dict:
    """The label lists of every record: superclass and subclass (diagnostic statements mapped
    to their class and subclass), form and rhythm (the form and rhythm statements)."""
    diagnostic = statements[statements["diagnostic"] == 1]
    form = set(statements.index[statements["form"] == 1])
    rhythm = set(statements.index[statements["rhythm"] == 1])
    superclass = diagnostic["diagnostic_class"].to_dict()
    subclass = diagnostic["diagnostic_subclass"].to_dict()

    def family(mapping):
        return [sorted({mapping[c] for c in cs if c in mapping}) for cs in codes]

    def members(keep):
        return [sorted(c for c in cs if c in keep) for cs in codes]

    return {"superclass": family(superclass), "subclass": family(subclass),
            "form": members(form), "rhythm": members(rhythm)}


class ZeroShotSet(NamedTuple):
    """A balanced single-label test set: ``rows`` (positions of the chosen ECGs in the table,
    as :meth:`ECGStore.split` gives them), their
    ``labels`` and the ``classes``, with ``counts`` per class (fewer than asked where the test
    fold holds fewer single-label ECGs of a class)."""

    rows: np.ndarray
    labels: np.ndarray
    classes: tuple
    counts: dict


def zero_shot_set(meta: pd.DataFrame, task: str, per_class: int = 200, seed: int = 0,
                  classes: tuple | None = None, family: str | None = None,
                  split: str = "test") -> ZeroShotSet:
    """The METS zero-shot test set of a task: from the `split` rows that carry exactly one label
    of the task's family, up to `per_class` ECGs of each class (all of them where there are
    fewer), drawn reproducibly with `seed`.

    `task` is ``"superclass"``, ``"form"`` or ``"rhythm"`` (classes from
    :data:`ZERO_SHOT_TASKS`), or any name with explicit `classes` and `family` (the synthetic
    corpus's tasks use this).
    """
    classes = tuple(classes or ZERO_SHOT_TASKS.get(task, ()))
    family = family or task
    if not classes:
        raise ValueError(f"unknown task {task!r}; give classes= and family= for a custom task")
    if family not in meta:
        raise ValueError(f"meta has no label column {family!r}")
    in_split = (meta["split"] == split).to_numpy()
    # the one label of each single-label ECG of the split (None for the others; in stores of
    # several sources, a source without this family has a missing value, not a list)
    label = np.array([ls[0] if ok and isinstance(ls, (list, tuple, np.ndarray)) and len(ls) == 1
                      else None
                      for ls, ok in zip(meta[family], in_split)], dtype=object)
    rng = np.random.default_rng(seed)
    rows, labels, counts = [], [], {}
    for c in classes:
        candidates = np.flatnonzero(label == c)
        take = min(per_class, len(candidates))
        chosen = rng.choice(candidates, size=take, replace=False) if take else candidates[:0]
        rows.append(np.sort(chosen))
        labels += [c] * take
        counts[c] = take
    return ZeroShotSet(np.concatenate(rows) if rows else np.empty(0, np.int64),
                       np.asarray(labels), classes, counts)


class MultiLabelSet(NamedTuple):
    """A multi-label test set: ``rows`` (positions in the table), the ``classes`` present and
    the 0/1 ``targets`` ``(len(rows), len(classes))``."""

    rows: np.ndarray
    classes: tuple
    targets: np.ndarray


def multilabel_test(meta: pd.DataFrame, family: str, split: str = "test") -> MultiLabelSet:
    """The multi-label test set of a family for macro-AUROC (MERL's protocol): every `split`
    row, and a 0/1 matrix over the family's classes present there."""
    in_split = (meta["split"] == split).to_numpy()
    pool = meta[in_split]
    classes = tuple(sorted({c for ls in pool[family] for c in ls}))
    index = {c: k for k, c in enumerate(classes)}
    targets = np.zeros((len(pool), len(classes)), dtype=np.int8)
    for r, ls in enumerate(pool[family]):
        for c in ls:
            targets[r, index[c]] = 1
    return MultiLabelSet(np.flatnonzero(in_split), classes, targets)


def _parse_codes(text) -> dict:
    if isinstance(text, dict):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot parse scp_codes {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes must be a dict, got {text!r}")
    return value


def source(settings: Settings, root, *, seed: int = 0, workers: int = 1,
           rate: int | None = None) -> Source:
    """The PTB-XL data set at `root` (see :func:`ptbxl_source`)."""
    meta = read_ptbxl(root)
    return Source(ptbxl_source(Path(root), meta, settings, rate, workers), len(meta),
                  {"source": "ptbxl", "seed": seed})


def ptbxl_source(root: Path, meta: pd.DataFrame, settings: Settings, rate: int | None,
                 workers: int):
    """The records of `meta` (read_ptbxl's table of the data set at `root`)."""
    rate = rate or (500 if settings.fs > 100 else 100)
    column = {100: "filename_lr", 500: "filename_hr"}[rate]
    tasks = [(str(root / f), settings.fs, settings.leads, settings.samples) for f in meta[column]]
    keep = ["id", "patient", "report", "report_clean", "split", "source", "superclass",
            "subclass", "form", "rhythm", "strat_fold"]
    rows = meta[keep].to_dict("records")
    for row, read in zip(rows, read_many(tasks, workers)):
        yield Item(read.signal, row, read.mask, read.length) if read.error is None else \
            Item(None, {"id": row["id"], "skip": read.error})
