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

The header is parsed here rather than by ``wfdb.rdheader``, which refuses the 2020 Georgia
release's record lines (``E00009.mat 12 500 5000 05-May-2020 14:50:55``: a file name as the
record name, a date in another format); gains with or without a baseline (``1000.0(0)/mV``,
``4880/mV``) and µV units are read.  Records of any rate (INCART's 257 Hz, 30 min; PTB's
1000 Hz) are resampled and cut into consecutive windows of the settings' length, as any long
record.  A record that cannot be read is skipped with its reason; nothing else stops the run.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ...signal import resample
from ..preprocess import DEFAULT_SETTINGS, Settings, cut_windows
from ..records import drop_unusable, select_leads, standard_lead
from ..splits import split_groups
from ..store import store_row
from ..wfdb_fast import record_line, signal_gain
from .items import Item, Source
from .wfdb import read_many

SETTINGS = DEFAULT_SETTINGS._replace(powerline=None)  # eight databases, two mains frequencies
LABELS = Path(__file__).resolve().parents[1] / "challenge_labels"
NORMAL = "426783006"  # sinus rhythm: the Challenge metric's normal class

# The source database of a record, from its name's prefix (longest first).
DATABASES = (("HR", "PTB-XL"), ("JS", "Chapman-Shaoxing/Ningbo"), ("A", "CPSC2018"),
             ("Q", "CPSC-Extra"), ("I", "INCART"), ("S", "PTB"), ("E", "Georgia"))


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


def database_of(name: str) -> str:
    """The database a Challenge record comes from, by its name's prefix ("unknown" if none)."""
    for prefix, database in DATABASES:
        if name.startswith(prefix):
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


def read_challenge(header: str | os.PathLike) -> ChallengeRecord:
    """Reads one Challenge record (its ``.hea`` and the ``.mat`` it names).  Raises
    FileNotFoundError or ValueError naming the file and what is wrong."""
    import scipy.io

    header = Path(header)
    if header.suffix != ".hea":
        header = header.with_name(header.name + ".hea")
    lines = [line.strip() for line in header.read_text(errors="replace").splitlines()]
    fields = [line.split() for line in lines if line and not line.startswith("#")]
    if not fields:
        raise ValueError(f"{header}: no record line")
    try:
        n_sig, fs, length = record_line(fields[0])
    except ValueError:
        raise ValueError(f"{header}: cannot read the record line {' '.join(fields[0])!r}") \
            from None
    if n_sig < 1 or len(fields) < n_sig + 1 or not fs > 0:
        raise ValueError(f"{header}: the record line declares {n_sig} signal(s) at {fs:g} Hz "
                         f"with {len(fields) - 1} signal line(s)")
    files, scale, names = set(), [], []
    for f in fields[1:n_sig + 1]:
        if len(f) < 5:
            raise ValueError(f"{header}: a signal line has {len(f)} fields: {' '.join(f)!r}")
        files.add(f[0])
        scale.append(_gain(f, header))
        names.append(standard_lead(" ".join(f[8:]) if len(f) > 8 else f"lead{len(names)}"))
    if len(files) != 1 or not next(iter(files)).endswith(".mat"):
        raise ValueError(f"{header}: the signals must come from one .mat file, got "
                         f"{sorted(files)}")
    mat = header.parent / next(iter(files))
    if not mat.is_file():
        raise FileNotFoundError(f"Challenge signal file not found: {mat} (named in {header})")
    try:
        val = scipy.io.loadmat(str(mat))["val"]
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ValueError(f"{mat} cannot be read as a MATLAB file holding 'val': {exc}") \
            from None
    if val.ndim != 2 or val.shape[0] != n_sig or (length is not None and val.shape[1] != length):
        raise ValueError(f"{mat} holds {val.shape}, the header declares {n_sig} signals of "
                         f"{length} samples")
    gains = np.array([g for g, _ in scale])[:, None]
    baselines = np.array([b for _, b in scale])[:, None]
    signal = (val.astype(np.float64) - baselines) / gains
    comments = {}
    for line in lines:
        if line.startswith("#") and ":" in line:
            key, _, value = line.lstrip("#").partition(":")
            comments[key.strip().lower()] = value.strip()
    codes = tuple(c.strip() for c in comments.get("dx", "").split(",") if c.strip())
    return ChallengeRecord(signal, fs, tuple(names), _age(comments.get("age")),
                           _sex(comments.get("sex")), codes, header.stem.removesuffix(".mat"))


def _gain(f: list, header: Path) -> tuple:
    """(ADC units per mV, baseline) of a signal line (µV units read as such)."""
    try:
        gain, baseline, units = signal_gain(f[2], f[4])
    except ValueError:
        raise ValueError(f"{header}: cannot read the gain {f[2]!r}") from None
    if units.lower() in ("uv", "µv"):
        gain *= 1000.0
    return gain, baseline


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
    header, fs, leads, samples = args
    try:
        rec = read_challenge(header)
        what = f"record {rec.name}"
        signal, mask = select_leads(rec.signal, rec.leads, leads, what=what)
        signal, mask = drop_unusable(signal, rec.fs, mask, leads, what)
        if rec.fs != fs:
            signal = resample(signal, rec.fs, fs)
    except (OSError, ValueError) as exc:
        return None, None, 0, None, f"{type(exc).__name__}: {exc}"
    windows, length = cut_windows(signal.astype(np.float32), samples)
    return windows, mask, length, (rec.age, rec.sex, rec.codes), None


def source(settings: Settings, roots, *, seed: int = 0, workers: int = 1) -> Source:
    """The records below `roots` (a folder or a list of them); see :func:`challenge_source`."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    headers = challenge_headers(roots)
    bound = sum(_windows_at_most(h, settings) for h in headers)
    return Source(challenge_source(headers, settings, seed, workers), bound,
                  {"source": "challenge", "seed": seed})


def _windows_at_most(header: Path, settings: Settings) -> int:
    """How many windows a record can give, from its header's record line alone (1 where the
    line does not say: a record it misdescribes is skipped when read)."""
    try:
        with open(header, errors="replace") as f:
            first = next(line for line in f if line.strip() and not line.startswith("#"))
        _, fs, length = record_line(first.split())
        seconds = length / fs
    except (OSError, StopIteration, TypeError, ValueError, ZeroDivisionError):
        return 1  # TypeError: no sample count
    return max(1, int(seconds * settings.fs) // settings.samples + 1)


def challenge_source(headers: list, settings: Settings, seed: int = 0, workers: int = 1):
    """One item per window of each record (``id`` ``challenge-<name>``, ``-w<k>`` after it
    for the windows of a longer record), split by record (80/10/10, seeded: the trees carry no
    patient ids), with ``database``, ``age``, ``sex``, the merged SNOMED CT codes (``dx``) and
    those the tables do not know (``dx_unknown``)."""
    labels = challenge_labels()
    names = [h.stem for h in headers]
    split = split_groups(names, (0.8, 0.1, 0.1), seed)
    tasks = [(str(h), settings.fs, settings.leads, settings.samples) for h in headers]
    for k, (windows, mask, length, info, error) in enumerate(read_many(tasks, workers,
                                                                       read_windows)):
        name = f"challenge-{names[k]}"
        if error is not None:
            yield Item(None, {"id": name, "skip": error})
            continue
        age, sex, codes = info
        dx = labels.merged(codes)
        report = report_of(dx, labels)
        for w, window in enumerate(windows):
            row = store_row(name if len(windows) == 1 else f"{name}-w{w}", report, split[k],
                            "challenge", database=database_of(names[k]), record=names[k],
                            age=age, sex=sex, dx=[c for c in dx if c in labels.names],
                            dx_unknown=[c for c in dx if c not in labels.names])
            yield Item(window, row, mask, length)
