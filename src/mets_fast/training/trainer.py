"""The METS training loop: ECGs from the memory-mapped store against their reports' frozen
embeddings (computed once, before the first step), the fused loss, a checkpoint and a zero-shot
evaluation after every epoch, bit-for-bit resumable, one process or many."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..atomic import lock, remove_stale, write_text
from ..data.cache import prepared_store
from ..data.preprocess import store_settings
from ..data.sources import SETTINGS
from ..data.spec import parse_data
from ..data.store import ECGStore
from ..evaluation.evaluate import evaluate
from ..jsonio import dumps, read_json, write_json
from ..loss import NonFiniteError
from ..model import checkpoint
from ..model.mets import METSModel
from ..precision import Precision, choose, device_bf16
from ..threads import set_threads
from . import distributed
from .augment import RECIPE, Augment, augment
from .curves import plot_curves
from .loader import BatchLoader
from .presets import NEGATIVES, Preset, preset_for
from .sampling import epoch_order, shares
from .schedule import learning_rate

# What a run adds to its preset's settings: the language model, and what does not change the
# result (device, threads, output, verbosity, the size of the per-epoch validation sample)
# besides the seed.
_RUN_FIELDS = [("lm", str), ("device", str), ("threads", "int | None"), ("seed", int),
               ("out", str), ("resume", bool), ("quiet", bool), ("val_size", int)]
VAL_SIZE = 2000  # validation ECGs scored after each epoch (a fixed, seeded sample)
TrainConfig = NamedTuple("TrainConfig", [("data", "str | list"), ("preset", str),
                                         *Preset.__annotations__.items(), *_RUN_FIELDS])
TrainConfig.__doc__ = """Every setting of a run (``args.json``): the data, the preset's name,
its settings resolved (:class:`~mets_fast.training.presets.Preset`), then the run's own."""

# Settings a resumed run must share with the run it continues (the others, output and
# verbosity, do not change the result; threads and device may change its last bits).
RESULT_KEYS = ("data", "preset", *Preset._fields, "lm", "seed")
# What a setting added later was before it existed (runs written earlier resume as such).
BEFORE_IT_EXISTED = {"negatives": "all", **{f"aug_{k}": 0.0 for k in Augment._fields}}
# What a run directory holds besides hidden files (its lock, temporaries).
_RUN_FILES = {checkpoint.CONFIG, checkpoint.WEIGHTS, checkpoint.CHECKPOINTS, "args.json",
              "metrics.jsonl", "curves.png"}
DEVICES = re.compile(r"^(cpu|cuda(:\d+)?)$")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


class TrainingError(RuntimeError):
    """A run that cannot go on (a non-finite loss); the message says where and why."""


def data_list(data) -> list:
    """``--data`` as a list of values (a run's ``data`` is one value, or a list of several)."""
    return [data] if isinstance(data, str) else list(data)


def prepared_stores(specs: list, n: int, quiet: bool) -> list:
    """The store of each data spec, all prepared with the first one's settings (each source
    keeping its own power-line frequency, a property of where it was recorded), so that their
    ECGs can be batched together."""
    if len(specs) == 1:
        return [prepared_store(specs[0], n=n, quiet=quiet)]
    first = specs[0]
    settings = (store_settings(ECGStore.open(first.path)) if first.kind == "store"
                else SETTINGS[first.kind])
    return [prepared_store(s, n=n, quiet=quiet,
                           settings=None if s.kind == "store" else
                           settings._replace(powerline=SETTINGS[s.kind].powerline))
            for s in specs]


def resolve(data: str | list | None = None, preset: str | None = None,
            **overrides) -> TrainConfig:
    """A full configuration: the preset's values for the data's kind (several ``data`` values
    of different kinds: the preset as it is; None: ``synthetic``; preset None: ``default``),
    then `overrides` (None values ignored).  ``amp``: True or False obeys; None takes the
    preset's choice where the device computes bfloat16 natively (:mod:`mets_fast.precision`).

    With ``resume`` and an ``out`` that holds a run's ``args.json``, the run's own settings
    are the base instead, so that ``--out RUN --resume`` alone continues it; the flags given
    override them (and a change that would alter the result is refused when the run starts,
    but for a larger ``epochs``, which extends it)."""
    rest = {"lm": "default", "device": "cpu", "threads": None, "seed": 0, "out": None,
            "resume": False, "quiet": False, "val_size": VAL_SIZE}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("augment"):  # the recipe's strengths, where no flag gives its own
        given = {**{f"aug_{k}": v for k, v in RECIPE._asdict().items()}, **given}
    if data is not None:
        given["data"] = _data_value(data)
    if preset is not None:
        given["preset"] = preset
    # a run with a committed checkpoint: its own settings (a run killed before its first
    # checkpoint has nothing to continue and starts again from the flags)
    saved = Path(given["out"]) / "args.json" if given.get("resume") and given.get("out") \
        and checkpoint.committed_checkpoints(Path(given["out"])) else None
    if saved is not None and saved.is_file():
        base = {**BEFORE_IT_EXISTED, **rest, **read_json(saved)}
        fields = {k: given.get(k, base.get(k)) for k in TrainConfig._fields}
    else:
        data = _data_value(given.get("data", "synthetic"))
        values = preset_for(given.get("preset", "default"), _data_kind(data))._asdict()
        requested = given.pop("amp", None)
        fields = {**values, **rest, **given, "data": data,
                  "preset": given.get("preset", "default")}
        fields["amp"] = choose(fields["device"], values["amp"], requested).amp
        fields = {k: fields[k] for k in TrainConfig._fields}
    if fields["out"] is None:
        fields["out"] = str(Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    config = TrainConfig(**fields)
    _check(config)
    return config


def _data_value(data: str | list) -> str | list:
    """``--data`` as a run records it: one value, or a list of several (checked: at least one,
    none named twice)."""
    values = data_list(data)
    if not values:
        raise ValueError("--data: give at least one source")
    named = [str(parse_data(d, weighted=True)) for d in values]
    twice = sorted({v for v in named if named.count(v) > 1})
    if twice:
        raise ValueError(f"--data names {twice[0]!r} twice")
    return values[0] if len(values) == 1 else list(values)


def _data_kind(data: str | list) -> str:
    """The kind of the data (``synthetic``, ``ptbxl``, ...; ``mixed`` for several kinds)."""
    kinds = {parse_data(d, weighted=True).kind for d in data_list(data)}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def precision_of(config: TrainConfig) -> Precision:
    """The arithmetic a run computes in on its device (its ``amp`` as resolved), and why: the
    preset's choice under the bfloat16 rule, or a flag (or the run being resumed) that asked
    otherwise."""
    native, _ = device_bf16(config.device)
    preset = preset_for(config.preset, _data_kind(config.data)).amp
    return choose(config.device, preset,
                  None if config.amp == (preset and native) else config.amp)


def _check(c: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "embed_dim", "corpus_size", "val_size"):
        value = getattr(c, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got "
                             f"{value!r}")
    if c.batch_size < 2:
        raise ValueError(f"--batch-size must be at least 2, got {c.batch_size}: the loss scores "
                         f"each ECG against the other reports of its batch, and a batch of one "
                         f"has none (its loss is 0, nothing is learnt)")
    for name in ("lr", "weight_decay", "warmup"):
        value = getattr(c, name)
        # float32 holds the optimiser's arithmetic: a larger value overflows in Adam's step
        if not np.isfinite(value) or value < 0 or value > _FLOAT32_MAX or \
                (name == "lr" and value == 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number "
                             f"{'> 0' if name == 'lr' else '>= 0'} (within float32), got "
                             f"{value!r}")
    if not isinstance(c.device, str) or not DEVICES.match(c.device):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {c.device!r} (mets_fast "
                         f"trains on CPUs and NVIDIA GPUs)")
    if c.warmup >= 1:
        raise ValueError(f"warmup is a fraction of the steps, below 1; got {c.warmup}")
    strengths(c).check(_window_seconds(c.data))
    if c.negatives not in NEGATIVES:
        raise ValueError(f"--negatives must be one of {NEGATIVES}, got {c.negatives!r}")
    if isinstance(c.seed, bool) or not isinstance(c.seed, int) or c.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {c.seed!r}")
    if c.threads is not None and (not isinstance(c.threads, int) or c.threads < 1):
        raise ValueError(f"--threads must be a positive integer, got {c.threads!r}")


def _window_seconds(data) -> float | None:
    """The length of the windows a run on `data` trains on (its first source's: the others
    are prepared with its settings); None where a store cannot be read yet (the run then
    fails on it, saying why)."""
    first = parse_data(data_list(data)[0], weighted=True)
    if first.kind != "store":
        return SETTINGS[first.kind].seconds
    try:
        return store_settings(ECGStore.open(first.path)).seconds
    except (OSError, ValueError):
        return None


def strengths(c: TrainConfig) -> Augment:
    """The augmentations a configuration asks for."""
    return Augment(*(getattr(c, f"aug_{k}") for k in Augment._fields))


def fit(config: TrainConfig, stop_after: int | None = None) -> Path:
    """Trains as `config` says; returns the run directory.  With several processes
    (``torchrun``), rank 0 prepares the data and the text cache first, and writes the run.

    `stop_after`: leave after that epoch's checkpoint, as an interrupted run would (the
    schedule is still the whole run's; ``resume=True`` continues it), e.g. for jobs sliced
    into time-limited pieces."""
    world = distributed.setup(config.device)
    run = None
    try:
        run = _Run(config, world)
        run.prepare()
        return run.train(stop_after)
    except BaseException:
        if run is not None:
            run.close(failed=True)
        raise
    finally:
        if run is not None:
            run.close()
        distributed.teardown()


class _Run:
    def __init__(self, config: TrainConfig, world: distributed.World):
        self.c, self.world = config, world
        self.out = Path(config.out)
        specs = [parse_data(d, weighted=True) for d in data_list(config.data)]
        if config.batch_size % world.size:
            raise ValueError(f"--batch-size {config.batch_size} (the global batch) must divide "
                             f"evenly over {world.size} processes")
        self.specs = specs
        self._lock, self._made, self.extended = None, False, False
        self.resuming = self._check_out(config.resume)
        self.precision = precision_of(config)

    def prepare(self) -> None:
        """Takes the run directory, then the data and the reports' embeddings."""
        config, world = self.c, self.world
        distributed.barrier(world)
        if world.main:
            self._take_out()
            if self.precision.amp and not self.precision.native:
                warnings.warn(self.precision.reason, stacklevel=2)
            elif not config.quiet:
                print(f"arithmetic: {self.precision.reason}", flush=True)
            if self.extended and not config.quiet:
                print(f"the run now ends after {config.epochs} epochs: the learning-rate "
                      f"schedule is recomputed over the new total", flush=True)
        set_threads(config.threads)
        if world.main:
            paths = prepared_stores(self.specs, config.corpus_size, config.quiet)
        distributed.barrier(world)
        if not world.main:
            paths = prepared_stores(self.specs, config.corpus_size, True)
        stores = [ECGStore.open(p) for p in paths]
        self.store = ECGStore.concat(stores)
        self.train_rows = self._train_rows()
        self.train_part, self.shares = self._sources(stores)
        if world.main and not config.quiet and len(paths) > 1:
            counts = np.bincount(self.train_part, minlength=len(paths))
            share = self.shares if self.shares is not None else counts / counts.sum()
            names = ["/".join(sorted(set(s.meta["source"]))) for s in stores]
            print(f"training on {len(self.train_rows)} ECGs of {len(paths)} sources: "
                  + ", ".join(f"{name} {k} ({100 * w:.0f} % of each epoch)"
                              for name, k, w in zip(names, counts, share)), flush=True)
        self.text_table, self.report_index = self._embed_reports()
        self.settings = store_settings(self.store)

    # ------------------------------------------------------------------------------ set-up

    def _check_out(self, resume: bool) -> bool:
        """Whether the run continues a committed checkpoint in ``out`` (read only: every
        process decides the same before the main one takes the directory)."""
        if checkpoint.committed_checkpoints(self.out):
            if not resume:
                raise ValueError(f"--out {self.out} holds a run; pass --resume to continue it, "
                                 f"or choose another directory (runs are never overwritten)")
            saved = {**BEFORE_IT_EXISTED, **read_json(self.out / "args.json")}
            changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {getattr(self.c, k)!r}"
                       for k in RESULT_KEYS
                       if k != "epochs" and saved.get(k) != getattr(self.c, k)]
            if changed:
                raise ValueError("--resume: these arguments differ from the run being resumed "
                                 "and would change its result: " + "; ".join(changed))
            done = checkpoint.checkpoint_epoch(checkpoint.committed_checkpoints(self.out)[-1])
            if self.c.epochs < done:
                raise ValueError(f"--resume: the run has trained {done} epochs already; "
                                 f"--epochs {self.c.epochs} would end it before that (give "
                                 f"{done} or more)")
            self.extended = self.c.epochs != saved.get("epochs")
            return True
        if self.out.exists():
            if not self.out.is_dir():
                raise ValueError(f"--out {self.out} is a file; give a directory")
            # a run that failed or was killed before its first checkpoint holds nothing to
            # continue and nothing to lose: the same command starts it again
            alien = [p.name for p in self.out.iterdir()
                     if p.name not in _RUN_FILES and not p.name.startswith(".")]
            if alien:
                raise ValueError(f"--out {self.out} holds files that are not a run's "
                                 f"({', '.join(sorted(alien)[:5])}): choose another directory")
            if (self.out / checkpoint.WEIGHTS).exists():
                raise ValueError(f"--out {self.out} holds trained weights but no checkpoint to "
                                 f"resume from: choose another directory")
        return False

    def _take_out(self) -> None:
        """The main process locks ``out`` for the run's lifetime and clears what a run that
        died in it left: temporaries of dead writers and, when starting afresh, the files of a
        run that never committed a checkpoint."""
        self._made = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = lock(self.out, "training it")
        for folder in (self.out, self.out / checkpoint.CHECKPOINTS):
            if folder.is_dir():
                remove_stale(folder)
        if not self.resuming:
            left = [self.out / n for n in _RUN_FILES if (self.out / n).exists()]
            if left and not self.c.quiet:
                print(f"{self.out} holds no committed checkpoint: starting the run again",
                      flush=True)
            for path in left:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    def close(self, failed: bool = False) -> None:
        """Releases the run directory; after a failure, one this run made is removed unless
        it holds a committed checkpoint (nothing half-made is left behind)."""
        if self._lock is None:
            return
        if failed and self._made and not checkpoint.committed_checkpoints(self.out):
            shutil.rmtree(self.out, ignore_errors=True)
        os.close(self._lock)
        self._lock = None

    def _train_rows(self) -> np.ndarray:
        meta = self.store.meta
        if "report_clean" not in meta or not meta["report_clean"].astype(str).str.strip().any():
            raise ValueError(f"the store {self.store.path} holds no reports: METS trains ECGs "
                             f"against their reports")
        rows = self.store.split("train")
        if not len(rows):
            raise ValueError(f"the store {self.store.path} has no train split")
        reported = meta["report_clean"].iloc[rows].astype(str).str.strip().to_numpy() != ""
        rows = rows[reported]
        if len(rows) < self.c.batch_size:
            raise ValueError(f"the train split holds {len(rows)} ECGs with reports, fewer than "
                             f"one batch of {self.c.batch_size}")
        return rows

    def _sources(self, stores: list) -> tuple:
        """The source of each training row, and the sources' shares of an epoch (None: each
        ECG once, where no --data value has a weight)."""
        ends = np.cumsum([len(s) for s in stores])
        part = np.searchsorted(ends, self.train_rows, side="right")
        weights = [spec.weight for spec in self.specs]
        if all(w is None for w in weights):
            return part, None
        sizes = np.bincount(part, minlength=len(stores))
        share = shares(weights, sizes)
        empty = [str(spec) for spec, k, w in zip(self.specs, sizes, share) if w > 0 and not k]
        if empty:
            raise ValueError(f"--data {empty[0]} has a share of the epochs but no training "
                             f"ECG with a report")
        return part, share

    def _embed_reports(self) -> tuple:
        """Each distinct report embedded once (rank 0 fills the cache, the others read it)."""
        from ..text import FrozenTextEncoder

        reports = self.store.meta["report_clean"].astype(str).to_numpy()
        unique, index = np.unique(reports, return_inverse=True)
        table = None
        for turn in (True, False):
            if self.world.main == turn:
                self.encoder = FrozenTextEncoder(model=self.c.lm, device=str(self.world.device))
                table = self.encoder.encode(list(unique))
            distributed.barrier(self.world)
        return torch.from_numpy(table).to(self.world.device), index

    def _model(self) -> METSModel:
        torch.manual_seed(self.c.seed)
        e = self.encoder
        # an encoder trained on lead subsets is told which leads are missing
        encoder = {"lead_indicator": True} if self.c.aug_leads > 0 else None
        model = METSModel(e.dim, self.c.embed_dim, self.settings, encoder=encoder,
                          text=e.text_space, amp=self.c.amp)
        model.use_text_encoder(e)  # the trainer's own: no second copy of the language model
        return model.to(self.world.device)

    def _augmentation(self, epoch: int):
        """The loader's transform of the epoch's batches (None: no augmentation): batch k of
        this process drawn with a generator seeded by (seed, epoch, k, rank)."""
        c, chosen = self.c, strengths(self.c)
        if not chosen.active:
            return None
        mask, fs = self.store.lead_mask, self.store.fs

        def transform(k: int, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
            rng = np.random.default_rng([c.seed, epoch, k, self.world.rank])
            return augment(x, mask[ids], fs, chosen, rng)

        return transform

    # ------------------------------------------------------------------------------ training

    def train(self, stop_after: int | None = None) -> Path:
        c, world = self.c, self.world
        model = self._model()
        optimizer = torch.optim.Adam(_param_groups(model, c.weight_decay), lr=c.lr)
        steps_per_epoch = len(self.train_rows) // c.batch_size
        total = steps_per_epoch * c.epochs
        start, step, metrics = 0, 0, []
        if self.resuming:
            state = checkpoint.restore_checkpoint(checkpoint.committed_checkpoints(self.out)[-1],
                                                  model, optimizer)
            start, step = state["epoch"], state["step"]
            metrics = _read_metrics(self.out / "metrics.jsonl", start)
        elif world.main:
            checkpoint.write_config(self.out, model)
        if world.main and (self.extended or not self.resuming):
            write_json(self.out / "args.json", c._asdict())
        wrapped = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(model)
        local = c.batch_size // world.size
        signals = self.store.signals
        for epoch in range(start + 1, c.epochs + 1):
            order = epoch_order(self.train_rows, self.train_part, self.shares, c.seed, epoch)
            began, total_loss = time.perf_counter(), 0.0
            bar = _progress(steps_per_epoch, epoch, c.epochs, quiet=c.quiet or not world.main)
            model.train()
            rows = [np.sort(order[b * c.batch_size:(b + 1) * c.batch_size]
                            [world.rank * local:(world.rank + 1) * local])
                    for b in range(steps_per_epoch)]
            with BatchLoader(signals, rows, world.device,
                             self._augmentation(epoch)) as loader:
                for b, (ids, x) in enumerate(loader):
                    lr = learning_rate(step, total, c.lr, c.schedule, c.warmup)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    t = report_embeddings(self.text_table, self.report_index, ids)
                    # a report's index among the store's distinct reports: one id on every
                    # process
                    groups = (torch.from_numpy(self.report_index[ids])
                              if c.negatives == "distinct-reports" else None)
                    value = train_step(wrapped, model, optimizer, x, t, c.amp, world, groups)
                    if not np.isfinite(value):
                        names = self.store.meta["id"].iloc[ids].tolist()
                        more = " ..." if len(names) > 16 else ""
                        raise TrainingError(
                            f"the loss is not finite ({value}) at step {step + 1} (epoch "
                            f"{epoch}, batch {b + 1}); the batch's ECG ids: {names[:16]}{more}. "
                            f"The last good checkpoint stays in {self.out}/checkpoints")
                    step += 1
                    total_loss += value
                    if bar is not None:
                        rate = (b + 1) * c.batch_size / (time.perf_counter() - began)
                        scale = float(model.logit_scale.detach())
                        bar.set_postfix(loss=f"{value:.3f}", scale=f"{scale:.1f}",
                                        ecg_s=f"{rate:.0f}", refresh=False)
                        bar.update()
            train_seconds = time.perf_counter() - began
            if bar is not None:
                bar.close()
            epoch_loss = distributed.mean(total_loss / steps_per_epoch, world)
            if world.main:
                scores = evaluate(model, self.store, split="val", sample=c.val_size)
                checkpoint.save_checkpoint(self.out, model, optimizer, epoch, step)
                metrics.append({
                    "epoch": epoch, "loss": epoch_loss,
                    "logit_scale": float(model.logit_scale.detach()),
                    "ecgs_per_s": steps_per_epoch * c.batch_size / train_seconds,
                    "seconds": time.perf_counter() - began,
                    "zeroshot": {t: {k: v for k, v in s.items()
                                     if k not in ("confusion", "classes")}
                                 for t, s in scores.single.items()},
                    "retrieval": scores.retrieval.get("val", {})})
                _write_metrics(self.out / "metrics.jsonl", metrics)
                plot_curves(metrics, self.out / "curves.png")
                if not c.quiet:
                    _print_epoch(metrics[-1])
            distributed.barrier(world)
            if stop_after is not None and epoch >= stop_after:
                return self.out
        if world.main:
            if not c.quiet:
                _print_final(metrics)
            # always, --quiet or not: the one line a user needs to find the run
            print(f"run written to {self.out} (model.safetensors, config.json, metrics.jsonl, "
                  f"curves.png); load it with mets_fast.load({str(self.out)!r})", flush=True)
        return self.out


# ------------------------------------------------------------------------------ one step


def report_embeddings(text_table: torch.Tensor, report_index: np.ndarray,
                      ids: np.ndarray) -> torch.Tensor:
    """The frozen embeddings of the reports of store positions `ids`: rows of the table of
    distinct reports (on its device)."""
    return text_table[torch.from_numpy(report_index[ids]).to(text_table.device)]


def train_step(wrapped: torch.nn.Module, model: METSModel, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, t: torch.Tensor, amp: bool,
               world: distributed.World | None = None,
               groups: torch.Tensor | None = None) -> float:
    """One optimiser step on a batch (``groups``: its report ids, or None: every other pair
    is a negative); returns its loss.  A non-finite loss takes no step (the caller stops the
    run); with several processes, none steps when any one's loss is non-finite, so that they
    stop together."""
    try:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = wrapped(x, t, groups)
        value = float(loss.detach())
    except NonFiniteError:  # the embeddings themselves are already NaN or inf
        return float("nan")
    if world is not None and world.size > 1 and not np.isfinite(distributed.mean(value, world)):
        return float("nan")
    if not np.isfinite(value):
        return value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    try:
        optimizer.step()
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            raise
        raise TrainingError(f"the optimiser's step overflowed float32 (learning rate "
                            f"{optimizer.param_groups[0]['lr']:g}): lower --lr") from None
    model.loss.clamp_()
    return value


# ----------------------------------------------------------------------------------- helpers


def _param_groups(model: METSModel, weight_decay: float) -> list:
    """Weight decay on the weight matrices only: not on biases, batch-norm gains and the logit
    scale (as OpenCLIP excludes them)."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def _progress(total: int, epoch: int, epochs: int, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False)


def _read_metrics(path: Path, last_epoch: int) -> list:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= last_epoch]


def _write_metrics(path: Path, metrics: list) -> None:
    write_text(path, "".join(dumps(m, indent=None) + "\n" for m in metrics))


def _print_epoch(m: dict) -> None:
    scores = "  ".join(f"{t} acc {s['accuracy']:.3f} f1 {s['f1']:.3f}"
                       for t, s in m["zeroshot"].items())
    if m.get("retrieval"):
        scores += f"  report R@10 {m['retrieval']['recall@10']:.3f}"
    print(f"epoch {m['epoch']}: loss {m['loss']:.4f}  scale {m['logit_scale']:.1f}  "
          f"{m['ecgs_per_s']:.0f} ECG/s  {m['seconds']:.0f} s  {scores}", flush=True)


def _print_final(metrics: list) -> None:
    if not metrics:
        return
    last = metrics[-1]
    print(f"\nzero-shot on the validation split after epoch {last['epoch']} (macro averages):")
    print("| task | accuracy | precision | recall | F1 | AUROC | n |")
    print("|---|---|---|---|---|---|---|")
    for task, s in last["zeroshot"].items():
        print(f"| {task} | {s['accuracy']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | "
              f"{s['f1']:.3f} | {s['auroc']:.3f} | {s['n']} |")
    print()
