"""Rasterisation primitives of the phantom: why a separate module — the anatomy decides *what* to draw,
this module only *how*: shapes as (bounding box, mask function) pairs evaluated on a fine grid inside their
box only (speed), boundaries perturbed by low-order Fourier noise, labels painted in order with an
"only over these labels" restriction, and mode downsampling of the fine label grid.

Coordinates are the head frame in mm (``u`` = image x, ``v`` = image y), pixel centres from
:func:`pixel_axes`; everything is deterministic.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


NOISE_KEYS = {"head": 1, "brain": 2, "ecsf": 3}


def noise_key(name: str, side: str | None = None, index: int = 0) -> int:
    """A stable integer per (structure, side): the Fourier coefficients of a boundary follow from it."""
    base = NOISE_KEYS.get(name)
    if base is None:
        base = 10 + sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 9973
    return base * 1000 + (0 if side is None else (1 if side == "left" else 2)) * 100 + index


class Contour:
    """Radial perturbation 1 + Σ_k c_k cos kθ + s_k sin kθ, k = 2…8, with a given RMS (§6.2 step 7)."""

    def __init__(self, seed: int, key: int, rms: float, min_harmonic: int = 2, max_harmonic: int = 8):
        rng = np.random.default_rng([int(seed), int(key)])
        k = np.arange(min_harmonic, max_harmonic + 1)
        c, s = rng.standard_normal(k.size) / k, rng.standard_normal(k.size) / k
        total = math.sqrt(0.5 * float(np.sum(c**2 + s**2)))
        scale = rms / total if total > 0 else 0.0
        self.k, self.c, self.s = k, c * scale, s * scale

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        return self.on_unit(np.exp(1j * np.asarray(theta, dtype=np.float64)))

    def on_unit(self, z: np.ndarray) -> np.ndarray:
        """Evaluate at e^{iθ} given directly (saves the trigonometry on large grids):
        c cos kθ + s sin kθ = Re((c − i s)·z^k)."""
        total = np.zeros(np.shape(z), dtype=np.complex128)
        zk = z ** int(self.k[0])
        for c, s in zip(self.c, self.s):
            total += (c - 1j * s) * zk
            zk = zk * z
        return 1.0 + total.real


class Canvas:
    """The fine label grid with painting restricted to a bounding box (speed) and to current labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray, fill: int):
        self.x, self.y = x, y
        self.sx = float(x[1] - x[0]) if x.size > 1 else 1.0
        self.sy = float(y[1] - y[0]) if y.size > 1 else 1.0
        self.labels = np.full((y.size, x.size), fill, dtype=np.uint8)

    def window(self, umin, umax, vmin, vmax):
        c0, c1 = np.searchsorted(self.x, umin), np.searchsorted(self.x, umax, side="right")
        r0, r1 = np.searchsorted(self.y, vmin), np.searchsorted(self.y, vmax, side="right")
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1), self.x[c0:c1][None, :], self.y[r0:r1][:, None]

    def paint(self, label: int, win, mask: np.ndarray, within=None) -> None:
        rows, cols = win[0], win[1]
        region = self.labels[rows, cols]
        mask = np.broadcast_to(mask, region.shape)
        if within is not None:
            allowed = np.zeros(256, dtype=bool)
            allowed[[int(w) for w in within]] = True
            mask = mask & allowed[region]
        region[mask] = label

    def paint_shape(self, label: int, bbox, fn: Callable, within=None) -> None:
        win = self.window(*bbox)
        if win is not None:
            self.paint(label, win, fn(win[2], win[3]), within)


def ellipse(cu, cv, a, b, angle, contour=None):
    """(bbox, mask function) of a rotated ellipse, optionally with a noisy boundary."""
    ca, sa = math.cos(angle), math.sin(angle)

    def fn(u, v):
        du, dv = u - cu, v - cv
        p, q = (du * ca + dv * sa) / a, (-du * sa + dv * ca) / b
        rho = np.hypot(p, q)
        return rho < (contour(np.arctan2(q, p)) if contour is not None else 1.0)

    r = max(a, b) * 1.15 + 0.5
    return (cu - r, cu + r, cv - r, cv + r), fn


def superellipse(cu, cv, a, b, power=4.0, contour=None):
    """(bbox, mask function) of an axis-aligned superellipse: a rounded box for power 4 (CSP, 3rd ventricle)."""
    def fn(u, v):
        p, q = (u - cu) / a, (v - cv) / b
        rho = (np.abs(p) ** power + np.abs(q) ** power) ** (1.0 / power)
        return rho < (contour(np.arctan2(q, p)) if contour is not None else 1.0)

    return (cu - a * 1.15 - 0.5, cu + a * 1.15 + 0.5, cv - b * 1.15 - 0.5, cv + b * 1.15 + 0.5), fn


def capsule(p0, p1, r0, r1=None, contour=None):
    """Points within r(t) of the segment p0→p1 (r tapering from r0 to r1): ventricles, sulci, cisterns."""
    r1 = r0 if r1 is None else r1
    (u0, v0), (u1, v1) = p0, p1
    du, dv = u1 - u0, v1 - v0
    length2 = du * du + dv * dv
    cu, cv = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
    axis = math.atan2(dv, du)

    def fn(u, v):
        t = np.clip(((u - u0) * du + (v - v0) * dv) / length2, 0.0, 1.0) if length2 > 0 else 0.0
        dist = np.hypot(u - (u0 + t * du), v - (v0 + t * dv))
        radius = r0 + (r1 - r0) * t
        if contour is not None:
            radius = radius * contour(np.arctan2(v - cv, u - cu) - axis)
        return dist < radius

    r = max(r0, r1) * 1.1 + 0.5
    return (min(u0, u1) - r, max(u0, u1) + r, min(v0, v1) - r, max(v0, v1) + r), fn


def spacing_pair(spacing_mm) -> tuple[float, float]:
    """A float or a (row, column) pair → (row, column) spacing in mm."""
    if np.ndim(spacing_mm) == 0:
        s = float(spacing_mm)
        return s, s
    sy, sx = (float(v) for v in spacing_mm)
    return sy, sx


def pixel_axes(spacing_mm, shape) -> tuple[np.ndarray, np.ndarray]:
    """Head-frame coordinates (mm) of the pixel centres: (x along columns, y along rows), centre at 0."""
    sy, sx = spacing_pair(spacing_mm)
    h, w = int(shape[0]), int(shape[1])
    return (np.arange(w) - (w - 1) / 2.0) * sx, (np.arange(h) - (h - 1) / 2.0) * sy


def mode_downsample(fine: np.ndarray, factor: int) -> np.ndarray:
    """Most frequent label in each factor×factor block (ties → lowest label id)."""
    if factor == 1:
        return fine.copy()
    h, w = fine.shape[0] // factor, fine.shape[1] // factor
    present = np.unique(fine)
    counts = np.stack([(fine == lab).reshape(h, factor, w, factor).sum(axis=(1, 3)) for lab in present])
    return present[np.argmax(counts, axis=0)].astype(np.uint8)
