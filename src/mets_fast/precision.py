"""The bfloat16 rule: autocast to bfloat16 only where the hardware computes it natively.

On a CPU without bfloat16 instructions oneDNN emulates every bfloat16 convolution, and a
ResNet1d-18 step takes 10-13x longer than in float32 (an AMD EPYC with AVX2 only: 28.5 s
against 2.25 s at batch 32); where the CPU has them (AVX512-BF16, AMX-BF16) the same step is
1.5-2x faster than float32.  So a preset's ``amp`` means "bfloat16 where native", an explicit
``--amp`` is honoured with a warning where it will be slow, and the choice and its reason are
said in a run's first lines and by ``mets-fast info``.

What the CPU "has" is what torch reports (``torch.cpu``'s capability queries), lowered by the
stand-ins for an older CPU that this process obeys: oneDNN's ``ONEDNN_MAX_CPU_ISA`` (below
``AVX512_CORE_BF16`` oneDNN emulates bfloat16, whatever the CPU) and the package's own
``METS_FAST_CPU_ISA`` (``avx2`` or ``portable``: act as such a CPU).  This module imports torch
only when asked.
"""

from __future__ import annotations

import os
from typing import NamedTuple

# oneDNN's ISA names, lowest first (its documented ONEDNN_MAX_CPU_ISA values); from
# AVX512_CORE_BF16 on, it runs bfloat16 convolutions with the CPU's own instructions
_ONEDNN_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                 "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
                 "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16",
                 "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2")
_ONEDNN_BF16 = _ONEDNN_ORDER.index("AVX512_CORE_BF16")
ISA_VARIABLE = "METS_FAST_CPU_ISA"
_PACKAGE_ISAS = ("avx512", "avx2", "portable")


class Precision(NamedTuple):
    """What a model computes in on a device: ``amp`` (bfloat16 autocast), ``native`` (the
    device computes bfloat16 with its own instructions) and ``reason``, one sentence that says
    why (for a run's first lines, ``mets-fast info`` and warnings)."""

    amp: bool
    native: bool
    reason: str


def package_isa() -> str | None:
    """``$METS_FAST_CPU_ISA`` (``avx512``, ``avx2`` or ``portable``: the instruction set the
    package's own CPU kernels use, a stand-in for an older CPU), None where unset; a ValueError
    for another value."""
    own = os.environ.get(ISA_VARIABLE, "").strip().lower()
    if own and own not in _PACKAGE_ISAS:
        raise ValueError(f"${ISA_VARIABLE} must be one of {', '.join(_PACKAGE_ISAS)}, got "
                         f"{own!r}")
    return own or None


def cpu_bf16() -> tuple:
    """``(native, what)``: whether this process's CPU computes bfloat16 natively, and the
    instructions (or the stand-in) that decided it."""
    import torch

    own = package_isa()
    if own in ("avx2", "portable"):
        return False, f"${ISA_VARIABLE}={own} stands in for a CPU without bfloat16"
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if capped in _ONEDNN_ORDER and _ONEDNN_ORDER.index(capped) < _ONEDNN_BF16:
        return False, f"ONEDNN_MAX_CPU_ISA={capped} keeps oneDNN below AVX512_CORE_BF16"
    found = [name for name, has in
             (("AMX", _query(torch, "_is_amx_tile_supported")),
              ("AVX512-BF16", _query(torch, "_is_avx512_bf16_supported"))) if has]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, (f"the CPU has no bfloat16 instructions (torch runs it as "
                   f"{torch.backends.cpu.get_cpu_capability()}; no AMX, no AVX512-BF16)")


def _query(torch, name: str) -> bool:
    """A ``torch.cpu`` capability query, False where this torch lacks it."""
    query = getattr(torch.cpu, name, None)
    return bool(query()) if query is not None else False


def device_bf16(device) -> tuple:
    """``(native, what)`` for a torch device (``"cpu"``, ``"cuda"``, ``torch.device``)."""
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):  # the caller's own check names the device
        return False, f"{device!r} is not a device torch knows"
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} computes bfloat16"
        return False, "this GPU has no bfloat16 arithmetic (compute capability below 8.0)"
    if device.type == "cpu":
        return cpu_bf16()
    return False, f"mets_fast uses bfloat16 on CPUs and NVIDIA GPUs, not on {device.type}"


def choose(device, preset: bool, requested: bool | None = None) -> Precision:
    """The arithmetic of a run or a model on `device`.  `requested`: ``--amp`` (True) or
    ``--no-amp`` (False), obeyed; None: the `preset`'s choice, which, when it asks for
    bfloat16, gets it only where `device` computes it natively."""
    native, what = device_bf16(device)
    if requested is False or (requested is None and not preset):
        return Precision(False, native, "float32 (bfloat16 autocast not asked for)")
    if requested:
        if native:
            return Precision(True, True, f"bfloat16 autocast, as asked ({what})")
        return Precision(True, False, f"bfloat16 autocast, as asked, although {what}: it is "
                                      f"emulated, often 10x slower than float32 (--no-amp)")
    if native:
        return Precision(True, True, f"bfloat16 autocast ({what})")
    return Precision(False, False, f"float32: {what}, and emulated bfloat16 is 10x slower "
                                   f"(--amp asks for it all the same)")
