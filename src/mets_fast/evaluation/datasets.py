"""The labelled ECGs a trained model is evaluated on, made as the model's training data were:
the balanced single-label sets of the built-in tasks from a store (PTB-XL, synthetic, a
prepared store), PTB-XL's multi-label test sets, and the MIT-BIH beat task built from records.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.cache import DATA_SEED, prepared_store
from ..data.preprocess import Settings, check_compatible, preprocess
from ..data.records import select_leads, standard_lead
from ..data.sources.mitbih import (METS_CLASS_NAMES, METS_CLASSES, beat_report, beat_symbols,
                                   beat_windows, centred_windows, mitbih_headers,
                                   mitbih_validation, read_mitbih, validation_records,
                                   whole_windows)
from ..data.sources.ptbxl import multilabel_test
from ..data.sources.synthetic import CORPUS_SIZE, SUPERCLASS_DESCRIPTIONS
from ..data.spec import DataSpec
from ..data.store import ECGStore
from ..jsonio import read_json
from .tasks import PROBE_FAMILIES, EvalSet, builtin_tasks, evaluation_sets


class MultiLabel(NamedTuple):
    """A multi-label test set: ECGs, the class codes, their descriptions and a 0/1 target
    matrix ``(n, classes)``."""

    ecgs: np.ndarray
    codes: tuple
    descriptions: tuple
    targets: np.ndarray


class Reported(NamedTuple):
    """ECGs with their own reports, for ECG-to-report retrieval."""

    ecgs: np.ndarray
    reports: np.ndarray


class Evaluation(NamedTuple):
    """What one ``--data`` offers: the preprocessed ECGs (``signals``, a store's memory map or
    an array), the single-label sets by task name (:class:`~mets_fast.evaluation.tasks.EvalSet`:
    rows of ``signals``), multi-label sets by family, report-bearing ECGs by source (for
    retrieval) and notes for the user (records skipped and why)."""

    signals: np.ndarray
    single: dict
    multi: dict
    retrieval: dict
    notes: list


RETRIEVAL_MAX = 5000  # report-bearing ECGs a retrieval evaluation draws (seeded) at most


def reported(ecgs, reports, seed: int = 0) -> Reported:
    """The ECGs that have a report (at most :data:`RETRIEVAL_MAX`, drawn with `seed`)."""
    reports = np.asarray([str(r).strip() for r in reports], dtype=object)
    keep = np.flatnonzero(reports != "")
    if len(keep) > RETRIEVAL_MAX:
        keep = np.sort(np.random.default_rng(seed).choice(keep, RETRIEVAL_MAX, replace=False))
    return Reported(ecgs[keep] if len(keep) else ecgs[:0], reports[keep])


def default_split(store: ECGStore) -> str:
    """``"test"`` where the store has one, else ``"val"`` (MIT-BIH stores hold out patients in
    ``val``: unseen patients are their test)."""
    return "test" if len(store.split("test")) else "val"


def corpus_size(run_dir) -> int:
    """The size of the synthetic corpus a run trained on (its ``args.json``), so that its
    evaluation reads the test split of that same corpus (a corpus of another size shares its
    first ECGs, so its test split would hold the run's training ECGs).  A run directory whose
    ``args.json`` does not say is refused (ValueError); with no run (`run_dir` None) the
    corpus's default size."""
    if run_dir is None:
        return CORPUS_SIZE
    path = Path(run_dir) / "args.json"
    saved = read_json(path) if path.is_file() else None
    size = saved.get("corpus_size") if isinstance(saved, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{path} is missing or gives no corpus_size: which synthetic ECGs the "
                         f"run trained on is unknown, and the synthetic test split could hold "
                         f"some of them; evaluate on other data (ptbxl:ROOT, store:DIR), or "
                         f"restore the run's args.json")
    return size


def model_store(spec: DataSpec, settings: Settings, n: int = CORPUS_SIZE,
                quiet: bool = False) -> ECGStore:
    """The store of `spec` prepared with a model's `settings` (`n` ECGs of ``synthetic``),
    open and checked to hold ECGs of the model's shape."""
    store = ECGStore.open(prepared_store(spec, n=n, settings=settings, quiet=quiet))
    check_compatible(store, settings)
    return store


def store_evaluation(spec: DataSpec, settings: Settings, *, split: str | None = None,
                     per_class: int = 200, seed: int = 0, tasks=None,
                     statements: Path | None = None, n: int = 10000,
                     quiet: bool = False) -> Evaluation:
    """The sets of a store (``store:DIR``), or of ``synthetic`` (`n` ECGs) / ``ptbxl:ROOT``
    prepared with the model's `settings`."""
    store = model_store(spec, settings, n=n, quiet=quiet)
    split = split or default_split(store)
    single = evaluation_sets(store.meta, split=split, per_class=per_class, seed=seed, tasks=tasks)
    multi, notes = {}, []
    if "ptbxl" in set(store.meta["source"]):
        root = spec.path if spec.kind == "ptbxl" else None
        table = statements or (root / "scp_statements.csv" if root else None)
        if table is not None and Path(table).is_file():
            multi = ptbxl_multilabel(store, Path(table), split)
        else:
            notes.append("PTB-XL's multi-label AUROC needs scp_statements.csv for the class "
                         "descriptions: pass --data ptbxl:ROOT (or --statements FILE)")
    rows = store.split(split)
    retrieval = {}
    if len(rows):
        source = "_".join(sorted(set(store.meta["source"].iloc[rows])))
        picked = reported(np.arange(len(rows)), store.meta["report_clean"].iloc[rows], seed)
        if len(picked.reports):
            retrieval[source] = Reported(store.signals[rows[picked.ecgs]], picked.reports)
    return Evaluation(store.signals, single, multi, retrieval, notes)


def ptbxl_multilabel(store: ECGStore, statements: Path, split: str) -> dict:
    """MERL's multi-label protocol on PTB-XL: every `split` ECG, each class of a family scored
    against its description.  Superclasses take the built-in descriptions; form and rhythm
    statements their ``scp_statements.csv`` descriptions (subclasses have none there)."""
    import pandas as pd

    table = pd.read_csv(statements, index_col=0)
    out = {}
    for family in ("superclass", "form", "rhythm"):
        rows, codes, targets = multilabel_test(store.meta, family, split=split)
        if not len(rows) or len(codes) < 2:
            continue
        if family == "superclass":
            described = [SUPERCLASS_DESCRIPTIONS[c][0] for c in codes]
        else:
            described = [str(table.loc[c, "description"]) if c in table.index else c
                         for c in codes]
        out[family] = MultiLabel(store.signals[rows], tuple(codes), tuple(described), targets)
    return out


def mitbih_evaluation(root: Path, settings: Settings, *, split: str = "all",
                      per_class: int = 100, seed: int = 0, quiet: bool = False) -> Evaluation:
    """METS's MIT-BIH beat task from the records under `root`: beats N, L, R, A and V, each
    the window of the model's length centred on it, balanced (up to `per_class` of each class,
    all there are where fewer), drawn with `seed`.

    `split`: ``"all"`` (every record: for patients the model never saw) or ``"val"`` (the
    records the trainer holds out of this folder).  Records that share no lead with the model
    are skipped with a warning naming them."""
    if split not in ("all", "val"):
        raise ValueError(f"MIT-BIH evaluation split must be 'all' or 'val', got {split!r}")
    headers = mitbih_headers(root)
    if split == "val":
        keep = set(mitbih_validation(headers, DATA_SEED))
        headers = [h for h in headers if h.stem in keep]
    wanted = set(settings.leads)
    pool, records, skipped = [], {}, []
    for header in headers:
        try:
            names = _header_leads(header)
            if not wanted & {standard_lead(n) for n in names}:
                skipped.append(header.stem)
                continue
            rec = read_mitbih(header.with_suffix(""), fs=settings.fs)
        except (OSError, ValueError) as exc:
            skipped.append(header.stem)
            warnings.warn(f"MIT-BIH record {header.stem} skipped: {exc}", stacklevel=2)
            continue
        beats = whole_windows(rec.beats[rec.beats["mets"].notna()], settings.samples,
                              rec.record.signal.shape[1])
        records[header.stem] = rec
        pool += [(header.stem, int(c), m, sym)
                 for c, m, sym in zip(beats["sample"], beats["mets"], beats["symbol"])]
    no_lead = [s for s in skipped if s not in records]
    if no_lead:
        warnings.warn(f"MIT-BIH records sharing no lead with the model ({list(settings.leads)}) "
                      f"were skipped: {no_lead}", stacklevel=2)
    if not pool:
        raise ValueError(f"no beat of the classes N, L, R, A, V could be taken from {root} "
                         f"({len(skipped)} record(s) skipped)")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in "NLRAV":
        members = [k for k, item in enumerate(pool) if item[2] == cls]
        chosen += sorted(rng.choice(members, size=min(per_class, len(members)), replace=False)
                         .tolist()) if members else []
    windows = [select_leads(centred_windows(records[r], [c], settings.samples)[0],
                            records[r].record.leads, settings.leads)[0]
               for r, c, _, _ in (pool[k] for k in chosen)]
    ecgs = preprocess(np.stack(windows), settings)
    labels = np.array([METS_CLASS_NAMES[pool[k][2]] for k in chosen], dtype=object)
    reports = [beat_report(records[pool[k][0]], pool[k][1], pool[k][3]) for k in chosen]
    notes = [f"{len(records)} record(s) used"
             + (f"; skipped (no shared lead or unreadable): {skipped}" if skipped else "")]
    single = {"mitbih": EvalSet(builtin_tasks()["mitbih"], np.arange(len(ecgs)), labels)}
    return Evaluation(ecgs, single, {}, {"mitbih": Reported(ecgs, np.asarray(reports,
                                                                              dtype=object))},
                      notes)


def _header_leads(header: Path) -> list:
    """The lead names a WFDB header declares (without reading the signals)."""
    lines = [x for x in header.read_text(errors="replace").splitlines()
             if x.strip() and not x.startswith("#")]
    return [" ".join(x.split()[8:]) for x in lines[1:]]


class ProbeSet(NamedTuple):
    """A linear-probe task: positions of the training and test ECGs in ``signals`` (shared by
    the tasks of one data set, so features are computed once), their targets (class indices,
    or a 0/1 matrix for a multi-label task) and the class codes; ``challenge``: (weights,
    normal column) where the PhysioNet/CinC Challenge metric is scored too."""

    signals: np.ndarray
    train: np.ndarray
    train_targets: np.ndarray
    test: np.ndarray
    test_targets: np.ndarray
    classes: tuple
    multilabel: bool
    challenge: tuple | None = None


def store_probe_sets(spec: DataSpec, settings: Settings, n: int = 10000,
                     quiet: bool = False) -> dict:
    """The linear-probe tasks of a store: for PTB-XL, MERL's four multi-label families
    (train split -> test split); for the synthetic corpus, rhythm (single-label: every ECG has
    one) and superclass (multi-label).  Classes absent from either side are left out."""
    store = model_store(spec, settings, n=n, quiet=quiet)
    test_split = default_split(store)
    sources = set(store.meta["source"])
    families = [f for s in sorted(sources) for f in PROBE_FAMILIES.get(s, ())]
    out = {}
    for family in dict.fromkeys(families):
        if family not in store.meta:
            continue
        train_rows, train_codes, train_y = multilabel_test(store.meta, family, split="train")
        test_rows, test_codes, test_y = multilabel_test(store.meta, family, split=test_split)
        codes = tuple(c for c in train_codes if c in set(test_codes))
        if len(codes) < 2:
            continue
        train_y = train_y[:, [train_codes.index(c) for c in codes]]
        test_y = test_y[:, [test_codes.index(c) for c in codes]]
        single = bool((train_y.sum(1) == 1).all() and (test_y.sum(1) == 1).all())
        name = f"{next(iter(sorted(sources)))}_{family}"
        if single:
            train_y, test_y = train_y.argmax(1), test_y.argmax(1)
        out[name] = ProbeSet(store.signals, train_rows, train_y, test_rows, test_y, codes,
                             not single)
    return out


def mitbih_probe_sets(root: Path, settings: Settings, per_record: int = 500,
                      seed: int = 0) -> dict:
    """The MIT-BIH beat task for a linear probe: records split in two (half of them, drawn so
    that every class of N, L, R, A, V has beats on both sides where the records allow, are the
    test), at most `per_record` beats of each class from each record (seeded; a record's
    thousands of normal beats would otherwise dominate), windows as the zero-shot task's."""
    headers = mitbih_headers(root)
    counts = {h.stem: {s: k for s, k in beat_symbols(h).items() if s in METS_CLASSES}
              for h in headers}
    test = set(validation_records(counts, seed=DATA_SEED, fraction=0.5))
    sides = {"train": ([], []), "test": ([], [])}
    for header in headers:
        names = {standard_lead(n) for n in _header_leads(header)}
        if not names & set(settings.leads):
            continue
        rec = read_mitbih(header.with_suffix(""), fs=settings.fs)
        cut = beat_windows(rec, settings.samples, symbols="NLRAV", per_symbol=per_record,
                           seed=seed)
        if not len(cut.labels):
            continue
        windows = select_leads(cut.windows, rec.record.leads, settings.leads)[0]
        side = sides["test" if header.stem in test else "train"]
        side[0].append(preprocess(windows, settings))
        side[1].extend(cut.labels)
    classes = tuple(c for c in "NLRAV" if c in set(sides["train"][1]) & set(sides["test"][1]))
    if len(classes) < 2:
        raise ValueError(f"the records under {root} do not give two beat classes on both "
                         f"sides of a train/test split")
    index = {c: k for k, c in enumerate(classes)}
    signals = np.concatenate(sides["train"][0] + sides["test"][0])
    labels = np.array(sides["train"][1] + sides["test"][1], dtype=object)
    keep = np.array([x in index for x in labels])
    is_train = np.arange(len(labels)) < len(sides["train"][1])
    train, test = np.flatnonzero(keep & is_train), np.flatnonzero(keep & ~is_train)
    targets = np.array([index.get(x, -1) for x in labels])
    return {"mitbih": ProbeSet(signals, train, targets[train], test, targets[test], classes,
                               False)}


class LeadSubset:
    """Preprocessed ECGs ``(N, leads, samples)`` read with only some of their leads: the
    others are zeros, as ``model.preprocess`` makes a recording that lacks them (for the
    Challenge 2021's reduced-lead sets: 6, 4, 3 and 2 leads).  Exact for per-lead
    normalisation, which treats each lead on its own."""

    def __init__(self, signals, keep: np.ndarray):
        self.signals, self.keep = signals, np.asarray(keep, dtype=bool)
        self.shape, self.dtype = tuple(signals.shape), signals.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        out = np.array(self.signals[key])
        out[..., ~self.keep, :] = 0
        return out


def with_leads(signals, settings: Settings, leads) -> object:
    """`signals` as :class:`LeadSubset` keeping `leads` (names; None: `signals` as they
    are).  A ValueError names a lead the model does not take; a model normalised over the
    whole record is refused (its stored leads were scaled together)."""
    if leads is None:
        return signals
    leads = [standard_lead(n) for n in leads]
    unknown = [n for n in leads if n not in settings.leads]
    if unknown:
        raise ValueError(f"--leads {unknown} are not among the model's leads "
                         f"{list(settings.leads)}")
    if settings.normalize != "lead":
        raise ValueError(f"--leads needs a model whose leads are normalised one by one; this "
                         f"one's are normalised {settings.normalize!r}")
    return LeadSubset(signals, [n in leads for n in settings.leads])


def probe_with_leads(sets: dict, settings: Settings, leads) -> dict:
    """Probe sets (:class:`ProbeSet`) reading only `leads` (see :func:`with_leads`); sets that
    shared one array still share one (their features are computed once)."""
    if leads is None:
        return sets
    wrapped: dict = {}
    return {task: s._replace(signals=wrapped.setdefault(id(s.signals),
                                                        with_leads(s.signals, settings, leads)))
            for task, s in sets.items()}
