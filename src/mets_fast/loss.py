"""The METS contrastive loss family: fused, memory-light kernels and their plain references.

METS aligns ECG embeddings with the embeddings of their reports by the symmetric InfoNCE of
CLIP (Radford et al. 2021), as OpenCLIP's ``ClipLoss`` computes it::

    S = s * normalize(ecg) @ normalize(text).T          # (B, B) logits, s = 1 / temperature
    L = (cross_entropy(S, arange(B)) + cross_entropy(S.T, arange(B))) / 2

The functions here compute exactly that (and its one-direction, rectangular building block) with
fused kernels that never hold the B x B matrix: the forward pass keeps one log-sum-exp per row and
per column, the backward pass recomputes the logits tile by tile (the online-softmax idea of
FlashAttention and Inf-CL).  Memory is O(B D) instead of O(B^2); on one CPU core the fused loss is
about three times faster than the eager reference at B = 4096 (see benchmarks/bench_loss.py).
Small batches are the exception: on the CPU, logits of at most ``SAVED_LOGITS_MAX`` entries
(4 MiB in float32, B = 1024) are kept from the forward pass, which spares the backward pass a
quarter of its work at a memory cost the eager reference pays several times over.

Back ends: the C++ kernels (OpenMP, AVX-512 / AVX2 chosen at run time) for CPU tensors in float32
or float64; the CUDA kernels for GPU tensors in float32, float16 or bfloat16 (float32
accumulation, no tensor cores, so TF32 settings do not change the result).  Both are
deterministic: the CPU result depends only on the thread count (``torch.get_num_threads()``).
The kernels are registered as torch operators (``torch.ops.mets_fast.loss``, ``.similarity`` and
their backward passes, via ``torch.library``), so ``torch.compile`` traces through the loss
without a graph break; every check that reads values (NaN or inf in the embeddings, the scale's
value) runs inside them.  On CUDA the NaN / inf check, a device-to-host sync, runs only with
``METS_FAST_DEBUG=1``.

Report-aware negatives (``groups=``): machine-made reports repeat, and two ECGs of one report have
the same text embedding, so CLIP's loss makes each the other's negative.  Given integer group ids
(equal ids = the same report), a pair of one group other than a row's own positive is left out of
both softmaxes, neither positive nor negative (one compare per logit inside the kernels' tiles);
``groups=None`` is CLIP's loss bit for bit.

Public API: :func:`contrastive_loss`, :func:`infonce`, :func:`normalized_similarity`,
:class:`ContrastiveLoss`, the references :func:`reference_contrastive_loss` and
:func:`reference_infonce`, and :func:`backends`.
"""

from __future__ import annotations

import math
import os
from numbers import Real
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import ISA_VARIABLE, package_isa

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - only a broken install gets here
    raise ImportError(
        "mets_fast._C (the compiled CPU kernels) is missing: install the package with "
        "`pip install .` so that its extensions are built"
    ) from exc

try:
    from . import _cuda
except ImportError:  # built without a CUDA toolkit
    _cuda = None

_STAND_IN = package_isa()
if _STAND_IN is not None:  # a stand-in for an older CPU: the kernels follow it
    if _STAND_IN not in _C.available_isas():
        raise ImportError(f"${ISA_VARIABLE}={_STAND_IN}: this CPU and build run "
                          f"{', '.join(_C.available_isas())}")
    _C.set_isa(_STAND_IN)

Scale = Union[Tensor, float]
Groups = Union[Tensor, np.ndarray, None]  # (B,) integers, equal ids = the same report


class NonFiniteError(ValueError):
    """An input holds NaN or inf (a ValueError; a trainer can tell it from other bad input)."""

__all__ = [
    "contrastive_loss",
    "infonce",
    "normalized_similarity",
    "ContrastiveLoss",
    "reference_contrastive_loss",
    "reference_infonce",
    "distributed_contrastive_loss",
    "gather_with_grad",
    "NonFiniteError",
    "backends",
]


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


def contrastive_loss(
    ecg_emb: Tensor, text_emb: Tensor, logit_scale: Scale, *, normalize: bool = True,
    groups: Groups = None,
) -> Tensor:
    """Symmetric InfoNCE (CLIP loss) between paired embeddings, fused.

    Args:
        ecg_emb: ``(B, D)`` embeddings; row i is paired with row i of ``text_emb``.
        text_emb: ``(B, D)``, same dtype and device.
        logit_scale: the multiplier s = 1 / temperature, a float or a 0-d tensor (differentiable).
        normalize: divide rows by ``max(|row|, 1e-12)`` first, as ``F.normalize`` does.
        groups: ``(B,)`` integer ids of the pairs' reports (a tensor or array), or None.  A pair
            (i, j), j != i, of equal ids is left out of both softmaxes (a departure from CLIP:
            ECGs of one report are not each other's negatives); a batch of one group has loss 0.

    Returns:
        The scalar loss ``(CE(S, arange) + CE(S.T, arange)) / 2`` with ``S = s X Y^T``,
        differentiable in both embeddings and in ``logit_scale``.  float32 for GPU half inputs,
        the input dtype otherwise.
    """
    a, b = _check_pair(ecg_emb, text_emb, ("ecg_emb", "text_emb"))
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"ecg_emb and text_emb must have the same batch size for the symmetric loss, got "
            f"{a.shape[0]} and {b.shape[0]} (use infonce() for rectangular logits)"
        )
    scale = _check_scale(logit_scale, a)
    g = _check_groups(groups, a.shape[0], "groups", a)
    return _loss(a, b, scale, 0, True, bool(normalize), "ecg_emb,text_emb", g, g)


def infonce(
    rows: Tensor, cols: Tensor, logit_scale: Scale, *, offset: int = 0, normalize: bool = True,
    row_groups: Groups = None, col_groups: Groups = None,
) -> Tensor:
    """One-direction InfoNCE over rectangular logits: ``CE(S, arange(Br) + offset)``.

    Row i of ``rows`` (``(Br, D)``) is scored against every row of ``cols`` (``(Bc, D)``,
    ``Br <= Bc``) and its positive is column ``offset + i``.  This is the building block of the
    distributed loss: each rank's rows against the gathered global batch, as OpenCLIP's
    ``local_loss`` computes it; the symmetric loss of a rank is
    ``(infonce(ecg, all_text, s, offset=o) + infonce(text, all_ecg, s, offset=o)) / 2``.
    Differentiable in ``rows``, ``cols`` and ``logit_scale``.  ``row_groups`` (``(Br,)``) and
    ``col_groups`` (``(Bc,)``), both or neither: report ids as in :func:`contrastive_loss`; a
    pair (i, j) of equal ids with j != offset + i is left out of the softmax.
    """
    a, b = _check_pair(rows, cols, ("rows", "cols"))
    if a.shape[0] > b.shape[0]:
        raise ValueError(
            f"rows must not outnumber cols (Br <= Bc), got Br={a.shape[0]} and Bc={b.shape[0]}"
        )
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {type(offset).__name__}")
    if not 0 <= offset <= b.shape[0] - a.shape[0]:
        raise ValueError(
            f"offset must lie in [0, Bc - Br] = [0, {b.shape[0] - a.shape[0]}] so that every "
            f"row's positive column exists, got {offset}"
        )
    scale = _check_scale(logit_scale, a)
    rg, cg = _check_group_pair(row_groups, col_groups, a, b)
    return _loss(a, b, scale, offset, False, bool(normalize), "rows,cols", rg, cg)


def normalized_similarity(a: Tensor, b: Tensor, logit_scale: Scale = 1.0) -> Tensor:
    """``s * normalize(a) @ normalize(b).T``, shaped ``(Ba, Bb)``, differentiable in all three.

    The zero-shot scores of an ECG batch against the class embeddings.  Unlike the losses, this
    returns the whole matrix, so its memory is O(Ba Bb).
    """
    a, b = _check_pair(a, b, ("a", "b"))
    scale = _check_scale(logit_scale, a)
    return _similarity(a, b, scale)


def reference_contrastive_loss(
    ecg_emb: Tensor, text_emb: Tensor, logit_scale: Scale, *, normalize: bool = True,
    groups: Groups = None,
) -> Tensor:
    """The eager PyTorch symmetric InfoNCE (one matmul, two cross-entropies), for tests and
    benchmarks; same signature and result as :func:`contrastive_loss`."""
    x = F.normalize(ecg_emb, dim=-1) if normalize else ecg_emb
    y = F.normalize(text_emb, dim=-1) if normalize else text_emb
    g = _check_groups(groups, x.shape[0], "groups", x)
    logits = _exclude_groups(logit_scale * x @ y.T, g, g, 0)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def reference_infonce(
    rows: Tensor, cols: Tensor, logit_scale: Scale, *, offset: int = 0, normalize: bool = True,
    row_groups: Groups = None, col_groups: Groups = None,
) -> Tensor:
    """The eager PyTorch one-direction InfoNCE; same signature and result as :func:`infonce`."""
    x = F.normalize(rows, dim=-1) if normalize else rows
    y = F.normalize(cols, dim=-1) if normalize else cols
    rg, cg = _check_group_pair(row_groups, col_groups, x, y)
    logits = _exclude_groups(logit_scale * x @ y.T, rg, cg, offset)
    labels = torch.arange(logits.shape[0], device=logits.device) + offset
    return F.cross_entropy(logits, labels)


def _exclude_groups(logits: Tensor, row_groups: Optional[Tensor], col_groups: Optional[Tensor],
                    offset: int) -> Tensor:
    """The references' form of the kernels' rule: -inf at pairs of one group other than the
    positives (column offset + i of row i)."""
    if row_groups is None:
        return logits
    same = row_groups[:, None] == col_groups[None, :]
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    cols = torch.arange(logits.shape[1], device=logits.device)[None, :]
    return logits.masked_fill(same & (cols != rows + offset), float("-inf"))


class ContrastiveLoss(nn.Module):
    """The METS loss with its learnable temperature; the model holds one of these, and its
    :attr:`logit_scale` is *the* logit scale everywhere (training and zero-shot scoring).

    Follows OpenCLIP's convention: the parameter ``log_scale`` holds ``log(1 / temperature)``,
    initialised from ``init_temperature`` (0.07 in CLIP and METS), and :meth:`clamp_`, called after
    each optimiser step, keeps the scale in ``[1, max_logit_scale]``.

    Args:
        init_temperature: initial temperature (> 0); the initial scale is its inverse.
        max_logit_scale: upper bound of the scale enforced by :meth:`clamp_` (100 in CLIP).
        learnable: register ``log_scale`` as a parameter (else a buffer, a fixed temperature).
    """

    def __init__(
        self, init_temperature: float = 0.07, max_logit_scale: float = 100.0, learnable: bool = True
    ):
        super().__init__()
        if not (isinstance(init_temperature, Real) and math.isfinite(init_temperature)) or (
            init_temperature <= 0
        ):
            raise ValueError(f"init_temperature must be a positive number, got {init_temperature}")
        if not (isinstance(max_logit_scale, Real) and max_logit_scale >= 1):
            raise ValueError(f"max_logit_scale must be a number >= 1, got {max_logit_scale}")
        if 1.0 / init_temperature > max_logit_scale:
            raise ValueError(
                f"the initial scale 1/init_temperature = {1.0 / init_temperature:g} exceeds "
                f"max_logit_scale = {max_logit_scale:g}"
            )
        log_scale = torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.max_logit_scale = float(max_logit_scale)

    @property
    def logit_scale(self) -> Tensor:
        """The multiplier s = exp(log_scale) = 1 / temperature (a 0-d tensor, differentiable)."""
        return self.log_scale.exp()

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.log_scale.detach()))

    def forward(self, ecg_emb: Tensor, text_emb: Tensor, groups: Groups = None) -> Tensor:
        """The loss of a batch (``groups``: its report ids, see :func:`contrastive_loss`);
        under ``torch.distributed`` (more than one process), the loss of the global batch
        (:func:`distributed_contrastive_loss`)."""
        if _world_size() > 1:
            return distributed_contrastive_loss(ecg_emb, text_emb, self.logit_scale, groups)
        return contrastive_loss(ecg_emb, text_emb, self.logit_scale, groups=groups)

    @torch.no_grad()
    def clamp_(self) -> "ContrastiveLoss":
        """Clamp the scale to ``[1, max_logit_scale]`` in place (call after optimiser.step())."""
        self.log_scale.clamp_(0.0, math.log(self.max_logit_scale))
        return self

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, max_logit_scale={self.max_logit_scale:g}"


def gather_with_grad(x: Tensor) -> Tensor:
    """The rows of every process's `x` (all the same shape), rank order, differentiable: the
    gradient of each process's slice flows back to it (summed over the processes that used it,
    as OpenCLIP's ``gather_features`` with ``gather_with_grad``)."""
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x.contiguous()), dim=0)


def distributed_contrastive_loss(ecg_emb: Tensor, text_emb: Tensor, logit_scale: Scale,
                                 groups: Groups = None) -> Tensor:
    """The symmetric InfoNCE of the global batch, computed by each process for its own rows.

    Every process passes its local ``(b, D)`` pair (the same b everywhere); the embeddings are
    all-gathered with gradients, and the process of rank r scores its rows against the global
    columns with the rectangular :func:`infonce` (positives at ``r * b + i``), in both
    directions.  Its value is this process's share of the global loss; averaged over the
    processes (what DDP does to the gradients) it equals :func:`contrastive_loss` of the global
    batch in one process, gradients included.  ``groups``: this process's report ids (global
    ids: the same report has the same id on every process), gathered with the embeddings."""
    import torch.distributed as dist

    if ecg_emb.shape != text_emb.shape:
        raise ValueError(f"ecg_emb and text_emb must have the same shape, got "
                         f"{tuple(ecg_emb.shape)} and {tuple(text_emb.shape)}")
    offset = dist.get_rank() * ecg_emb.shape[0]
    all_ecg, all_text = gather_with_grad(ecg_emb), gather_with_grad(text_emb)
    local = _check_groups(groups, ecg_emb.shape[0], "groups", ecg_emb)
    every = None
    if local is not None:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local)
        every = torch.cat(parts)
    return (infonce(ecg_emb, all_text, logit_scale, offset=offset, row_groups=local,
                    col_groups=every)
            + infonce(text_emb, all_ecg, logit_scale, offset=offset, row_groups=local,
                      col_groups=every)) / 2


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def backends() -> dict:
    """Which kernels this installation has: ``cpu`` (the C++ module loaded), ``cpu_isa`` (the
    instruction set in use: ``"avx512"``, ``"avx2"`` or ``"portable"``), ``openmp``,
    ``cuda_built`` (the CUDA module exists), ``cuda_available`` (it found a device),
    ``cuda_status`` (why not, where not) and ``cuda``: all of that in one plain sentence."""
    cuda_devices = _cuda.device_count() if _cuda is not None else 0
    available = bool(cuda_devices) and torch.cuda.is_available()
    status = _cuda.status() if _cuda is not None else "built without CUDA"
    if _cuda is None:
        cuda = "no CUDA kernels in this build (no CUDA toolkit when it was installed)"
    elif available:
        cuda = f"CUDA kernels built and in use ({cuda_devices} GPU(s))"
    else:
        cuda = (f"CUDA kernels built, but no usable GPU here ({status}"
                f"{'' if torch.cuda.is_available() else '; this torch has no CUDA'}): the "
                f"CPU kernels run")
    return {
        "cpu": True,
        "cpu_isa": _C.isa(),
        "openmp": _C.openmp(),
        "cuda_built": _cuda is not None,
        "cuda_available": available,
        "cuda_status": status,
        "cuda": cuda,
    }


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_CPU_DTYPES = (torch.float32, torch.float64)
SAVED_LOGITS_MAX = 1 << 20  # logits kept between the CPU passes when rows * cols is at most this
_CUDA_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
# Checking CUDA inputs for NaN / inf costs a device-to-host sync per call; it is a debugging aid
# there (METS_FAST_DEBUG=1), always on for the CPU kernels, where it costs next to nothing.
CUDA_CHECKS = os.environ.get("METS_FAST_DEBUG", "") not in ("", "0")


def _check_pair(a: Tensor, b: Tensor, names: tuple) -> tuple:
    """Validates two embedding matrices (all that is known without reading their values) and
    returns them contiguous."""
    for t, name in zip((a, b), names):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-d (batch, dim), got shape {tuple(t.shape)}")
        if t.numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same width, got {a.shape[1]} and {b.shape[1]}"
        )
    if a.device != b.device:
        raise ValueError(f"{names[0]} is on {a.device} but {names[1]} is on {b.device}")
    if a.dtype != b.dtype:
        raise TypeError(f"{names[0]} is {a.dtype} but {names[1]} is {b.dtype}; use one dtype")
    if a.device.type == "cuda":
        if _cuda is None:
            raise RuntimeError(
                "mets_fast was built without its CUDA kernels (no CUDA toolkit at install time); "
                "reinstall on a machine with nvcc, or move the tensors to the CPU"
            )
        if a.dtype not in _CUDA_DTYPES:
            raise TypeError(f"the CUDA kernels take float32, float16 or bfloat16, got {a.dtype}")
    elif a.device.type == "cpu":
        if a.dtype not in _CPU_DTYPES:
            raise TypeError(
                f"the CPU kernels take float32 or float64, got {a.dtype} (convert with .float())"
            )
    else:
        raise ValueError(f"unsupported device {a.device}; use the CPU or a CUDA device")
    return a.contiguous(), b.contiguous()


def _check_scale(logit_scale: Scale, like: Tensor) -> Tensor:
    """Validates the logit scale's type and shape and returns it as a 0-d tensor on the
    operands' device (keeping its autograd graph); its value is checked by the kernels' face."""
    if isinstance(logit_scale, Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(
                f"logit_scale must be a scalar (0-d tensor or float), got shape "
                f"{tuple(logit_scale.shape)}"
            )
        return logit_scale.reshape(()).to(like.device)
    if isinstance(logit_scale, Real) and not isinstance(logit_scale, bool):
        value = float(logit_scale)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"logit_scale must be a positive finite number, got {value}")
        dtype = like.dtype if like.dtype in _CPU_DTYPES else torch.float32
        return torch.tensor(value, dtype=dtype, device=like.device)
    raise TypeError(f"logit_scale must be a float or a 0-d tensor, got {type(logit_scale)}")


def _check_groups(groups: Groups, n: int, name: str, like: Tensor) -> Optional[Tensor]:
    """Report ids as a contiguous int64 tensor on the operands' device (None stays None):
    one integer per row, any values."""
    if groups is None:
        return None
    if not isinstance(groups, Tensor):
        array = np.asarray(groups)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers (report ids), got dtype {array.dtype}")
        groups = torch.from_numpy(array.astype(np.int64, copy=False))
    elif groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (report ids), got {groups.dtype}")
    if tuple(groups.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},), one id per row, got "
                         f"{tuple(groups.shape)}")
    return groups.to(device=like.device, dtype=torch.int64).contiguous()


def _check_group_pair(row_groups: Groups, col_groups: Groups, rows: Tensor, cols: Tensor) -> tuple:
    """The ids of an infonce call's rows and columns: both or neither."""
    if (row_groups is None) != (col_groups is None):
        raise ValueError("row_groups and col_groups go together: give both or neither")
    return (_check_groups(row_groups, rows.shape[0], "row_groups", rows),
            _check_groups(col_groups, cols.shape[0], "col_groups", rows))


def _check_values(a: Tensor, b: Tensor, scale: Tensor, names: tuple) -> float:
    """The checks that read values (inside the operators, so that tracing never needs them):
    no NaN or inf in the operands, a positive finite scale.  Returns the scale as a float."""
    value = float(scale)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"logit_scale must be a positive finite number, got {value}")
    if a.is_cuda and not CUDA_CHECKS:
        return value
    # A sum is NaN or inf whenever an element is; only then (or on overflow) count exactly.
    if not bool(torch.isfinite(a.sum() + b.sum())):
        for t, name in zip((a, b), names):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise NonFiniteError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")
    return value


# ---------------------------------------------------------------------------------------------
# The kernels as torch operators (torch.library), so that torch.compile traces through them
# ---------------------------------------------------------------------------------------------


def _threads() -> int:
    return torch.get_num_threads()


def _np(t: Optional[Tensor]):
    """A tensor's NumPy view (shared memory), None for an empty placeholder."""
    return None if t is None or t.numel() == 0 else t.detach().numpy()


def _side_dtype(a: Tensor) -> torch.dtype:
    """The dtype of norms, log-sum-exps and the loss: float32 on CUDA, the input's on the CPU."""
    return torch.float32 if a.is_cuda else a.dtype


def _stream(a: Tensor) -> int:
    return torch.cuda.current_stream(a.device).cuda_stream


def _run_cuda(entry, a: Tensor, b: Tensor, norm_a: Tensor, norm_b: Tensor, s: float,
              **args) -> None:
    """Calls a CUDA entry point on a's device with the arguments they all take (operands, norms,
    scale, stream) and its own `args`."""
    with torch.cuda.device(a.device):
        entry(a=a.data_ptr(), b=b.data_ptr(), rows=a.shape[0], cols=b.shape[0], dim=a.shape[1],
              dtype=_CUDA_DTYPES[a.dtype], norm_a=norm_a.data_ptr(), norm_b=norm_b.data_ptr(),
              scale=s, stream=_stream(a), **args)


def _cuda_backward(entry, a: Tensor, b: Tensor, norm_a: Tensor, norm_b: Tensor, s: float,
                   scale: Tensor, **args) -> tuple[Tensor, Tensor, Tensor]:
    """(dL/da, dL/db, dL/dscale) from a CUDA backward entry point, with its float32 workspace."""
    da, db = torch.empty_like(a), torch.empty_like(b)
    f32 = dict(dtype=torch.float32, device=a.device)
    g_rows, g_cols = torch.empty(a.shape, **f32), torch.empty(b.shape, **f32)
    ds_rows, dscale = torch.empty(a.shape[0], **f32), torch.empty((), **f32)
    _run_cuda(entry, a, b, norm_a, norm_b, s, **args, g_rows=g_rows.data_ptr(),
              g_cols=g_cols.data_ptr(), ds_rows=ds_rows.data_ptr(), da=da.data_ptr(),
              db=db.data_ptr(), dscale=dscale.data_ptr())
    return da, db, dscale.to(scale.dtype)


def _keeps_logits(a: Tensor, rows: int, cols: int) -> bool:
    return not a.is_cuda and rows * cols <= SAVED_LOGITS_MAX


def _group_args(row_groups: Optional[Tensor], col_groups: Optional[Tensor], cuda: bool) -> dict:
    """The kernels' group arguments.  The CPU kernels compare ids in the operands' float type,
    so they get dense ids (0 .. rows + cols - 1, exact in float32); CUDA compares int64."""
    if cuda:
        return dict(row_groups=0 if row_groups is None else row_groups.data_ptr(),
                    col_groups=0 if col_groups is None else col_groups.data_ptr())
    if row_groups is None:
        return dict(row_groups=None, col_groups=None)
    dense = torch.unique(torch.cat([row_groups, col_groups]), return_inverse=True)[1]
    rows = row_groups.shape[0]
    return dict(row_groups=_np(dense[:rows]), col_groups=_np(dense[rows:]))


def _loss_forward(a: Tensor, b: Tensor, scale: Tensor, offset: int, symmetric: bool,
                  normalize: bool, names: str, row_groups: Optional[Tensor],
                  col_groups: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor,
                                                         Tensor]:
    """(loss, norm_a, norm_b, lse_row, lse_col, logits): lse_col is empty for the one-direction
    loss, logits empty unless kept for the backward pass (small CPU batches).  `names`: the
    operands' argument names, comma-separated, for error messages."""
    s = _check_values(a, b, scale, tuple(names.split(",")))
    rows, cols = a.shape[0], b.shape[0]
    f = dict(dtype=_side_dtype(a), device=a.device)
    norm_a, norm_b, lse_row = (torch.empty(n, **f) for n in (rows, cols, rows))
    lse_col = torch.empty(cols if symmetric else 0, **f)
    logits = torch.empty((rows, cols) if _keeps_logits(a, rows, cols) else (0,), **f)
    if a.is_cuda:
        loss, pos = torch.empty((), **f), torch.empty(rows, **f)
        _run_cuda(_cuda.loss_forward, a, b, norm_a, norm_b, s, normalize=normalize,
                  offset=offset, symmetric=symmetric, **_group_args(row_groups, col_groups, True),
                  lse_row=lse_row.data_ptr(), lse_col=lse_col.data_ptr() if symmetric else 0,
                  pos=pos.data_ptr(), out=loss.data_ptr())
    else:
        value = _C.loss_forward(_np(a), _np(b), _np(norm_a), _np(norm_b), _np(lse_row),
                                _np(lse_col), _np(logits), s, offset, symmetric, normalize,
                                threads=_threads(), **_group_args(row_groups, col_groups, False))
        loss = torch.tensor(value, dtype=a.dtype)
    return loss, norm_a, norm_b, lse_row, lse_col, logits


_loss_op = torch.library.custom_op("mets_fast::loss", _loss_forward, mutates_args=())


@_loss_op.register_fake
def _(a, b, scale, offset, symmetric, normalize, names, row_groups, col_groups):
    rows, cols = a.shape[0], b.shape[0]
    f = dict(dtype=_side_dtype(a), device=a.device)
    logits = (rows, cols) if _keeps_logits(a, rows, cols) else (0,)
    return (a.new_empty((), dtype=f["dtype"]), a.new_empty(rows, **f), a.new_empty(cols, **f),
            a.new_empty(rows, **f), a.new_empty(cols if symmetric else 0, **f),
            a.new_empty(logits, **f))


def _loss_backward(grad: Tensor, a: Tensor, b: Tensor, norm_a: Tensor, norm_b: Tensor,
                   lse_row: Tensor, lse_col: Tensor, logits: Tensor, scale: Tensor,
                   offset: int, symmetric: bool, normalize: bool, row_groups: Optional[Tensor],
                   col_groups: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(dL/da, dL/db, dL/dscale), each scaled by `grad`."""
    s, g = float(scale), float(grad)
    if a.is_cuda:
        return _cuda_backward(
            _cuda.loss_backward, a, b, norm_a, norm_b, s, scale, normalize=normalize,
            offset=offset, symmetric=symmetric, **_group_args(row_groups, col_groups, True),
            lse_row=lse_row.data_ptr(), lse_col=lse_col.data_ptr() if symmetric else 0, grad=g)
    da, db = torch.empty_like(a), torch.empty_like(b)
    ds = _C.loss_backward(_np(a), _np(b), _np(norm_a), _np(norm_b), _np(lse_row), _np(lse_col),
                          _np(logits), s, offset, symmetric, normalize, grad=g, da=_np(da),
                          db=_np(db), threads=_threads(),
                          **_group_args(row_groups, col_groups, False))
    return da, db, torch.tensor(ds, dtype=scale.dtype)


_loss_backward_op = torch.library.custom_op("mets_fast::loss_backward", _loss_backward,
                                            mutates_args=())


@_loss_backward_op.register_fake
def _(grad, a, b, norm_a, norm_b, lse_row, lse_col, logits, scale, offset, symmetric, normalize,
      row_groups, col_groups):
    return torch.empty_like(a), torch.empty_like(b), scale.new_empty(())


def _loss_context(ctx, inputs, output):
    a, b, scale, offset, symmetric, normalize, _, row_groups, col_groups = inputs
    _, norm_a, norm_b, lse_row, lse_col, logits = output
    ctx.save_for_backward(a, b, norm_a, norm_b, lse_row, lse_col, logits, scale, row_groups,
                          col_groups)
    ctx.config = (offset, symmetric, normalize)


def _loss_gradients(ctx, grad, backward) -> tuple:
    _no_second_derivative()
    a, b, norm_a, norm_b, lse_row, lse_col, logits, scale, row_groups, col_groups = \
        ctx.saved_tensors
    return backward(grad, a, b, norm_a, norm_b, lse_row, lse_col, logits, scale, *ctx.config,
                    row_groups, col_groups) + (None,) * 6


torch.library.register_autograd(
    "mets_fast::loss", lambda ctx, grad, *_: _loss_gradients(ctx, grad, _loss_backward_op),
    setup_context=_loss_context)


def _eager_face(name: str, forward, context, gradients, backward):
    """An ``autograd.Function`` that runs an operator's functions directly: what the operator
    does, without the dispatcher's toll (a quarter of a millisecond per step, a sixth of a
    B = 256 loss).  Its output is the first of `forward`'s."""

    def run_forward(ctx, *inputs):
        output = forward(*inputs)
        context(ctx, inputs, output)
        return output[0]

    def run_backward(ctx, grad):
        return gradients(ctx, grad, backward)

    return type(name, (torch.autograd.Function,),
                {"forward": staticmethod(run_forward), "backward": staticmethod(run_backward)})


_Loss = _eager_face("_Loss", _loss_forward, _loss_context, _loss_gradients, _loss_backward)


def _loss(*inputs) -> Tensor:
    """The loss through the operator when torch.compile traces, else the autograd.Function."""
    if torch.compiler.is_compiling():
        return _loss_op(*inputs)[0]
    return _Loss.apply(*inputs)


def _similarity_forward(a: Tensor, b: Tensor, scale: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(scale * normalize(a) normalize(b)^T, norm_a, norm_b)."""
    s = _check_values(a, b, scale, ("a", "b"))
    rows, cols = a.shape[0], b.shape[0]
    out = a.new_empty((rows, cols))
    f = dict(dtype=_side_dtype(a), device=a.device)
    norm_a, norm_b = torch.empty(rows, **f), torch.empty(cols, **f)
    if a.is_cuda:
        _run_cuda(_cuda.similarity_forward, a, b, norm_a, norm_b, s, out=out.data_ptr())
    else:
        _C.similarity_forward(_np(a), _np(b), _np(norm_a), _np(norm_b), _np(out), s, _threads())
    return out, norm_a, norm_b


_similarity_op = torch.library.custom_op("mets_fast::similarity", _similarity_forward,
                                         mutates_args=())


@_similarity_op.register_fake
def _(a, b, scale):
    f = dict(dtype=_side_dtype(a), device=a.device)
    return (a.new_empty((a.shape[0], b.shape[0])), a.new_empty(a.shape[0], **f),
            a.new_empty(b.shape[0], **f))


def _similarity_backward(grad_out: Tensor, a: Tensor, b: Tensor, norm_a: Tensor, norm_b: Tensor,
                         scale: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = float(scale)
    grad_out = grad_out.contiguous()
    if a.is_cuda:
        return _cuda_backward(_cuda.similarity_backward, a, b, norm_a, norm_b, s, scale,
                              grad_out=grad_out.data_ptr())
    da, db = torch.empty_like(a), torch.empty_like(b)
    ds = _C.similarity_backward(_np(a), _np(b), _np(norm_a), _np(norm_b), _np(grad_out),
                                _np(da), _np(db), s, _threads())
    return da, db, torch.tensor(ds, dtype=scale.dtype)


_similarity_backward_op = torch.library.custom_op("mets_fast::similarity_backward",
                                                  _similarity_backward, mutates_args=())


@_similarity_backward_op.register_fake
def _(grad_out, a, b, norm_a, norm_b, scale):
    return torch.empty_like(a), torch.empty_like(b), scale.new_empty(())


def _similarity_context(ctx, inputs, output):
    a, b, scale = inputs
    _, norm_a, norm_b = output
    ctx.save_for_backward(a, b, norm_a, norm_b, scale)


def _similarity_gradients(ctx, grad_out, backward) -> tuple:
    _no_second_derivative()
    return backward(grad_out, *ctx.saved_tensors)


torch.library.register_autograd(
    "mets_fast::similarity",
    lambda ctx, grad_out, *_: _similarity_gradients(ctx, grad_out, _similarity_backward_op),
    setup_context=_similarity_context)


_Similarity = _eager_face("_Similarity", _similarity_forward, _similarity_context,
                          _similarity_gradients, _similarity_backward)


def _similarity(a: Tensor, b: Tensor, scale: Tensor) -> Tensor:
    if torch.compiler.is_compiling():
        return _similarity_op(a, b, scale)[0]
    return _Similarity.apply(a, b, scale)


def _no_second_derivative() -> None:
    if torch.is_grad_enabled():  # backward(create_graph=True) records a graph of the backward
        raise RuntimeError(
            "mets_fast's fused kernels have no second derivative (their backward pass is itself "
            "a kernel): call backward() without create_graph=True, or use "
            "reference_contrastive_loss / reference_infonce for higher-order gradients")
