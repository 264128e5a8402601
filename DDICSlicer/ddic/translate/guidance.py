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


def local_ncc_squared(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Per-image mean over pixels of the squared local normalised cross-correlation in ``window``² boxes,
    shape (B,) in [0, 1]. Squared, it is blind to the sign of the local relation — CSF is dark in US and
    bright in T2 MRI while the skull and midline echo are bright in both — which is why multimodal
    registration uses it (e.g. ANTs' CC metric)."""
    pad = window // 2
    pool = torch.nn.AvgPool2d(window, stride=1, padding=pad, count_include_pad=False)
    mean_a, mean_b = pool(a), pool(b)
    cov = pool(a * b) - mean_a * mean_b
    var_a = (pool(a * a) - mean_a ** 2).clamp_min(0.0)
    var_b = (pool(b * b) - mean_b ** 2).clamp_min(0.0)
    ncc2 = cov * cov / (var_a * var_b + 1e-6)
    return ncc2.flatten(1).mean(dim=1)


def correlation_loss(reference: torch.Tensor, guided: torch.Tensor, kernel: int, sign: str,
                     measure: str = "pearson", window: int = 9) -> torch.Tensor:
    """Per-image loss, shape (B,): −s·r(med(reference), med(guided)) for the paper's global ``pearson``
    (``sign`` "+1", "-1" or "abs"), or −mean LNCC² of the median-filtered chains for ``lncc2`` (sign-free).

    Callers sum it over the batch (never average), so one frame's update does not depend on the batch size.
    The recorded "correlation" of a trace is the negated loss: s·r, or the mean LNCC².
    """
    if measure == "lncc2":
        return -local_ncc_squared(median_filter(reference, kernel), median_filter(guided, kernel), window)
    if measure != "pearson":
        raise ValueError(f"unknown guidance measure {measure!r}")
    r = pearson(median_filter(reference, kernel), median_filter(guided, kernel))
    if sign == "+1":
        return -r
    if sign == "-1":
        return r
    if sign == "abs":
        return -r.abs()
    raise ValueError(f"unknown correlation sign {sign!r}")
