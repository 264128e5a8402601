"""The imposed correlation: median filtering and the per-image Pearson correlation loss.

The median suppresses speckle so that the correlation sees anatomy; its gradient reaches only the
median element of each window (torch's median routes it there), as in the paper. Reflect padding keeps
borders unbiased (zero padding would pull the border medians towards 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-12


def median_filter(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """k×k median of (B, C, H, W) images with reflect padding; kernel 1 returns the input."""
    if kernel == 1:
        return images
    if kernel % 2 == 0:
        raise ValueError(f"median kernel must be odd, got {kernel}")
    pad = kernel // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    windows = padded.unfold(2, kernel, 1).unfold(3, kernel, 1)  # (B, C, H, W, k, k)
    return windows.reshape(*windows.shape[:4], kernel * kernel).median(dim=-1).values


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two (B, ...) batches, shape (B,)."""
    a = a.flatten(1)
    b = b.flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1) + _EPS)


def correlation_loss(reference: torch.Tensor, guided: torch.Tensor, kernel: int, sign: str) -> torch.Tensor:
    """Per-image loss −s·r(med(reference), med(guided)), shape (B,); ``sign`` is "+1", "-1" or "abs".

    Callers sum it over the batch (never average), so one frame's update does not depend on the batch size.
    """
    r = pearson(median_filter(reference, kernel), median_filter(guided, kernel))
    if sign == "+1":
        return -r
    if sign == "-1":
        return r
    if sign == "abs":
        return -r.abs()
    raise ValueError(f"unknown correlation sign {sign!r}")
