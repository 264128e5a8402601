"""The beam domain of one frame: from tissue labels along the beams to log-compressed grey levels.

Why a module of its own: here the physics stages meet, in the order a scanner forms its B-mode lines
(``shared/docs/anatomy.md`` §4.2): tissues sampled along the beams
(:mod:`~ddic.data.phantom.scan_geometry`), diffuse scatterers (:mod:`~ddic.data.phantom.speckle`), specular
echoes, shadows, ring-down, reverberation and haze (:mod:`~ddic.data.phantom.echoes`), electronic noise,
the PSF and the envelope (:mod:`~ddic.data.phantom.speckle`), then TGC, auto-gain and log compression
(here). The order is part of the result: the stages add onto one scatterer map in place, and the frame's
generator is drawn in a fixed sequence (texture, scatterers, haze, noise), so a frame stays the same
function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import Label
from . import echogenicity as eg
from .acquisition import Acquisition
from .echoes import (
    SkullCrossing,
    add_near_field_haze,
    add_ringdown,
    add_wall_reverberation,
    propagation_transmission,
    specular_echoes,
)
from .scan_geometry import BeamGrid, HeadPlacement, world_labels
from .speckle import BeamPsf, Psf, diffuse_scatterers


@dataclass
class BeamData:
    """The polar (depth × line) domain of one frame, sector lines only (kept with ``keep_beam_data``)."""

    envelope: np.ndarray  # float32, after propagation losses, before TGC and log compression
    labels: np.ndarray  # uint8 ground-truth labels along the beams
    render_ids: np.ndarray  # uint8 tissue ids (labels + render-only ids)
    depth_mm: np.ndarray  # (n_depth,) below the transducer face
    theta_rad: np.ndarray  # (n_lines,) line angles from the central line
    tgc_db: np.ndarray  # (n_depth,)
    gain_db: float
    display: np.ndarray  # float32 0…255, log-compressed, before scan conversion
    haze_mask: np.ndarray  # bool: where near-field haze was added
    psf: Psf
    probe_radius_mm: float

    @property
    def line_spacing_mm(self) -> np.ndarray:
        """Arc length between neighbouring lines at each depth."""
        dtheta = float(self.theta_rad[1] - self.theta_rad[0])
        return (self.probe_radius_mm + self.depth_mm) * dtheta


def simulate_beams(acq: Acquisition, placement: HeadPlacement, labels: np.ndarray, ids: np.ndarray,
                   spacing: float, rng: np.random.Generator) -> BeamData:
    """Render the sector's beam lines of one frame (``labels``/``ids``: the label map and its render ids)."""
    f0, dr, radius = acq.frequency_mhz, acq.dr_mm, acq.probe_radius_mm
    psf = acq.psf()
    grid = BeamGrid.of(acq, psf)
    depth, r = grid.depth, grid.r
    x, z = grid.world_points()
    lab, rid = world_labels(acq, placement, labels, ids, spacing, x, z, depth[:, None], grid.theta[None, :])
    del x, z
    shape = lab.shape
    jitter = {i: v for i, v in enumerate(acq.backscatter_jitter_db)}
    tables = eg.TissueTables.build(jitter, acq.skull_attenuation_scale, acq.skull_impedance_mrayl)

    specular, refl = specular_echoes(tables.impedance[rid], grid, acq.specular_exponent)
    transmission = propagation_transmission(tables.attenuation[rid], refl, f0, dr)
    del refl

    beam_psf = BeamPsf(psf, dr, depth, r * grid.dtheta, grid.n_total)
    std = beam_psf.diffuse_std()[:, None]
    samples_per_mm = (1.0 / dr, 1.0 / (float(r[len(r) // 2]) * grid.dtheta))
    scatter = diffuse_scatterers(tables.backscatter_db[rid], tables.textured[rid], std, acq.texture_db,
                                 acq.texture_correlation_mm, samples_per_mm, rng)
    scatter += specular
    scatter *= transmission

    crossing = SkullCrossing.of(lab)
    add_ringdown(scatter, specular, transmission, crossing, acq)
    del specular
    add_wall_reverberation(scatter, lab, rid, depth, acq)
    haze_mask = add_near_field_haze(scatter, acq, crossing, grid, tables, transmission, std, rng)
    del transmission, crossing
    # electronic noise (before TGC, so TGC amplifies it with depth)
    scatter += rng.standard_normal(shape, dtype=np.float32) * (std * np.float32(10.0 ** (acq.noise_floor_db / 20)))

    analytic = beam_psf(scatter)
    del scatter
    envelope = np.abs(analytic).astype(np.float32)
    del analytic

    cut = grid.sector_lines
    envelope, lab, rid, haze_mask = envelope[:, cut], lab[:, cut], rid[:, cut], haze_mask[:, cut]
    tgc_db, gain_db, display = _display_levels(acq, envelope, depth, rid, tables)
    return BeamData(envelope=envelope, labels=lab, render_ids=rid, depth_mm=depth,
                    theta_rad=grid.theta[cut].copy(), tgc_db=tgc_db, gain_db=gain_db, display=display,
                    haze_mask=haze_mask, psf=psf, probe_radius_mm=radius)


def _display_levels(acq: Acquisition, envelope: np.ndarray, depth: np.ndarray, rid: np.ndarray,
                    tables: eg.TissueTables) -> tuple[np.ndarray, float, np.ndarray]:
    """TGC, auto-gain and log compression: (TGC dB per depth, gain dB, grey levels 0…255 as float32).

    The TGC undoes the nominal attenuation (plus a drawn knot curve); the gain puts the median brain
    tissue at the drawn parenchyma grey (other non-fluid tissue when there is too little brain in view);
    the compression maps ``dynamic_range_db`` below full scale to 0…1, then the gamma, then 255.
    """
    f0 = acq.frequency_mhz
    knots = np.linspace(0.0, float(depth[-1]), len(acq.tgc_knots_db))
    tgc_db = (2.0 * acq.tgc_alpha_db_cm_mhz * f0 * depth / 10.0
              + np.interp(depth, knots, acq.tgc_knots_db)).astype(np.float32)
    level_db = np.float32(20.0) * np.log10(envelope + np.float32(1e-12)) + tgc_db[:, None]
    dyn = acq.dynamic_range_db
    target_db = -dyn + dyn * (acq.parenchyma_grey / 255.0) ** (1.0 / acq.gamma)
    tissue = np.isin(rid, eg.PARENCHYMA_IDS)
    if tissue.sum() < 100:
        tissue = ~np.isin(rid, eg.FLUID_IDS + (int(Label.SKULL),))
    if tissue.sum() >= 100:
        gain_db = float(target_db - np.median(level_db[tissue]))
    else:  # nothing but fluid: put nominal white matter at the target
        gain_db = float(target_db - tables.backscatter_db[Label.WHITE_MATTER])
    display = np.clip((level_db + np.float32(gain_db + dyn)) / np.float32(dyn), 0.0, 1.0)
    display = (display ** np.float32(acq.gamma)) * np.float32(255.0)
    return tgc_db, gain_db, display.astype(np.float32)
