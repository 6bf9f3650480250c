"""The task registry: every built-in task by name, with the label column it reads, the kind of
statement its classes are (the word the METS prompt ends with), its classes with their
descriptions, and which data it is scored on (zero-shot and linear probe); and the balanced
labelled sets of a store's tasks."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ..data.sources.mitbih import METS_CLASS_NAMES
from ..data.sources.ptbxl import ZERO_SHOT_TASKS, zero_shot_set
from ..data.sources.synthetic import RHYTHM_DESCRIPTIONS, SUPERCLASS_DESCRIPTIONS

KINDS = ("diagnostic", "form", "rhythm")


class ZeroShotTask(NamedTuple):
    """``family``: the store's label column (``superclass``, ``form``, ``rhythm``, ``beat``);
    ``kind``: ``"diagnostic"``, ``"form"`` or ``"rhythm"`` (METS's prompt, "The ECG of {class},
    a type of {kind}."); ``classes``: label code -> descriptions, the first being the class
    name the plain METS prompt uses, the others prompt-ensemble members."""

    family: str
    kind: str
    classes: dict

    def names(self) -> dict:
        """label code -> class name (the first description)."""
        return {code: descriptions[0] for code, descriptions in self.classes.items()}


def builtin_tasks() -> dict:
    """The zero-shot tasks mets_fast knows, by name: the synthetic corpus's, PTB-XL's three
    (METS's balanced single-label sets; classes by their ``scp_statements.csv``
    descriptions, superclasses by PTB-XL's names for them) and the MIT-BIH beat task."""
    described = {**SUPERCLASS_DESCRIPTIONS, **{c: (d,) for c, d in PTBXL_DESCRIPTIONS.items()}}
    tasks = {"synthetic_rhythm": ZeroShotTask("rhythm", "rhythm", RHYTHM_DESCRIPTIONS),
             "synthetic_superclass": ZeroShotTask("superclass", "diagnostic",
                                                  SUPERCLASS_DESCRIPTIONS)}
    for family, codes in ZERO_SHOT_TASKS.items():
        kind = {"superclass": "diagnostic"}.get(family, family)
        tasks[f"ptbxl_{family}"] = ZeroShotTask(family, kind, {c: described[c] for c in codes})
    tasks["mitbih"] = ZeroShotTask("beat", "diagnostic",
                                   {c: (METS_CLASS_NAMES[c],) for c in "NLRAV"})
    return tasks


# The descriptions scp_statements.csv gives the codes of METS's form and rhythm tasks.
PTBXL_DESCRIPTIONS = {
    "NDT": "non-diagnostic T abnormalities", "NST_": "non-specific ST changes",
    "ABQRS": "abnormal QRS", "PVC": "ventricular premature complex",
    "STD_": "non-specific ST depression", "SR": "sinus rhythm", "AFIB": "atrial fibrillation",
    "STACH": "sinus tachycardia", "SARRH": "sinus arrhythmia", "SBRAD": "sinus bradycardia",
}
# Which tasks a store's ECGs can be scored on, by the source that made them.
TASKS_BY_SOURCE = {"synthetic": ("synthetic_rhythm", "synthetic_superclass"),
                   "ptbxl": ("ptbxl_superclass", "ptbxl_form", "ptbxl_rhythm"),
                   "mitbih": ("mitbih",)}


class EvalSet(NamedTuple):
    """A task's balanced labelled set in a store: positions and class names."""

    task: ZeroShotTask
    rows: np.ndarray
    labels: np.ndarray


def evaluation_sets(meta, split: str = "val", per_class: int = 200, seed: int = 0,
                    tasks: Sequence[str] | None = None) -> dict:
    """The balanced single-label sets (:func:`~mets_fast.data.zero_shot_set`) of the tasks a
    store's metadata supports (by its ``source`` column, or the named `tasks`), on `split`.
    Returns ``{task name: EvalSet}``; tasks with fewer than two classes present are left out.
    In a store of several sources, a source's task draws from that source's ECGs alone (the
    synthetic corpus and PTB-XL share the ``superclass`` column, not its meaning)."""
    known = builtin_tasks()
    sources = set(meta["source"]) if len(meta) and "source" in meta else set()
    if tasks is None:
        tasks = [t for s in sorted(sources) for t in TASKS_BY_SOURCE.get(s, ())]
    owner = {t: s for s in sources for t in TASKS_BY_SOURCE.get(s, ())}
    out = {}
    for name in tasks:
        if name not in known:
            raise ValueError(f"unknown task {name!r}; known: {sorted(known)}")
        task = known[name]
        if task.family not in meta:
            raise ValueError(f"task {name!r} needs the label column {task.family!r}, which the "
                             f"data lacks")
        own = meta
        if len(sources) > 1 and name in owner:
            own = meta.assign(split=meta["split"].where(meta["source"] == owner[name]))
        chosen = zero_shot_set(own, name, per_class=per_class, seed=seed,
                               classes=tuple(task.classes), family=task.family, split=split)
        if sum(k > 0 for k in chosen.counts.values()) < 2:
            continue
        names = task.names()
        out[name] = EvalSet(task, np.asarray(chosen.rows, dtype=np.int64),
                            np.array([names[c] for c in chosen.labels], dtype=object))
    return out


# The label families a linear probe reads, by the source that made a store's ECGs.
PROBE_FAMILIES = {"synthetic": ("rhythm", "superclass"),
                  "ptbxl": ("superclass", "subclass", "form", "rhythm")}
