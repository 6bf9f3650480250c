"""What one request may ask of a server: a bound on the work it makes, so that no client keeps
the model's thread (and every other client) busy for minutes or grows the server's memory.

Measured before these bounds (2 cores): one lead of 3,000,000 samples at 50 Hz held the model
96 s and 1.5 GB; 10,000 classes 301 s; 1,000 descriptions of one class 27 s; and every new
class name and query text stayed in memory and on disk for ever.  The defaults leave every
real use its room: a 24-hour Holter at 1 kHz is over them, a 10-minute stress test is not.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Limits(NamedTuple):
    """``seconds``: the longest ECG of a request, in seconds of signal; ``samples``: the most
    samples of one ECG over all its leads (what resampling and parsing cost); ``windows``: the
    most model windows of a request over all its ECGs (what encoding costs); ``classes`` and
    ``descriptions`` (per class) of a zero-shot request; ``text``: the longest class name,
    description or query text in characters; ``memory``: prompt and query embeddings kept in
    memory (least recently used first out; nothing a client sends is written to disk)."""

    seconds: float = 600.0
    samples: int = 12 * 600 * 1000
    windows: int = 256
    classes: int = 100
    descriptions: int = 16
    text: int = 1000
    memory: int = 4096

    def check(self) -> "Limits":
        """Itself, or a ValueError naming a bound (and its flag) that is not a positive
        number."""
        for name, value in self._asdict().items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value <= 0:
                raise ValueError(f"{FLAGS[name]} (the limit {name}) must be a positive "
                                 f"number, got {value!r}")
        return self


# the flag of each bound (mets-fast serve) and what it bounds, for its --help
FLAGS = {"seconds": "--max-seconds", "samples": "--max-samples", "windows": "--max-windows",
         "classes": "--max-classes", "descriptions": "--max-descriptions",
         "text": "--max-text", "memory": "--prompt-memory"}
MEANING = {"seconds": "longest ECG of a request, in seconds of signal",
           "samples": "most samples of one ECG over all its leads",
           "windows": "most model windows of one request over all its ECGs, and of one batch",
           "classes": "most classes of a zero-shot request",
           "descriptions": "most descriptions of one class",
           "text": "longest class name, description or query text, in characters",
           "memory": "prompt and query embeddings kept in memory, least recently used first "
                     "out (nothing a client sends is written to disk)"}


class LimitExceeded(ValueError):
    """A request over a bound of :class:`Limits`: answered ``status`` (413 for the signal's
    size, 422 for the classes and texts) with a message naming the bound and its flag."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def over(limits: Limits, name: str, found, what: str, status: int = 422) -> None:
    """Raises :class:`LimitExceeded` where `found` exceeds bound `name`: ``what`` says what
    was counted (``"the ECG lasts 3000 s"``)."""
    bound = getattr(limits, name)
    if found > bound:
        raise LimitExceeded(f"{what}; this server takes at most {bound:g} ({FLAGS[name]})",
                            status)


def check_recording(limits: Limits, samples: int, leads: int, fs: float,
                    label: str = "the ECG") -> None:
    """A recording of `leads` x `samples` at `fs` Hz within the bounds (413 otherwise)."""
    over(limits, "seconds", samples / fs, f"{label} lasts {samples / fs:,.0f} s", 413)
    over(limits, "samples", samples * leads,
         f"{label} holds {samples * leads:,} samples ({leads} leads of {samples:,})", 413)


def check_classes(limits: Limits, described: dict) -> None:
    """A zero-shot class list (name -> descriptions) within the bounds (422 otherwise)."""
    over(limits, "classes", len(described), f"{len(described):,} classes were given")
    for name, descriptions in described.items():
        check_text(limits, name, "a class name")
        over(limits, "descriptions", len(descriptions),
             f"class {name[:40]!r} has {len(descriptions):,} descriptions")
        for d in descriptions:
            check_text(limits, d, f"a description of class {name[:40]!r}")


def check_text(limits: Limits, text: str, what: str = "the text") -> None:
    over(limits, "text", len(text), f"{what} has {len(text):,} characters")
