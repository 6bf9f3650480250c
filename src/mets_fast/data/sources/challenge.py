"""The PhysioNet/CinC Challenge 2020 and 2021 trees (Perez Alday et al. 2020, Reyna et al.
2021): 88,253 twelve-lead ECGs of eight databases, each a WFDB header naming a MATLAB v4 ``.mat``
file (``val``: int16, leads x samples) and SNOMED CT diagnoses in the header's comments.

Labels are mapped to names with the Challenge's own tables (``dx_mapping_scored.csv``,
``dx_mapping_unscored.csv``, shipped in ``data/challenge_labels`` under their BSD-2 licence),
and the code pairs that ``weights.csv`` scores as one class (``713427006|59118001``, ...) are
merged into the first code of the pair, as the Challenge's evaluation merges them.  Each ECG's
report is built from its labels' names in the other sources' register ("sinus tachycardia.
premature atrial contraction. t wave abnormal."), so the trees can pre-train as well as
evaluate.

Records are read by :func:`~mets_fast.data.wfdb_mat.read_mat` (the 2020 Georgia record lines
that wfdb refuses, a header that disagrees with its matrix refused), as ``read_record`` reads
them for inference.  A tree of other leads (the 2017 Challenge's single ``ECG``) is read with
``lead_names`` mapping them to standard ones; a record without any of the leads asked for is
skipped, saying which leads it has.  Records of any rate (INCART's 257 Hz, 30 min; PTB's
1000 Hz) are resampled and cut into consecutive windows of the settings' length, as any long
record.  A record that cannot be read is skipped with its reason; nothing else stops the run.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import pandas as pd

from ...signal import resample, resampled_length
from ..preprocess import DEFAULT_SETTINGS, Settings, cut_windows
from ..records import drop_unusable, rename_leads, select_leads
from ..splits import split_groups
from ..store import store_row
from ..wfdb_fast import record_line
from ..wfdb_mat import read_mat
from .items import Item, Source
from .wfdb import read_many

SETTINGS = DEFAULT_SETTINGS._replace(powerline=None)  # eight databases, two mains frequencies
LABELS = Path(__file__).resolve().parents[1] / "challenge_labels"
NORMAL = "426783006"  # sinus rhythm: the Challenge metric's normal class

# The databases of the 2020/2021 Challenges: how each names its records (a letter code and a
# fixed count of digits) and the rate it recorded at.  The 2017 Challenge's A00001 (300 Hz,
# one lead) is none of them, though it opens with CPSC2018's A.
DATABASES = (("PTB-XL", r"HR\d{5}", 500.0), ("Chapman-Shaoxing/Ningbo", r"JS\d{5}", 500.0),
             ("CPSC2018", r"A\d{4}", 500.0), ("CPSC-Extra", r"Q\d{4}", 500.0),
             ("INCART", r"I\d{4}", 257.0), ("PTB", r"S\d{4}", 1000.0),
             ("Georgia", r"E\d{5}", 500.0))


class ChallengeRecord(NamedTuple):
    """One Challenge record as read: ``signal`` float64 ``(leads, samples)`` in mV, ``fs`` in
    Hz, the standard ``leads``, ``age`` (years, None where unknown), ``sex`` (``"M"``, ``"F"``
    or None), the SNOMED CT ``codes`` as the header gives them and the record ``name``."""

    signal: np.ndarray
    fs: float
    leads: tuple
    age: float | None
    sex: str | None
    codes: tuple
    name: str


class Labels(NamedTuple):
    """The Challenge's label tables: ``names`` (code -> name), ``abbreviations``, ``scored``
    (the codes the metric scores, after merging, in ``weights.csv``'s order), ``weights``
    (its matrix over them) and ``same`` (code -> the code it is merged into)."""

    names: dict
    abbreviations: dict
    scored: tuple
    weights: np.ndarray
    same: dict

    def merged(self, codes) -> list:
        """`codes` with equivalent ones merged, each once, in order."""
        return list(dict.fromkeys(self.same.get(str(c), str(c)) for c in codes))


@lru_cache(maxsize=1)
def challenge_labels() -> Labels:
    """The shipped tables (read once)."""
    names, abbreviations = {}, {}
    for file in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        table = pd.read_csv(LABELS / file, dtype=str)
        for code, name, abbreviation in zip(table["SNOMEDCTCode"], table["Dx"],
                                            table["Abbreviation"]):
            names[code.strip()] = name.strip().lower()
            abbreviations[code.strip()] = abbreviation.strip()
    weights = pd.read_csv(LABELS / "weights.csv", index_col=0, dtype=str)
    same, scored = {}, []
    for column in weights.columns:
        codes = [c.strip() for c in column.split("|")]
        scored.append(codes[0])
        same.update({c: codes[0] for c in codes})
    matrix = weights.to_numpy(dtype=np.float64)
    return Labels(names, abbreviations, tuple(scored), matrix, same)


def database_of(name: str, fs: float | None = None) -> str:
    """The database a Challenge record comes from, by the whole of its name (the database's
    letters and count of digits) and, where given, its sampling rate `fs` in Hz; "unknown"
    where none matches."""
    for database, pattern, rate in DATABASES:
        if re.fullmatch(pattern, name) and (fs is None or fs == rate):
            return database
    return "unknown"


def report_of(codes, labels: Labels | None = None) -> str:
    """A machine-style report of a record's (merged) codes: their names, one sentence each,
    in the header's order; codes the tables do not know are left out."""
    labels = labels or challenge_labels()
    names = [labels.names[c] for c in labels.merged(codes) if c in labels.names]
    return " ".join(f"{n}." for n in names)


def challenge_headers(roots) -> list:
    """Every ``.hea`` below `roots` (folders, searched recursively, or header files), sorted
    by record name; a folder holding none is a ValueError."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_file() and root.suffix == ".hea":
            found.append(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"Challenge folder not found: {root}")
        headers = sorted(root.rglob("*.hea"))
        if not headers:
            raise ValueError(f"{root} holds no Challenge records (no .hea file below it)")
        found += headers
    return sorted(dict.fromkeys(found), key=lambda p: (p.stem, str(p)))


def read_challenge(header: str | os.PathLike,
                   lead_names: Mapping[str, str] | None = None) -> ChallengeRecord:
    """Reads one Challenge record (its ``.hea`` and the ``.mat`` it names,
    :func:`~mets_fast.data.wfdb_mat.read_mat`).  `lead_names` maps the record's own names of
    leads to standard ones (``{"ECG": "I"}`` for the 2017 Challenge's single lead).  Raises
    FileNotFoundError or ValueError naming the file and what is wrong."""
    header = Path(header)
    if header.suffix != ".hea":
        header = header.with_name(header.name + ".hea")
    read = read_mat(header.with_suffix(""), header)
    if read is None:
        raise ValueError(f"{header}: the signals must come from one .mat file")
    signal, fs, names, lines = read
    leads = rename_leads(names, lead_names)
    comments = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            comments[key.strip().lower()] = value.strip()
    codes = tuple(c.strip() for c in comments.get("dx", "").split(",") if c.strip())
    return ChallengeRecord(signal, fs, leads, _age(comments.get("age")),
                           _sex(comments.get("sex")), codes, header.stem.removesuffix(".mat"))


def _age(text) -> float | None:
    try:
        age = float(text)
    except (TypeError, ValueError):
        return None
    return age if np.isfinite(age) and 0 <= age < 150 else None


def _sex(text) -> str | None:
    text = (text or "").strip().lower()
    return {"male": "M", "m": "M", "female": "F", "f": "F"}.get(text)


# ------------------------------------------------------------------------------ the source


def read_windows(args) -> tuple:
    """Worker: a record read, resampled and cut into windows ``(n, leads, samples)`` with
    its mask, real length and (age, sex, codes); or the error that stopped it."""
    header, fs, leads, samples, lead_names = args
    try:
        rec = read_challenge(header, lead_names)
        what = f"record {rec.name}"
        signal, mask = select_leads(rec.signal, rec.leads, leads, what=what)
        signal, mask = drop_unusable(signal, rec.fs, mask, leads, what, own=rec.leads)
        if rec.fs != fs:
            signal = resample(signal, rec.fs, fs)
    except (OSError, ValueError) as exc:
        return None, None, 0, None, f"{type(exc).__name__}: {exc}"
    windows, length = cut_windows(signal.astype(np.float32), samples)
    return windows, mask, length, (rec.age, rec.sex, rec.codes, rec.fs), None


def source(settings: Settings, roots, *, seed: int = 0, workers: int = 1,
           lead_names: Mapping[str, str] | None = None) -> Source:
    """The records below `roots` (a folder or a list of them); see :func:`challenge_source`."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    headers = challenge_headers(roots)
    bound = sum(_windows_at_most(h, settings) for h in headers)
    return Source(challenge_source(headers, settings, seed, workers, lead_names), bound,
                  {"source": "challenge", "seed": seed})


def _windows_at_most(header: Path, settings: Settings) -> int:
    """How many windows a record gives, from its header's record line alone (exact: a record
    whose matrix disagrees with its header is skipped when read; 1 where the line does not
    say)."""
    try:
        with open(header, errors="replace") as f:
            first = next(line for line in f if line.strip() and not line.startswith("#"))
        _, fs, length = record_line(first.split())
        samples = resampled_length(length, fs, settings.fs)
    except (OSError, StopIteration, TypeError, ValueError, ZeroDivisionError):
        return 1  # TypeError: no sample count
    return max(1, samples // settings.samples)


def challenge_source(headers: list, settings: Settings, seed: int = 0, workers: int = 1,
                     lead_names: Mapping[str, str] | None = None):
    """One item per window of each record (``id`` ``challenge-<name>``, ``-w<k>`` after it
    for the windows of a longer record), split by record (80/10/10, seeded: the trees carry no
    patient ids), with ``database``, ``age``, ``sex``, the merged SNOMED CT codes (``dx``) and
    those the tables do not know (``dx_unknown``).  `lead_names`: the records' own lead names
    mapped to standard ones (:func:`~mets_fast.data.records.parse_lead_names`)."""
    labels = challenge_labels()
    names = [h.stem for h in headers]
    split = split_groups(names, (0.8, 0.1, 0.1), seed)
    tasks = [(str(h), settings.fs, settings.leads, settings.samples, dict(lead_names or {}))
             for h in headers]
    for k, (windows, mask, length, info, error) in enumerate(read_many(tasks, workers,
                                                                       read_windows)):
        name = f"challenge-{names[k]}"
        if error is not None:
            yield Item(None, {"id": name, "skip": error})
            continue
        age, sex, codes, fs = info
        dx = labels.merged(codes)
        report = report_of(dx, labels)
        for w, window in enumerate(windows):
            row = store_row(name if len(windows) == 1 else f"{name}-w{w}", report, split[k],
                            "challenge", database=database_of(names[k], fs), record=names[k],
                            age=age, sex=sex, dx=[c for c in dx if c in labels.names],
                            dx_unknown=[c for c in dx if c not in labels.names])
            yield Item(window, row, mask, length)
