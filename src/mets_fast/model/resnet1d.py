"""ResNet1d-18, the METS ECG encoder: ResNet-18 (He et al. 2016) with 1-d convolutions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two ``kernel``-wide convolutions with batch norm and a residual connection (a 1x1
    convolution where the width or the stride changes)."""

    def __init__(self, inputs: int, width: int, kernel: int, stride: int):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(inputs, width, kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if stride == 1 and inputs == width else nn.Sequential(
            nn.Conv1d(inputs, width, 1, stride, bias=False), nn.BatchNorm1d(width))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet1d(nn.Module):
    """ResNet1d for signals of any lead count and length: ``(N, leads, samples) -> (N, width)``.

    The layout is ResNet-18's with 1-d convolutions: a stem (a ``stem_kernel``-wide convolution
    with stride 2, batch norm, ReLU, a 3-wide max-pool with stride 2), four stages of
    ``blocks`` basic blocks (2-2-2-2) widening 64-128-256-512, each stage after the first
    halving the length, and global average pooling, so the output is ``widths[-1]`` (512)
    features whatever the length.

    Kernel sizes (they set the speed: the cost of the stages grows linearly with ``kernel``):
    the stem is 15 samples wide (150 ms at 100 Hz, a QRS complex), the blocks 7 (each stage
    sees 7 of its own, coarser steps: 280 ms to 2.2 s at 100 Hz).  This departs from the 2-d
    ResNet's 7 and 3, which cover far less of an ECG beat.

    With ``lead_indicator``, the stem also takes, beside each lead, a channel that is 1 where
    the lead has any non-zero sample and 0 where it is all zeros: missing, off and flat leads
    (the data layer makes those zeros, :func:`~mets_fast.data.records.lead_faults`), so that the
    encoder tells a missing lead from a quiet one instead of reading a zero lead as a signal.
    A model trained on random lead subsets needs it; the paper's encoder has none.

    Args:
        leads: input channels.
        widths, blocks: per stage.
        kernel, stem_kernel: odd convolution widths in samples.
        lead_indicator: add the present-lead channels.
    """

    def __init__(self, leads: int = 12, widths: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (2, 2, 2, 2), kernel: int = 7, stem_kernel: int = 15,
                 lead_indicator: bool = False):
        super().__init__()
        if leads < 1:
            raise ValueError(f"leads must be at least 1, got {leads}")
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths and blocks must have one entry per stage, got {widths} "
                             f"and {blocks}")
        for name, k in (("kernel", kernel), ("stem_kernel", stem_kernel)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be a positive odd number, got {k}")
        self.config = {"leads": int(leads), "widths": [int(w) for w in widths],
                       "blocks": [int(b) for b in blocks], "kernel": int(kernel),
                       "stem_kernel": int(stem_kernel)}
        if lead_indicator:  # recorded only when on: configs written before it stay the same
            self.config["lead_indicator"] = True
        inputs = 2 * leads if lead_indicator else leads
        self.stem = nn.Sequential(
            nn.Conv1d(inputs, widths[0], stem_kernel, 2, stem_kernel // 2, bias=False),
            nn.BatchNorm1d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool1d(3, 2, 1))
        stages, inputs = [], widths[0]
        for k, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if k == 0 else 2
            stage = [BasicBlock(inputs, width, kernel, stride)]
            stage += [BasicBlock(width, width, kernel, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            inputs = width
        self.stages = nn.Sequential(*stages)
        self.out_features = int(widths[-1])
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # each block starts as the identity (Goyal et al. 2017): steadier early training
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.config["leads"]:
            raise ValueError(f"expected (N, {self.config['leads']}, samples), got shape "
                             f"{tuple(x.shape)}")
        if self.config.get("lead_indicator"):
            present = (x != 0).any(dim=-1, keepdim=True).to(x.dtype)
            x = torch.cat([x, present.expand_as(x)], dim=1)
        return self.stages(self.stem(x)).mean(dim=-1)
