"""Echoes and shadows on the beam grid: specular interfaces, propagation losses, ring-down, reverberation, haze.

Why apart from the speckle (:mod:`ddic.data.phantom.speckle`): these are the coherent echoes and the
artefacts of a B-mode line (``shared/docs/anatomy.md`` §4.2 steps 3–5), the parts that make a fetal head
look like one in ultrasound — a skull bright where the beam meets it squarely and faint where it grazes,
a shadow behind it, ring-down below it, a hazy proximal hemisphere, reverberation of the maternal wall in
the fluid — and that a translator has to see through. Everything works on the polar grid of one frame
(:class:`~ddic.data.phantom.scan_geometry.BeamGrid`, depth × line). The ``add_*`` functions add their
echoes onto the scatterer map *in place*, in the order :func:`ddic.data.phantom.beams.simulate_beams`
calls them: each reads what the previous ones left (reverberation copies the wall's echoes as they are
by then), and the haze draws from the frame's generator after the scatterers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import BRAIN_LABELS, Label
from . import echogenicity as eg
from .acquisition import Acquisition
from .scan_geometry import BeamGrid, midline_depth
from .speckle import smooth_field

_HAZE_FADE_MM = 6.0  # the haze fades out over this distance before the midline
_HEAD_INTERIOR = tuple(sorted(int(v) for v in BRAIN_LABELS))


def specular_echoes(impedance: np.ndarray, grid: BeamGrid, specular_exponent: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Specular reflections at impedance changes along each beam, and each sample's reflection coefficient.

    ``impedance``: per grid sample (MRayl). The echo is R·|cos θ_inc|^n relative to the nominal skull
    echo, θ_inc the angle between the beam and the interface normal (from the gradient of the lightly
    smoothed impedance map): bright skull where it is perpendicular to the beam, faint where tangent; it
    is coherent (no random amplitude), so the lines stay crisp. Returns (specular, R), both float32.
    """
    dr, r, dtheta = grid.dr, grid.r, grid.dtheta
    refl = np.zeros(impedance.shape, np.float32)
    refl[1:] = (impedance[1:] - impedance[:-1]) / (impedance[1:] + impedance[:-1])
    smooth = ndimage.gaussian_filter(impedance, (max(0.3 / dr, 1.0), 1.0))
    g_r = np.gradient(smooth, axis=0) / np.float32(dr)
    g_t = np.gradient(smooth, axis=1) / (r[:, None] * np.float32(dtheta))
    del smooth
    cos_inc = np.abs(g_r) / np.sqrt(g_r * g_r + g_t * g_t + np.float32(1e-12))
    del g_r, g_t
    specular = refl / np.float32(eg.SKULL_REFLECTION) * cos_inc ** np.float32(specular_exponent)
    return specular, refl


def propagation_transmission(attenuation: np.ndarray, refl: np.ndarray, frequency_mhz: float, dr: float
                             ) -> np.ndarray:
    """The amplitude that reaches each sample and returns, from everything above it along the beam.

    Two-way attenuation (2·Σα·f0·dr, ``attenuation`` in dB/cm/MHz per sample) and the transmission loss
    (1 − R²) of every interface before the sample: posterior shadowing behind the bone, a darker far
    field, enhancement behind fluid.
    """
    step_db = (attenuation * np.float32(2.0 * frequency_mhz * dr / 10.0)
               - np.float32(20.0) * np.log10(np.float32(1.0) - refl * refl))
    loss_db = np.cumsum(step_db, axis=0, dtype=np.float32) - step_db
    del step_db
    return np.power(np.float32(10.0), -loss_db / np.float32(20.0))


@dataclass(frozen=True)
class SkullCrossing:
    """Where each beam line crosses the skull for the first time (rows of the beam grid).

    ``exit``: the first row below that crossing (the number of rows where the line misses the skull);
    ``head``: samples inside the skull (brain labels); ``rows``: the row index as a (n_depth, 1) column.
    """

    rows: np.ndarray
    is_skull: np.ndarray
    head: np.ndarray
    has_skull: np.ndarray
    first: np.ndarray
    exit: np.ndarray

    @classmethod
    def of(cls, lab: np.ndarray) -> SkullCrossing:
        rows = np.arange(lab.shape[0])[:, None]
        is_skull = lab == Label.SKULL
        has_skull = is_skull.any(axis=0)
        first = np.argmax(is_skull, axis=0)
        exit_ = np.argmax(~(is_skull | (rows < first)), axis=0)
        exit_ = np.where(has_skull, exit_, lab.shape[0])
        head = np.isin(lab, _HEAD_INTERIOR)
        return cls(rows, is_skull, head, has_skull, first, exit_)


def add_ringdown(scatter: np.ndarray, specular: np.ndarray, transmission: np.ndarray, crossing: SkullCrossing,
                 acq: Acquisition) -> None:
    """Ring-down: up to three fading copies of the first skull crossing's echo below it, in bone and brain.

    Only when the frame drew ring-down and some line meets the skull.
    """
    c = crossing
    if not (acq.ringdown and c.has_skull.any()):
        return
    shape = scatter.shape
    first_crossing = (c.rows >= c.first) & (c.rows <= c.exit) & c.has_skull[None, :]
    source = np.where(first_crossing, specular * transmission, np.float32(0))
    del first_crossing
    shift = max(1, int(round(acq.ringdown_spacing_mm / acq.dr_mm)))
    target = c.head | c.is_skull
    for k in range(1, 4):
        if k * shift >= shape[0]:
            break
        copy = np.zeros(shape, np.float32)
        copy[k * shift:] = source[:-k * shift]
        scatter += np.where(target, copy * np.float32(acq.ringdown_factor ** k), np.float32(0))


def add_wall_reverberation(scatter: np.ndarray, lab: np.ndarray, rid: np.ndarray, depth: np.ndarray,
                           acq: Acquisition) -> None:
    """Maternal-wall reverberation: stretched copies of the wall's echoes at 2× and 3× depth, only in fluid
    (where nothing else hides them)."""
    shape = scatter.shape
    in_wall = np.isin(rid, eg.WALL_IDS) & (depth[:, None] < acq.wall_thickness_mm + acq.wall_wave[0] + 1.0)
    if in_wall.any():
        wall_echo = np.where(in_wall, scatter, np.float32(0))
        gain2 = np.float32(10.0 ** (acq.wall_reverberation_db / 20.0))
        reverb = gain2 * wall_echo[np.arange(shape[0]) // 2] + gain2 * np.float32(0.5) * wall_echo[
            np.arange(shape[0]) // 3]
        scatter += np.where(lab == Label.AMNIOTIC_FLUID, reverb, np.float32(0))


def add_near_field_haze(scatter: np.ndarray, acq: Acquisition, crossing: SkullCrossing, grid: BeamGrid,
                        tables: eg.TissueTables, transmission: np.ndarray, std: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Near-field haze inside the head, from the first skull crossing to the midline; returns where.

    Extra scatterers under a blotchy envelope (≈ 3 mm along the beam × 1–2 beam widths), ``haze_db``
    over white matter at the bone, decaying onto a floor and faded out over the last few mm before the
    midline, so the proximal hemisphere is obscured (anechoic structures filled in, lower contrast).
    ``std``: the PSF's per-depth scatterer SD (:meth:`~ddic.data.phantom.speckle.BeamPsf.diffuse_std`).
    """
    depth, r, dr, dtheta = grid.depth, grid.r, grid.dr, grid.dtheta
    shape = scatter.shape
    c = crossing
    midline = midline_depth(acq, grid.theta)
    haze_mask = c.head & (c.rows >= c.exit) & (depth[:, None] < midline[None, :])
    if haze_mask.any():
        width_lines = acq.haze_width_beams * acq.lateral_fwhm_focus_mm / (float(np.median(r)) * dtheta)
        step = (max(1.0, 0.25 / dr), max(1.0, width_lines / 3.0))
        sigma = (3.0 / 2.3548 / 0.25, width_lines / 2.3548 / step[1])
        blotches = np.abs(smooth_field(rng, shape, step, sigma, complex_valued=True))
        blotches /= np.float32(max(float(np.sqrt(np.mean(blotches ** 2))), 1e-12))
        level = 10.0 ** ((tables.backscatter_db[Label.WHITE_MATTER] + acq.haze_db) / 20.0)
        exit_depth = (np.where(c.has_skull, c.exit, 0) * dr)[None, :]
        below_bone = np.maximum(depth[:, None] - exit_depth, 0)
        profile = acq.haze_floor + (1 - acq.haze_floor) * np.exp(-below_bone / acq.haze_decay_mm)
        fade = np.clip((midline[None, :] - depth[:, None]) / _HAZE_FADE_MM, 0.0, 1.0)
        profile = (profile * (0.5 - 0.5 * np.cos(np.pi * fade))).astype(np.float32)
        haze = rng.standard_normal(shape, dtype=np.float32)
        haze *= blotches * profile * transmission * (std * np.float32(level))
        scatter += np.where(haze_mask, haze, np.float32(0))
    return haze_mask
