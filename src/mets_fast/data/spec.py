"""What ``--data`` names: ``synthetic``, ``ptbxl:ROOT``, ``mitbih:ROOT``, ``challenge:ROOT``,
``mimic-iv-ecg:ROOT`` or ``store:DIR``, parsed once into a :class:`DataSpec`."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

DATA_KINDS = ("synthetic", "ptbxl", "mitbih", "challenge", "mimic-iv-ecg", "store")


class DataSpec(NamedTuple):
    """A parsed ``--data`` value: the ``kind``, except for ``synthetic`` a ``path``, and for
    training a ``weight`` (the source's share of each epoch; None: its share of the ECGs)."""

    kind: str
    path: Path | None
    weight: float | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data(spec: str, weighted: bool = False) -> DataSpec:
    """``"synthetic"``, ``"ptbxl:ROOT"``, ``"mitbih:ROOT"``, ``"challenge:ROOT"`` or
    ``"store:DIR"``; the path must exist.  With `weighted` (training), a trailing ``@W`` is
    the source's share of each epoch (``synthetic@0.5``), a number above 0.  Raises
    ValueError with the accepted forms otherwise."""
    forms = "synthetic, ptbxl:ROOT, mitbih:ROOT, challenge:ROOT, mimic-iv-ecg:ROOT or store:DIR"
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--data must be one of {forms}, got {spec!r}")
    text, weight = spec.strip(), None
    head, at, tail = text.rpartition("@")
    if at and _number(tail) is not None:  # (an @ followed by anything else is in a path)
        weight = _number(tail)
        if not weighted:
            raise ValueError(f"--data {spec!r}: a weight (@W) is a share of training's epochs; "
                             f"give the source without it here")
        if not 0 < weight < float("inf"):
            raise ValueError(f"--data {spec!r}: the weight after @ must be a number above 0, "
                             f"got {tail!r}")
        text = head
    kind, sep, path = text.partition(":")
    if kind not in DATA_KINDS:
        raise ValueError(f"--data {spec!r}: unknown source {kind!r}; expected {forms}")
    if kind == "synthetic":
        if sep:
            raise ValueError(f"--data {spec!r}: synthetic takes no path")
        return DataSpec(kind, None, weight)
    if not path:
        raise ValueError(f"--data {spec!r}: {kind} needs a path ({kind}:PATH)")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {spec!r}: {path} is not a directory")
    return DataSpec(kind, path, weight)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
