"""What a zero-shot task is: the label column it reads, the kind of statement its classes are
(the word the METS prompt ends with), and its classes with their descriptions."""

from __future__ import annotations

from typing import NamedTuple

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
