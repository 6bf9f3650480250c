"""MIT-BIH Arrhythmia Database (Moody & Mark 2001): beats with their METS and AAMI classes, and
10-second windows paired with reports written from the reference annotations."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ...signal import resampled_length, segment_beats, to_samples
from ..preprocess import DEFAULT_SETTINGS, Settings
from ..records import Record, read_record, select_leads
from ..splits import split_groups
from ..store import LABEL_COLUMNS, store_row
from .items import Item, Source, skipped

# Windows of 3 s centred on each beat, so the previous and the next beat are in view
# (prematurity is a matter of RR intervals); the notch is 60 Hz (the records are American; at
# 100 Hz it falls above Nyquist anyway and is skipped).
SETTINGS = DEFAULT_SETTINGS._replace(seconds=3.0, powerline=60.0)

# METS's five beat classes (N normal, L left and R right bundle branch block, A atrial and
# V ventricular premature beats); other beats have none.
METS_CLASSES = ("N", "L", "R", "A", "V")
METS_CLASS_NAMES = {"N": "normal beat", "L": "left bundle branch block beat",
                    "R": "right bundle branch block beat", "A": "atrial premature beat",
                    "V": "premature ventricular contraction"}
# ANSI/AAMI EC57 classes.
AAMI_CLASSES = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"),
                **dict.fromkeys("VE", "V"), "F": "F", **dict.fromkeys("/fQ", "Q")}
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

RHYTHMS = {  # annotation -> (report statement, PTB-XL rhythm code or None)
    "(N": ("sinus rhythm", "SR"), "(SBR": ("sinus bradycardia", "SBRAD"),
    "(AFIB": ("atrial fibrillation", "AFIB"), "(AFL": ("atrial flutter", "AFLT"),
    "(SVTA": ("supraventricular tachyarrhythmia", "SVTAC"),
    "(AB": ("atrial bigeminy", "BIGU"), "(B": ("ventricular bigeminy", "BIGU"),
    "(T": ("ventricular trigeminy", "TRIGU"), "(VT": ("ventricular tachycardia", None),
    "(IVR": ("idioventricular rhythm", None), "(NOD": ("junctional rhythm", None),
    "(P": ("paced rhythm", "PACE"), "(PREX": ("pre-excitation", None),
    "(BII": ("second degree av block", None), "(VFL": ("ventricular flutter", None),
}

# Beat symbols -> report statement (singular, plural); counted in the window.
_BEAT_STATEMENTS = {
    "V": ("premature ventricular contraction", "premature ventricular contractions"),
    "A": ("atrial premature beat", "atrial premature beats"),
    "a": ("aberrated atrial premature beat", "aberrated atrial premature beats"),
    "J": ("junctional premature beat", "junctional premature beats"),
    "S": ("supraventricular premature beat", "supraventricular premature beats"),
    "F": ("fusion of ventricular and normal beat", "fusions of ventricular and normal beats"),
    "E": ("ventricular escape beat", "ventricular escape beats"),
    "j": ("junctional escape beat", "junctional escape beats"),
    "e": ("atrial escape beat", "atrial escape beats"),
    "f": ("fusion of paced and normal beat", "fusions of paced and normal beats"),
    "Q": ("unclassifiable beat", "unclassifiable beats"),
}


# What a beat-centred window's report calls its centre beat.
BEAT_NAMES = {**METS_CLASS_NAMES, "/": "paced beat",
              **{s: one for s, (one, _) in _BEAT_STATEMENTS.items() if s not in METS_CLASS_NAMES}}


class BeatWindows(NamedTuple):
    windows: np.ndarray   # (n, leads, samples) float32
    labels: np.ndarray    # METS class of each centre beat (None where it has none)
    centres: np.ndarray   # sample of each centre beat
    symbols: np.ndarray   # annotation symbol of each centre beat


class MitbihRecord(NamedTuple):
    """A record with its reference annotations: ``beats`` (columns ``sample``, ``symbol``,
    ``mets`` and ``aami`` classes, None where a beat has none) and ``rhythms`` (columns
    ``start``, ``stop``, ``rhythm``), samples at the record's (possibly resampled) rate."""

    record: Record
    beats: pd.DataFrame
    rhythms: pd.DataFrame


def read_mitbih(path: str | os.PathLike, fs: float | None = None) -> MitbihRecord:
    """Reads a record and its ``.atr`` annotations, both leads kept (MLII as ``II``, the second
    under its own name), resampled to `fs` if given (annotation samples scaled and rounded)."""
    import wfdb

    record = read_record(path, fs=fs)
    base = Path(path)
    if base.suffix in (".hea", ".dat", ".atr"):
        base = base.with_suffix("")
    atr = base.with_name(base.name + ".atr")
    if not atr.is_file():
        raise FileNotFoundError(f"MIT-BIH annotation file not found: {atr}")
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:
        raise ValueError(f"cannot read annotations {atr}: {exc}") from exc
    scale = record.fs / float(ann.fs or record.fs)
    samples = np.round(np.asarray(ann.sample) * scale).astype(np.int64)
    symbols = np.asarray(ann.symbol)
    is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
    beats = pd.DataFrame({"sample": samples[is_beat], "symbol": symbols[is_beat]})
    beats["mets"] = beats["symbol"].where(beats["symbol"].isin(METS_CLASSES), None)
    beats["aami"] = beats["symbol"].map(AAMI_CLASSES)
    notes = [(s, (note or "").strip("\x00 ")) for s, note in zip(samples, ann.aux_note)]
    changes = [(s, note) for s, note in notes if note.startswith("(")]
    n = record.signal.shape[1]
    rhythms = pd.DataFrame(
        [(s, changes[k + 1][0] if k + 1 < len(changes) else n, note)
         for k, (s, note) in enumerate(changes)], columns=["start", "stop", "rhythm"])
    return MitbihRecord(record, beats, rhythms)


class QRSReference(NamedTuple):
    signal: np.ndarray   # lead II (or the first lead), float64
    beats: np.ndarray    # reference beat samples
    flutter: np.ndarray  # ventricular flutter episodes, (start, stop) rows


class Windows(NamedTuple):
    signals: np.ndarray  # (n, leads, samples) float32
    meta: pd.DataFrame


def qrs_reference(rec: MitbihRecord) -> QRSReference:
    """What QRS detectors are scored on: lead II, the reference beats and the ventricular
    flutter episodes, which hold no QRS complexes and which ANSI/AAMI EC57 leaves out of the
    scoring."""
    leads = rec.record.leads
    signal = rec.record.signal[leads.index("II") if "II" in leads else 0].astype(np.float64)
    flutter = rec.rhythms[rec.rhythms["rhythm"] == "(VFL"][["start", "stop"]].to_numpy()
    return QRSReference(signal, rec.beats["sample"].to_numpy(), flutter)


def window_report(beats: pd.DataFrame, rhythms: pd.DataFrame, start: int, stop: int) -> str:
    """A machine-style report of samples [start, stop) from the annotations: the rhythms in
    order, a bundle branch block when most beats carry one, then counts of the other beats,
    e.g. ``"atrial fibrillation. left bundle branch block. 3 premature ventricular
    contractions."``"""
    statements = []
    overlap = rhythms[(rhythms["start"] < stop) & (rhythms["stop"] > start)]
    for note in dict.fromkeys(overlap["rhythm"]):
        statement = RHYTHMS.get(note, (note.strip("(").lower(), None))[0]
        statements.append(statement)
    inside = beats[(beats["sample"] >= start) & (beats["sample"] < stop)]
    counts = Counter(inside["symbol"])
    total = len(inside)
    if total:
        for symbol, name in (("L", "left bundle branch block"), ("R", "right bundle branch block"),
                             ("/", "paced beats")):
            if counts[symbol] > total / 2:
                statements.append(name)
    for symbol, (one, many) in _BEAT_STATEMENTS.items():
        k = counts[symbol]
        if k:
            statements.append(f"{k} {one if k == 1 else many}")
    return ". ".join(statements) + "." if statements else ""


def mitbih_windows(rec: MitbihRecord, seconds: float = 10.0,
                   step: float | None = None) -> Windows:
    """Consecutive windows of `seconds` (every `step` seconds, default non-overlapping) with
    their reports.  Returns ``(signals (n, leads, samples) float32, meta DataFrame)`` with
    ``start`` (sample), ``report``, ``rhythm`` (PTB-XL rhythm codes present), ``form``
    (``PVC`` when a ventricular premature beat is present, ``PAC`` for an atrial one) and
    ``superclass``/``subclass`` (``CD``/``CLBBB`` or ``CRBBB`` for bundle branch block)."""
    _check_record(rec, "mitbih_windows")
    fs = rec.record.fs
    width, hop = to_samples(seconds, fs), to_samples(step or seconds, fs)
    n = rec.record.signal.shape[1]
    starts = np.arange(0, n - width + 1, hop)
    signals = np.stack([rec.record.signal[:, s:s + width] for s in starts]) if len(starts) else \
        np.empty((0, rec.record.signal.shape[0], width), np.float32)
    rows = []
    for s in starts:
        report = window_report(rec.beats, rec.rhythms, s, s + width)
        inside = rec.beats[(rec.beats["sample"] >= s) & (rec.beats["sample"] < s + width)]
        overlap = rec.rhythms[(rec.rhythms["start"] < s + width) & (rec.rhythms["stop"] > s)]
        rhythm = sorted({RHYTHMS[r][1] for r in overlap["rhythm"]
                         if r in RHYTHMS and RHYTHMS[r][1]})
        counts = Counter(inside["symbol"])
        form = sorted({"PVC"} if counts["V"] else set()) + (["PAC"] if counts["A"] else [])
        block = [c for c, sym in (("CLBBB", "L"), ("CRBBB", "R")) if counts[sym] > len(inside) / 2]
        rows.append({"start": int(s), "report": report, "rhythm": rhythm, "form": sorted(form),
                     "superclass": ["CD"] if block else [], "subclass": block})
    return Windows(signals.astype(np.float32), pd.DataFrame(rows))


def beat_windows(rec: MitbihRecord, samples: int, symbols: str | None = None,
                 per_symbol: int | None = None, seed: int = 0) -> BeatWindows:
    """Windows of `samples` (the training length) centred on beats: by default every beat with
    a METS class, the zero-shot beat task, each labelled with its centre beat's class
    (neighbouring beats inside the window do not change the label).  Beats too near the edges
    for a whole window are dropped.

    Args:
        symbols: the annotation symbols to keep instead (e.g. all of :data:`BEAT_SYMBOLS`).
        per_symbol: keep at most this many beats of each symbol, drawn reproducibly with `seed`
            (a record's tens of thousands of normal beats would otherwise drown its few
            ectopic ones); None keeps all.

    Returns ``BeatWindows(windows (n, leads, samples) float32, labels (METS class or None),
    centres (samples), symbols)`` in the record's order."""
    _check_record(rec, "beat_windows")
    keep = rec.beats[rec.beats["symbol"].isin(list(symbols))] if symbols is not None else \
        rec.beats[rec.beats["mets"].notna()]
    keep = whole_windows(keep, samples, rec.record.signal.shape[1])
    if per_symbol is not None:
        rng = np.random.default_rng(seed)
        chosen = [rng.choice(g.index, size=min(per_symbol, len(g)), replace=False)
                  for _, g in keep.groupby("symbol", sort=True)]
        keep = keep.loc[np.sort(np.concatenate(chosen))] if chosen else keep.iloc[:0]
    centres = keep["sample"].to_numpy()
    return BeatWindows(centred_windows(rec, centres, samples), keep["mets"].to_numpy(),
                       centres, keep["symbol"].to_numpy())


def whole_windows(beats: pd.DataFrame, samples: int, n: int) -> pd.DataFrame:
    """The `beats` (a ``beats`` table) far enough from both ends of an `n`-sample record for a
    whole window of `samples` centred on them."""
    half = samples // 2
    return beats[(beats["sample"] - half >= 0) & (beats["sample"] - half + samples <= n)]


def centred_windows(rec: MitbihRecord, centres, samples: int) -> np.ndarray:
    """Windows ``(len(centres), leads, samples)`` float32 of the record centred on the sample
    positions `centres` (each from ``centre - samples // 2``): where every MIT-BIH window is cut.
    Centres must lie inside :func:`whole_windows`."""
    half = samples // 2
    fs = rec.record.fs  # the cut is segment_beats', in seconds that round back to these samples
    cut = segment_beats(rec.record.signal, fs, np.asarray(centres), before=half / fs,
                        after=(samples - half) / fs, nan_policy="interpolate")
    return cut.beats.astype(np.float32, copy=False)


def beat_report(rec: MitbihRecord, centre: int, symbol: str) -> str:
    """The report of a beat-centred window: the centre beat, then the rhythm it lies in, e.g.
    ``"premature ventricular contraction. sinus rhythm."``"""
    statements = [BEAT_NAMES.get(symbol, "beat")]
    inside = rec.rhythms[(rec.rhythms["start"] <= centre) & (rec.rhythms["stop"] > centre)]
    for note in inside["rhythm"]:
        statements.append(RHYTHMS.get(note, (note.strip("(").lower(), None))[0])
    return ". ".join(statements) + "."


def beat_labels(rec: MitbihRecord, centre: int, symbol: str) -> dict:
    """PTB-XL-style label lists of a beat-centred window (as :func:`mitbih_windows` gives for
    a long one): the rhythm at the centre, ``PVC``/``PAC`` forms, bundle branch blocks."""
    inside = rec.rhythms[(rec.rhythms["start"] <= centre) & (rec.rhythms["stop"] > centre)]
    rhythm = sorted({RHYTHMS[r][1] for r in inside["rhythm"] if r in RHYTHMS and RHYTHMS[r][1]})
    form = {"V": ["PVC"], "A": ["PAC"]}.get(symbol, [])
    block = {"L": ["CLBBB"], "R": ["CRBBB"]}.get(symbol, [])
    return {"rhythm": rhythm, "form": form, "superclass": ["CD"] if block else [],
            "subclass": block}


def validation_records(counts: dict, seed: int = 0, fraction: float = 0.25,
                       min_count: int = 50, classes: str = "NLRAV", tries: int = 4000) -> list:
    """Records to hold out for validation so that every class has at least `min_count` beats
    on both sides wherever the records allow it.

    `counts` maps a record name to its beat counts per class.  Among `tries` seeded random
    draws of ``round(fraction * len(counts))`` records, the first that covers the most
    (class, side) pairs wins (each draw is :func:`~mets_fast.data.splits.split_groups` of the
    records): no record is chosen by name, so the same rule serves any set of MIT-BIH-format
    records.  Returns the names, sorted."""
    names = sorted(counts)
    if len(names) < 2:
        return []
    size = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    table = np.array([[counts[r].get(c, 0) for c in classes] for r in names])
    total = table.sum(0)
    share = (1 - size / len(names), size / len(names), 0.0)
    best, best_score = None, -1
    for attempt in range(tries):
        pick = split_groups(names, share, seed=[seed, attempt]) == "val"
        val = table[pick].sum(0)
        score = int(((val >= min_count) & (total - val >= min_count)).sum())
        if score > best_score:
            best, best_score = pick, score
    return [n for n, p in zip(names, best) if p]


def _check_record(rec, name: str) -> None:
    if not isinstance(rec, MitbihRecord):
        raise TypeError(f"{name} takes a record read by read_mitbih (a MitbihRecord), got "
                        f"{type(rec).__name__}: read it first, {name}(read_mitbih(path), ...)")


def split_records(names, seed: int = 0, fractions=(0.7, 0.1, 0.2)) -> dict:
    """Assigns whole records to train/val/test (never windows of one record on both sides),
    reproducibly with `seed` (:func:`~mets_fast.data.splits.split_groups`)."""
    names = sorted(names)
    return dict(zip(names, split_groups(names, fractions, seed)))


def source(settings: Settings, root, *, seed: int = 0, step: float | None = None,
           windows: str = "beats") -> Source:
    """The MIT-BIH-format records under `root`, windowed (see :func:`mitbih_source`)."""
    headers = mitbih_headers(root)
    if windows == "beats":
        n_max = sum(min(k, PER_SYMBOL) for h in headers
                    for s, k in beat_symbols(h).items() if s in BEAT_SYMBOLS)
    else:
        n_max = sum(count_windows(h, settings, step) for h in headers)
    return Source(mitbih_source(Path(root), settings, seed, step, windows), n_max,
                  {"source": "mitbih", "seed": seed, "windows": windows})


MITBIH_WINDOWS = ("beats", "consecutive")
PER_SYMBOL = 300  # beat-centred windows kept per annotation symbol and record


def mitbih_source(root: Path, settings: Settings, seed: int, step: float | None = None,
                  windows: str = "beats", per_symbol: int = PER_SYMBOL):
    """MIT-BIH-format records (a ``.hea``/``.dat``/``.atr`` triple each) under `root`, split by
    record: validation records drawn (:func:`validation_records`) so
    that every METS beat class has beats on both sides where the records allow; the rest
    train (unseen patients are the test: there is no test split).

    `windows`: ``"beats"`` (the default, what the trainer uses): a window of
    ``settings.seconds`` centred on each beat, at most `per_symbol` beats of each annotation
    symbol per record (seeded), reported by its centre beat and rhythm (:func:`beat_report`),
    and labelled with its centre beat's METS class (column ``beat``: a list of one class, or
    empty); ``"consecutive"``: back-to-back windows (every `step` seconds) with reports of
    everything annotated in them (:func:`mitbih_windows`).
    """
    if windows not in MITBIH_WINDOWS:
        raise ValueError(f"windows must be one of {MITBIH_WINDOWS}, got {windows!r}")
    headers = mitbih_headers(root)
    held_out = set(mitbih_validation(headers, seed))
    for header in headers:
        name = header.stem
        try:
            rec = read_mitbih(header.with_suffix(""), fs=settings.fs)
        except (OSError, ValueError) as exc:
            yield skipped(f"mitbih-{name}", exc)
            continue
        split = "val" if name in held_out else "train"
        if windows == "beats":
            cut = beat_windows(rec, settings.samples, symbols="".join(sorted(BEAT_SYMBOLS)),
                               per_symbol=per_symbol, seed=seed)
            signals, mask = select_leads(cut.windows, rec.record.leads, settings.leads)
            for k, (centre, symbol, label) in enumerate(zip(cut.centres, cut.symbols,
                                                             cut.labels)):
                yield Item(signals[k], store_row(
                    f"mitbih-{name}-{int(centre)}", beat_report(rec, int(centre), symbol),
                    split, "mitbih", **beat_labels(rec, int(centre), symbol), patient=name,
                    beat=[label] if isinstance(label, str) else [],
                    start=int(centre) - settings.samples // 2), mask)
        else:
            cut, meta = mitbih_windows(rec, settings.seconds, step)
            signals, mask = select_leads(cut, rec.record.leads, settings.leads)
            for k, row in enumerate(meta.to_dict("records")):
                yield Item(signals[k], store_row(
                    f"mitbih-{name}-{row['start']}", row["report"], split, "mitbih",
                    **{f: row[f] for f in LABEL_COLUMNS}, patient=name, start=row["start"]),
                    mask)


def mitbih_headers(root: Path) -> list:
    """The headers of the MIT-BIH-format records under `root` (those with annotations)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIT-BIH folder not found: {root}")
    headers = [h for h in sorted(root.glob("*.hea")) if h.with_suffix(".atr").is_file()]
    if not headers:
        raise FileNotFoundError(f"{root} holds no MIT-BIH records (a .hea with its .atr)")
    return headers


def mitbih_validation(headers: list, seed: int) -> list:
    """The records :func:`mitbih_source` holds out for validation (by their annotations)."""
    counts = {}
    for h in headers:
        classes: Counter = Counter()
        for symbol, k in beat_symbols(h).items():
            if symbol in METS_CLASSES:
                classes[symbol] += k
        counts[h.stem] = classes
    return validation_records(counts, seed=seed)


def beat_symbols(header: Path) -> Counter:
    """Beats per annotation symbol of a record, from its annotations alone."""
    import wfdb

    try:
        symbols = wfdb.rdann(str(header.with_suffix("")), "atr").symbol
    except Exception:  # the reader reports the bad record when it gets there
        return Counter()
    return Counter(s for s in symbols if s in BEAT_SYMBOLS)


def count_windows(header: Path, settings: Settings, step: float | None) -> int:
    """Windows a MIT-BIH record will give, from its header alone (the length the reader will
    produce, resampled)."""
    import wfdb

    try:
        h = wfdb.rdheader(str(header.with_suffix("")))
    except Exception:  # the reader reports the bad record when it gets there
        return 0
    n = resampled_length(h.sig_len, h.fs, settings.fs)
    width = settings.samples
    hop = to_samples(step or settings.seconds, settings.fs)
    return max(0, (n - width) // hop + 1)
