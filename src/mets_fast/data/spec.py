"""What ``--data`` names: ``synthetic``, ``ptbxl:ROOT``, ``mitbih:ROOT``, ``challenge:ROOT``,
``mimic-iv-ecg:ROOT`` or ``store:DIR``, parsed once into a :class:`DataSpec`."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

DATA_KINDS = ("synthetic", "ptbxl", "mitbih", "challenge", "mimic-iv-ecg", "store")


class DataSpec(NamedTuple):
    """A parsed ``--data`` value: the ``kind`` and, except for ``synthetic``, a ``path``."""

    kind: str
    path: Path | None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data(spec: str) -> DataSpec:
    """``"synthetic"``, ``"ptbxl:ROOT"``, ``"mitbih:ROOT"``, ``"challenge:ROOT"`` or
    ``"store:DIR"``; the path must exist.  Raises ValueError with the accepted forms
    otherwise."""
    forms = "synthetic, ptbxl:ROOT, mitbih:ROOT, challenge:ROOT, mimic-iv-ecg:ROOT or store:DIR"
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--data must be one of {forms}, got {spec!r}")
    kind, sep, path = spec.strip().partition(":")
    if kind not in DATA_KINDS:
        raise ValueError(f"--data {spec!r}: unknown source {kind!r}; expected {forms}")
    if kind == "synthetic":
        if sep:
            raise ValueError(f"--data {spec!r}: synthetic takes no path")
        return DataSpec(kind, None)
    if not path:
        raise ValueError(f"--data {spec!r}: {kind} needs a path ({kind}:PATH)")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {spec!r}: {path} is not a directory")
    return DataSpec(kind, path)
