"""The learning rate as a function of the global step (so a resumed run follows the same
curve)."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "constant")


def learning_rate(step: int, total: int, base: float, schedule: str = "cosine",
                  warmup: float = 0.0) -> float:
    """The rate of `step` (0-based) of `total`: ``"constant"``, or ``"cosine"``: a linear
    warm-up over the first ``warmup`` fraction of the steps, then half a cosine from `base` to
    zero at the last step."""
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    ramp = int(round(warmup * total))
    if step < ramp:
        return base * (step + 1) / ramp
    span = max(1, total - ramp)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step - ramp, span) / span))
