"""The small image filters of the geometry package: Gaussian derivatives, Hessian ridges, bilinear sampling.

Why here and in plain numpy: the skull detector (:mod:`ddic.geometry.skull_detection`) and the head
orientation heuristic (:mod:`ddic.geometry.head`) run in Slicer's own process too, where only numpy and
SimpleITK are certain to exist; these few filters are all they need, written once so that both sides
sample and smooth in exactly the same way. Images are 2D float arrays indexed (row, column); positions
are continuous pixel indices ``x`` = column, ``y`` = row (the :mod:`ddic.geometry.ellipse` conventions).
"""

from __future__ import annotations

import math

import numpy as np


def box_mean(mask: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``mask`` over a (2r+1)² window (outside the image counts as 0), via an integral image."""
    m = np.pad(mask.astype(np.float64), radius + 1)
    c = m.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s[: mask.shape[0], : mask.shape[1]] / (k * k)


def gaussian_kernels(sigma: float):
    """The sampled Gaussian of ``sigma`` px (unit sum, ±4σ) and its first and second derivatives."""
    radius = math.ceil(4.0 * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    g1 = -x / sigma**2 * g
    g2 = (x * x / sigma**4 - 1.0 / sigma**2) * g
    return g, g1, g2


def convolve_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Correlation with a symmetric/antisymmetric 1D kernel along ``axis`` (edge values extended)."""
    r = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(image, pad, mode="edge")
    out = np.zeros_like(image)
    n = image.shape[axis]
    for k, weight in enumerate(kernel[::-1]):  # convolution: kernel reversed
        sl = [slice(None), slice(None)]
        sl[axis] = slice(k, k + n)
        out += weight * padded[tuple(sl)]
    return out


def ridges(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Bright-ridge strength (scale-normalised) and the unit normal across the ridge, per pixel."""
    g, g1, g2 = gaussian_kernels(sigma)
    ixx = convolve_axis(convolve_axis(image, g2, 1), g, 0)
    iyy = convolve_axis(convolve_axis(image, g, 1), g2, 0)
    ixy = convolve_axis(convolve_axis(image, g1, 1), g1, 0)
    half_trace = 0.5 * (ixx + iyy)
    root = np.sqrt((0.5 * (ixx - iyy)) ** 2 + ixy**2)
    lam1, lam2 = half_trace - root, half_trace + root  # lam1 ≤ lam2
    strength = np.maximum(0.0, -lam1 - np.abs(lam2)) * sigma**2
    # eigenvector of lam1: (ixy, lam1 − ixx) or (lam1 − iyy, ixy), whichever is better conditioned
    v1 = np.stack([ixy, lam1 - ixx], axis=-1)
    v2 = np.stack([lam1 - iyy, ixy], axis=-1)
    use2 = np.sum(v2 * v2, axis=-1) > np.sum(v1 * v1, axis=-1)
    v = np.where(use2[..., None], v2, v1)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    v = np.where(norm > 1e-12, v / np.maximum(norm, 1e-12), np.array([1.0, 0.0]))
    return strength, v  # v[..., 0] = x component, v[..., 1] = y component


def non_max_suppression(strength: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Pixels whose ridge strength is a maximum across the ridge (± one pixel along the normal)."""
    h, w = strength.shape
    yy, xx = np.mgrid[0:h, 0:w]
    keep = np.ones((h, w), dtype=bool)
    for sign in (1.0, -1.0):
        nx = np.clip(np.rint(xx + sign * normal[..., 0]).astype(int), 0, w - 1)
        ny = np.clip(np.rint(yy + sign * normal[..., 1]).astype(int), 0, h - 1)
        keep &= strength >= strength[ny, nx]
    return keep


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2D array at continuous (x = column, y = row) positions (clamped to it)."""
    h, w = image.shape
    xs = np.clip(np.asarray(xs, dtype=np.float64), 0.0, w - 1.0)
    ys = np.clip(np.asarray(ys, dtype=np.float64), 0.0, h - 1.0)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 2)
    fx, fy = xs - x0, ys - y0
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
            + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])
