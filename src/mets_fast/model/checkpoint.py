"""Run directories: the trained model, its configuration and the state to resume from, with no
pickle anywhere (safetensors and JSON).

A run directory holds::

    config.json          format and version, the model's configuration (encoder, widths,
                         embedding size, leads, sampling rate, samples, preprocessing, the text
                         model's source, identity, pooling, template, maximum length)
    model.safetensors    the weights of the last committed checkpoint (what :func:`load` reads)
    args.json            the trainer's arguments
    metrics.jsonl        one JSON object per epoch
    curves.png           loss and zero-shot scores per epoch
    checkpoints/epoch-NNNN/
        model.safetensors, optimizer.safetensors, state.json (epoch, step, RNG and optimizer
        settings, sizes and hashes of the two weight files)
    .lock                held by the process training the run

Each safetensors file records the SHA-256 of its tensors in its own header
(:func:`mets_fast.checksums.tensor_bytes`): a copy damaged anywhere is refused on load.

A checkpoint is written into a hidden temporary directory and renamed into place
(:mod:`mets_fast.atomic`), so one that exists is complete; ``model.safetensors`` beside
``config.json`` is then replaced by a link to its weights (one atomic rename).  Temporary names
never end in ``.safetensors``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import torch
from ..atomic import commit_dir, link_or_copy, temp_dir
from ..checksums import describe, sha256, nonfinite_tensors, read_tensors, tensor_bytes, verify
from ..jsonio import write_json
from ..versions import read_manifest
from .mets import METSModel
from .resnet1d import ResNet1d

FORMAT = "mets_fast.run"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")


# ------------------------------------------------------------------------------------- writing


def write_config(run_dir: Path, model: METSModel) -> dict:
    """Writes ``config.json`` for `model` and returns it."""
    from .. import __version__

    config = {"format": FORMAT, "version": VERSION, "mets_fast": __version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "leads": list(model.settings.leads), "fs": model.settings.fs,
              "samples": model.settings.samples, "model": model.config}
    write_json(Path(run_dir) / CONFIG, config)
    return config


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, step: int, extra: dict | None = None) -> Path:
    """Commits the checkpoint of the end of `epoch` (1-based) at global `step`: the weights,
    the optimizer's state and the RNG state, as one unit; older checkpoints are removed after
    it is in place.  Returns its directory."""
    run_dir = Path(run_dir)
    parent = run_dir / CHECKPOINTS
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / f"epoch-{epoch:04d}"
    tmp = temp_dir(final)
    weights = _contiguous(model.state_dict())
    bad = nonfinite_tensors(weights)
    if bad:
        raise ValueError(f"the weights hold NaN or inf ({', '.join(bad[:3])}): the run diverged; "
                         f"no checkpoint of epoch {epoch} is written")
    (tmp / WEIGHTS).write_bytes(tensor_bytes(weights))
    tensors, settings = _split_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    (tmp / "optimizer.safetensors").write_bytes(tensor_bytes(tensors))
    state = {"epoch": int(epoch), "step": int(step), "optimizer": settings,
             "extra": extra or {},
             "files": {name: describe(tmp / name) for name in (WEIGHTS, "optimizer.safetensors")}}
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    # a checkpoint of this epoch already there is from a run that died after committing it
    commit_dir(tmp, final)
    link_or_copy(final / WEIGHTS, run_dir / WEIGHTS)
    for old in committed_checkpoints(run_dir)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------- reading


def committed_checkpoints(run_dir: Path) -> list:
    """The committed checkpoint directories of a run, oldest first."""
    parent = Path(run_dir) / CHECKPOINTS
    if not parent.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in parent.iterdir()
             if (m := _EPOCH_DIR.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def checkpoint_epoch(path: Path) -> int:
    """The epoch a committed checkpoint directory (``epoch-0003``) ends."""
    found = _EPOCH_DIR.match(Path(path).name)
    if found is None:
        raise ValueError(f"{path} is not a checkpoint directory (epoch-NNNN)")
    return int(found.group(1))


def restore_checkpoint(path: Path, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Loads a committed checkpoint into `model` (and `optimizer`), restores the RNG state and
    returns its ``state.json`` (``epoch``, ``step``, ``extra``)."""
    path = Path(path)
    state = json.loads((path / "state.json").read_text())
    for name, described in state["files"].items():
        verify(path / name, described, f"checkpoint {path}'s state.json")
    model.load_state_dict(read_tensors(path / WEIGHTS))
    tensors = read_tensors(path / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("rng.torch"))
    if optimizer is not None:
        optimizer.load_state_dict(_join_optimizer(tensors, state["optimizer"]))
    return state


def read_config(run_dir: str | os.PathLike) -> dict:
    """A run directory's ``config.json``, checked: the directory is a run, of a format version
    this mets_fast reads."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ValueError(f"{run_dir} is a file; a run is a directory (what `python -m "
                         f"mets_fast.train --out DIR` writes)")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    path = run_dir / CONFIG
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a mets_fast run directory (no {CONFIG}; a run is "
                         f"what `python -m mets_fast.train --out DIR` writes)")
    return read_manifest(path, FORMAT, VERSION, what="run",
                         remake="train the model again with this mets_fast",
                         not_ours=f"{run_dir} is not a mets_fast run directory ({CONFIG} has "
                                  f"format {{found!r}})")


def load(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> METSModel:
    """The trained model of a run directory, in eval mode on `device`.

    Rebuilt from ``config.json`` and ``model.safetensors`` with no pickle.  Refuses (ValueError
    naming the file and what is wrong) a directory that is not a run, a newer format version, a
    configuration missing a key or holding a value of the wrong kind, a run with no weights
    yet, weights that are truncated, damaged (their SHA-256, recorded in the file when it was
    written, differs), hold NaN or inf, or do not fit the configuration's model."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    try:
        model = METSModel.from_config(config.get("model"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{run_dir / CONFIG}: {exc}") from None
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise ValueError(f"{run_dir} holds no {WEIGHTS} yet (no epoch of the run finished)")
    weights = read_tensors(path)
    _check_fit(model, weights, path)
    bad = nonfinite_tensors(weights)
    if bad:
        raise ValueError(f"{path} holds NaN or inf in {len(bad)} tensor(s) ({', '.join(bad[:3])}): "
                         f"the weights are damaged")
    model.load_state_dict(weights)
    model.run_id = run_identity(run_dir)  # names the weights: indexes record which built them
    model.run_dir = str(run_dir)  # what the run trained on (args.json) guards its evaluation
    return model.to(device).eval()


def load_encoder(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> ResNet1d:
    """Only the pre-trained ECG encoder of a run (:class:`ResNet1d`, ``(N, leads, samples) ->
    (N, 512)``), in train mode, for a model with another head::

        encoder = mets_fast.load_encoder("runs/mine")
        classifier = torch.nn.Sequential(encoder, torch.nn.Linear(encoder.out_features, 5))

    Its input must be made as the run's data were (``mets_fast.load(run).preprocess``)."""
    model = load(run_dir)
    return model.encoder.to(device).train()


def run_identity(run_dir: str | os.PathLike) -> str:
    """The SHA-256 of a run's weights: names the exact model an index was built with."""
    return sha256(Path(run_dir) / WEIGHTS)


def _check_fit(model: torch.nn.Module, weights: dict, path: Path) -> None:
    """A ValueError naming `path` and the first tensor that the configuration's model lacks,
    misses or shapes otherwise (torch's own message is a page of sizes)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    problems = [f"{k} is missing" for k in expected if k not in found]
    problems += [f"{k} is not part of the model" for k in found if k not in expected]
    problems += [f"{k} is {found[k]}, the configuration needs {expected[k]}"
                 for k in expected if k in found and found[k] != expected[k]]
    if problems:
        raise ValueError(f"{path} does not fit the model {CONFIG} describes "
                         f"({len(problems)} tensor(s): {'; '.join(problems[:2])}): the two files "
                         f"are from different runs, or one was edited")


# --------------------------------------------------------------------------------- internals


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def _split_optimizer(state_dict: dict) -> tuple:
    """An optimizer's ``state_dict`` as (tensors for safetensors, the rest for JSON)."""
    tensors, plain = {}, {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "plain": plain}


def _join_optimizer(tensors: dict, settings: dict) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in settings["plain"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": settings["param_groups"]}
